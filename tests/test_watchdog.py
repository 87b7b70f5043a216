"""vos3k/watchdog.py: a late reactor heartbeat is reported once per stall, with the stack."""

from __future__ import annotations

import io
import time

from twisted.internet.task import Clock

from vos3k import watchdog
from vos3k.watchdog import StallWatch


def wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_stall_is_reported_once_with_the_reactor_threads_stack():
    out = io.StringIO()
    clock = Clock()  # never advanced: the heartbeat does not run, as in a busy reactor
    watch = StallWatch(clock, threshold_ms=40, out=out)
    watch.start()
    try:
        assert wait_for(lambda: watch.stalls == 1)
        time.sleep(0.2)  # the same stall goes on: not reported again
        assert watch.stalls == 1
        text = out.getvalue()
        assert "reactor thread busy for" in text and "test_watchdog.py" in text
        watch._tick()  # the reactor got through; the next stall is a new one
        assert wait_for(lambda: watch.stalls == 2)
    finally:
        watch.stop()


def test_off_unless_the_environment_asks(monkeypatch):
    monkeypatch.delenv(watchdog.ENV, raising=False)
    assert watchdog.from_environment(Clock()) is None
    monkeypatch.setenv(watchdog.ENV, "soon")
    assert watchdog.from_environment(Clock()) is None
    monkeypatch.setenv(watchdog.ENV, "0")
    assert watchdog.from_environment(Clock()) is None
