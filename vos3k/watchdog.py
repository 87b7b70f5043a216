"""The reactor stall watchdog: who kept the reactor thread from its other work.

Everything in vos3k runs on the reactor thread, so one slow step delays every call's
signalling.  With VOS3K_STALL_WATCH_MS=N in the environment (vos3k.8, ENVIRONMENT), a
heartbeat on the reactor every N/4 ms and a watcher thread that looks as often: when the
heartbeat is more than N ms late, the watcher writes the reactor thread's Python stack
to the original stderr once for that stall, and `stalls` counts them.  Off by default:
it costs a wake-up per N/4 ms.  Diagnostics only; no call behaviour depends on it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import Any, TextIO

from twisted.internet.task import LoopingCall

ENV = "VOS3K_STALL_WATCH_MS"


class StallWatch:
    def __init__(self, reactor: Any, threshold_ms: int, out: TextIO | None = None):
        self.threshold_s = threshold_ms / 1000
        self.stalls = 0
        self._out = out or sys.__stderr__
        self._beat = time.monotonic()
        self._thread_id = threading.get_ident()  # built on the reactor thread
        self._stop = threading.Event()
        self._heartbeat = LoopingCall(self._tick)
        self._heartbeat.clock = reactor
        self._watcher = threading.Thread(target=self._watch, name="stall-watch", daemon=True)

    def start(self) -> None:
        self._heartbeat.start(self.threshold_s / 4)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._heartbeat.running:
            self._heartbeat.stop()

    def _tick(self) -> None:
        self._beat = time.monotonic()

    def _watch(self) -> None:
        reported = None
        while not self._stop.wait(self.threshold_s / 4):
            beat = self._beat
            late = time.monotonic() - beat
            if late <= self.threshold_s or reported == beat:
                continue
            reported = beat
            self.stalls += 1
            frame = sys._current_frames().get(self._thread_id)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            self._out.write(
                f"vos3k stall watch: reactor thread busy for {late * 1000:.0f} ms so far:\n"
                f"{stack}\n"
            )
            self._out.flush()


def from_environment(reactor: Any) -> StallWatch | None:
    """A running StallWatch when VOS3K_STALL_WATCH_MS is a positive integer, else None."""
    value = os.environ.get(ENV, "").strip()
    if not value.isdigit() or int(value) <= 0 or sys.__stderr__ is None:
        return None
    watch = StallWatch(reactor, int(value))
    watch.start()
    return watch
