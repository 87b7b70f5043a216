"""Routing gateways, their order and usability, and the failover decision (SPEC §4), pure.

- `Router.plan(callee)`: candidate groups by longest matching prefix (prefix_mode).
- `Router.next_gateway(...)`: the next usable gateway in SPEC §4 order, at its turn.
- `failover(...)`: after an unanswered attempt, SPEC §4 steps 2-6: the reason, the code
  the caller would get and whether the hunt goes on.
`Load` is the live per-gateway count (calls, attempts, arrivals) the engine owns, and
the live calls per caller number (SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT).
"""

from __future__ import annotations

import enum
import functools
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from attrs import define, field, frozen

from vos3k.billing.accounts import AccountPool
from vos3k.billing.rating import Rate
from vos3k.store.models import Gateway
from vos3k.switch.numbers import (
    EMPTY_PATTERNS,
    NO_REWRITES,
    Malformed,
    PatternList,
    RewriteRules,
    parse_patterns,
    parse_rewrites,
)
from vos3k.switch.reasons import (
    EndDirection,
    EndReason,
    Failover,
    from_vendor_cause,
    from_vendor_sip,
)

# SPEC §4: a gateway without a line limit counts as 65535 lines when comparing load.
UNLIMITED_LINES = 65535


@functools.lru_cache(maxsize=4096)
def compiled_patterns(text: str) -> PatternList:
    """A stored pattern list, compiled once (stored text was validated; bad = empty)."""
    parsed = parse_patterns(text)
    return EMPTY_PATTERNS if isinstance(parsed, Malformed) else parsed


@functools.lru_cache(maxsize=4096)
def compiled_rewrites(text: str) -> RewriteRules:
    """A stored rewrite list, compiled once (stored text was validated; bad = none)."""
    parsed = parse_rewrites(text)
    return NO_REWRITES if isinstance(parsed, Malformed) else parsed


# ---------------------------------------------------------------- live load


@define
class Load:
    """Live counts per gateway name: calls now, attempts since start, recent arrivals;
    and calls now per caller number (as SPEC §3 step 4 saw it)."""

    total: int = 0  # every call from admission to its end (SS_MAX_CONCURRENT_CALLS)
    _calls: dict[str, int] = field(factory=dict)
    _callers: dict[str, int] = field(factory=dict)
    _attempts: dict[str, int] = field(factory=dict)
    _arrivals: dict[str, deque[int]] = field(factory=dict)
    offline: set[str] = field(factory=set)  # routing gateways the OPTIONS probe lost

    def calls(self, name: str) -> int:
        return self._calls.get(name, 0)

    def attempts(self, name: str) -> int:
        return self._attempts.get(name, 0)

    def cps(self, name: str, now_ms: int) -> int:
        """Calls (mapping) or attempts (routing) of `name` within the last second."""
        arrivals = self._arrivals.get(name)
        if not arrivals:
            return 0
        while arrivals and arrivals[0] <= now_ms - 1000:
            arrivals.popleft()
        return len(arrivals)

    def seize(self, name: str, now_ms: int) -> None:
        """A call or attempt on `name` starts: it counts against lines and cps."""
        self._calls[name] = self._calls.get(name, 0) + 1
        self._attempts[name] = self._attempts.get(name, 0) + 1
        self._arrivals.setdefault(name, deque()).append(now_ms)

    def release(self, name: str) -> None:
        """A call or attempt on `name` ended."""
        left = self._calls.get(name, 0) - 1
        if left > 0:
            self._calls[name] = left
        else:
            self._calls.pop(name, None)

    def caller_calls(self, number: str) -> int:
        """Live calls of caller `number` (SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT, §9)."""
        return self._callers.get(number, 0)

    def seize_caller(self, number: str) -> None:
        """An admitted call of caller `number` starts; a call without one is not counted."""
        if number:
            self._callers[number] = self._callers.get(number, 0) + 1

    def release_caller(self, number: str) -> None:
        """A call of caller `number` ended."""
        left = self._callers.get(number, 0) - 1
        if left > 0:
            self._callers[number] = left
        else:
            self._callers.pop(number, None)


# ---------------------------------------------------------------- settings


@frozen
class RoutingSettings:
    """SPEC §4/§9 routing parameters a call snapshots on arrival."""

    sort_by_rate: bool = False  # SS_GATEWAY_FEE_RATE_ROUTE_SORT_CONFIG
    sort_by_asr: bool = False  # SS_GATEWAY_ASR_ROUTE_SORT_CONFIG
    rate_before_asr: bool = True  # SS_GATEWAY_FEE_RATE_ROUTE_BEFORE_ASR
    protect_delay_s: int = 0  # SS_TRY_PROTECT_ROUTE_DELAY
    verify_clearing_money: bool = False  # SERVER_VERIFY_CLEARING_CUSTOMER_REMAIN_MONEY_LIMIT
    advance_time_min: int = 1  # SERVER_BILLING_PREVENT_OVERDRAFT_ADVANCE_TIME
    switch_limit: int = 0  # SS_GATEWAY_SWITCH_LIMIT
    until_connect: bool = False  # SS_GATEWAY_SWITCH_UNTIL_CONNECT
    stop_after_busy: bool = True  # SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY
    stop_after_rtp: bool = True  # SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START
    stop_after_sdp: bool = False  # SS_SIP_STOP_SWITCH_AFTER_SDP
    ua_stop_after_timeout: bool = False  # SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT

    @classmethod
    def from_snapshot(cls, snap: Any) -> RoutingSettings:
        return cls(
            sort_by_rate=snap.routing_sort_by_rate,
            sort_by_asr=snap.routing_sort_by_asr,
            rate_before_asr=snap.routing_rate_before_asr,
            protect_delay_s=snap.routing_protect_delay_s,
            verify_clearing_money=snap.billing_verify_clearing_money,
            advance_time_min=snap.billing_advance_time_min,
            switch_limit=snap.routing_switch_limit,
            until_connect=snap.routing_switch_until_connect,
            stop_after_busy=snap.routing_stop_after_busy,
            stop_after_rtp=snap.routing_stop_after_rtp,
            stop_after_sdp=snap.sip_stop_switch_after_sdp,
            ua_stop_after_timeout=snap.sip_ua_stop_switch_after_timeout,
        )


# ---------------------------------------------------------------- candidates


def matching_prefix(gateway: Gateway, number: str) -> int | None:
    """Length of the gateway's longest prefix of `number` (`*` = any, length 0)."""
    best: int | None = None
    for prefix in gateway.prefixes:
        length = 0 if prefix == "*" else len(prefix) if number.startswith(prefix) else None
        if length is not None and (best is None or length > best):
            best = length
    return best


def candidate_groups(routing: Iterable[Gateway], number: str) -> tuple[tuple[Gateway, ...], ...]:
    """SPEC §4: routing gateways grouped by longest matching prefix, longest first.

    A shorter group follows only while no gateway of the groups before it has
    `prefix_mode=stop`.
    """
    by_length: dict[int, list[Gateway]] = {}
    for gateway in routing:
        length = matching_prefix(gateway, number)
        if length is not None:
            by_length.setdefault(length, []).append(gateway)
    groups: list[tuple[Gateway, ...]] = []
    for length in sorted(by_length, reverse=True):
        group = tuple(by_length[length])
        groups.append(group)
        if any(g.prefix_mode == "stop" for g in group):
            break
    return tuple(groups)


@frozen
class Plan:
    """The candidate groups of one call, and what ordering and usability need."""

    groups: tuple[tuple[Gateway, ...], ...]
    rating_number: str  # the callee as rated: vendor rates use the same number (SPEC §5)
    start_ms: int

    @property
    def empty(self) -> bool:
        return not self.groups


class Router:
    """SPEC §4 order and usability over the live load, pool and gateway quality."""

    def __init__(
        self,
        directory: Any,
        load: Load,
        pool: AccountPool,
        asr: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.directory = directory
        self.load = load
        self.pool = pool
        self.asr = asr if asr is not None else {}

    def plan(self, callee_e164: str, rating_number: str, start_ms: int) -> Plan:
        """SPEC §4 candidates for a callee (routing tags included: routes match them)."""
        return Plan(candidate_groups(self.directory.routing, callee_e164), rating_number, start_ms)

    def vendor_rate(self, gateway: Gateway, number: str) -> Rate | None:
        """The rate of `number` in the gateway's clearing account's table (SPEC §5 cost)."""
        account = self.directory.accounts.get(gateway.account)
        if account is None or not account.rate_table:
            return None
        return self.directory.rates.lookup(account.rate_table, number)

    def order_key(self, gateway: Gateway, plan: Plan, settings: RoutingSettings) -> tuple:
        """SPEC §4 order within a group: priority, [rate, ASR], load, attempts, name."""
        key: list[Any] = [gateway.priority]
        sorts: list[Any] = []
        if settings.sort_by_rate:
            rate = self.vendor_rate(gateway, plan.rating_number)
            # A gateway without a vendor rate sorts after every priced one.
            sorts.append((rate is None, rate.fee if rate is not None else Decimal(0)))
        if settings.sort_by_asr:
            sorts.append(-self.asr.get(gateway.name, Decimal(0)))
        if not settings.rate_before_asr:
            sorts.reverse()
        key.extend(sorts)
        lines = gateway.lines or UNLIMITED_LINES
        key.append(Fraction(self.load.calls(gateway.name), lines))
        key.append(self.load.attempts(gateway.name))
        key.append(gateway.name)
        return tuple(key)

    def usable(self, gateway: Gateway, plan: Plan, settings: RoutingSettings, now_ms: int) -> bool:
        """SPEC §4 "usable at its turn"."""
        if gateway.lock != "none" or not gateway.enabled:
            return False
        if gateway.lines and self.load.calls(gateway.name) >= gateway.lines:
            return False
        if gateway.cps and self.load.cps(gateway.name, now_ms) >= gateway.cps:
            return False
        if gateway.options_check and gateway.name in self.load.offline:
            return False
        if gateway.check_rate or settings.verify_clearing_money:
            rate = self.vendor_rate(gateway, plan.rating_number)
            if gateway.check_rate and rate is None:
                return False
            if settings.verify_clearing_money and rate is not None:
                if gateway.account not in self.pool:
                    return False
                needed = rate.fee * settings.advance_time_min
                if self.pool.available(gateway.account) < needed:
                    return False
        if gateway.protect and settings.protect_delay_s:
            # SPEC §4: protect gateways only within SS_TRY_PROTECT_ROUTE_DELAY s of start.
            if now_ms - plan.start_ms >= settings.protect_delay_s * 1000:
                return False
        return True

    def next_gateway(
        self, plan: Plan, passed: frozenset[str], settings: RoutingSettings, now_ms: int
    ) -> tuple[Gateway | None, tuple[str, ...]]:
        """The next usable gateway, and the names passed over as unusable on the way.

        Groups in order, each sorted now (load changes between attempts); protect
        gateways of every group come last (SPEC §4).
        """
        skipped: list[str] = []
        protect: list[Gateway] = []

        def key(g: Gateway) -> tuple:
            return self.order_key(g, plan, settings)

        for group in plan.groups:
            for gateway in sorted((g for g in group if g.name not in passed), key=key):
                if gateway.protect:
                    protect.append(gateway)
                elif self.usable(gateway, plan, settings, now_ms):
                    return gateway, tuple(skipped)
                else:
                    skipped.append(gateway.name)
        for gateway in sorted(protect, key=key):
            if self.usable(gateway, plan, settings, now_ms):
                return gateway, tuple(skipped)
            skipped.append(gateway.name)
        return None, tuple(skipped)


def numbers_to_gateway(gateway: Gateway, caller_e164: str, callee_e164: str) -> tuple[str, str]:
    """SPEC §7 fields 14-15: the routing gateway's own rewrites of caller and callee."""
    caller = compiled_rewrites(gateway.caller_prefix_rewrite).apply(caller_e164)
    callee = compiled_rewrites(gateway.callee_prefix_rewrite).apply(callee_e164)
    return caller, callee


# ---------------------------------------------------------------- failover


class Timer(enum.Enum):
    """The attempt timers of SPEC §4, and "unreachable", which SPEC §3 treats alike."""

    INVITE = "invite"  # SS_SIP_TIMEOUT_INVITE / SS_H323_TIMEOUT_SETUP
    SESSION_PROGRESS = "session_progress"  # ..._SESSION_PROGRESS / SS_H323_TIMEOUT_ALERTING
    RINGING = "ringing"  # SS_SIP_TIMEOUT_RINGING / SS_H323_TIMEOUT_CONNECT
    EARLY_MEDIA = "early_media"  # SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP
    UNREACHABLE = "unreachable"  # transport failure: no response at all


# SPEC §4 timer table: reason, SIP code, and the Q.850 cause (SPEC §8 table 1) per timer.
TIMER_OUTCOMES: dict[Timer, tuple[EndReason, int, int]] = {
    Timer.INVITE: (EndReason.GATEWAY_UNAVAILABLE, 408, 102),
    Timer.SESSION_PROGRESS: (EndReason.GATEWAY_UNAVAILABLE, 408, 102),
    Timer.UNREACHABLE: (EndReason.GATEWAY_UNAVAILABLE, 408, 102),
    Timer.RINGING: (EndReason.NO_ANSWER, 480, 19),
    Timer.EARLY_MEDIA: (EndReason.NO_ANSWER, 480, 19),
}


@frozen
class AttemptOutcome:
    """How an unanswered attempt ended, and what it had done (SPEC §4 step 5)."""

    code: int | None = None  # the vendor's SIP status
    cause: int | None = None  # the vendor's Q.850 cause
    timer: Timer | None = None
    provisional: bool = False  # it got 180/183
    sent_sdp: bool = False
    sent_rtp: bool = False
    to_phone: bool = False  # the target was a registered phone


@frozen
class Verdict:
    """SPEC §4 failover steps 2-6 for one attempt."""

    reason: EndReason
    code: int  # E: the SIP code the caller gets if the hunt ends here
    q850: int  # the cause an H.323 caller gets
    direction: EndDirection  # 1 on a vendor response, 2 on a timer (SPEC §3 table)
    failover: bool  # try the next usable candidate
    why: str  # which step decided (logs, tests)


@functools.lru_cache(maxsize=1024)
def replace_rules(text: str) -> tuple[tuple[int, int], ...]:
    """`replace_codes` (`503:486,...`) as pairs; items that are not CODE:CODE are skipped."""
    rules = []
    for item in text.split(","):
        old, colon, new = item.strip().partition(":")
        if colon and old.strip().isdigit() and new.strip().isdigit():
            rules.append((int(old), int(new)))
    return tuple(rules)


def failover(
    outcome: AttemptOutcome,
    gateway: Gateway | None,
    replace_codes: str,
    attempts_made: int,
    settings: RoutingSettings,
) -> Verdict:
    """SPEC §4 failover steps 2-5 (step 1, the caller's CANCEL, is the call's own)."""
    # Step 2: the outcome as SIP code E.
    if outcome.timer is not None:
        reason, code, q850 = TIMER_OUTCOMES[outcome.timer]
        flag, direction = Failover.YES, EndDirection.SERVER
    elif outcome.code is not None:
        row = from_vendor_sip(outcome.code)
        reason, code, q850, flag = row.reason, outcome.code, row.q850, row.failover
        direction = EndDirection.CALLEE
    elif outcome.cause is not None:
        by_cause = from_vendor_cause(outcome.cause)
        # SPEC §3: an H.323 caller gets the vendor's own cause.
        reason, code, flag = by_cause.reason, by_cause.sip, by_cause.failover
        q850 = outcome.cause
        direction = EndDirection.CALLEE
    else:
        raise ValueError("an attempt outcome needs a code, a cause or a timer")
    # Step 3: the mapping gateway's replace_codes, first matching rule, once; step 4:
    # a replaced E is read from table 2a.
    for old, new in replace_rules(replace_codes):
        if old == code and 300 <= new <= 699:
            row = from_vendor_sip(new)
            reason, code, q850, flag = row.reason, new, row.q850, row.failover
            break
    # Step 5: stop conditions.
    stop = _stop_reason(outcome, gateway, reason, code, flag, attempts_made, settings)
    return Verdict(reason, code, q850, direction, stop is None, stop or "next candidate")


def _stop_reason(
    outcome: AttemptOutcome,
    gateway: Gateway | None,
    reason: EndReason,
    code: int,
    flag: Failover,
    attempts_made: int,
    settings: RoutingSettings,
) -> str | None:
    if gateway is not None and code in gateway.stop_codes:
        return "stop_codes"
    if reason is EndReason.USER_BUSY and settings.stop_after_busy:
        return "user busy"
    if not flag.allows(settings.stop_after_busy):
        return "no failover for this outcome"
    if outcome.provisional and not _until_connect(gateway, settings):
        return "ringing without until_connect"
    if outcome.sent_sdp and settings.stop_after_sdp:
        return "SDP received"
    if outcome.sent_rtp and settings.stop_after_rtp:
        return "RTP received"
    if settings.switch_limit and attempts_made >= settings.switch_limit:
        return "switch limit"
    if outcome.to_phone and outcome.timer is Timer.INVITE and settings.ua_stop_after_timeout:
        return "phone INVITE timeout"
    return None


def _until_connect(gateway: Gateway | None, settings: RoutingSettings) -> bool:
    """A gateway's `until_connect`; `unset` follows SS_GATEWAY_SWITCH_UNTIL_CONNECT."""
    if gateway is None or gateway.until_connect == "unset":
        return settings.until_connect
    return gateway.until_connect == "yes"
