"""Benchmark: import a 1,000,000-row rate CSV through the `rate import` code path.

Generates the CSV in a temporary directory, imports it into a fresh on-disk store with
vos3k.admin.rateimport.import_file (what the shell's `rate import` runs), and prints
rows per second and total seconds.  Target (issue 4): under 60 s.  Prints only.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from vos3k.admin.rateimport import import_file
from vos3k.params import Actor
from vos3k.store.db import open_store


def write_csv(path: Path, rows: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("prefix,fee,period,first_period,area\n")
        for n in range(rows):
            prefix = str(10_000_000 + n * 7)  # unique, 8-9 digits
            fee_e4 = rng.randrange(1, 50000)  # money as integer ten-thousandths, no float
            period, first = rng.choice((1, 6, 60)), rng.choice((0, 1, 30, 60))
            fh.write(
                f"{prefix},{fee_e4 // 10000}.{fee_e4 % 10000:04d},{period},{first},A{n % 250}\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vos3k-bench-") as tmp:
        csv_path = Path(tmp) / "rates.csv"
        t0 = time.perf_counter()
        write_csv(csv_path, args.rows)
        generated = time.perf_counter() - t0
        store = open_store(Path(tmp) / "vos3k.db")
        try:
            t1 = time.perf_counter()
            summary = import_file(store, "BENCH", csv_path, Actor("bench", "local"))
            seconds = time.perf_counter() - t1
        finally:
            store.close()
    print(f"generated {args.rows} rows ({csv_path.name}) in {generated:.1f} s")
    print(summary.text())
    print(f"rate import: {args.rows} rows in {seconds:.1f} s = {args.rows / seconds:,.0f} rows/s "
          f"(target < 60 s)")  # fmt: skip


if __name__ == "__main__":
    main()
