"""Hourly pipe-format CDR files DATA_DIR/cdr/YYYYMMDDHH.txt, appended after each commit.

SPEC.md §7 "Files": a CDR goes to the file of its stopTime's local hour, no header,
appended after each commit while SS_CDR_RECORD_TO_FILE is on; the open file is fsynced
every SERVER_CDR_FILE_WRITE_INTERVAL s (0: after every batch) and when a batch of
another hour closes it; SERVER_CDR_FILE_WRITE_MAX keeps the newest N files.

Exactly once across kill -9: the output keeps a checkpoint in the store's cdr_outputs
table, written in one transaction: `files` = the last CDR id written, `files.hour` =
the file (YYYYMMDDHH) and `files.size` = its length after that CDR.  Every line written
after a checkpoint lands in the checkpoint's file past that length, because switching
files stores a new checkpoint first.  So on start the file is cut back to the
checkpoint's length and every CDR after the checkpoint's id is appended again: lines a
killed process wrote after its last checkpoint are replaced, not repeated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vos3k.cdr.record import hour_file_name, to_pipe_line
from vos3k.cdr.rows import row_to_cdr
from vos3k.params import LiveParams, Param
from vos3k.store.repos import CdrRepo

OUTPUT = "files"
_HOUR_FILE = re.compile(r"[0-9]{10}\.txt")
_CATCH_UP_CHUNK = 5000


class CdrFileWriter(Service):
    """Appends committed CDRs to the hourly files; register `on_commit` with the writer."""

    log = Logger()

    def __init__(
        self,
        repo: CdrRepo,
        params: LiveParams,
        clock: IReactorTime,
        cdr_dir: str | os.PathLike,
        tz: tzinfo | None,
    ):
        self._repo = repo
        self._params = params
        self._clock = clock
        self._dir = Path(cdr_dir)
        self._tz = tz
        self._file = None  # the open hour file (binary, append)
        self._name = ""
        self._last_id = 0
        self._saved: tuple[int, str, int] | None = None
        self._dirty = False  # lines written since the last fsync
        self._sync_timer = None
        self._unsubscribe = None
        self.lines_written = 0

    @property
    def last_id(self) -> int:
        """The last CDR id this output has dealt with (written, or passed while off)."""
        return self._last_id

    # -- start-up: cut back to the checkpoint and append what is missing

    def startService(self) -> None:
        super().startService()
        self._dir.mkdir(parents=True, exist_ok=True)
        self._unsubscribe = self._params.subscribe(self._param_changed)
        self.recover()

    def recover(self) -> int:
        """Apply the stored checkpoint and append the CDRs after it; returns how many."""
        stored = self._repo.output_positions(OUTPUT)
        self._last_id = stored.get(OUTPUT, 0)
        hour = stored.get(OUTPUT + ".hour")
        if hour is not None:
            path = self._dir / f"{hour:010d}.txt"
            size = stored.get(OUTPUT + ".size", 0)
            if path.exists() and path.stat().st_size > size:
                # Lines a killed process wrote after its last checkpoint: written again below.
                with open(path, "r+b") as f:
                    f.truncate(size)
                self.log.info(
                    "CDR file {file}: cut back to {size} bytes", file=path.name, size=size
                )
            self._saved = (self._last_id, path.name, size)
        if not self._params.snapshot.cdr_record_to_file:
            # SPEC §7: files hold only CDRs committed while recording was on.
            self._last_id = max(self._last_id, self._repo.last_id())
            self._checkpoint()
            return 0
        appended = 0
        while True:
            rows = self._repo.query(
                after_id=self._last_id, newest_first=False, limit=_CATCH_UP_CHUNK
            )
            if not rows:
                break
            appended += self._write([(row["id"], row) for row in rows])
        self.sync()
        if appended:
            self.log.info("CDR files: appended {n} CDRs missing at start-up", n=appended)
        return appended

    # -- after each commit

    def on_commit(self, written: list[tuple[int, Mapping[str, Any]]]) -> None:
        """CdrWriter.on_commit callback: append the batch, then fsync as configured."""
        if not self.running or not written:
            return
        snap = self._params.snapshot
        if not snap.cdr_record_to_file:
            # Stored at once: a restart must not append CDRs committed while off.
            self._last_id = max(self._last_id, written[-1][0])
            self.sync()
            return
        self._write(written)
        self._schedule_sync(snap.cdr_file_fsync_interval_s)

    def _write(self, written: list[tuple[int, Mapping[str, Any]]]) -> int:
        """Append each CDR after the last one written, in id order; returns how many."""
        count = 0
        chunk: list[bytes] = []
        for cdr_id, row in written:
            if cdr_id <= self._last_id:
                continue  # already in the files (start-up catch-up met a live batch)
            cdr = row_to_cdr(row, cdr_id)
            name = hour_file_name(cdr.stop_time, self._tz)  # type: ignore[arg-type]
            if name != self._name:
                self._append(chunk)
                chunk = []
                self._switch(name)
            chunk.append(to_pipe_line(cdr, self._tz).encode())  # type: ignore[arg-type]
            self._last_id = cdr_id
            count += 1
        self._append(chunk)
        self.lines_written += count
        return count

    def _append(self, lines: list[bytes]) -> None:
        if lines:
            self._file.write(b"".join(lines))
            self._file.flush()  # to the kernel now: a kill -9 cannot lose it
            self._dirty = True

    def _switch(self, name: str) -> None:
        """Close the current hour file (fsynced) and open `name`, checkpointing first."""
        self._close_file()
        self._file = open(self._dir / name, "ab")
        self._name = name
        self._checkpoint()
        self._rotate()

    def _close_file(self) -> None:
        if self._file is not None:
            self._fsync()
            self._file.close()
            self._file = None

    def _fsync(self) -> None:
        if self._file is not None and self._dirty:
            os.fsync(self._file.fileno())
        self._dirty = False

    def _checkpoint(self) -> None:
        size = self._file.tell() if self._file is not None else (self._saved or (0, "", 0))[2]
        name = self._name or (self._saved or (0, "", 0))[1]
        state = (self._last_id, name, size)
        if state == self._saved:
            return
        positions = {OUTPUT: self._last_id}
        if name:
            positions[OUTPUT + ".hour"] = int(name.removesuffix(".txt"))
            positions[OUTPUT + ".size"] = size
        self._repo.set_output_positions(positions)
        self._saved = state

    def sync(self) -> None:
        """fsync the open file, then store the checkpoint (never ahead of the disk)."""
        if self._sync_timer is not None and self._sync_timer.active():
            self._sync_timer.cancel()
        self._sync_timer = None
        self._fsync()
        self._checkpoint()

    def _schedule_sync(self, interval_s: int) -> None:
        if interval_s == 0:
            self.sync()
        elif self._sync_timer is None:
            self._sync_timer = self._clock.callLater(interval_s, self._timed_sync)

    def _timed_sync(self) -> None:
        self._sync_timer = None
        try:
            self.sync()
        except OSError as exc:
            self.log.error("CDR file fsync failed: {error}", error=str(exc))

    # -- rotation and live parameters

    def _rotate(self) -> None:
        """SERVER_CDR_FILE_WRITE_MAX: keep the newest N hour files (0 keeps all)."""
        keep = self._params.snapshot.cdr_file_max
        if keep <= 0:
            return
        names = sorted(p.name for p in self._dir.iterdir() if _HOUR_FILE.fullmatch(p.name))
        for name in names[: max(0, len(names) - keep)]:
            if name == self._name:
                continue
            (self._dir / name).unlink(missing_ok=True)
            self.log.info("CDR file {file} removed (SERVER_CDR_FILE_WRITE_MAX)", file=name)

    def _param_changed(self, param: Param, old: Any, new: Any) -> None:
        if param.attr == "cdr_file_max":
            self._rotate()
        elif param.attr == "cdr_record_to_file":
            self.sync()
        elif param.attr == "cdr_file_fsync_interval_s" and self._sync_timer is not None:
            self.sync()

    def stopService(self) -> None:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.sync()
        self._close_file()


def install_cdr_outputs(service: Any) -> tuple[CdrFileWriter, Any]:
    """Wire the hourly files and the real-time feed to a VosService's CDR writer and
    register the `stats` gauges feed_pending and feed_dropped (INTERFACE §6)."""
    from vos3k.cdr.forward import CdrFeed
    from vos3k.cdr.rows import server_tz

    tz = server_tz(service.settings.timezone)
    repo = service.store.cdrs
    files = CdrFileWriter(repo, service.params, service.reactor, service.settings.cdr_dir, tz)
    feed = CdrFeed(repo, service.params, service.reactor, tz)
    for output in (files, feed):
        service.cdr_writer.on_commit(output.on_commit)
        # Started after the writer (which replays its journal first); stopped before it,
        # so CDRs of its last flush reach the outputs by their start-up catch-up.
        output.setServiceParent(service)
    service.gauges["feed_pending"] = lambda: feed.pending
    service.gauges["feed_dropped"] = lambda: feed.dropped_total
    return files, feed
