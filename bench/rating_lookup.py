"""Benchmark: longest-prefix rate lookup over 100,000 random prefixes (prints only)."""

from __future__ import annotations

import argparse
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos3k.billing.rating import Rate, RateTable


def build(count: int, rng: random.Random) -> RateTable:
    """A table of `count` distinct random prefixes of 1-10 digits."""
    prefixes: set[str] = set()
    while len(prefixes) < count:
        length = rng.randint(1, 10)
        prefixes.add("".join(rng.choices("0123456789", k=length)))
    return RateTable(Rate(p, Decimal(rng.randint(1, 9999)).scaleb(-4)) for p in prefixes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    table = build(args.prefixes, rng)
    built = time.perf_counter() - started
    numbers = ["".join(rng.choices("0123456789", k=rng.randint(8, 15))) for _ in range(1000)]
    numbers = (numbers * (args.lookups // len(numbers) + 1))[: args.lookups]

    lookup = table.lookup
    started = time.perf_counter()
    hits = sum(1 for n in numbers if lookup(n) is not None)
    elapsed = time.perf_counter() - started
    print(f"rate table: {len(table)} prefixes built in {built:.2f} s")
    print(f"lookups: {len(numbers)}, hits: {hits}")
    print(f"{elapsed / len(numbers) * 1e6:.2f} µs per lookup")


if __name__ == "__main__":
    main()
