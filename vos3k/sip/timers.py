"""RFC 4028 session timers and the no-timer re-INVITE probe for one B2BUA leg.

The B2BUA is a user agent towards each leg, so each leg negotiates its own timer
(SPEC §9 SS_SIP_SESSION_TTL, SS_SIP_SESSION_UPDATE_SEGMENT; SPEC §13 "SIP timer
protocol"):

- caller leg (we are the UAS, RFC 4028 §9): the customer's Session-Expires is accepted,
  lowered to SS_SIP_SESSION_TTL, never below Min-SE (shorter than our Min-SE: 422).
  A customer that does not support "timer" but whose INVITE carries Session-Expires (a
  proxy put it there) gets refresher=uas: we refresh towards legs that cannot.  One
  that supports it refreshes itself unless it asked us to.  Supported without
  Session-Expires: we add Session-Expires (TTL) with refresher=uac.
- callee leg (we are the UAC, RFC 4028 §7): the INVITE offers Session-Expires = TTL;
  the vendor's 2xx decides (refresher=uac or no Require: timer: we refresh).

A leg without a session timer (neither Supported: timer nor Session-Expires) is
probed instead with a re-INVITE every SS_SIP_NO_TIMER_REINVITE_INTERVAL s (0 = off).

`LegSession` is the sans-IO schedule of one leg (STYLE §5: a transition table, time as
`now_ms`): where we refresh, a refresh is due every interval ÷ segment; a 2xx to any
re-INVITE/UPDATE in the dialog restarts the interval (RFC 4028 §10); a refresh lost
(408, 481, no answer) or a session not refreshed by its expiry ends the call with end
reason 14 (SPEC §8).  `SessionKeeper` is its thin adapter: one IDelayedCall on the
injected clock, effects handed to callbacks of the B2BUA.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from attrs import define, frozen

from vos3k.sip.message import HeaderError, Request, Response

__all__ = [
    "MIN_SE_S",
    "Expire",
    "LegSession",
    "Malformed",
    "Negotiated",
    "PeerRefreshed",
    "RefreshAnswered",
    "Refresher",
    "SendRefresh",
    "SessionKeeper",
    "Tick",
    "TimerHeaders",
    "TooBrief",
    "negotiate_as_uac",
    "negotiate_as_uas",
    "offer_headers",
    "read_timer_headers",
    "request_headers",
    "response_headers",
]

MIN_SE_S = 90  # RFC 4028 §4: the smallest Min-SE; SPEC §9 SS_SIP_SESSION_TTL >= 90
LOST_STATUSES = frozenset({408, 481})  # RFC 4028 §10: the dialog is gone


class Refresher(enum.Enum):
    """Who sends the refreshes of one leg's session."""

    US = "us"
    PEER = "peer"


@frozen
class Malformed:
    """A Session-Expires or Min-SE value that does not parse (the peer's fault: 400)."""

    reason: str


@frozen
class TimerHeaders:
    """What one SIP message says about session timers (RFC 4028 §4, §5)."""

    session_expires_s: int | None = None
    refresher: str | None = None  # "uac" | "uas" as written, else None
    min_se_s: int | None = None
    supported: bool = False  # "timer" in Supported or Require
    allows_update: bool = False  # UPDATE in Allow (RFC 3311): refresh with it


@frozen
class Negotiated:
    """One leg's session timer: its interval and who refreshes it."""

    interval_s: int
    refresher: Refresher
    peer_supports: bool  # the peer knows RFC 4028 (our 2xx says Require: timer)


@frozen
class TooBrief:
    """RFC 4028 §9: the offered Session-Expires is below our Min-SE: answer 422."""

    min_se_s: int


def _delta(text: str, name: str) -> int | Malformed:
    value = text.strip()
    # RFC 4028 §4: delta-seconds, 1*DIGIT; more than 10 digits is no sane interval
    if not value.isdigit() or len(value) > 10 or not value.isascii():
        return Malformed(f"{name}: {text!r} is not delta-seconds")
    return int(value)


def read_timer_headers(message: Request | Response) -> TimerHeaders | Malformed:
    """The session-timer headers of `message`; a bad value is a `Malformed`."""
    try:
        supported = {v.lower() for v in message.values("supported") + message.values("require")}
        allows_update = "UPDATE" in {v.upper() for v in message.values("allow")}
    except HeaderError as exc:
        return Malformed(str(exc))
    expires: int | None = None
    refresher: str | None = None
    raw = message.header("session-expires")
    if raw is not None:
        value, _, params = raw.partition(";")
        parsed = _delta(value, "Session-Expires")
        if isinstance(parsed, Malformed):
            return parsed
        expires = parsed
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "refresher":
                refresher = val.strip().lower()
                if refresher not in ("uac", "uas"):
                    return Malformed(f"Session-Expires: refresher={val.strip()!r}")
    min_se: int | None = None
    raw = message.header("min-se")
    if raw is not None:
        parsed = _delta(raw.partition(";")[0], "Min-SE")
        if isinstance(parsed, Malformed):
            return parsed
        min_se = parsed
    return TimerHeaders(expires, refresher, min_se, "timer" in supported, allows_update)


def negotiate_as_uas(
    request: TimerHeaders, ttl_s: int, min_se_s: int = MIN_SE_S
) -> Negotiated | TooBrief | None:
    """The timer of a leg whose INVITE (or refresh) we answer (RFC 4028 §9); None: no
    timer (the leg neither supports it nor carries Session-Expires)."""
    floor = max(min_se_s, request.min_se_s or 0)
    offered = request.session_expires_s
    if offered is not None:
        if offered < min_se_s:
            return TooBrief(floor)
        # the UAS may lower the interval, never below Min-SE, never raise it
        interval = min(max(min(offered, ttl_s), floor), offered)
        if not request.supported:
            return Negotiated(interval, Refresher.US, False)  # §9: MUST be uas
        refresher = Refresher.US if request.refresher == "uas" else Refresher.PEER
        return Negotiated(interval, refresher, True)
    if request.supported:
        return Negotiated(max(ttl_s, floor), Refresher.PEER, True)
    return None


def offer_headers(ttl_s: int, min_se_s: int = MIN_SE_S) -> tuple[tuple[str, str], ...]:
    """What our INVITE to a vendor carries (RFC 4028 §7.1); the UAS picks the refresher."""
    return (
        ("Supported", "timer"),
        ("Session-Expires", str(ttl_s)),
        ("Min-SE", str(min_se_s)),
    )


def negotiate_as_uac(response: TimerHeaders, offered_s: int) -> Negotiated | None:
    """The timer from the vendor's 2xx to our INVITE (RFC 4028 §7.2); None: the vendor
    does not do session timers (a 2xx without Session-Expires)."""
    if response.session_expires_s is None:
        return None
    interval = response.session_expires_s or offered_s
    if not response.supported or response.refresher != "uas":
        # §7.2: refresher=uac, or no refresher, or no Require: timer (a proxy added it):
        # the refreshes are ours
        return Negotiated(interval, Refresher.US, response.supported)
    return Negotiated(interval, Refresher.PEER, True)


def response_headers(timer: Negotiated) -> tuple[tuple[str, str], ...]:
    """Our 2xx to an INVITE or refresh with a timer (RFC 4028 §9): refresher named from
    the requester's side (uac = the peer refreshes)."""
    refresher = "uas" if timer.refresher is Refresher.US else "uac"
    headers = [("Session-Expires", f"{timer.interval_s};refresher={refresher}")]
    if timer.peer_supports:
        headers.append(("Require", "timer"))
    return (*headers, ("Supported", "timer"))


def request_headers(timer: Negotiated) -> tuple[tuple[str, str], ...]:
    """A re-INVITE/UPDATE we send in a leg with a timer (RFC 4028 §7.4): we are the UAC
    of that transaction, so refresher=uac says the refreshes stay ours."""
    refresher = "uac" if timer.refresher is Refresher.US else "uas"
    return (
        ("Session-Expires", f"{timer.interval_s};refresher={refresher}"),
        ("Supported", "timer"),
    )


# ---------------------------------------------------------------- the schedule


class State(enum.Enum):
    WAITING = "waiting"  # for the next refresh (ours or the peer's)
    REFRESHING = "refreshing"  # our refresh is in flight
    EXPIRED = "expired"  # the call is being ended (reason 14)
    STOPPED = "stopped"  # the call ended otherwise


class Input(enum.Enum):
    REFRESH_DUE = "refresh_due"
    EXPIRY_DUE = "expiry_due"
    PEER_REFRESHED = "peer_refreshed"  # a 2xx to a re-INVITE/UPDATE we did not start
    REFRESHED = "refreshed"  # our refresh got a 2xx (or, probing, any live answer)
    REJECTED = "rejected"  # our refresh got another final: the session goes on unrefreshed
    LOST = "lost"  # 408, 481 or no answer: the dialog is gone
    STOP = "stop"


class Action(enum.Enum):
    SEND = "send"  # send a refresh
    EXPIRE = "expire"  # end the call with reason 14
    RESTART = "restart"  # the session was refreshed now
    RETRY = "retry"  # try again a segment later; the expiry stays


# RFC 4028 §10 with SPEC §8 reason 14; (state, input) -> (next state, actions)
TRANSITIONS: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (State.WAITING, Input.REFRESH_DUE): (State.REFRESHING, (Action.SEND,)),
    (State.WAITING, Input.EXPIRY_DUE): (State.EXPIRED, (Action.EXPIRE,)),
    (State.WAITING, Input.PEER_REFRESHED): (State.WAITING, (Action.RESTART,)),
    (State.WAITING, Input.STOP): (State.STOPPED, ()),
    (State.REFRESHING, Input.REFRESHED): (State.WAITING, (Action.RESTART,)),
    (State.REFRESHING, Input.REJECTED): (State.WAITING, (Action.RETRY,)),
    (State.REFRESHING, Input.LOST): (State.EXPIRED, (Action.EXPIRE,)),
    (State.REFRESHING, Input.EXPIRY_DUE): (State.EXPIRED, (Action.EXPIRE,)),
    (State.REFRESHING, Input.PEER_REFRESHED): (State.REFRESHING, (Action.RESTART,)),
    (State.REFRESHING, Input.STOP): (State.STOPPED, ()),
}


@frozen
class Tick:
    """The adapter's timer fired (a refresh or the expiry may be due)."""


@frozen
class PeerRefreshed:
    """A re-INVITE/UPDATE from either side got a 2xx in this dialog; `timer` is the
    renegotiated timer when the request carried one."""

    timer: Negotiated | None = None
    input = Input.PEER_REFRESHED


@frozen
class RefreshAnswered:
    """The final answer to our refresh; status None when none came (Timer B/F)."""

    status: int | None


@frozen
class Stop:
    """The call ended for another reason."""

    input = Input.STOP


@frozen
class SendRefresh:
    """Effect: send `method` in the leg's dialog with `headers` (and, for a re-INVITE,
    the session description last sent to that leg: RFC 3264 §8, no change)."""

    method: str
    headers: tuple[tuple[str, str], ...]


@frozen
class Expire:
    """Effect: end the call, end reason 14 (Session Timeout), direction 2."""


Effect = SendRefresh | Expire


@define
class LegSession:
    """The refresh schedule of one answered leg (module docstring)."""

    timer: Negotiated | None  # None: the no-timer probe
    segment: int  # SS_SIP_SESSION_UPDATE_SEGMENT (timer) / 0 (probe)
    probe_ms: int  # SS_SIP_NO_TIMER_REINVITE_INTERVAL in ms (probe) / 0 (timer)
    use_update: bool
    last_ms: int
    state: State = State.WAITING
    refresh_at_ms: int | None = None
    expires_at_ms: int | None = None

    @classmethod
    def with_timer(
        cls, timer: Negotiated, segment: int, use_update: bool, now_ms: int
    ) -> LegSession:
        """SS_SIP_SESSION_UPDATE_SEGMENT: refresh at interval ÷ segment (>= 2, so
        within RFC 4028 §10's "half the interval")."""
        session = cls(timer, max(segment, 2), 0, use_update, now_ms)
        session._restart(now_ms)
        return session

    @classmethod
    def probing(cls, interval_s: int, now_ms: int) -> LegSession | None:
        """SS_SIP_NO_TIMER_REINVITE_INTERVAL; None when it is 0 (off)."""
        if interval_s <= 0:
            return None
        session = cls(None, 0, interval_s * 1000, False, now_ms)
        session._restart(now_ms)
        return session

    @property
    def step_ms(self) -> int:
        """Between our refreshes: interval ÷ segment, or the probe interval."""
        if self.timer is None:
            return self.probe_ms
        return self.timer.interval_s * 1000 // self.segment

    def next_deadline_ms(self) -> int | None:
        if self.state not in (State.WAITING, State.REFRESHING):
            return None
        due = [self.expires_at_ms]
        if self.state is State.WAITING:
            due.append(self.refresh_at_ms)
        present = [d for d in due if d is not None]
        return min(present) if present else None

    def handle(
        self, event: Tick | PeerRefreshed | RefreshAnswered | Stop, now_ms: int
    ) -> list[Effect]:
        if isinstance(event, Tick):
            if self.expires_at_ms is not None and now_ms >= self.expires_at_ms:
                kind = Input.EXPIRY_DUE
            elif self.refresh_at_ms is not None and now_ms >= self.refresh_at_ms:
                kind = Input.REFRESH_DUE
            else:
                return []  # woken early: nothing is due
        elif isinstance(event, RefreshAnswered):
            kind = self._classify(event.status)
        else:
            kind = event.input
        rule = TRANSITIONS.get((self.state, kind))
        if rule is None:  # a late answer, a stray tick: nothing to do (STYLE §5)
            return []
        self.state, actions = rule
        effects: list[Effect] = []
        for action in actions:
            if action is Action.SEND:
                effects.append(self._refresh())
            elif action is Action.EXPIRE:
                effects.append(Expire())
            elif action is Action.RESTART:
                if isinstance(event, PeerRefreshed) and event.timer is not None:
                    if self.timer is not None:  # a probed leg stays probed
                        self.timer = event.timer
                self._restart(now_ms)
            elif action is Action.RETRY:
                self.refresh_at_ms = now_ms + self.step_ms
        return effects

    def _classify(self, status: int | None) -> Input:
        if status is None or status in LOST_STATUSES:
            return Input.LOST
        if 200 <= status < 300:
            return Input.REFRESHED
        # the probe asks only "is the dialog alive?": any other answer says yes;
        # a session timer is refreshed only by a 2xx (RFC 4028 §10)
        return Input.REFRESHED if self.timer is None else Input.REJECTED

    def _restart(self, now_ms: int) -> None:
        self.last_ms = now_ms
        timer = self.timer
        if timer is None:
            self.refresh_at_ms, self.expires_at_ms = now_ms + self.step_ms, None
        elif timer.refresher is Refresher.US:
            self.refresh_at_ms = now_ms + self.step_ms
            self.expires_at_ms = now_ms + timer.interval_s * 1000
        else:
            # RFC 4028 §10: without a refresh, the other side ends the session
            # min(32, SE/3) s before it expires
            grace_ms = min(32_000, timer.interval_s * 1000 // 3)
            self.refresh_at_ms = None
            self.expires_at_ms = now_ms + timer.interval_s * 1000 - grace_ms

    def _refresh(self) -> SendRefresh:
        if self.timer is None:
            return SendRefresh("INVITE", ())  # the probe: a plain re-INVITE
        method = "UPDATE" if self.use_update else "INVITE"
        return SendRefresh(method, request_headers(self.timer))


# ---------------------------------------------------------------- the adapter


class SessionKeeper:
    """Drives one `LegSession` on an injected IReactorTime (one IDelayedCall).

    `send(method, headers, on_answer)` sends the refresh and later calls
    `on_answer(status | None)`; `expire()` ends the call (reason 14).
    """

    def __init__(
        self,
        session: LegSession,
        clock: Any,
        send: Callable[[str, tuple[tuple[str, str], ...], Callable[[int | None], None]], None],
        expire: Callable[[], None],
    ) -> None:
        self.session = session
        self._clock = clock
        self._send = send
        self._expire = expire
        self._call: Any = None
        self._arm()

    @property
    def timer(self) -> Negotiated | None:
        return self.session.timer

    def peer_refreshed(self, timer: Negotiated | None = None) -> None:
        self._feed(PeerRefreshed(timer))

    def stop(self) -> None:
        self._feed(Stop())

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def _feed(self, event: Tick | PeerRefreshed | RefreshAnswered | Stop, now: int | None = None):
        effects = self.session.handle(event, self._now() if now is None else now)
        self._arm()
        for effect in effects:
            if isinstance(effect, SendRefresh):
                self._send(effect.method, effect.headers, self._answered)
            else:
                self._expire()

    def _answered(self, status: int | None) -> None:
        self._feed(RefreshAnswered(status))

    def _arm(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        deadline = self.session.next_deadline_ms()
        if deadline is not None:
            delay = max(0, deadline - self._now()) / 1000
            self._call = self._clock.callLater(delay, self._fire, deadline)

    def _fire(self, deadline: int) -> None:
        self._call = None
        # float seconds may read a hair early: the deadline is due now
        self._feed(Tick(), max(self._now(), deadline))
