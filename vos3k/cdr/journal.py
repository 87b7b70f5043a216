"""The CDR write-ahead journal: rows on disk before submit() returns, replayed on start.

SPEC.md §7 / DESIGN.md data rules: a CDR acknowledged to the pending list survives
kill -9.  Each submitted row is written to the journal with one write(2) before
`CdrWriter.submit()` returns: once write(2) returns the bytes are in the kernel's page
cache, which a killed process cannot lose, so the reactor thread never waits for a disk.

Batches and segments: the writer commits on its own thread while the next batch keeps
collecting, so the journal cannot simply be truncated after a commit (it already holds
rows of the next batch).  When a batch closes, `seal()` renames the active file to a
numbered segment holding exactly the rows written so far and starts a fresh active
file for the rows that follow.  The writer thread fdatasyncs the segment (power loss)
right before the batch's commit and removes it once the commit is done.  A segment of
a failed commit stays until a later batch that carries its rows commits.  On start
every segment (oldest first) and then the active file are replayed;
`CdrRepo.commit_batch` skips call_uuids already stored, so nothing is charged twice.

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

_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


class Segment:
    """A sealed part of the journal: rows of batches not yet committed (no more writes)."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd

    def sync(self) -> None:
        """fdatasync the rows (power loss) and close the file; called once, before the
        commit of the batch that carries them (on the writer thread)."""
        if self._fd >= 0:
            try:
                os.fdatasync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1

    def remove(self) -> None:
        """The rows are committed: forget them (no flush needed for a file going away)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class CdrJournal:
    """An append-only file of pending CDR rows (one per line) plus sealed segments."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._dirty = False
        self.rows_written = 0
        self._next_segment = max((n for n, _ in self._segments()), default=0) + 1

    @property
    def dirty(self) -> bool:
        """Rows written to the active file since it was last sealed or synced."""
        return self._dirty

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row in one write(2); raises OSError when the disk refuses it."""
        view = memoryview((_dumps(row) + "\n").encode())
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._dirty = True
        self.rows_written += 1

    def seal(self) -> Segment | None:
        """Close the rows written so far into a segment (None when there are none) and
        start a fresh active file: a rename and an open, no disk flush."""
        if not self._dirty:
            return None
        path = self.path.with_name(f"{self.path.name}.{self._next_segment}")
        self._next_segment += 1
        os.rename(self.path, path)
        segment = Segment(path, self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._dirty = False
        return segment

    def sync(self) -> None:
        """Flush the active file's rows to the disk (power loss), if any are unflushed."""
        if self._dirty:
            os.fdatasync(self._fd)
            self._dirty = False

    def truncate(self) -> None:
        """Forget every row, segments included: all of them are committed.  Not
        synced: a journal that reappears after power loss only replays rows the
        store will skip."""
        for _, path in self._segments():
            path.unlink(missing_ok=True)
        os.ftruncate(self._fd, 0)
        self._dirty = False

    def read(self) -> list[dict[str, Any]]:
        """The rows in the journal, in submit order (a torn last line left out)."""
        rows: list[dict[str, Any]] = []
        for path in [p for _, p in self._segments()] + [self.path]:
            with open(path, "rb") as f:
                data = f.read()
            for line in data.split(b"\n")[:-1]:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line torn by power loss before its fdatasync
                if isinstance(row, dict):
                    rows.append(row)
        return rows

    def _segments(self) -> list[tuple[int, Path]]:
        """Sealed segments on disk, oldest first."""
        found = []
        for path in self.path.parent.glob(f"{self.path.name}.*"):
            suffix = path.name[len(self.path.name) + 1 :]
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
