"""Benchmark: the pre-parse guard under a one-IP flood and a 100,000-IP spread (prints only)."""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos3k.store.models import Gateway
from vos3k.switch.dynblacklist import CallEnded, DynamicBlacklist, DynSettings
from vos3k.switch.geo import GeoFence, parse_geo_lines
from vos3k.switch.guard import ALLOW, Guard, GuardPolicy


def geo_lines(count: int, rng: random.Random) -> list[str]:
    """`count` random IPv4 CIDRs (/12-/24) with random countries, like an operator file."""
    lines = []
    for _ in range(count):
        plen = rng.randint(12, 24)
        network = rng.getrandbits(plen) << (32 - plen)
        dotted = ".".join(str((network >> s) & 255) for s in (24, 16, 8, 0))
        lines.append(f"{dotted}/{plen},{rng.choice(['CN', 'RU', 'US', 'DE', 'BR', 'IN'])}")
    return lines


def spread(count: int, rng: random.Random) -> list[str]:
    addresses: set[str] = set()
    while len(addresses) < count:
        n = rng.getrandbits(32)
        addresses.add(".".join(str((n >> s) & 255) for s in (24, 16, 8, 0)))
    return list(addresses)


def rate(label: str, ips: list[str], guard: Guard, now_ms: int) -> float:
    check = guard.check
    started = time.perf_counter()
    allowed = sum(1 for ip in ips if check(ip, now_ms) is ALLOW)
    elapsed = time.perf_counter() - started
    per_s = len(ips) / elapsed
    print(
        f"{label}: {len(ips):,} checks, {allowed:,} allowed, "
        f"{per_s:,.0f} checks/s ({elapsed / len(ips) * 1e6:.2f} µs each)"
    )
    return per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood", type=int, default=1_000_000, help="packets from one IP")
    parser.add_argument("--sources", type=int, default=100_000, help="distinct source IPs")
    parser.add_argument("--geo", type=int, default=50_000, help="CIDR lines in the geo table")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    loaded = parse_geo_lines(geo_lines(args.geo, rng))
    print(f"geo table: {args.geo:,} lines loaded in {time.perf_counter() - started:.2f} s")
    policy = GuardPolicy.build(
        acl_deny=("192.0.2.0/24", "2001:db8::/32"),
        signal_rate_limit=30,
        signal_rate_window_s=2,
        geofence=GeoFence.build("forbidden", ["RU"], loaded.table),
        gateways=[Gateway(f"gw{i}", "mapping", f"10.0.{i}.1") for i in range(200)],
    )

    guard = Guard(policy)
    rate("flood, one IP (30 allowed, the rest dropped)", ["198.51.100.7"] * args.flood, guard, 0)
    rate("gateway, one IP (never limited)", ["10.0.7.1"] * args.flood, guard, 0)

    ips = spread(args.sources, rng)
    tracemalloc.start()  # memory measured on a separate table: tracing slows allocation
    full = Guard(policy, max_sources=args.sources)
    for ip in ips:
        full.check(ip, 0)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"source table: {full.sources:,} sources, {size / 1e6:.1f} MB traced")
    del full
    guard = Guard(policy, max_sources=args.sources)
    rate(f"spread, {args.sources:,} new IPs (first packet: classify)", ips, guard, 0)
    rate(f"spread, {args.sources:,} known IPs (second packet)", ips, guard, 1)
    more = spread(args.sources, random.Random(args.seed + 1))
    rate(f"spread, {args.sources:,} more new IPs, table full", more, guard, 2)
    print(f"source table after: {guard.sources:,} sources, {guard.overflowed:,} overflowed")
    print(f"signalling_dropped: {guard.dropped()}")

    dyn = DynamicBlacklist()
    config = DynSettings(mode="global", cps_limit=10)
    calls = [
        CallEnded(
            f"caller{rng.randrange(5000)}",
            f"callee{rng.randrange(50000)}",
            rng.random() < 0.5,
            30_000,
        )
        for _ in range(200_000)
    ]
    started = time.perf_counter()
    for i, call in enumerate(calls):
        dyn.call_started(call.caller, "", config, i)
        dyn.call_ended(call, "", config, i)
    elapsed = time.perf_counter() - started
    print(
        f"dynamic blacklist: {len(calls):,} calls started+ended, "
        f"{len(calls) / elapsed:,.0f} calls/s, {len(dyn.listing(len(calls))):,} bans"
    )


if __name__ == "__main__":
    main()
