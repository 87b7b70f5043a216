"""The CDR write-ahead journal: rows on disk before submit() returns, replayed on start.

SPEC.md §7 / DESIGN.md data rules: a CDR acknowledged to the pending list survives
kill -9.  Each submitted row is written to the journal with one write(2) before
`CdrWriter.submit()` returns: once write(2) returns the bytes are in the kernel's page
cache, which a killed process cannot lose.  `sync()` adds fdatasync for power loss; the
writer calls it once per reactor turn and always before a batch commits, so one disk
flush covers every row submitted in that turn.  After a batch commits (and nothing is
left pending) the journal is truncated.  On start the rows left in it are committed
again; `CdrRepo.commit_batch` skips call_uuids already stored, so nothing is charged
twice.

Format: one JSON object per line (UTF-8).  A last line without its `\\n` is the trace
of a write cut short by power loss and was never acknowledged; it is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

JOURNAL_FILE = "cdr-journal.jsonl"


class CdrJournal:
    """An append-only file of pending CDR rows (one per line)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._dirty = False
        self.rows_written = 0

    @property
    def dirty(self) -> bool:
        """Rows written since the last fdatasync."""
        return self._dirty

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row in one write(2); raises OSError when the disk refuses it."""
        data = (json.dumps(row, separators=(",", ":"), sort_keys=True) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = True
        self.rows_written += 1

    def sync(self) -> None:
        """Flush written rows to the disk (power loss), if any are unflushed."""
        if self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False

    def truncate(self) -> None:
        """Forget every row: all of them are committed.  Not synced: a journal that
        reappears after power loss only replays rows the store will skip."""
        os.ftruncate(self._fd, 0)
        self._dirty = False

    def read(self) -> list[dict[str, Any]]:
        """The rows in the journal, in submit order (a torn last line left out)."""
        with open(self.path, "rb") as f:
            data = f.read()
        rows = []
        for line in data.split(b"\n")[:-1]:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by power loss before its fdatasync
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
