"""The dynamic malicious-call blacklist of SPEC §10, sans-IO, in bounded memory.

The switching core feeds it call starts and call ends and asks it, at SPEC §3 step 4,
whether a caller or callee is banned (then the call ends with reason 20, 403).  The
rules (sliding windows ending at `now_ms`; `SS_BLACK_LIST_*` parameters):

- `callee_freq`: a callee reached `MALICIOUS_CALL_LIMIT` times within
  `MALICIOUS_CALL_CHECK_INTERVAL` s (counted as calls end); banned for
  `MALICIOUS_CALL_EXPIRE` s;
- `caller_freq`: a caller over `CALLER_MALICIOUS_CALL_LIMIT` calls within
  `CALLER_MALICIOUS_CALL_CHECK_INTERVAL` s (counted as calls end);
- `failed_calls` / `short_calls`: a caller whose latest `MIN_CALLS` calls all ended
  within `MALICIOUS_CALL_CHECK_INTERVAL` s, and of them at least `FAILED_CALL_RATIO` %
  were unanswered, or at least `SHORT_CALL_RATIO` % of the answered ones held under
  `SHORT_CALL_TIME` s (the sample is the latest MIN_CALLS calls so that memory per
  caller is bounded by a parameter and the ratio follows what the caller does now);
- `cps`: a caller over `CPS_LIMIT` call starts within one second (0 = off).

Caller bans last `CALLER_MALICIOUS_CALL_EXPIRE` s.  A ban lasts until EXPIRE s after
the last offending call: a rule that fires again for a banned number extends it, so the
core should report the calls it refused with reason 20 as ended calls too.

Run mode (`SS_BLACK_LIST_DYNAMIC_RUN_MODE`): `off` tracks and bans nothing; `global`
counts every call under one scope; `standalone` counts only calls arriving through a
mapping gateway with `dyn_blacklist` set, each gateway its own scope, and a ban there
applies to that gateway's calls only.  `scope_for()` turns this into a scope or None.

Memory: at most `max_keys` callers and `max_keys` callees are tracked (least recently
seen forgotten first), each holding at most LIMIT+1, MIN_CALLS and CPS_LIMIT+1
timestamps; at most `max_bans` bans are kept (expired ones purged first).
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, TypeVar

from attrs import frozen

from vos3k.store.models import BlacklistEntry

T = TypeVar("T")

DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_BANS = 100_000
CPS_WINDOW_MS = 1000


class BanKind(enum.Enum):
    """SPEC §2 blacklist `kind` of a dynamic entry, as `blacklist list` shows it."""

    CALLEE_FREQ = "callee_freq"
    CALLER_FREQ = "caller_freq"
    SHORT_CALLS = "short_calls"
    FAILED_CALLS = "failed_calls"
    CPS = "cps"


@frozen
class DynSettings:
    """The `SS_BLACK_LIST_*` values, read from a params snapshot (all live "now")."""

    mode: str = "off"
    callee_window_s: int = 600
    callee_limit: int = 6
    callee_expire_s: int = 3600
    caller_window_s: int = 600
    caller_limit: int = 60
    caller_expire_s: int = 3600
    short_call_s: int = 6
    short_call_ratio: int = 80
    failed_call_ratio: int = 95
    min_calls: int = 20
    cps_limit: int = 0

    @classmethod
    def from_snapshot(cls, snap: Any) -> DynSettings:
        return cls(
            mode=snap.blacklist_dynamic_mode,
            callee_window_s=snap.blacklist_callee_window_s,
            callee_limit=snap.blacklist_callee_limit,
            callee_expire_s=snap.blacklist_callee_expire_s,
            caller_window_s=snap.blacklist_caller_window_s,
            caller_limit=snap.blacklist_caller_limit,
            caller_expire_s=snap.blacklist_caller_expire_s,
            short_call_s=snap.blacklist_short_call_s,
            short_call_ratio=snap.blacklist_short_call_ratio,
            failed_call_ratio=snap.blacklist_failed_call_ratio,
            min_calls=snap.blacklist_min_calls,
            cps_limit=snap.blacklist_cps_limit,
        )


def scope_for(settings: DynSettings, gateway: Any | None) -> str | None:
    """The scope a call is counted and checked under, or None when it is not tracked.

    `gateway` is the call's mapping gateway (None for a phone's call).
    """
    if settings.mode == "global":
        return ""
    if settings.mode == "standalone" and gateway is not None and gateway.dyn_blacklist:
        return str(gateway.name)
    return None


@frozen
class Ban:
    """A dynamic blacklist entry: `value` banned as `dir` within `scope` until expiry."""

    value: str
    dir: str  # "caller" | "callee"
    kind: BanKind
    scope: str  # "" = global, else the mapping gateway's name (standalone)
    since_ms: int
    expires_ms: int
    detail: str

    def entry(self) -> BlacklistEntry:
        """The same thing as a SPEC §2 blacklist row, for `blacklist list`."""
        where = f"gateway {self.scope}: " if self.scope else ""
        return BlacklistEntry(
            value=self.value,
            dir=self.dir,
            kind=self.kind.value,
            reason=where + self.detail,
            expires_ms=self.expires_ms,
        )


@frozen
class CallEnded:
    """What the blacklist needs of a finished call."""

    caller: str
    callee: str
    answered: bool
    hold_ms: int = 0


# A caller's recent-call outcomes for the ratio rules.
_FAILED, _SHORT, _LONG = range(3)


class _Caller:
    """One caller's sliding-window state; every deque is bounded by a parameter."""

    __slots__ = ("counts", "ends", "recent", "starts")

    def __init__(self) -> None:
        self.ends: deque[int] = deque()  # end times, for caller_freq
        self.recent: deque[tuple[int, int]] = deque()  # (end time, outcome), for ratios
        self.counts = [0, 0, 0]  # outcomes within `recent`
        self.starts: deque[int] = deque()  # start times, for cps


def _push_bounded(times: deque[int], now_ms: int, window_ms: int, keep: int) -> int:
    """Append now, drop times outside the window or beyond `keep`; how many remain."""
    times.append(now_ms)
    horizon = now_ms - window_ms
    while times and (times[0] <= horizon or len(times) > keep):
        times.popleft()
    return len(times)


class DynamicBlacklist:
    """The dynamic blacklist's state: per-number windows and the bans they caused."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, max_bans: int = DEFAULT_MAX_BANS):
        self._max_keys = max(1, max_keys)
        self._max_bans = max(1, max_bans)
        self._callees: OrderedDict[tuple[str, str], deque[int]] = OrderedDict()
        self._callers: OrderedDict[tuple[str, str], _Caller] = OrderedDict()
        self._bans: OrderedDict[tuple[str, str, str], Ban] = OrderedDict()

    # ------------------------------------------------------------ queries

    def banned(self, caller: str, callee: str, scope: str | None, now_ms: int) -> Ban | None:
        """The ban a new call falls under (SPEC §3 step 4, reason 20), or None."""
        if scope is None or not self._bans:
            return None
        for key in ((scope, "caller", caller), (scope, "callee", callee)):
            ban = self._bans.get(key)
            if ban is not None:
                if ban.expires_ms > now_ms:
                    return ban
                del self._bans[key]
        return None

    def listing(self, now_ms: int) -> list[Ban]:
        """The bans in force, soonest expiry first (for `blacklist list`)."""
        self._purge(now_ms)
        return sorted(self._bans.values(), key=lambda b: (b.expires_ms, b.value, b.dir))

    def remove(self, value: str) -> int:
        """Lift every ban of `value` (`blacklist del`); how many there were."""
        keys = [key for key in self._bans if key[2] == value]
        for key in keys:
            del self._bans[key]
        return len(keys)

    @property
    def ban_count(self) -> int:
        """Bans held, expired ones not yet purged included; at most `max_bans`."""
        return len(self._bans)

    @property
    def tracked(self) -> tuple[int, int]:
        """(callers, callees) currently tracked; each at most `max_keys`."""
        return len(self._callers), len(self._callees)

    # ------------------------------------------------------------ events

    def call_started(
        self, caller: str, scope: str | None, settings: DynSettings, now_ms: int
    ) -> Ban | None:
        """Count a call start for the CPS rule; the ban it caused or extended, if any."""
        if scope is None or not settings.cps_limit:
            return None
        state = self._caller(scope, caller)
        limit = settings.cps_limit
        if _push_bounded(state.starts, now_ms, CPS_WINDOW_MS, limit + 1) > limit:
            detail = f"over {limit} calls/s"
            return self._ban(scope, "caller", caller, BanKind.CPS, settings, now_ms, detail)
        return None

    def call_ended(
        self, call: CallEnded, scope: str | None, settings: DynSettings, now_ms: int
    ) -> list[Ban]:
        """Count a finished call; the bans it caused or extended (SPEC §10 rules)."""
        if scope is None:
            return []
        bans: list[Ban] = []
        if call.callee:
            bans.extend(self._callee_rule(call.callee, scope, settings, now_ms))
        if call.caller:
            bans.extend(self._caller_rules(call, scope, settings, now_ms))
        return bans

    def _callee_rule(
        self, callee: str, scope: str, settings: DynSettings, now_ms: int
    ) -> list[Ban]:
        times = self._touch(self._callees, (scope, callee), deque)
        limit = settings.callee_limit
        window_ms = settings.callee_window_s * 1000
        if _push_bounded(times, now_ms, window_ms, limit) >= limit:
            detail = f"called {limit} times in {settings.callee_window_s} s"
            return [
                self._ban(scope, "callee", callee, BanKind.CALLEE_FREQ, settings, now_ms, detail)
            ]
        return []

    def _caller_rules(
        self, call: CallEnded, scope: str, settings: DynSettings, now_ms: int
    ) -> list[Ban]:
        state = self._caller(scope, call.caller)
        found: list[tuple[BanKind, str]] = []

        limit = settings.caller_limit
        window_ms = settings.caller_window_s * 1000
        if _push_bounded(state.ends, now_ms, window_ms, limit + 1) > limit:
            found.append(
                (BanKind.CALLER_FREQ, f"over {limit} calls in {settings.caller_window_s} s")
            )

        outcome = _FAILED
        if call.answered:
            outcome = _SHORT if call.hold_ms < settings.short_call_s * 1000 else _LONG
        sample = self._push_outcome(state, outcome, settings, now_ms)
        if sample >= settings.min_calls:
            failed, short, long = state.counts
            answered = short + long
            if failed * 100 >= settings.failed_call_ratio * sample:
                found.append(
                    (BanKind.FAILED_CALLS, f"{failed} of the last {sample} calls unanswered")
                )
            elif answered and short * 100 >= settings.short_call_ratio * answered:
                found.append(
                    (
                        BanKind.SHORT_CALLS,
                        f"{short} of {answered} answered calls under {settings.short_call_s} s",
                    )
                )
        # One ban per caller and scope: the first rule that fired names its kind.
        return [
            self._ban(scope, "caller", call.caller, kind, settings, now_ms, detail)
            for kind, detail in found[:1]
        ]

    def _push_outcome(
        self, state: _Caller, outcome: int, settings: DynSettings, now_ms: int
    ) -> int:
        recent, counts = state.recent, state.counts
        recent.append((now_ms, outcome))
        counts[outcome] += 1
        horizon = now_ms - settings.callee_window_s * 1000
        keep = settings.min_calls
        while recent and (recent[0][0] <= horizon or len(recent) > keep):
            counts[recent.popleft()[1]] -= 1
        return len(recent)

    # ------------------------------------------------------------ bookkeeping

    def _caller(self, scope: str, caller: str) -> _Caller:
        return self._touch(self._callers, (scope, caller), _Caller)

    def _touch(self, table: OrderedDict[Any, T], key: Any, make: Callable[[], T]) -> T:
        """The state under `key`, made if new; least recently seen is forgotten first."""
        state = table.get(key)
        if state is not None:
            table.move_to_end(key)
            return state
        while len(table) >= self._max_keys:
            table.popitem(last=False)
        state = table[key] = make()
        return state

    def _ban(
        self,
        scope: str,
        direction: str,
        value: str,
        kind: BanKind,
        settings: DynSettings,
        now_ms: int,
        detail: str,
    ) -> Ban:
        expire_s = settings.callee_expire_s if direction == "callee" else settings.caller_expire_s
        key = (scope, direction, value)
        earlier = self._bans.pop(key, None)
        since = earlier.since_ms if earlier is not None and earlier.expires_ms > now_ms else now_ms
        ban = Ban(value, direction, kind, scope, since, now_ms + expire_s * 1000, detail)
        if len(self._bans) >= self._max_bans:
            self._purge(now_ms)
            while len(self._bans) >= self._max_bans:
                self._bans.popitem(last=False)  # the one extended longest ago
        self._bans[key] = ban
        return ban

    def _purge(self, now_ms: int) -> None:
        expired = [key for key, ban in self._bans.items() if ban.expires_ms <= now_ms]
        for key in expired:
            del self._bans[key]
