"""The durable CDR writer: a bounded pending list committed in batched transactions.

A call end hands its CDR row to `submit()` and gets a Deferred that fires once the row
and the balance changes it causes are committed (one SQLite transaction per batch), so
the switching core sends the ending message only after that (SPEC.md §7 durability).
Batches close every SS_CDR_WRITE_INTERVAL ms or at SS_CDR_BUFFER_SIZE rows, whichever
comes first; both are read live from the parameter snapshot.

Off the reactor (STYLE.md §6 "one writer, own connection"): given `own_store` and a
reactor with threads, a running writer commits each batch on a one-thread pool with
its own SQLite connection (WAL lets the reactor's connection keep reading).  At most
one batch is in flight; the next one collects meanwhile and closes as soon as the
first is done if its interval or size was reached.  Deferreds and `on_commit` hooks
run back on the reactor thread, batch after batch, so in id order.  Without threads
(a task.Clock, a writer not started, an in-memory store) the same steps run inline.

With a journal (vos3k/cdr/journal.py) every row is on disk (write(2), page cache)
before `submit()` returns, which is what kill -9 safety needs; a batch's journal
segment is fdatasynced on the writer thread right before its commit, and rows left
by a killed process are committed again by `startService()`, so kill -9 loses no
acknowledged CDR and charges none twice (SPEC.md §7, issue 7).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from vos3k.cdr.journal import CdrJournal, Segment
from vos3k.params import LiveParams
from vos3k.store.repos import CdrRepo

# A failed batch is retried after this long (its rows wait, their callers too).
RETRY_S = 1.0


class PendingFullError(Exception):
    """SS_MAX_CDR_PENDING_LIST_LENGTH reached: new calls get 503 until the list drains."""


Committed = Callable[[list[tuple[int, Mapping[str, Any]]]], None]
Pending = list[tuple[Mapping[str, Any], defer.Deferred]]


def _commit(repo: CdrRepo, rows: list[Mapping[str, Any]], segments: list[Segment]):
    """One batch, on whichever thread owns `repo`: journal flush, commit, forget."""
    for segment in segments:
        segment.sync()
    ids = repo.commit_batch(rows)
    for segment in segments:
        try:
            segment.remove()
        except OSError:
            pass  # harmless: a replay of committed rows is skipped by call_uuid
    return ids


class CdrWriter(Service):
    log = Logger()

    def __init__(
        self,
        repo: CdrRepo,
        params: LiveParams,
        clock: IReactorTime,
        journal: CdrJournal | None = None,
        own_store: Callable[[], Any] | None = None,
    ):
        """`repo` is the reactor thread's; `own_store()` (when given) opens the writer
        thread's Store (a second connection to the same file), called on that thread."""
        self._repo = repo
        self._params = params
        self._clock = clock
        self._journal = journal
        self._own_store = own_store
        self._thread_store: Any = None
        self._pool: ThreadPool | None = None
        self._pending: Pending = []
        self._inflight: Pending | None = None  # the batch being committed
        self._carry: list[Segment] = []  # journal segments of rows a failed batch kept
        self._again = False  # a batch closed while another was in flight
        self._stopping = False
        self._timer = None
        self._after_commit: list[Committed] = []
        self._settled: list[Callable[[], object]] = []
        self._idle: list[defer.Deferred] = []
        self.committed_total = 0

    @property
    def pending(self) -> int:
        """Rows not yet committed: collecting plus in flight."""
        return len(self._pending) + (len(self._inflight) if self._inflight else 0)

    @property
    def full(self) -> bool:
        return self.pending >= self._params.snapshot.cdr_max_pending

    @property
    def threaded(self) -> bool:
        """Batches commit on the writer thread (else inline on the caller's)."""
        return self._pool is not None

    def on_commit(self, callback: Committed) -> None:
        """Call `callback([(id, row), ...])` after each batch commits (files, feed)."""
        self._after_commit.append(callback)

    def when_settled(self, callback: Callable[[], object]) -> None:
        """Call `callback()` once no batch is in flight: now, or right after the
        in-flight batch's Deferreds fired (a reader of balances then sees the database
        and the uncommitted charges agree)."""
        if self._inflight is None:
            callback()
        else:
            self._settled.append(callback)

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
        done: defer.Deferred = defer.Deferred()
        self._pending.append((row, done))
        snap = self._params.snapshot
        if len(self._pending) >= snap.cdr_buffer_size:
            self.flush()
        elif self._timer is None:
            self._timer = self._clock.callLater(snap.cdr_write_interval_ms / 1000, self.flush)
        return done

    def flush(self) -> None:
        """Close the collecting batch now: commit it, or right after the batch in
        flight.  Inline (no writer thread) it is committed when this returns."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._inflight is not None:
            self._again = True
            return
        if not self._pending:
            self._notify_idle()
            return
        batch, self._pending = self._pending, []
        segments, self._carry = self._carry, []
        if self._journal is not None:
            try:
                segment = self._journal.seal()
            except OSError as exc:
                # The rows stay in the active file: still replayed after a crash.
                self.log.error("CDR journal seal failed: {error}", error=str(exc))
                segment = None
            if segment is not None:
                segments.append(segment)
        self._inflight = batch
        rows = [row for row, _ in batch]
        if self._pool is not None:
            d = deferToThreadPool(self._clock, self._pool, self._commit_in_thread, rows, segments)
        else:
            d = defer.maybeDeferred(_commit, self._repo, rows, segments)
        d.addCallbacks(
            self._committed,
            self._failed,
            callbackArgs=(batch,),
            errbackArgs=(batch, segments),
        )

    def _commit_in_thread(self, rows: list[Mapping[str, Any]], segments: list[Segment]):
        if self._thread_store is None:
            self._thread_store = self._own_store()
        return _commit(self._thread_store.cdrs, rows, segments)

    def _committed(self, ids: list[int | None], batch: Pending) -> None:
        self._inflight = None
        self.committed_total += len(batch)
        written = [(i, row) for i, (row, _) in zip(ids, batch, strict=True) if i is not None]
        for callback in list(self._after_commit):
            try:
                callback(written)
            except Exception:
                self.log.failure("CDR output after commit failed")
        for cdr_id, (_, done) in zip(ids, batch, strict=True):
            done.callback(cdr_id)
        self._batch_over()

    def _failed(self, failure: Any, batch: Pending, segments: list[Segment]) -> None:
        # Keep the rows (and their journal segments): the next batch retries them.
        self.log.failure("CDR batch of {n} failed to commit; will retry", failure, n=len(batch))
        self._inflight = None
        self._pending = batch + self._pending
        self._carry = segments + self._carry
        self._again = False
        if self._stopping:
            # Shutting down: they stay journaled and are replayed on the next start.
            self._batch_over(next_batch=False)
            self._notify_idle()
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(RETRY_S, self.flush)
        self._batch_over(next_batch=False)

    def _batch_over(self, next_batch: bool = True) -> None:
        settled, self._settled = self._settled, []
        for callback in settled:
            try:
                callback()
            except Exception:
                self.log.failure("CDR writer: settled callback failed")
        if not next_batch:
            return
        if self._pending and (
            self._again
            or self._stopping
            or len(self._pending) >= self._params.snapshot.cdr_buffer_size
        ):
            self._again = False
            self.flush()
        elif not self._pending:
            self._again = False
            self._notify_idle()

    def _notify_idle(self) -> None:
        if self._inflight is None:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def drained(self) -> defer.Deferred:
        """Fires once nothing is pending or in flight (the shutdown flush)."""
        d: defer.Deferred = defer.Deferred()
        self._idle.append(d)
        self.flush()
        return d

    def recover(self) -> int:
        """Commit the rows a previous process journaled but may not have committed;
        returns how many were new to the store (the rest were already there).  Runs
        inline, before any listener starts."""
        if self._journal is None:
            return 0
        rows = self._journal.read()
        if not rows:
            return 0
        try:
            # One batch: the journal is emptied only once every row in it is committed.
            ids = self._repo.commit_batch(rows)
        except Exception as exc:
            raise RuntimeError("CDR journal replay could not commit; not starting") from exc
        try:
            self._journal.truncate()
        except OSError as exc:
            # Harmless: a replay of committed rows is skipped by call_uuid.
            self.log.error("CDR journal truncate failed: {error}", error=str(exc))
        self.committed_total += len(rows)
        written = [(i, row) for i, row in zip(ids, rows, strict=True) if i is not None]
        for callback in list(self._after_commit):
            try:
                callback(written)
            except Exception:
                self.log.failure("CDR output after commit failed")
        self.log.info(
            "CDR journal replayed: {rows} rows, {new} were not yet committed",
            rows=len(rows),
            new=len(written),
        )
        return len(written)

    def startService(self) -> None:
        self.recover()
        if self._own_store is not None and hasattr(self._clock, "callFromThread"):
            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="cdr-writer")
            self._pool.start()
            # A reactor stopped without stopService must not hang on the writer thread
            # at exit (rows it did not commit stay journaled and are replayed).
            self._clock.addSystemEventTrigger("during", "shutdown", self._stop_pool)
        super().startService()

    def stopService(self) -> defer.Deferred:
        """SIGTERM path: everything pending is committed before the store closes."""
        super().stopService()
        self._stopping = True
        return self.drained().addCallback(lambda _: self._close())

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._thread_store is not None:
                pool.callInThread(self._thread_store.close)
            pool.stop()  # runs the close queued above, then joins the thread
            self._thread_store = None

    def _close(self) -> None:
        self._stop_pool()
        self._stopping = False
        if self._journal is not None and not self._pending:
            self._journal.close()
