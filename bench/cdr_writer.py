"""Benchmark: CDR writer throughput with journal, balances and hourly files (issue 7).

Target: ≥ 20,000 CDR/s sustained with balance updates, p99 batch commit < 50 ms.
Runs against a real file store (WAL, synchronous=FULL) in a temporary directory and
prints figures only:  python bench/cdr_writer.py [--cdrs N] [--accounts N] [--files]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from twisted.internet.task import Clock

from vos3k.cdr.files import CdrFileWriter
from vos3k.cdr.journal import JOURNAL_FILE, CdrJournal
from vos3k.cdr.writer import CdrWriter
from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store
from vos3k.store.models import Account

OPS = Actor("bench", "local")
TURN = 200  # CDRs submitted per reactor turn (one journal fdatasync per turn)


def row(n: int, accounts: int) -> dict:
    stop = 1_777_000_000_000 + n * 10
    return {
        "call_uuid": f"bench-{n}",
        "caller_e164": f"8613800{n % 100000:06d}",
        "callee_e164": "4412345678",
        "start_ms": stop - 63_000,
        "stop_ms": stop,
        "hold_ms": 60_000,
        "end_reason": 1,
        "end_direction": 0,
        "caller_gateway_id": "CUST",
        "callee_gateway_id": "VF1",
        "account": f"acct{n % accounts}",
        "fee_e4": 1200,
        "cost_e4": 900,
        "clearing_account": "vendor",
        "billing_mode": 1,
    }


def run(cdrs: int, accounts: int, files: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        store = open_store(data / "vos3k.db")
        params = LiveParams(store.params)
        for n in range(accounts):
            store.accounts.add(Account(f"acct{n}", balance=Decimal("1000000")), OPS)
        store.accounts.add(Account("vendor", type="postpaid"), OPS)
        clock = Clock()
        writer = CdrWriter(store.cdrs, params, clock, CdrJournal(data / JOURNAL_FILE))
        commit_ms: list[float] = []
        real_commit = store.cdrs.commit_batch

        def timed(rows):
            t0 = time.perf_counter()
            try:
                return real_commit(rows)
            finally:
                commit_ms.append((time.perf_counter() - t0) * 1000)

        store.cdrs.commit_batch = timed  # type: ignore[method-assign]
        if files:
            out = CdrFileWriter(store.cdrs, params, clock, data / "cdr", None)
            writer.on_commit(out.on_commit)
            out.startService()
        writer.startService()
        start = time.perf_counter()
        for first in range(0, cdrs, TURN):
            for n in range(first, min(first + TURN, cdrs)):
                writer.submit(row(n, accounts))
            clock.advance(0)  # end of the turn: the journal's fdatasync
        writer.flush()
        elapsed = time.perf_counter() - start
        if files:
            out.stopService()
        stored = store.cdrs.count()
        commit_ms.sort()
        p99 = commit_ms[min(len(commit_ms) - 1, int(len(commit_ms) * 0.99))]
        label = "writer+journal+balances" + ("+files" if files else "")
        print(f"{label}: {stored} CDRs in {elapsed:.2f} s = {stored / elapsed:,.0f} CDR/s")
        print(
            f"  batches {len(commit_ms)} (SS_CDR_BUFFER_SIZE {params.snapshot.cdr_buffer_size}),"
            f" commit p50 {statistics.median(commit_ms):.1f} ms, p99 {p99:.1f} ms,"
            f" max {commit_ms[-1]:.1f} ms"
        )
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--files", action="store_true", help="also write the hourly files")
    args = parser.parse_args()
    run(args.cdrs, args.accounts, files=False)
    if args.files:
        run(args.cdrs, args.accounts, files=True)


if __name__ == "__main__":
    main()
