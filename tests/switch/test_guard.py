"""SPEC §3 step 1 / §10: ACL, IP blacklist, geofence and the signalling rate limit."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.params import PARAMS, Snapshot
from vos3k.store.models import BlacklistEntry, Gateway
from vos3k.switch.geo import GeoFence, parse_geo_lines
from vos3k.switch.guard import (
    ALLOW,
    DROPS,
    Drop,
    DropReason,
    Guard,
    GuardPolicy,
    StaticBlacklist,
    gateway_networks,
)

GEO = parse_geo_lines(["203.0.113.0/24,CN", "198.51.100.0/24,GB", "2001:db8::/32,CN"]).table

GATEWAYS = (
    Gateway("cust", "mapping", "192.0.2.10"),
    Gateway("cust2", "mapping", "192.0.2.20:5070, 10.20.0.0/16"),
    Gateway("vendor", "routing", "[2001:db8:ffff::1]:5060"),
    Gateway("ras", "routing", "dynamic"),
    Gateway("denied-gw", "mapping", "100.64.0.1"),
)

BLACKLIST = StaticBlacklist.compile(
    [
        BlacklistEntry("198.51.100.66"),
        BlacklistEntry("192.0.2.20"),  # a gateway's address: the blacklist still applies
        BlacklistEntry("8.8.4.0/24", kind="auth"),  # suspensions are the SIP layer's (403)
    ],
    now_ms=0,
)


def policy(**overrides):
    values = dict(
        acl_allow=(),
        acl_deny=("100.64.0.0/10",),
        signal_rate_limit=3,
        signal_rate_window_s=2,
        geofence=GeoFence.build("forbidden", ["CN"], GEO),
        blacklist=BLACKLIST,
        gateways=GATEWAYS,
    )
    values.update(overrides)
    return GuardPolicy.build(**values)


ACL_ALLOW = ("198.51.100.0/24", "8.8.0.0/16")

# (source, SS_ACL_ALLOW, expected drop reason or None)
ORDER = [
    ("100.64.0.9", (), DropReason.ACL_DENY),
    ("100.64.0.1", (), DropReason.ACL_DENY),  # deny beats being a gateway ("always")
    ("198.51.100.66", (), DropReason.BLACKLIST),
    ("192.0.2.20", (), DropReason.BLACKLIST),  # static IP entry beats a gateway
    ("8.8.4.4", (), None),  # kind auth: not dropped before parsing
    ("203.0.113.5", (), DropReason.GEOFENCE),
    ("2001:db8::5", (), DropReason.GEOFENCE),
    ("198.51.100.1", (), None),
    ("9.9.9.9", ACL_ALLOW, DropReason.ACL_ALLOW),
    ("8.8.8.8", ACL_ALLOW, None),
    ("192.0.2.10", ACL_ALLOW, None),  # a gateway needs no allow entry
    ("10.20.3.4", ACL_ALLOW, None),  # a gateway CIDR
    ("2001:db8:ffff::1", ACL_ALLOW, None),  # a routing gateway, inside a CN range
    ("100.64.0.1", ACL_ALLOW, DropReason.ACL_DENY),
    ("203.0.113.5", ("203.0.113.0/24",), DropReason.GEOFENCE),  # allowed, still fenced
    ("not-an-ip", (), DropReason.BAD_ADDRESS),
]


@pytest.mark.parametrize(
    ("ip", "allow", "reason"),
    ORDER,
    ids=[f"spec10-{ip}-{'allow' if a else 'open'}" for ip, a, _ in ORDER],
)
def test_first_rule_decides(ip, allow, reason):
    guard = Guard(policy(acl_allow=allow))
    expected = ALLOW if reason is None else DROPS[reason]
    assert guard.check(ip, 1_000) == expected
    assert guard.policy.decide(ip) == expected


def test_rate_limit_per_fixed_window():
    guard = Guard(policy(signal_rate_limit=3, signal_rate_window_s=2))
    # SPEC §10: LIMIT per WINDOW; windows are [0, 2000), [2000, 4000) ...
    got = [guard.check("198.51.100.1", t) for t in (0, 10, 20, 30, 1999, 2000, 2001, 2002, 2003)]
    rate = DROPS[DropReason.RATE_LIMIT]
    assert got == [ALLOW, ALLOW, ALLOW, rate, rate, ALLOW, ALLOW, ALLOW, rate]
    assert guard.dropped()["rate_limit"] == 3


def test_rate_limit_is_per_source():
    guard = Guard(policy(signal_rate_limit=1))
    assert guard.check("198.51.100.1", 0) == ALLOW
    assert guard.check("198.51.100.2", 0) == ALLOW
    assert guard.check("198.51.100.1", 1) == DROPS[DropReason.RATE_LIMIT]


def test_gateways_bypass_the_rate_limit():
    guard = Guard(policy(signal_rate_limit=1))
    assert all(guard.check("192.0.2.10", t) == ALLOW for t in range(100))
    assert guard.dropped()["total"] == 0


def test_limit_zero_turns_it_off():
    guard = Guard(policy(signal_rate_limit=0))
    assert all(guard.check("198.51.100.1", 5) == ALLOW for _ in range(1000))


def test_stats_count_drops_by_reason():
    guard = Guard(policy(signal_rate_limit=1))
    for ip in ("100.64.0.9", "100.64.0.9", "198.51.100.66", "203.0.113.1", "9.9.9.9", "9.9.9.9"):
        guard.check(ip, 0)
    assert guard.dropped() == {
        "acl_deny": 2,
        "blacklist": 1,
        "acl_allow": 0,
        "geofence": 1,
        "rate_limit": 1,
        "bad_address": 0,
        "total": 5,
    }


def test_reconfigure_applies_at_once_and_keeps_counters():
    guard = Guard(policy(signal_rate_limit=2))
    assert guard.check("9.9.9.9", 0) == ALLOW
    guard.configure(policy(signal_rate_limit=2, acl_deny=("9.0.0.0/8",)))
    assert guard.check("9.9.9.9", 1) == DROPS[DropReason.ACL_DENY]
    guard.configure(policy(signal_rate_limit=2))
    assert guard.check("9.9.9.9", 2) == ALLOW  # the count of 1 from t=0 was kept
    assert guard.check("9.9.9.9", 3) == DROPS[DropReason.RATE_LIMIT]


def test_from_snapshot_reads_the_spec_parameters():
    values = PARAMS.defaults()
    values.update(
        SS_SIGNAL_RATE_LIMIT=PARAMS.get("SS_SIGNAL_RATE_LIMIT").parse("5"),
        SS_SIGNAL_RATE_WINDOW=PARAMS.get("SS_SIGNAL_RATE_WINDOW").parse("10"),
        SS_ACL_DENY=PARAMS.get("SS_ACL_DENY").parse("192.0.2.0/25"),
        SS_ACL_ALLOW=PARAMS.get("SS_ACL_ALLOW").parse("192.0.2.0/24"),
    )
    built = GuardPolicy.from_snapshot(Snapshot(PARAMS, values))
    assert (built.rate_limit, built.window_ms) == (5, 10_000)
    assert built.decide("192.0.2.1") == DROPS[DropReason.ACL_DENY]
    assert built.decide("192.0.2.200") == ALLOW
    assert built.decide("192.0.3.1") == DROPS[DropReason.ACL_ALLOW]


def test_spec_defaults_are_30_per_2_s():
    built = GuardPolicy.from_snapshot(Snapshot(PARAMS, PARAMS.defaults()))
    guard = Guard(built)
    assert [guard.check("9.9.9.9", 0) for _ in range(31)].count(ALLOW) == 30


GATEWAY_FORMS = [
    ("192.0.2.1", ["192.0.2.1"], ["192.0.2.2"]),
    ("192.0.2.1:5080", ["192.0.2.1"], ["192.0.2.2"]),
    ("10.0.0.0/8", ["10.255.0.1"], ["11.0.0.0"]),
    ("2001:db8::1", ["2001:db8::1"], ["2001:db8::2"]),
    ("[2001:db8::1]:5060", ["2001:db8::1"], ["2001:db8::2"]),
    ("192.0.2.1, 192.0.2.9:1720", ["192.0.2.1", "192.0.2.9"], ["192.0.2.5"]),
    ("dynamic", [], ["192.0.2.1"]),
    ("not-an-address", [], ["192.0.2.1"]),
]


@pytest.mark.parametrize(
    ("text", "inside", "outside"), GATEWAY_FORMS, ids=[f"spec2-gw-{t}" for t, _, _ in GATEWAY_FORMS]
)
def test_gateway_address_forms(text, inside, outside):
    networks, _ = gateway_networks([Gateway("g", "mapping", text)])
    assert all(networks.get(ip) for ip in inside)
    assert not any(networks.get(ip) for ip in outside)


# ---------------------------------------------------------------- static blacklist

ENTRIES = [
    BlacklistEntry("8613*", dir="caller"),
    BlacklistEntry("+44 (20) 7946", dir="callee"),
    BlacklistEntry("900*,901*", dir="both"),
    BlacklistEntry("5551234", dir="both", kind="callee_freq", expires_ms=60_000),
    BlacklistEntry("5559999", dir="both", kind="cps", expires_ms=500),  # expired at 1000
    BlacklistEntry("7777", dir="both", kind="auth"),  # a suspended user: SIP layer's
    BlacklistEntry("203.0.113.0/24"),
    BlacklistEntry("2001:db8::/32"),
    BlacklistEntry("1a-b!", dir="both"),
    BlacklistEntry("300.1.1.1"),
]

# (caller, callee, which side matches) — SPEC §1 patterns, §3 step 4 (reason 20)
NUMBER_CASES = [
    ("8613900000000", "100", "caller"),
    ("100", "8613900000000", None),  # a caller-only entry
    ("100", "442079460000", None),  # exact, not a prefix
    ("100", "4420794", None),
    ("100", "44207946", "callee"),  # the entry was cleaned like a number (SPEC §1)
    ("44207946", "100", None),  # callee-only entry
    ("90012", "100", "caller"),
    ("100", "90112", "callee"),
    ("5551234", "100", "caller"),  # a persisted dynamic entry, still in force
    ("5559999", "5559999", None),  # expired
    ("7777", "7777", None),
]


@pytest.fixture(scope="module")
def static():
    return StaticBlacklist.compile(ENTRIES, now_ms=1_000)


@pytest.mark.parametrize(
    ("caller", "callee", "side"),
    NUMBER_CASES,
    ids=[f"spec3-step4-{c}-{d}" for c, d, _ in NUMBER_CASES],
)
def test_number_blacklist(static, caller, callee, side):
    assert static.number_match(caller, callee) == side


def test_static_blacklist_ips_and_housekeeping(static):
    assert static.ip_blocked("203.0.113.200")
    assert static.ip_blocked("2001:db8::42")
    assert not static.ip_blocked("198.51.100.1")
    assert static.valid_until_ms == 60_000  # rebuild when the cps/callee_freq entry lapses
    assert static.problems == (
        "'1a-b!' is not a number pattern",
        "'300.1.1.1' is neither a number pattern nor an IP/CIDR",
    )
    # The shape admission.NumberBlacklist has: .callers / .callees with .matches()
    assert static.callers.matches("86130") and not static.callers.matches("44207946")
    assert static.callees.matches("44207946") and not static.callees.matches("86130")


def test_static_blacklist_rebuilt_later_drops_lapsed_entries():
    later = StaticBlacklist.compile(ENTRIES, now_ms=60_000)
    assert later.number_match("5551234", "100") is None
    assert later.valid_until_ms is None


# ---------------------------------------------------------------- bounded memory


def test_spoofed_flood_is_bounded_and_shares_one_counter():
    guard = Guard(policy(signal_rate_limit=5), max_sources=100)
    admitted = sum(guard.check(f"11.0.{i // 256}.{i % 256}", 0) == ALLOW for i in range(1_000))
    assert guard.sources == 100
    assert admitted == 100 + 5  # one packet per known source, then 5 for all the rest
    assert guard.overflowed == 900
    # A gateway still gets through while the table is full; a denied one still does not.
    assert guard.check("192.0.2.10", 0) == ALLOW
    assert guard.check("100.64.0.1", 0) == DROPS[DropReason.ACL_DENY]
    assert guard.check("192.0.2.20", 0) == DROPS[DropReason.BLACKLIST]
    # The next window sweeps out the stale sources: new ones get their own slot again.
    assert guard.check("12.0.0.1", 2_000) == ALLOW
    assert guard.sources == 1


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 4),
    window_s=st.integers(1, 3),
    max_sources=st.integers(1, 6),
    packets=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 700)), max_size=120),
)
def test_never_more_than_limit_per_window_per_source(limit, window_s, max_sources, packets):
    guard = Guard(policy(signal_rate_limit=limit, signal_rate_window_s=window_s), max_sources)
    admitted: Counter = Counter()
    now = 0
    for source, step in packets:
        now += step
        ip = f"9.9.9.{source}"
        decision = guard.check(ip, now)
        assert decision == ALLOW or isinstance(decision, Drop)
        if decision == ALLOW:
            admitted[ip, now // (window_s * 1000)] += 1
        assert guard.sources <= max_sources
    assert all(count <= limit for count in admitted.values())


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 4),
    packets=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 700)), max_size=80),
)
def test_a_source_within_the_limit_is_never_dropped(limit, packets):
    # Room for every source: each one's first LIMIT packets of a window pass.
    guard = Guard(policy(signal_rate_limit=limit, signal_rate_window_s=1), max_sources=6)
    seen: Counter = Counter()
    now = 0
    for source, step in packets:
        now += step
        ip = f"9.9.9.{source}"
        seen[ip, now // 1000] += 1
        expected = ALLOW if seen[ip, now // 1000] <= limit else DROPS[DropReason.RATE_LIMIT]
        assert guard.check(ip, now) == expected
