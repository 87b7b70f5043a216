"""One call's state machine: routing, attempts, timers, talk, the end and its CDR, sans-IO.

Rules (SPEC §3, §4, §6, §7, §8):
- a call is made from an admission outcome: `Call.admitted()` routes, `Call.refused()`
  ends at once; either way the end produces ONE CDR through `cdr.policy.decide()` and
  the AccountPool settlement, and the messages that tell the parties the call ended
  ride in `CommitCdr.then`: the adapter sends them only after the commit (§3 step 13);
- attempts follow the router's order; every unanswered attempt goes through the §4
  failover decision; the attempt timers come from the params snapshot taken on arrival;
- the CDR describes the last attempt (fields 9, 11, 14, 15, 19);
- talk is cut at the covered time T (reason 24), ticking the pool at `next_tick_s`.
`handle(event, now_ms) -> list[Effect]` and `next_deadline_ms()` are the whole API
(STYLE §2); the transition table below reads next to SPEC §3's step table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from attrs import define, frozen

from vos3k.billing.accounts import AccountPool
from vos3k.billing.rating import cost
from vos3k.cdr.policy import CallFacts, decide
from vos3k.cdr.record import BillingMode, Cdr
from vos3k.media.policy import Leg as MediaLeg
from vos3k.media.policy import LegMedia, MediaCheck, ProxyMode, should_proxy, watched_legs
from vos3k.store.models import Gateway, to_e4
from vos3k.switch.admission import CallContext, CallSettings, Directory, Reject, step4_caller
from vos3k.switch.legs import (
    Answered,
    Ending,
    Failed,
    HungUp,
    LegEvent,
    LegInput,
    Media,
    Progress,
    Setup,
)
from vos3k.switch.reasons import TO_Q850, TO_SIP, EndDirection, EndReason, code_for_caller
from vos3k.switch.router import (
    AttemptOutcome,
    Load,
    Plan,
    Router,
    RoutingSettings,
    Timer,
    failover,
    numbers_to_gateway,
)

ZERO = Decimal("0")

# ---------------------------------------------------------------- environment


@frozen
class PhoneTarget:
    """A registered phone's newest binding (SPEC §3 step 9)."""

    ip: str
    port: int
    contact: str = ""
    protocol: str = "sip"


def _nowhere(_e164: str) -> PhoneTarget | None:
    return None


def _proxy_mode(gateway: Gateway | None) -> ProxyMode:
    """A gateway's `media_proxy` (SPEC §2); a phone follows SS_MEDIAPROXYMODE."""
    return ProxyMode.DEFAULT if gateway is None else ProxyMode(gateway.media_proxy)


def _media_check(gateway: Gateway | None) -> MediaCheck:
    """A gateway's `media_check` (SPEC §2); a phone's media is not timed."""
    return MediaCheck.NONE if gateway is None else MediaCheck(gateway.media_check)


@define
class Switchboard:
    """The shared in-memory state every call reads and counts on; the engine owns it."""

    directory: Directory
    load: Load
    pool: AccountPool
    router: Router
    locate: Callable[[str], PhoneTarget | None] = _nowhere  # registrar lookup


# ---------------------------------------------------------------- events in


class Side(enum.Enum):
    CALLER = "caller"
    CALLEE = "callee"


class Input(enum.Enum):
    """A call's table inputs: leg events by side, the timer, a kill."""

    CALLER_HUNG_UP = "caller_hung_up"
    CALLER_OTHER = "caller_other"  # anything else a caller leg reports: nothing to do
    CALLEE_PROCEEDING = "callee_proceeding"
    CALLEE_RINGING = "callee_ringing"
    CALLEE_EARLY_MEDIA = "callee_early_media"
    CALLEE_ANSWERED = "callee_answered"
    CALLEE_FAILED = "callee_failed"
    CALLEE_HUNG_UP = "callee_hung_up"
    CALLEE_MEDIA_STARTED = "callee_media_started"
    TIMER = "timer"
    KILL = "kill"
    SERVER_RELEASE = "server_release"


_CALLEE_INPUTS = {
    LegInput.PROCEEDING: Input.CALLEE_PROCEEDING,
    LegInput.RINGING: Input.CALLEE_RINGING,
    LegInput.EARLY_MEDIA: Input.CALLEE_EARLY_MEDIA,
    LegInput.ANSWERED: Input.CALLEE_ANSWERED,
    LegInput.FAILED: Input.CALLEE_FAILED,
    LegInput.HUNG_UP: Input.CALLEE_HUNG_UP,
    LegInput.MEDIA_STARTED: Input.CALLEE_MEDIA_STARTED,
}


@frozen
class FromCaller:
    """An event of the caller leg."""

    event: LegEvent

    @property
    def input(self) -> Input:
        if self.event.input is LegInput.HUNG_UP:
            return Input.CALLER_HUNG_UP
        return Input.CALLER_OTHER


@frozen
class FromCallee:
    """An event of callee leg number `attempt` (events of older attempts are stale)."""

    attempt: int
    event: LegEvent

    @property
    def input(self) -> Input:
        return _CALLEE_INPUTS[self.event.input]


@frozen
class TimerFired:
    """The adapter's timer reached `next_deadline_ms()`."""

    input = Input.TIMER


@frozen
class Kill:
    """`call kill`, shutdown or an internal error: reason 13, direction 2 (SPEC §3)."""

    input = Input.KILL


@frozen
class ServerRelease:
    """vos3k itself ends the call with `reason`, direction 2 (SPEC §3 step 12, §8): the
    media timeout (15, §12), the session timer (14), or no free RTP pair for an attempt
    (5: 503 before answer, no further attempt; §3 step 9). Handled like `Kill` otherwise."""

    reason: EndReason
    input = Input.SERVER_RELEASE


CallEvent = FromCaller | FromCallee | TimerFired | Kill | ServerRelease

# ---------------------------------------------------------------- effects out


@frozen
class Ring:
    media: Media | None = None


@frozen
class Progress183:
    media: Media | None = None


@frozen
class Answer:
    media: Media | None = None


@frozen
class HangUp:
    ending: Ending


@frozen
class Cancel:
    pass


Command = Ring | Progress183 | Answer | HangUp | Cancel


@frozen
class StartAttempt:
    """Create the callee leg for `setup.protocol` and offer `setup` on it."""

    setup: Setup


@frozen
class ToCaller:
    command: Command


@frozen
class ToCallee:
    attempt: int
    command: Command


@frozen
class CommitCdr:
    """Submit `row` (store CDR columns); after the commit perform `then` (SPEC §3 step 13)."""

    row: dict[str, Any]
    cdr: Cdr
    then: tuple[Any, ...]


@frozen
class Dropped:
    """A late or stray event: counted by the adapter, never acted on (STYLE §5)."""

    input: Input
    state: str


Effect = StartAttempt | ToCaller | ToCallee | CommitCdr | Dropped

# ---------------------------------------------------------------- states and table


class State(enum.Enum):
    ROUTING = "routing"  # admitted, choosing the next target
    CALLING = "calling"  # INVITE/Setup sent, no response
    PROCEEDING = "proceeding"  # 100 / Call Proceeding
    RINGING = "ringing"  # 180 (or 183) without media
    EARLY = "early"  # 18x with media
    TALKING = "talking"
    ENDED = "ended"


class Action(enum.Enum):
    PROCEED = "proceed"
    RING = "ring"
    EARLY_MEDIA = "early_media"
    RELAY_RING = "relay_ring"  # a further 18x: relay, timers unchanged
    ANSWER = "answer"
    FAIL_ATTEMPT = "fail_attempt"
    TIME_OUT = "time_out"
    NOTE_RTP = "note_rtp"
    CALLER_CANCELLED = "caller_cancelled"
    CALLER_BYE = "caller_bye"
    CALLEE_BYE = "callee_bye"
    TICK = "tick"
    KILL = "kill"
    RELEASE = "release"


S, I, A = State, Input, Action  # noqa: E741  (table shorthand, as params.py)
_UNANSWERED = (S.CALLING, S.PROCEEDING, S.RINGING, S.EARLY)

# (state, input) -> (next state, actions); None = the action decides (an attempt
# failing may start the next attempt or end the call). SPEC §4 timer table, §3 steps 10-13.
TRANSITIONS: dict[tuple[State, Input], tuple[State | None, tuple[Action, ...]]] = {
    (S.CALLING, I.CALLEE_PROCEEDING): (S.PROCEEDING, (A.PROCEED,)),
    (S.CALLING, I.CALLEE_RINGING): (S.RINGING, (A.RING,)),
    (S.PROCEEDING, I.CALLEE_RINGING): (S.RINGING, (A.RING,)),
    (S.RINGING, I.CALLEE_RINGING): (S.RINGING, (A.RELAY_RING,)),
    (S.EARLY, I.CALLEE_RINGING): (S.EARLY, (A.RELAY_RING,)),
    (S.CALLING, I.CALLEE_EARLY_MEDIA): (S.EARLY, (A.EARLY_MEDIA,)),
    (S.PROCEEDING, I.CALLEE_EARLY_MEDIA): (S.EARLY, (A.EARLY_MEDIA,)),
    (S.RINGING, I.CALLEE_EARLY_MEDIA): (S.EARLY, (A.EARLY_MEDIA,)),
    (S.EARLY, I.CALLEE_EARLY_MEDIA): (S.EARLY, (A.RELAY_RING,)),
    **{(s, I.CALLEE_ANSWERED): (S.TALKING, (A.ANSWER,)) for s in _UNANSWERED},
    **{(s, I.CALLEE_FAILED): (None, (A.FAIL_ATTEMPT,)) for s in _UNANSWERED},
    # An H.323 vendor's Release Complete before Connect is a failed attempt (SPEC §8 2b).
    **{(s, I.CALLEE_HUNG_UP): (None, (A.FAIL_ATTEMPT,)) for s in _UNANSWERED},
    **{(s, I.TIMER): (None, (A.TIME_OUT,)) for s in _UNANSWERED},
    **{(s, I.CALLEE_MEDIA_STARTED): (s, (A.NOTE_RTP,)) for s in _UNANSWERED},
    **{(s, I.CALLER_HUNG_UP): (S.ENDED, (A.CALLER_CANCELLED,)) for s in _UNANSWERED},
    **{(s, I.KILL): (S.ENDED, (A.KILL,)) for s in (*_UNANSWERED, S.TALKING)},
    **{(s, I.SERVER_RELEASE): (S.ENDED, (A.RELEASE,)) for s in (*_UNANSWERED, S.TALKING)},
    (S.TALKING, I.CALLER_HUNG_UP): (S.ENDED, (A.CALLER_BYE,)),
    (S.TALKING, I.CALLEE_HUNG_UP): (S.ENDED, (A.CALLEE_BYE,)),
    (S.TALKING, I.TIMER): (None, (A.TICK,)),
    (S.TALKING, I.CALLEE_MEDIA_STARTED): (S.TALKING, ()),
}


# ---------------------------------------------------------------- attempts


@define
class Attempt:
    """One vendor (or phone) attempt, as the CDR and `call show` describe it."""

    number: int
    gateway: Gateway | None
    ip: str
    port: int
    protocol: str
    caller: str  # sent to the target (SPEC §7 field 14)
    callee: str  # field 15
    sent_ms: int
    first_response_ms: int | None = None  # first 18x/200/final: calleePdd (field 19)
    code: int = 0  # its final SIP status (200 answered); 0 = none
    cause: int | None = None
    provisional: bool = False
    sdp: bool = False
    rtp: bool = False
    live: bool = True  # holds a line on its gateway

    def responded(self, now_ms: int) -> None:
        if self.first_response_ms is None:
            self.first_response_ms = now_ms

    @property
    def pdd_ms(self) -> int:
        return 0 if self.first_response_ms is None else self.first_response_ms - self.sent_ms

    def summary(self) -> dict[str, Any]:
        return {
            "gateway": "" if self.gateway is None else self.gateway.name,
            "ip": self.ip,
            "caller": self.caller,
            "callee": self.callee,
            "code": self.code,
            "cause": self.cause,
            "pdd_ms": self.pdd_ms,
        }


# Timer lengths by attempt protocol: SPEC §4 timer table, SIP and H.323 columns.
_TIMER_PARAMS = {
    "sip": {
        Timer.INVITE: "sip_timeout_invite_s",
        Timer.SESSION_PROGRESS: "sip_timeout_session_progress_s",
        Timer.RINGING: "sip_timeout_ringing_s",
        Timer.EARLY_MEDIA: "sip_timeout_session_progress_sdp_s",
    },
    "h323": {
        Timer.INVITE: "h323_timeout_setup_s",
        Timer.SESSION_PROGRESS: "h323_timeout_alerting_s",
        Timer.RINGING: "h323_timeout_connect_s",
        Timer.EARLY_MEDIA: "h323_timeout_connect_s",
    },
}

# ---------------------------------------------------------------- the call


class Call:
    """A call = caller leg + the current callee attempt + timestamps + the end."""

    def __init__(self, ctx: CallContext, settings: CallSettings, board: Switchboard) -> None:
        self.ctx = ctx
        self.settings = settings
        self.routing = RoutingSettings.from_snapshot(settings.snap)
        self.board = board
        self.state = State.ROUTING
        self.attempts: list[Attempt] = []
        self.passed: set[str] = set()
        self.plan: Plan | None = None
        self.phone_tried = False
        self.deadline_ms: int | None = None
        self.timer: Timer | None = None  # which attempt timer the deadline is
        self.ring_ms: int | None = None
        self.connect_ms: int | None = None
        self.stop_ms: int | None = None
        self.caller_pdd_ms = 0
        self.end_reason: EndReason | None = None
        self.end_direction: EndDirection | None = None
        self.caller_code = 0  # the final status the caller got (CDR sip_code)
        self.cdr: Cdr | None = None
        self.counted = False  # holds a place in Load (total, caller, mapping gateway)

    @property
    def id(self) -> str:
        return self.ctx.call_id

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    # -- construction ----------------------------------------------------------------

    @classmethod
    def admitted(
        cls, ctx: CallContext, settings: CallSettings, board: Switchboard, now_ms: int
    ) -> tuple[Call, list[Effect]]:
        """SPEC §3 steps 9-10: an admitted call starts hunting at once."""
        call = cls(ctx, settings, board)
        call.counted = True
        board.load.total += 1
        board.load.seize_caller(step4_caller(ctx))
        if ctx.caller_gateway is not None:
            board.load.seize(ctx.caller_gateway.name, now_ms)
        return call, call._route(now_ms)

    @classmethod
    def refused(
        cls, reject: Reject, settings: CallSettings, board: Switchboard, now_ms: int
    ) -> tuple[Call, list[Effect]]:
        """SPEC §3 steps 3-8 failed: the call ends before any attempt, CDR per policy."""
        call = cls(reject.context, settings, board)
        ending = Ending(reject.reason, reject.sip_code, reject.q850)
        return call, call._end(reject.reason, reject.direction, ending, None, now_ms)

    # -- the core API --------------------------------------------------------------------

    def next_deadline_ms(self) -> int | None:
        return None if self.state is State.ENDED else self.deadline_ms

    def handle(self, event: CallEvent, now_ms: int) -> list[Effect]:
        """Apply one event at `now_ms`; returns the effects for the adapter to perform."""
        if isinstance(event, FromCallee) and not self._is_live(event.attempt):
            return self._stale(event)
        if isinstance(event, TimerFired) and (
            self.deadline_ms is None or now_ms < self.deadline_ms
        ):
            return []  # an early or cancelled timer: nothing is due
        rule = TRANSITIONS.get((self.state, event.input))
        if rule is None:
            return [Dropped(event.input, self.state.value)]
        next_state, actions = rule
        effects: list[Effect] = []
        for action in actions:
            effects.extend(self._perform(action, event, now_ms))
        if next_state is not None and self.state is not State.ENDED:
            self.state = next_state
        return effects

    def _is_live(self, number: int) -> bool:
        current = self.current
        return current is not None and current.number == number and current.live

    def _stale(self, event: FromCallee) -> list[Effect]:
        # A 200 from an attempt we gave up on (CANCEL crossed it): hang that leg up.
        if event.input is Input.CALLEE_ANSWERED:
            ending = Ending(EndReason.NORMAL_CLEARING, None, TO_Q850[EndReason.NORMAL_CLEARING])
            return [ToCallee(event.attempt, HangUp(ending))]
        return [Dropped(event.input, self.state.value)]

    # -- actions ------------------------------------------------------------------------

    def _perform(self, action: Action, event: CallEvent, now_ms: int) -> list[Effect]:
        attempt = self.current
        leg_event = event.event if isinstance(event, FromCaller | FromCallee) else None
        if action is A.PROCEED:
            self._arm(Timer.SESSION_PROGRESS, now_ms, attempt)
            return []
        if action in (A.RING, A.EARLY_MEDIA, A.RELAY_RING):
            assert attempt is not None
            attempt.responded(now_ms)
            attempt.provisional = True
            media = getattr(leg_event, "media", None)
            if media is not None:
                attempt.sdp = True
            if action is A.RING:
                self._arm(Timer.RINGING, now_ms, attempt)
            elif action is A.EARLY_MEDIA:
                self._arm(Timer.EARLY_MEDIA, now_ms, attempt)
            if self.ring_ms is None:
                self.ring_ms = now_ms
                self.caller_pdd_ms = now_ms - self.ctx.start_ms
            command = Progress183(media) if isinstance(leg_event, Progress) else Ring(media)
            return [ToCaller(command)]
        if action is A.ANSWER:
            return self._answer(leg_event, now_ms)
        if action is A.FAIL_ATTEMPT:
            assert attempt is not None
            attempt.responded(now_ms)
            return self._failed(self._outcome(leg_event, attempt), now_ms)
        if action is A.TIME_OUT:
            assert attempt is not None and self.timer is not None
            outcome = self._outcome_of(attempt, timer=self.timer)
            return [ToCallee(attempt.number, Cancel()), *self._failed(outcome, now_ms)]
        if action is A.NOTE_RTP:
            assert attempt is not None
            attempt.rtp = True
            return []
        if action is A.CALLER_CANCELLED:
            assert attempt is not None
            reason = EndReason.CALLER_HANGUP
            ending = Ending(reason, TO_SIP[reason], TO_Q850[reason])
            return self._end(reason, EndDirection.CALLER, ending, Cancel(), now_ms)
        if action in (A.CALLER_BYE, A.CALLEE_BYE):
            reason = EndReason.NORMAL_CLEARING
            bye = Ending(reason, None, TO_Q850[reason])
            direction = EndDirection.CALLER if action is A.CALLER_BYE else EndDirection.CALLEE
            return self._end(reason, direction, bye, HangUp(bye), now_ms)
        if action is A.TICK:
            return self._tick(now_ms)
        if action in (A.KILL, A.RELEASE):
            forced = EndReason.SERVER_FORCED_RELEASE
            reason = event.reason if isinstance(event, ServerRelease) else forced
            if self.state is State.TALKING:
                bye = Ending(reason, None, TO_Q850[reason])
                return self._end(reason, EndDirection.SERVER, bye, HangUp(bye), now_ms)
            # Before answer a BYE-only reason (14, 15) fails the set-up with 13's 500.
            ending = Ending(reason, TO_SIP[reason] or TO_SIP[forced], TO_Q850[reason])
            return self._end(reason, EndDirection.SERVER, ending, Cancel(), now_ms)
        raise AssertionError(f"unhandled action {action}")

    # -- routing and attempts ----------------------------------------------------------------

    def _route(self, now_ms: int) -> list[Effect]:
        """SPEC §3 step 9 for a new call: the first target, else 6 or 22."""
        effects = self._next_target(now_ms)
        if effects is not None:
            return effects
        assert self.plan is not None
        reason = EndReason.ROUTE_NOT_FOUND if self.plan.empty else EndReason.NO_AVAILABLE_ROUTE
        ending = Ending(reason, TO_SIP[reason], TO_Q850[reason])
        return self._end(reason, EndDirection.SERVER, ending, None, now_ms)

    def _next_target(self, now_ms: int) -> list[Effect] | None:
        """A registered phone callee first, then the next usable routing gateway (§4)."""
        ctx = self.ctx
        if ctx.callee_phone is not None and not self.phone_tried:
            self.phone_tried = True
            target = self.board.locate(ctx.callee_phone.e164)
            if target is not None:
                return self._start_phone_attempt(target, now_ms)
        if self.plan is None:
            self.plan = self.board.router.plan(ctx.callee_e164, ctx.rating_number, ctx.start_ms)
        gateway, skipped = self.board.router.next_gateway(
            self.plan, frozenset(self.passed), self.routing, now_ms
        )
        self.passed.update(skipped)
        if gateway is None:
            return None
        self.passed.add(gateway.name)
        caller, callee = numbers_to_gateway(gateway, ctx.caller_e164, ctx.callee_e164)
        port = gateway.port or (1720 if gateway.protocol == "h323" else 5060)
        attempt = Attempt(
            len(self.attempts) + 1,
            gateway,
            gateway.ip,
            port,
            gateway.protocol,
            caller,
            callee,
            now_ms,
        )
        self.board.load.seize(gateway.name, now_ms)
        return self._offer(attempt, now_ms)

    def _start_phone_attempt(self, target: PhoneTarget, now_ms: int) -> list[Effect]:
        ctx = self.ctx
        attempt = Attempt(
            len(self.attempts) + 1,
            None,
            target.ip,
            target.port,
            target.protocol,
            ctx.caller_e164,
            ctx.callee_e164,
            now_ms,
        )
        return self._offer(attempt, now_ms, contact=target.contact)

    def _offer(self, attempt: Attempt, now_ms: int, contact: str = "") -> list[Effect]:
        self.attempts.append(attempt)
        self.state = State.CALLING
        self._arm(Timer.INVITE, now_ms, attempt)
        proxy, watched = self._media_plan(attempt)
        setup = Setup(
            self.id,
            attempt.number,
            attempt.caller,
            attempt.callee,
            attempt.ip,
            attempt.port,
            attempt.protocol,
            gateway="" if attempt.gateway is None else attempt.gateway.name,
            contact=contact,
            media=self.ctx.media,
            proxy_media=proxy,
            media_watch=watched,
        )
        return [StartAttempt(setup)]

    def _media_plan(self, attempt: Attempt) -> tuple[bool, frozenset[MediaLeg]]:
        """SPEC §12 for this attempt, by media/policy.py's rules: proxy or not (both
        gateways' `media_proxy`; the callee's SDP is unknown at offer time), and which
        sides the media timeout watches (both gateways' `media_check`)."""
        ctx, callee = self.ctx, attempt.gateway
        caller = ctx.caller_gateway
        offer = ctx.media.address if ctx.media is not None and ctx.media.address else None
        a = LegMedia(_proxy_mode(caller), offer, ctx.source_ip)
        b = LegMedia(_proxy_mode(callee), None, attempt.ip)
        proxy = should_proxy(a, b, self.settings.snap.media_proxy_mode)
        return proxy, watched_legs(_media_check(caller), _media_check(callee))

    def _arm(self, timer: Timer, now_ms: int, attempt: Attempt | None) -> None:
        protocol = "sip" if attempt is None else attempt.protocol
        seconds = getattr(self.settings.snap, _TIMER_PARAMS[protocol][timer])
        self.timer = timer
        self.deadline_ms = now_ms + seconds * 1000

    def _release_attempt(self, attempt: Attempt) -> None:
        if attempt.live:
            attempt.live = False
            if attempt.gateway is not None:
                self.board.load.release(attempt.gateway.name)

    def _outcome(self, leg_event: Any, attempt: Attempt) -> AttemptOutcome:
        if isinstance(leg_event, Failed):
            if leg_event.code is None and leg_event.cause is None:
                return self._outcome_of(attempt, timer=Timer.UNREACHABLE)
            return self._outcome_of(attempt, code=leg_event.code, cause=leg_event.cause)
        assert isinstance(leg_event, HungUp)
        # SPEC §8 table 2b: a release without a cause is normal clearing (16).
        cause = leg_event.cause if leg_event.cause is not None else 16
        return self._outcome_of(attempt, cause=cause)

    def _outcome_of(
        self,
        attempt: Attempt,
        code: int | None = None,
        cause: int | None = None,
        timer: Timer | None = None,
    ) -> AttemptOutcome:
        return AttemptOutcome(
            code=code,
            cause=cause,
            timer=timer,
            provisional=attempt.provisional,
            sent_sdp=attempt.sdp,
            sent_rtp=attempt.rtp,
            to_phone=attempt.gateway is None,
        )

    def _failed(self, outcome: AttemptOutcome, now_ms: int) -> list[Effect]:
        """SPEC §4 failover steps 2-6 after the current attempt went unanswered."""
        attempt = self.current
        assert attempt is not None
        self._release_attempt(attempt)
        self.deadline_ms = self.timer = None
        verdict = failover(
            outcome, attempt.gateway, self.ctx.replace_codes, len(self.attempts), self.routing
        )
        attempt.code = outcome.code if outcome.code is not None else verdict.code
        attempt.cause = outcome.cause
        if verdict.failover:
            effects = self._next_target(now_ms)
            if effects is not None:
                return effects
        # Stopped, or none left: the call ends with this attempt's reason and code (step 6).
        ending = Ending(verdict.reason, code_for_caller(verdict.code), verdict.q850)
        return self._end(verdict.reason, verdict.direction, ending, None, now_ms)

    # -- answer and talk ---------------------------------------------------------------------

    def _answer(self, leg_event: Any, now_ms: int) -> list[Effect]:
        attempt = self.current
        assert attempt is not None and isinstance(leg_event, Answered)
        attempt.responded(now_ms)
        attempt.code = 200
        self.connect_ms = now_ms
        if self.ring_ms is None:
            self.caller_pdd_ms = now_ms - self.ctx.start_ms
        self.caller_code = 200
        self.deadline_ms = self.timer = None
        effects: list[Effect] = [ToCaller(Answer(leg_event.media))]
        if self.ctx.reserved:
            coverage = self.board.pool.answer(self.id)
            if coverage.cut:
                return effects + self._cut(now_ms)
            if coverage.next_tick_s is not None:
                self.deadline_ms = now_ms + 1000 * coverage.next_tick_s
        return effects

    def _tick(self, now_ms: int) -> list[Effect]:
        """SPEC §6: extension check at whole talk seconds; cut at T."""
        assert self.connect_ms is not None
        talk_s = (now_ms - self.connect_ms) // 1000
        coverage = self.board.pool.tick(self.id, talk_s)
        if coverage.cut:
            return self._cut(now_ms)
        self.deadline_ms = (
            None if coverage.next_tick_s is None else self.connect_ms + 1000 * coverage.next_tick_s
        )
        return []

    def _cut(self, now_ms: int) -> list[Effect]:
        reason = EndReason.PREPAID_DURATION_EXCEEDED
        bye = Ending(reason, None, TO_Q850[reason])
        return self._end(reason, EndDirection.SERVER, bye, HangUp(bye), now_ms)

    # -- the end -----------------------------------------------------------------------------

    def _end(
        self,
        reason: EndReason,
        direction: EndDirection,
        caller_ending: Ending,
        callee_command: Command | None,
        now_ms: int,
    ) -> list[Effect]:
        """SPEC §3 step 13: settle, decide the CDR, and hold the ending messages for it."""
        self.state = State.ENDED
        self.deadline_ms = self.timer = None
        self.stop_ms = now_ms
        self.end_reason, self.end_direction = reason, direction
        if self.connect_ms is None:
            self.caller_code = caller_ending.sip_code or 0
        then: list[Effect] = [ToCaller(HangUp(caller_ending))]
        attempt = self.current
        if attempt is not None and attempt.live:
            self._release_attempt(attempt)
            if callee_command is not None:
                then.append(ToCallee(attempt.number, callee_command))
        if self.counted:
            self.counted = False
            self.board.load.total -= 1
            self.board.load.release_caller(step4_caller(self.ctx))
            if self.ctx.caller_gateway is not None:
                self.board.load.release(self.ctx.caller_gateway.name)
        row, cdr = self._settle(now_ms)
        if cdr is None:
            return then
        self.cdr = cdr
        return [CommitCdr(row, cdr, tuple(then))]

    def _settle(self, now_ms: int) -> tuple[dict[str, Any], Cdr | None]:
        ctx = self.ctx
        assert self.end_reason is not None and self.end_direction is not None
        answered = self.connect_ms is not None
        hold_ms = now_ms - self.connect_ms if self.connect_ms is not None else 0
        facts = CallFacts(
            callee_e164=ctx.callee_e164,
            callee_access_e164=ctx.callee_access,
            end_reason=self.end_reason,
            end_direction=self.end_direction,
            answered=answered,
            payer_mode=ctx.billing_mode if ctx.rate is not None else BillingMode.NONE,
            on_net=ctx.on_net,
        )
        decision = decide(self.settings.policy, facts)
        if decision.zero_hold:
            hold_ms = 0
        billing = self.settings.billing
        fee, billed = ZERO, 0
        if ctx.reserved:
            settlement = self.board.pool.end(self.id, hold_ms, charge=decision.charge)
            fee, billed = settlement.fee, settlement.billed_seconds
        attempt = self.current
        gateway = attempt.gateway if attempt is not None else None
        cost_amount, clearing = ZERO, ""
        if decision.charge and gateway is not None:
            vendor_rate = self.board.router.vendor_rate(gateway, ctx.rating_number)
            if vendor_rate is not None:
                cost_amount = cost(hold_ms, vendor_rate, billing).amount
                clearing = gateway.account
        if not decision.record:
            return {}, None
        cdr = Cdr(
            caller_e164=ctx.caller_e164,
            callee_e164=ctx.callee_e164,
            start_time=ctx.start_ms,
            stop_time=now_ms,
            hold_time=hold_ms,
            end_reason=self.end_reason,
            end_direction=self.end_direction,
            caller_gateway_id="" if ctx.caller_gateway is None else ctx.caller_gateway.name,
            callee_gateway_id="" if gateway is None else gateway.name,
            caller_ip=ctx.source_ip,
            callee_ip="" if attempt is None else attempt.ip,
            caller_access_e164=ctx.caller_access,
            callee_access_e164=ctx.callee_access,
            caller_to_gateway_e164="" if attempt is None else attempt.caller,
            callee_to_gateway_e164="" if attempt is None else attempt.callee,
            callee_billing=ctx.callee_billing,
            billing_mode=decision.billing_mode,
            caller_pdd=self.caller_pdd_ms,
            callee_pdd=0 if attempt is None else attempt.pdd_ms,
            account=ctx.payer,
            fee=fee,
            cost=cost_amount,
            sip_code=self.caller_code,
            billed_seconds=billed if decision.charge else 0,
            rate_prefix="" if ctx.rate is None else ctx.rate.prefix,
            area="" if ctx.rate is None else ctx.rate.area,
            clearing_account=clearing,
            attempts=len(self.attempts),
        )
        return cdr_row(cdr, self.id, [a.summary() for a in self.attempts]), cdr


def cdr_row(cdr: Cdr, call_uuid: str, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """A Cdr as the store's CDR columns (store/repos.py CDR_COLUMNS), money in e4."""
    return {
        "call_uuid": call_uuid,
        "caller_e164": cdr.caller_e164,
        "callee_e164": cdr.callee_e164,
        "start_ms": cdr.start_time,
        "stop_ms": cdr.stop_time,
        "hold_ms": cdr.hold_time,
        "end_reason": int(cdr.end_reason),
        "end_direction": int(cdr.end_direction),
        "caller_gateway_id": cdr.caller_gateway_id,
        "callee_gateway_id": cdr.callee_gateway_id,
        "caller_ip": cdr.caller_ip,
        "callee_ip": cdr.callee_ip,
        "caller_access_e164": cdr.caller_access_e164,
        "callee_access_e164": cdr.callee_access_e164,
        "caller_to_gateway_e164": cdr.caller_to_gateway_e164,
        "callee_to_gateway_e164": cdr.callee_to_gateway_e164,
        "callee_billing": int(cdr.callee_billing),
        "billing_mode": int(cdr.billing_mode),
        "caller_pdd_ms": cdr.caller_pdd,
        "callee_pdd_ms": cdr.callee_pdd,
        "account": cdr.account,
        "fee_e4": to_e4(cdr.fee),
        "cost_e4": to_e4(cdr.cost),
        "clearing_account": cdr.clearing_account,
        "sip_code": cdr.sip_code,
        "billed_seconds": cdr.billed_seconds,
        "rate_prefix": cdr.rate_prefix,
        "area": cdr.area,
        "attempts": cdr.attempts,
        "extra": {"attempts": attempts},
    }
