"""The pre-parse source filter: ACL, IP blacklist, geofence, signalling rate limit (SPEC §3 step 1).

The SIP and H.323 transports call `Guard.check(source_ip, now_ms)` for every incoming
packet (or new TCP connection) before any parsing work is spent, and throw the packet
away unanswered on a `Drop` (SPEC §3 table, step 1: no reason, no CDR, nothing sent).
The order of the tests, first match deciding, is:

1. `SS_ACL_DENY` holds the source: drop (`acl_deny`), gateways included ("always").
2. A static blacklist entry whose value is an IP or CIDR holds it: drop (`blacklist`).
3. A mapping or routing gateway's address: allow, and skip 4-6 (SPEC §10: the rate
   limit is per *non-gateway* source; `SS_ACL_ALLOW` is "only these + gateways"; an
   operator who provisioned a gateway has chosen its country, so no geofence either).
4. `SS_ACL_ALLOW` is set and does not hold it: drop (`acl_allow`).
5. The geofence refuses its country: drop (`geofence`).
6. `SS_SIGNAL_RATE_LIMIT` requests per `SS_SIGNAL_RATE_WINDOW`: the excess is dropped
   (`rate_limit`).  Windows are fixed and aligned (`now_ms // window_ms`), so a source
   gets at most LIMIT packets through in each window; 0 turns the limit off.

Steps 1-5 depend only on the address and the configuration, so their verdict is worked
out once per source and cached next to the source's rate counter: the common case is
one dict lookup, one division and one increment.  The table is bounded (`max_sources`,
100,000 by default): when it is full, sources whose last window has passed are swept
out (at most once per window); if it is still full, new sources share one overflow
counter with the same limit until the next window, so a flood of spoofed sources costs
bounded memory and still cannot push more than LIMIT packets per window through.

This module also compiles the static blacklist (`store.models.BlacklistEntry` rows) into
the number matcher used at SPEC §3 step 4 (reason 20) and the IP set used here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from attrs import evolve, frozen

from vos3k.switch.geo import (
    EMPTY_CIDRS,
    NO_GEOFENCE,
    CidrMap,
    GeoFence,
    ip_key,
    parse_network,
)
from vos3k.switch.numbers import (
    EMPTY_PATTERNS,
    Malformed,
    PatternList,
    clean_number,
    parse_patterns,
)

DEFAULT_MAX_SOURCES = 100_000

# ---------------------------------------------------------------- decisions


class DropReason(enum.Enum):
    """Why a packet was dropped before parsing; the value is the `stats` key."""

    ACL_DENY = "acl_deny"
    BLACKLIST = "blacklist"
    ACL_ALLOW = "acl_allow"  # SS_ACL_ALLOW is set and the source is not in it
    GEOFENCE = "geofence"
    RATE_LIMIT = "rate_limit"
    BAD_ADDRESS = "bad_address"  # not an IP literal: only a broken transport sends one


@frozen
class Allow:
    """Let the packet through to the parser."""


@frozen
class Drop:
    """Throw the packet away unanswered, counted under `reason`."""

    reason: DropReason


ALLOW = Allow()
DROPS = {reason: Drop(reason) for reason in DropReason}
Decision = Allow | Drop

# ---------------------------------------------------------------- static blacklist


def _looks_like_address(value: str) -> bool:
    # Numbers never hold "." or ":" (SPEC §1 patterns are 0-9, letters, * and #), so a
    # value with one is an IP or CIDR (SPEC §2 blacklist `value`).
    return "." in value or ":" in value


@frozen
class StaticBlacklist:
    """The blacklist entity (SPEC §2) compiled for lookups at one moment.

    `callers`/`callees` are the number patterns for SPEC §3 step 4 (reason 20), with
    the same `.matches(number)` shape as `admission.NumberBlacklist`; `ips` is the
    source set for step 1.  Entries of kind `auth` are left out: a suspended user or IP
    is still challenged and answered 403 by the SIP layer (SPEC §10), never dropped.
    Entries that expired by `now_ms` are left out too, and `valid_until_ms` is the
    earliest expiry among those kept: rebuild the blacklist at that moment.
    """

    callers: PatternList = EMPTY_PATTERNS
    callees: PatternList = EMPTY_PATTERNS
    ips: CidrMap[bool] = EMPTY_CIDRS
    valid_until_ms: int | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def compile(cls, entries: Iterable[Any], now_ms: int) -> StaticBlacklist:
        """From BlacklistEntry-like rows (`value`, `dir`, `kind`, `expires_ms`)."""
        callers: list[str] = []
        callees: list[str] = []
        networks: list[tuple[Any, bool]] = []
        problems: list[str] = []
        valid_until: int | None = None
        for entry in entries:
            expires = entry.expires_ms
            if entry.kind == "auth" or (expires is not None and expires <= now_ms):
                continue
            value = str(entry.value).strip()
            if _looks_like_address(value):
                net = parse_network(value, strict=False)
                if net is None:
                    problems.append(f"{value!r} is neither a number pattern nor an IP/CIDR")
                    continue
                networks.append((net, True))
            else:
                items = [clean_number(item.strip()) for item in value.split(",")]
                items = [item for item in items if item]
                checked = parse_patterns(",".join(items))
                if isinstance(checked, Malformed) or not items:
                    problems.append(f"{value!r} is not a number pattern")
                    continue
                if entry.dir in ("caller", "both"):
                    callers.extend(items)
                if entry.dir in ("callee", "both"):
                    callees.extend(items)
            if expires is not None:
                valid_until = expires if valid_until is None else min(valid_until, expires)
        return cls(
            _patterns(callers),
            _patterns(callees),
            CidrMap(networks),
            valid_until,
            tuple(problems),
        )

    def number_match(self, caller: str, callee: str) -> str | None:
        """`"caller"` or `"callee"` if that number is blacklisted (reason 20), else None."""
        if self.callers.matches(caller):
            return "caller"
        if self.callees.matches(callee):
            return "callee"
        return None

    def ip_blocked(self, ip: str) -> bool:
        return self.ips.get(ip) is not None


def _patterns(items: list[str]) -> PatternList:
    compiled = parse_patterns(",".join(items))
    return EMPTY_PATTERNS if isinstance(compiled, Malformed) else compiled


NO_STATIC_BLACKLIST = StaticBlacklist()

# ---------------------------------------------------------------- gateways


def gateway_networks(gateways: Iterable[Any]) -> tuple[CidrMap[bool], frozenset[str]]:
    """The source addresses of mapping and routing gateways (SPEC §2 `ip` forms).

    `ip` is a comma list of IPs, IP:port, [IPv6]:port and CIDRs; `dynamic` (RAS) has no
    fixed address.  Both kinds count: vendors send responses and BYEs, customers send
    INVITEs, and SPEC §10 exempts every gateway from the rate limit.  The second value
    holds the plain addresses, for the guard's slow path when its table is full.
    """
    networks: list[tuple[Any, bool]] = []
    exact: set[str] = set()
    for gateway in gateways:
        for item in (part.strip() for part in str(gateway.ip).split(",")):
            host = _gateway_host(item)
            if host is None:
                continue
            net = parse_network(host, strict=False)
            if net is None:
                continue
            networks.append((net, True))
            if net.num_addresses == 1:
                exact.add(str(net.network_address))
    return CidrMap(networks), frozenset(exact)


def _gateway_host(item: str) -> str | None:
    if not item or item == "dynamic":
        return None
    if item.startswith("["):  # [IPv6]:port
        return item[1:].partition("]")[0]
    host, sep, port = item.rpartition(":")
    if sep and port.isdigit() and "." in host:  # IPv4:port; bare IPv6 has many colons
        return host
    return item


# ---------------------------------------------------------------- policy

# Cached per-source verdicts besides the Drop values themselves.
_LIMITED = "limited"  # subject to the rate limit
_BYPASS = "bypass"  # a gateway


@frozen
class GuardPolicy:
    """Everything the guard decides by: built from a params snapshot and the store."""

    deny: CidrMap[bool] = EMPTY_CIDRS
    allow: CidrMap[bool] = EMPTY_CIDRS
    blacklist: CidrMap[bool] = EMPTY_CIDRS
    gateways: CidrMap[bool] = EMPTY_CIDRS
    gateway_ips: frozenset[str] = frozenset()
    geofence: GeoFence = NO_GEOFENCE
    rate_limit: int = 30
    window_ms: int = 2000

    @classmethod
    def build(
        cls,
        *,
        acl_allow: Iterable[str] = (),
        acl_deny: Iterable[str] = (),
        signal_rate_limit: int = 30,
        signal_rate_window_s: int = 2,
        geofence: GeoFence = NO_GEOFENCE,
        blacklist: StaticBlacklist = NO_STATIC_BLACKLIST,
        gateways: Iterable[Any] = (),
    ) -> GuardPolicy:
        """From parameter values (`snap.acl_allow`, `snap.signal_rate_limit`, ...)."""
        gateway_set, gateway_ips = gateway_networks(gateways)
        policy = cls(
            deny=CidrMap.of_networks(acl_deny),
            allow=CidrMap.of_networks(acl_allow),
            blacklist=blacklist.ips,
            gateways=gateway_set,
            geofence=geofence,
            rate_limit=max(0, signal_rate_limit),
            window_ms=max(1, signal_rate_window_s) * 1000,
        )
        # The full-table shortcut may skip classify() only for gateways that pass it.
        bypass = frozenset(ip for ip in gateway_ips if policy.classify(ip) is _BYPASS)
        return evolve(policy, gateway_ips=bypass)

    @classmethod
    def from_snapshot(
        cls,
        snap: Any,
        *,
        geofence: GeoFence = NO_GEOFENCE,
        blacklist: StaticBlacklist = NO_STATIC_BLACKLIST,
        gateways: Iterable[Any] = (),
    ) -> GuardPolicy:
        """`build` reading SS_ACL_*, SS_SIGNAL_RATE_* from a `params.Snapshot`.

        The geofence is passed in built (`GeoFence.build(snap.geofence_mode,
        snap.geofence_countries, table)`) because its table comes from a file.
        """
        return cls.build(
            acl_allow=snap.acl_allow,
            acl_deny=snap.acl_deny,
            signal_rate_limit=snap.signal_rate_limit,
            signal_rate_window_s=snap.signal_rate_window_s,
            geofence=geofence,
            blacklist=blacklist,
            gateways=gateways,
        )

    def classify(self, ip: str) -> Drop | str:
        """Steps 1-5 of the module docstring: a Drop, `_BYPASS` or `_LIMITED`."""
        key = ip_key(ip)
        if key is None:
            return DROPS[DropReason.BAD_ADDRESS]
        if self.deny and self.deny.get_key(key) is not None:
            return DROPS[DropReason.ACL_DENY]
        if self.blacklist and self.blacklist.get_key(key) is not None:
            return DROPS[DropReason.BLACKLIST]
        if self.gateways and self.gateways.get_key(key) is not None:
            return _BYPASS
        if self.allow and self.allow.get_key(key) is None:
            return DROPS[DropReason.ACL_ALLOW]
        if self.geofence.active and self.geofence.blocks_key(key):
            return DROPS[DropReason.GEOFENCE]
        return _LIMITED

    def decide(self, ip: str) -> Decision:
        """Steps 1-5 alone, no rate limit: for an SDP or RTP address check (SPEC §10)."""
        verdict = self.classify(ip)
        return verdict if isinstance(verdict, Drop) else ALLOW


# ---------------------------------------------------------------- the guard

# A source's slot: [policy it was classified under, verdict, window index, count,
# index of its drop counter].  A list, not an object: indexing it is the fastest read.
_POLICY, _VERDICT, _WINDOW, _COUNT, _COUNTER = range(5)
_REASONS = tuple(DropReason)
_COUNTER_OF = {reason: i for i, reason in enumerate(_REASONS)}
_RATE_COUNTER = _COUNTER_OF[DropReason.RATE_LIMIT]
_RATE_DROP = DROPS[DropReason.RATE_LIMIT]


def _new_slot(policy: GuardPolicy, verdict: Drop | str) -> list[Any]:
    counter = _COUNTER_OF[verdict.reason] if isinstance(verdict, Drop) else _RATE_COUNTER
    return [policy, verdict, -1, 0, counter]


class Guard:
    """Per-source verdicts and rate counters; `check` is called once per packet."""

    __slots__ = (
        "_dropped",
        "_limit",
        "_max_sources",
        "_overflow",
        "_policy",
        "_sources",
        "_swept_window",
        "_window_ms",
        "overflowed",
        "passed",
    )

    def __init__(self, policy: GuardPolicy | None = None, max_sources: int = DEFAULT_MAX_SOURCES):
        self._sources: dict[str, list[Any]] = {}
        self._max_sources = max(1, max_sources)
        self._dropped = [0] * len(_REASONS)
        self._swept_window = -1
        self.overflowed = 0  # new sources that found the table full (shared counter)
        self.passed = 0  # rate-limited sources' packets let through
        self.configure(policy or GuardPolicy())

    def configure(self, policy: GuardPolicy) -> None:
        """Apply a new policy at once (SPEC §9: live "now"); counters are kept."""
        self._policy = policy
        self._limit = policy.rate_limit
        self._window_ms = policy.window_ms
        # Verdicts are re-worked lazily: a slot classified under an older policy is
        # re-classified on its next packet, its rate counter kept; so is the overflow's.
        overflow = getattr(self, "_overflow", None)
        self._overflow = _new_slot(policy, _LIMITED) if overflow is None else overflow
        self._overflow[_POLICY] = policy

    @property
    def policy(self) -> GuardPolicy:
        return self._policy

    def check(self, ip: str, now_ms: int) -> Decision:
        """Allow the packet from `ip`, or Drop it (and count why)."""
        slot = self._sources.get(ip)
        if slot is None or slot[_POLICY] is not self._policy:
            slot = self._slot(ip, slot, now_ms)
        verdict = slot[_VERDICT]
        if verdict is _LIMITED:
            limit = self._limit
            if limit:
                window = now_ms // self._window_ms
                if slot[_WINDOW] != window:
                    slot[_WINDOW] = window
                    slot[_COUNT] = 1
                elif slot[_COUNT] >= limit:
                    self._dropped[_RATE_COUNTER] += 1
                    return _RATE_DROP
                else:
                    slot[_COUNT] += 1
            self.passed += 1
            return ALLOW
        if verdict is _BYPASS:
            return ALLOW
        self._dropped[slot[_COUNTER]] += 1
        return verdict

    def _slot(self, ip: str, slot: list[Any] | None, now_ms: int) -> list[Any]:
        policy = self._policy
        if slot is not None:  # the policy changed: new verdict, same counter
            fresh = _new_slot(policy, policy.classify(ip))
            slot[_POLICY], slot[_VERDICT], slot[_COUNTER] = policy, fresh[_VERDICT], fresh[_COUNTER]
            return slot
        sources = self._sources
        if len(sources) >= self._max_sources:
            self._sweep(now_ms)
        if len(sources) >= self._max_sources:
            # Full of sources active in this window.  Gateways keep their fast answer;
            # a dropped source needs no counter; everyone else shares one.
            if ip in policy.gateway_ips:
                return _new_slot(policy, _BYPASS)
            verdict = policy.classify(ip)
            if verdict is not _LIMITED:
                return _new_slot(policy, verdict)
            self.overflowed += 1
            return self._overflow
        slot = _new_slot(policy, policy.classify(ip))
        sources[ip] = slot
        return slot

    def _sweep(self, now_ms: int) -> None:
        # At most once per window: a sweep walks the whole table.  A slot whose window
        # has passed holds no count that still matters; non-limited slots are cheap to
        # re-classify.  Slots counting in this window stay, so no source's count for the
        # current window is ever forgotten (the limit stays exact).
        window = now_ms // self._window_ms
        if window == self._swept_window:
            return
        self._swept_window = window
        stale = [
            ip
            for ip, slot in self._sources.items()
            if slot[_VERDICT] is not _LIMITED or slot[_WINDOW] != window
        ]
        for ip in stale:
            del self._sources[ip]

    @property
    def sources(self) -> int:
        """How many sources the table holds (bounded by `max_sources`)."""
        return len(self._sources)

    def dropped(self) -> dict[str, int]:
        """`stats` `signalling_dropped`: drops by reason, plus `total`."""
        counts = {r.value: n for r, n in zip(_REASONS, self._dropped, strict=True)}
        counts["total"] = sum(self._dropped)
        return counts
