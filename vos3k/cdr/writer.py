"""The durable CDR writer: a bounded pending list committed in batched transactions.

A call end hands its CDR row to `submit()` and gets a Deferred that fires once the row
and the balance changes it causes are committed (one SQLite transaction per batch), so
the switching core sends the ending message only after that (SPEC.md §7 durability).
Batches close every SS_CDR_WRITE_INTERVAL ms or at SS_CDR_BUFFER_SIZE rows, whichever
comes first; both are read live from the parameter snapshot.

With a journal (vos3k/cdr/journal.py) every row is on disk before `submit()` returns
and rows left by a killed process are committed again by `startService()`, so kill -9
loses no acknowledged CDR and charges none twice (SPEC.md §7, issue 7).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from vos3k.cdr.journal import CdrJournal
from vos3k.params import LiveParams
from vos3k.store.repos import CdrRepo


class PendingFullError(Exception):
    """SS_MAX_CDR_PENDING_LIST_LENGTH reached: new calls get 503 until the list drains."""


Committed = Callable[[list[tuple[int, Mapping[str, Any]]]], None]


class CdrWriter(Service):
    log = Logger()

    def __init__(
        self,
        repo: CdrRepo,
        params: LiveParams,
        clock: IReactorTime,
        journal: CdrJournal | None = None,
    ):
        self._repo = repo
        self._params = params
        self._clock = clock
        self._journal = journal
        self._sync_call = None
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
        """Queue one CDR row; the Deferred fires with its id after the commit.

        With a journal the row is written to it before this returns; a row without a
        `call_uuid` gets one, so that a replay can recognise it.
        """
        if self.full:
            return defer.fail(PendingFullError("CDR pending list is full"))
        if not row.get("call_uuid"):
            row = {**row, "call_uuid": uuid.uuid4().hex}
        if self._journal is not None:
            try:
                self._journal.append(row)
            except OSError as exc:
                # Not journaled, so not acknowledged: the caller treats it as a failure.
                self.log.error("CDR journal write failed: {error}", error=str(exc))
                return defer.fail(exc)
            if self._sync_call is None:
                # One fdatasync per reactor turn covers every row submitted in it.
                self._sync_call = self._clock.callLater(0, self._sync_journal)
        done: defer.Deferred = defer.Deferred()
        self._pending.append((row, done))
        snap = self._params.snapshot
        if len(self._pending) >= snap.cdr_buffer_size:
            self.flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(snap.cdr_write_interval_ms / 1000, self.flush)
        return done

    def flush(self) -> int:
        """Commit everything pending now, in one transaction; returns how many rows were
        new to the store (a replayed call_uuid already stored is skipped)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        rows = [row for row, _ in batch]
        try:
            # A row's Deferred fires only once it is both journaled (synced) and committed.
            self._sync_journal()
            ids = self._repo.commit_batch(rows)
        except Exception as exc:
            # Keep the rows: the next flush retries them; the callers wait.
            self.log.failure("CDR batch of {n} failed to commit; will retry", n=len(rows))
            self._pending = batch + self._pending
            self._timer = self._clock.callLater(1.0, self.flush)
            del exc
            return 0
        self.committed_total += len(rows)
        if self._journal is not None and not self._pending:
            self._truncate_journal()
        written = [(i, row) for i, row in zip(ids, rows, strict=True) if i is not None]
        for callback in list(self._after_commit):
            try:
                callback(written)
            except Exception:
                self.log.failure("CDR output after commit failed")
        for cdr_id, (_, done) in zip(ids, batch, strict=True):
            done.callback(cdr_id)
        return len(written)

    def _sync_journal(self) -> None:
        if self._sync_call is not None and self._sync_call.active():
            self._sync_call.cancel()
        self._sync_call = None
        if self._journal is not None:
            self._journal.sync()

    def _truncate_journal(self) -> None:
        try:
            self._journal.truncate()
        except OSError as exc:
            # Harmless: a replay of committed rows is skipped by call_uuid.
            self.log.error("CDR journal truncate failed: {error}", error=str(exc))

    def recover(self) -> int:
        """Commit the rows a previous process journaled but may not have committed;
        returns how many were new to the store (the rest were already there)."""
        if self._journal is None:
            return 0
        rows = self._journal.read()
        if not rows:
            return 0
        # One batch: the journal is truncated only once every row in it is committed.
        self._pending.extend((row, defer.Deferred()) for row in rows)
        new = self.flush()
        if self._pending:
            raise RuntimeError("CDR journal replay could not commit; not starting")
        self.log.info(
            "CDR journal replayed: {rows} rows, {new} were not yet committed",
            rows=len(rows),
            new=new,
        )
        return new

    def startService(self) -> None:
        self.recover()
        super().startService()

    def stopService(self) -> defer.Deferred:
        """SIGTERM path: everything pending is committed before the store closes."""
        super().stopService()
        self.flush()
        if self._journal is not None and not self._pending:
            self._journal.close()
        return defer.succeed(None)
