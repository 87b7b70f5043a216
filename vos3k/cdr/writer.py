"""The durable CDR writer: a bounded pending list committed in batched transactions.

A call end hands its CDR row to `submit()` and gets a Deferred that fires once the row
and the balance changes it causes are committed (one SQLite transaction per batch), so
the switching core sends the ending message only after that (SPEC.md §7 durability).
Batches close every SS_CDR_WRITE_INTERVAL ms or at SS_CDR_BUFFER_SIZE rows, whichever
comes first; both are read live from the parameter snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vos3k.params import LiveParams
from vos3k.store.repos import CdrRepo


class PendingFullError(Exception):
    """SS_MAX_CDR_PENDING_LIST_LENGTH reached: new calls get 503 until the list drains."""


Committed = Callable[[list[tuple[int, Mapping[str, Any]]]], None]


class CdrWriter(Service):
    log = Logger()

    def __init__(self, repo: CdrRepo, params: LiveParams, clock: IReactorTime):
        self._repo = repo
        self._params = params
        self._clock = clock
        self._pending: list[tuple[Mapping[str, Any], defer.Deferred]] = []
        self._timer = None
        self._after_commit: list[Committed] = []
        self.committed_total = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self._params.snapshot.cdr_max_pending

    def on_commit(self, callback: Committed) -> None:
        """Call `callback([(id, row), ...])` after each batch commits (files, feed)."""
        self._after_commit.append(callback)

    def submit(self, row: Mapping[str, Any]) -> defer.Deferred:
        """Queue one CDR row; the Deferred fires with its id after the commit."""
        if self.full:
            return defer.fail(PendingFullError("CDR pending list is full"))
        done: defer.Deferred = defer.Deferred()
        self._pending.append((row, done))
        snap = self._params.snapshot
        if len(self._pending) >= snap.cdr_buffer_size:
            self.flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(snap.cdr_write_interval_ms / 1000, self.flush)
        return done

    def flush(self) -> None:
        """Commit everything pending now, in one transaction."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        rows = [row for row, _ in batch]
        try:
            ids = self._repo.commit_batch(rows)
        except Exception as exc:
            # Keep the rows: the next flush retries them; the callers wait.
            self.log.failure("CDR batch of {n} failed to commit; will retry", n=len(rows))
            self._pending = batch + self._pending
            self._timer = self._clock.callLater(1.0, self.flush)
            del exc
            return
        self.committed_total += len(rows)
        written = [(i, row) for i, row in zip(ids, rows, strict=True) if i is not None]
        for callback in list(self._after_commit):
            try:
                callback(written)
            except Exception:
                self.log.failure("CDR output after commit failed")
        for cdr_id, (_, done) in zip(ids, batch, strict=True):
            done.callback(cdr_id)

    def stopService(self) -> defer.Deferred:
        """SIGTERM path: everything pending is committed before the store closes."""
        super().stopService()
        self.flush()
        return defer.succeed(None)
