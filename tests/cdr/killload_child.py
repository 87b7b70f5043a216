"""Child process for the kill -9 test: a CDR writer with its journal under load.

    python killload_child.py DATA_DIR load WRITE_INTERVAL_MS BUFFER_SIZE
    python killload_child.py DATA_DIR recover

`load` submits bursts of CDR rows forever and prints each row's call_uuid once
`submit()` has returned (the row is acknowledged); the parent SIGKILLs it.  `recover`
starts the writer (which replays the journal), prints `recovered N` and exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import reactor, task

from vos3k.cdr.journal import JOURNAL_FILE, CdrJournal
from vos3k.cdr.writer import CdrWriter
from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store

BURST = 50


def main(argv: list[str]) -> None:
    data_dir = Path(argv[1])
    store = open_store(data_dir / "vos3k.db")
    live = LiveParams(store.params)
    if argv[2] == "load":
        ops = Actor("test", "killload")
        live.set("SS_CDR_WRITE_INTERVAL", argv[3], ops)
        live.set("SS_CDR_BUFFER_SIZE", argv[4], ops)
        live.set("SS_MAX_CDR_PENDING_LIST_LENGTH", "1000000", ops)
    journal = CdrJournal(data_dir / JOURNAL_FILE)
    # As in the service: batches commit on the writer thread with its own connection.
    writer = CdrWriter(store.cdrs, live, reactor, journal, own_store=store.reopen)
    recovered = writer.recover()
    writer.startService()
    if argv[2] == "recover":
        writer.stopService()
        store.close()
        os.write(1, f"recovered {recovered}\n".encode())
        return
    counter = iter(range(10**9))
    prefix = f"p{os.getpid()}-"

    def burst() -> None:
        acked = []
        for _ in range(BURST):
            n = next(counter)
            uuid = prefix + str(n)
            writer.submit(
                {
                    "call_uuid": uuid,
                    "caller_e164": "100",
                    "callee_e164": "200",
                    "start_ms": 1_700_000_000_000 + n,
                    "stop_ms": 1_700_000_060_000 + n,
                    "hold_ms": 60_000,
                    "end_reason": 1,
                    "end_direction": 0,
                    "account": "ACME",
                    "fee_e4": 100 + n % 7,
                }
            )
            acked.append(uuid)
        os.write(1, ("\n".join(acked) + "\n").encode())

    task.LoopingCall(burst).start(0.001)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
