"""Cost of what every call does with parameters: take a snapshot, read values from it.

Prints figures only (DEVELOPERS.md: speed is measured, never asserted in tests).
"""

from __future__ import annotations

import timeit

from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store


def main() -> None:
    store = open_store(None)
    live = LiveParams(store.params)
    n = 200_000
    take = timeit.timeit(lambda: live.snapshot, number=n) / n
    snap = live.snapshot
    by_attr = timeit.timeit(lambda: snap.sip_timeout_invite_s, number=n) / n
    by_name = timeit.timeit(lambda: snap["SS_SIP_TIMEOUT_INVITE"], number=n) / n
    changes = 2_000
    actor = Actor("bench", "local")
    set_cost = (
        timeit.timeit(lambda: live.set("SS_SIP_TIMEOUT_INVITE", "20", actor), number=changes)
        / changes
    )
    print("params micro-benchmark")
    print(f"  take the call snapshot     {take * 1e9:8.0f} ns")
    print(f"  read by attribute          {by_attr * 1e9:8.0f} ns")
    print(f"  read by VOS3000 name       {by_name * 1e9:8.0f} ns")
    print(f"  param set (db + audit)     {set_cost * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
