"""The CDR writer: batches by interval and size, live parameters, retry, shutdown flush."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from vos3k.cdr.journal import JOURNAL_FILE, CdrJournal
from vos3k.cdr.writer import CdrWriter, PendingFullError
from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store
from vos3k.store.models import Account

OPS = Actor("ops", "test")


def setup(**params):
    store = open_store(None)
    live = LiveParams(store.params)
    for name, value in params.items():
        live.set(name, str(value), OPS)
    store.accounts.add(Account("ACME", balance=Decimal("10")), OPS)
    clock = Clock()
    return store, live, clock, CdrWriter(store.cdrs, live, clock)


def row(n: int) -> dict:
    return {
        "call_uuid": f"c{n}",
        "callee_e164": "1",
        "account": "ACME",
        "fee_e4": 100,
        "end_reason": 1,
        "stop_ms": n,
    }


def test_rows_commit_after_the_write_interval_then_callers_learn_their_ids():
    store, _, clock, writer = setup(SS_CDR_WRITE_INTERVAL=20)
    got = []
    writer.submit(row(1)).addCallback(got.append)
    writer.submit(row(2)).addCallback(got.append)
    clock.advance(0.019)
    assert got == [] and store.cdrs.query() == [] and writer.pending == 2
    clock.advance(0.001)
    assert got == [1, 2] and writer.pending == 0
    assert store.accounts.require("ACME").balance == Decimal("9.98")


def test_buffer_size_closes_a_batch_at_once_and_is_live():
    store, live, _, writer = setup(SS_CDR_BUFFER_SIZE=3)
    for n in range(3):
        writer.submit(row(n))
    assert writer.pending == 0 and len(store.cdrs.query()) == 3
    live.set("SS_CDR_BUFFER_SIZE", "2", OPS)
    writer.submit(row(10))
    assert writer.pending == 1
    writer.submit(row(11))
    assert writer.pending == 0


def test_full_pending_list_refuses_new_rows():
    _, _, _, writer = setup(SS_MAX_CDR_PENDING_LIST_LENGTH=100, SS_CDR_WRITE_INTERVAL=1000)
    for n in range(100):
        writer.submit(row(n))
    assert writer.full
    failures = []
    writer.submit(row(999)).addErrback(lambda f: failures.append(f.check(PendingFullError)))
    assert failures == [PendingFullError]


def test_a_failed_commit_keeps_the_rows_for_the_retry(monkeypatch):
    store, _, clock, writer = setup()
    real = store.cdrs.commit_batch
    calls = []

    def flaky(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise OSError("disk full")
        return real(rows)

    monkeypatch.setattr(store.cdrs, "commit_batch", flaky)
    got = []
    writer.submit(row(1)).addCallback(got.append)
    clock.advance(0.01)
    assert got == [] and writer.pending == 1
    clock.advance(1.0)
    assert got == [1] and calls == [1, 1]


def test_after_commit_hooks_see_the_committed_rows_and_stop_flushes():
    _, _, _, writer = setup(SS_CDR_WRITE_INTERVAL=1000)
    seen = []
    writer.on_commit(lambda written: seen.extend(i for i, _ in written))
    writer.startService()
    writer.submit(row(1))
    writer.submit(row(2))
    writer.stopService()
    assert seen == [1, 2] and writer.pending == 0


def test_when_settled_waits_for_the_batch_in_flight(monkeypatch):
    store, _, clock, writer = setup(SS_CDR_WRITE_INTERVAL=20)
    real = store.cdrs.commit_batch
    order = []

    def commit(rows):
        writer.when_settled(lambda: order.append("settled"))  # the batch is in flight
        return real(rows)

    monkeypatch.setattr(store.cdrs, "commit_batch", commit)
    writer.submit(row(1)).addCallback(lambda _: order.append("row"))
    writer.when_settled(lambda: order.append("idle"))  # nothing in flight: at once
    clock.advance(0.02)
    assert order == ["idle", "row", "settled"]


@pytest_twisted.ensureDeferred
async def test_batches_commit_on_the_writer_thread_one_at_a_time(tmp_path):
    store = open_store(tmp_path / "vos3k.db")
    live = LiveParams(store.params)
    live.set("SS_CDR_WRITE_INTERVAL", "1000", OPS)
    store.accounts.add(Account("ACME", balance=Decimal("10")), OPS)
    opened_on = []

    def own_store():
        opened_on.append(threading.current_thread())
        return store.reopen()

    journal = CdrJournal(tmp_path / JOURNAL_FILE)
    writer = CdrWriter(store.cdrs, live, reactor, journal, own_store=own_store)
    hooks = []
    writer.on_commit(
        lambda written: hooks.append(
            (threading.current_thread() is threading.main_thread(), [i for i, _ in written])
        )
    )
    writer.startService()
    try:
        assert writer.threaded
        first = [writer.submit(row(n)) for n in range(1, 6)]
        writer.flush()
        assert writer.pending == 5 and not any(d.called for d in first)  # on the thread
        second = [writer.submit(row(n)) for n in range(6, 9)]  # collect meanwhile
        writer.flush()  # closes the second batch once the first is done
        ids = await defer.gatherResults(first + second)
        assert ids == list(range(1, 9))
        assert hooks == [(True, [1, 2, 3, 4, 5]), (True, [6, 7, 8])]
        assert opened_on and opened_on[0] is not threading.main_thread()
        # The reactor thread's connection reads what the writer's committed (WAL).
        assert store.accounts.require("ACME").balance == Decimal("9.92")
        last = writer.submit(row(9))
    finally:
        await writer.stopService()  # commits the pending row before the store closes
    assert last.called and writer.pending == 0 and not writer.threaded
    assert store.cdrs.count() == 9 and journal.read() == []
    store.close()
