"""The Twisted-side switching adapter: owns live calls, their timers, legs and CDR commits.

How a protocol layer (the SIP B2BUA, the H.323 gateway) uses it:

1. A new INVITE/Setup arrives: build an `Arrival` and call
   `engine.incoming(caller_leg, arrival)`. The answer is
   - `Accepted(call_id, report)`: the engine owns the call; send every later event of
     the caller leg (its CANCEL/BYE as `HungUp`) through `report(event)`;
   - `Challenge(phone)`: answer 407 and wait for the retried INVITE (no call exists);
   - `Unavailable()`: answer 503 + `Retry-After: 5` (shutting down, CDR list full;
     SPEC §3 step 2), no call, no CDR.
   A refused call (403, 404, 503 ... per SPEC §3) is `Accepted` too: its CDR is
   written and then `caller_leg.hang_up(ending)` is called with the final status.
2. Callee legs: for each attempt the engine calls
   `leg_factories[setup.protocol].create_leg(setup, report)` and then
   `leg.offer(setup)`; the leg sends the INVITE/Setup and reports the vendor's
   responses through `report(event)` (`Proceeding`, `Ringing`, `Progress`, `Answered`,
   `Failed`, `HungUp`, `MediaStarted`). Reports after the engine gave up on an attempt
   are ignored (a late 200 gets a BYE through `hang_up`).
3. The engine tells legs what to do through the `Leg` commands (legs.py).

Everything ending a call waits for the CDR commit (SPEC §3 step 13): the `hang_up` /
`cancel` commands of the end are performed when `CdrWriter.submit()`'s Deferred fires.
Time is read only here, from the injected IReactorTime, once per event.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from attrs import evolve, frozen
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from vos3k.billing.accounts import AccountPool
from vos3k.reschedule import reschedule
from vos3k.switch.admission import (
    Admit,
    Arrival,
    Challenge,
    Directory,
    NumberBlacklist,
    admit,
    call_settings,
)
from vos3k.switch.call import (
    Answer,
    Call,
    CallEvent,
    Cancel,
    Command,
    CommitCdr,
    Dropped,
    FromCallee,
    FromCaller,
    HangUp,
    Kill,
    PhoneTarget,
    Progress183,
    Ring,
    ServerRelease,
    StartAttempt,
    State,
    Switchboard,
    TimerFired,
    ToCallee,
    ToCaller,
)
from vos3k.switch.calls import CallInfo, CurrentCalls
from vos3k.switch.legs import Dtmf, Failed, Leg, LegEvent, Setup
from vos3k.switch.reasons import EndReason
from vos3k.switch.router import Load, Router

Report = Callable[[LegEvent], None]


class LegFactory(Protocol):
    """Makes callee legs of one protocol (the SIP B2BUA and H.323 layer each provide one)."""

    def create_leg(self, setup: Setup, report: Report) -> Leg:
        """A new, not yet offered callee leg; `report` takes its events."""
        ...


class CdrSink(Protocol):
    """What the engine needs of `cdr.writer.CdrWriter`."""

    @property
    def full(self) -> bool: ...

    def submit(self, row: Mapping[str, Any]) -> defer.Deferred: ...


@frozen
class Accepted:
    """The engine owns the call; `report` takes the caller leg's events."""

    call_id: str
    report: Report


@frozen
class Unavailable:
    """SPEC §3 step 2: 503 with Retry-After: 5, no call and no CDR."""

    retry_after_s: int = 5


Incoming = Accepted | Challenge | Unavailable

# CallInfo.state (what `call list` shows) per call state.
_SHOWN = {
    State.ROUTING: "routing",
    State.CALLING: "routing",
    State.PROCEEDING: "routing",
    State.RINGING: "ringing",
    State.EARLY: "early",
    State.TALKING: "talking",
    State.ENDED: "ending",
}


class _Live:
    """One call's adapter state: its core, legs, timer and queued events."""

    __slots__ = (
        "busy",
        "call",
        "callees",
        "caller",
        "committing",
        "deadline",
        "info",
        "queue",
        "timer",
    )

    def __init__(self, call: Call, caller: Leg, info: CallInfo) -> None:
        self.call = call
        self.caller = caller
        self.callees: dict[int, Leg] = {}
        self.info = info
        self.timer: IDelayedCall | None = None
        self.deadline = 0  # epoch ms the timer is armed for
        self.queue: deque[tuple[CallEvent, int | None]] = deque()
        self.busy = False
        self.committing: defer.Deferred | None = None


class Engine:
    """Live calls: admission, the call cores, timers, legs, CurrentCalls and CDR commits."""

    log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        params: Any,  # LiveParams: `.snapshot` is taken once per call
        directory: Directory,
        pool: AccountPool,
        writer: CdrSink,
        calls: CurrentCalls,
        leg_factories: Mapping[str, LegFactory],
        locate: Callable[[str], PhoneTarget | None] | None = None,
        blacklist: Callable[[], NumberBlacklist] | None = None,
        dyn: Any | None = None,  # protect.DynamicScreen: the dynamic blacklist's hooks
        new_call_id: Callable[[], str] | None = None,
    ) -> None:
        self._clock = clock
        self._params = params
        self._writer = writer
        self._calls = calls
        self._factories = dict(leg_factories)
        self._blacklist = blacklist or (lambda: None)
        # SPEC §10 dynamic blacklist: `dyn.banned(ctx, snap, now)` at step 4 (in admit),
        # `dyn.started(ctx, snap, now)` as each call is admitted or refused and
        # `dyn.ended(call, snap, now)` once it is over (after its CDR commit, if any).
        self._dyn = dyn
        self._new_id = new_call_id or (lambda: uuid.uuid4().hex)
        self._cdr_extras: dict[str, Callable[[str], Any]] = {}
        self._end_listeners: list[Callable[[str], object]] = []
        self.load = Load()
        self.pool = pool
        self.board = Switchboard(
            directory,
            self.load,
            pool,
            Router(directory, self.load, pool),
            locate=locate or (lambda _e164: None),
        )
        self._live: dict[str, _Live] = {}
        self._shutting_down = False
        self.dropped = 0  # stray leg events (STYLE §5: counted, not acted on)

    # -- the protocol layers' API ---------------------------------------------------------

    def incoming(self, caller: Leg, arrival: Arrival) -> Incoming:
        """A new call from `caller` (see the module docstring)."""
        if self._shutting_down or self._writer.full:
            return Unavailable()
        now = self._now()
        if not arrival.call_id:
            arrival = evolve(arrival, call_id=self._new_id())
        settings = call_settings(self._params.snapshot)
        outcome = admit(
            arrival, settings, self.board.directory, self.load, self.pool, now,
            self._blacklist(), self._dyn,
        )  # fmt: skip
        if isinstance(outcome, Challenge):
            return outcome
        if isinstance(outcome, Admit):
            call, effects = Call.admitted(outcome.context, settings, self.board, now)
        else:
            call, effects = Call.refused(outcome, settings, self.board, now)
        if self._dyn is not None:
            self._dyn.started(call.ctx, settings.snap, now)
        ctx = call.ctx
        info = CallInfo(
            id=call.id,
            caller=ctx.caller_e164,
            callee=ctx.callee_e164,
            caller_gateway="" if ctx.caller_gateway is None else ctx.caller_gateway.name,
            caller_ip=ctx.source_ip,
            account=ctx.payer,
            start_ms=now,
        )
        live = _Live(call, caller, info)
        self._live[call.id] = live
        self._calls.add(info, lambda: self.kill(call.id))
        live.busy = True  # a leg reporting from inside offer() is queued, then drained
        try:
            self._perform(live, effects)
        finally:
            live.busy = False
        self._drain(live)
        return Accepted(call.id, lambda event: self._feed(call.id, FromCaller(event)))

    def add_leg_factory(self, protocol: str, factory: LegFactory) -> None:
        """A protocol layer offers its callee legs ("sip", "h323") once it is installed."""
        self._factories[protocol] = factory

    def kill(self, call_id: str) -> bool:
        """`call kill ID`: end the call as 13, direction 2, CDR written (SPEC §3)."""
        if call_id not in self._live:
            return False
        self._feed(call_id, Kill())
        return True

    def release(self, call_id: str, reason: EndReason) -> bool:
        """vos3k ends the call with `reason`, direction 2, CDR written: the media
        timeout (15) or the session timer (14) (SPEC §3 step 12, §12)."""
        if call_id not in self._live:
            return False
        self._feed(call_id, ServerRelease(EndReason(reason)))
        return True

    def add_cdr_extra(self, name: str, figures: Callable[[str], Any]) -> None:
        """At CDR commit, `figures(call_id)` (when not None) is stored under `name` in
        the CDR's `extra` (e.g. the RTP proxy's per-call statistics, SPEC §12)."""
        self._cdr_extras[name] = figures

    def add_end_listener(self, listener: Callable[[str], object]) -> None:
        """`listener(call_id)` runs once when a call is finished (its CDR committed and
        its ending messages sent), on every end path: e.g. the RTP proxy frees the
        call's ports whatever protocol its legs spoke (SPEC §12 "freed on every end")."""
        self._end_listeners.append(listener)

    def shutdown(self) -> defer.Deferred:
        """SIGTERM (SPEC §14): refuse new calls, end every call as 13 with its CDR.

        Fires once every CDR of those calls is committed (the writer flushes on its
        own timer, or in its stopService).
        """
        self._shutting_down = True
        for call_id in list(self._live):
            self._feed(call_id, Kill())
        pending = [live.committing for live in self._live.values() if live.committing]
        return defer.DeferredList(pending, consumeErrors=True)

    def set_offline(self, gateway: str, offline: bool) -> None:
        """The OPTIONS probe's verdict on a routing gateway (SPEC §4 usability)."""
        if offline:
            self.load.offline.add(gateway)
        else:
            self.load.offline.discard(gateway)

    def live(self, call_id: str) -> Call | None:
        """The core of a live call (`call show`)."""
        live = self._live.get(call_id)
        return None if live is None else live.call

    def __len__(self) -> int:
        return len(self._live)

    # -- event flow ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def _feed(self, call_id: str, event: CallEvent, now: int | None = None) -> None:
        """Queue an event; a leg that reports from inside a command is handled after it."""
        live = self._live.get(call_id)
        if live is None:
            self.dropped += 1
            return
        if isinstance(event, FromCaller | FromCallee) and isinstance(event.event, Dtmf):
            self._relay_dtmf(live, event)
            return
        live.queue.append((event, now))
        self._drain(live)

    def _relay_dtmf(self, live: _Live, event: FromCaller | FromCallee) -> None:
        """SPEC §11: a digit goes to the other leg as is (INFO <-> UserInputIndication);
        the call core never sees it. Only the current attempt's leg talks to the caller."""
        current = live.call.current
        if live.call.state is State.ENDED or current is None:
            leg = None
        elif isinstance(event, FromCaller):
            leg = live.callees.get(current.number)
        else:
            leg = live.caller if event.attempt == current.number else None
        send = getattr(leg, "send_dtmf", None)
        if send is None:
            self.dropped += 1
            return
        try:
            send(event.event)
        except Exception:
            self.log.failure("call {call_id}: DTMF relay failed", call_id=live.call.id)

    def _drain(self, live: _Live) -> None:
        """Handle queued events in order, unless already doing so further up the stack."""
        if live.busy:
            return
        live.busy = True
        try:
            while live.queue:
                queued, at = live.queue.popleft()
                self._dispatch(live, queued, self._now() if at is None else at)
        finally:
            live.busy = False
        self._settled(live)

    def _dispatch(self, live: _Live, event: CallEvent, now: int) -> None:
        try:
            effects = live.call.handle(event, now)
        except Exception:
            self.log.failure("call {call_id} failed on {event}", call_id=live.call.id, event=event)
            if isinstance(event, Kill) or live.call.state is State.ENDED:
                return
            try:
                effects = live.call.handle(Kill(), now)
            except Exception:
                self.log.failure("call {call_id} could not be released", call_id=live.call.id)
                return
        self._perform(live, effects)

    def _settled(self, live: _Live) -> None:
        """After a batch of events: refresh `call list`, re-arm the timer, finish."""
        call = live.call
        info = live.info
        info.state = _SHOWN[call.state]
        info.connect_ms = call.connect_ms
        attempt = call.current
        if attempt is not None:
            info.callee_gateway = "" if attempt.gateway is None else attempt.gateway.name
            info.callee_ip = attempt.ip
        self._arm(live)
        if call.state is State.ENDED and live.committing is None:
            self._finish(live)

    def _arm(self, live: _Live) -> None:
        """Keep the one timer at the call's next deadline (vos3k/reschedule.py: moved
        in place when later, replaced when sooner)."""
        deadline = live.call.next_deadline_ms()
        timer = live.timer
        if timer is not None and timer.active():
            if deadline == live.deadline:
                return
            if deadline is not None:
                live.deadline = deadline
                delay = max(0, deadline - self._now()) / 1000
                live.timer = reschedule(self._clock, timer, delay, self._fire, live.call.id)
                return
            timer.cancel()
        live.timer = None
        if deadline is None:
            return
        live.deadline = deadline
        delay = max(0, deadline - self._now()) / 1000
        live.timer = self._clock.callLater(delay, self._fire, live.call.id)

    def _fire(self, call_id: str) -> None:
        live = self._live.get(call_id)
        if live is not None:
            live.timer = None
            # The timer is due: never let float seconds read it a millisecond early.
            self._feed(call_id, TimerFired(), max(self._now(), live.deadline))

    def _finish(self, live: _Live) -> None:
        if live.timer is not None and live.timer.active():
            live.timer.cancel()
        ended = self._live.pop(live.call.id, None) is not None
        self._calls.remove(live.call.id)
        for listener in self._end_listeners if ended else ():
            try:
                listener(live.call.id)
            except Exception:
                self.log.failure("call {call_id}: end listener failed", call_id=live.call.id)
        if ended and self._dyn is not None:
            try:
                self._dyn.ended(live.call, self._params.snapshot, self._now())
            except Exception:
                self.log.failure("call {call_id}: dynamic blacklist failed", call_id=live.call.id)

    # -- effects ------------------------------------------------------------------------------

    def _perform(self, live: _Live, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, StartAttempt):
                self._start_attempt(live, effect.setup)
            elif isinstance(effect, ToCaller):
                self._command(live, live.caller, effect.command)
            elif isinstance(effect, ToCallee):
                leg = live.callees.get(effect.attempt)
                if leg is not None:
                    self._command(live, leg, effect.command)
            elif isinstance(effect, CommitCdr):
                self._commit(live, effect)
            elif isinstance(effect, Dropped):
                self.dropped += 1
            else:
                raise AssertionError(f"unknown effect {effect!r}")

    def _start_attempt(self, live: _Live, setup: Setup) -> None:
        call_id, number = live.call.id, setup.attempt
        factory = self._factories.get(setup.protocol)
        if factory is None:
            self.log.error("call {call_id}: no {protocol} legs", call_id=call_id,
                           protocol=setup.protocol)  # fmt: skip
            live.queue.append((FromCallee(number, Failed()), None))
            return

        def report(event: LegEvent) -> None:
            self._feed(call_id, FromCallee(number, event))

        try:
            leg = factory.create_leg(setup, report)
            live.callees[number] = leg
            leg.offer(setup)
        except Exception:
            self.log.failure("call {call_id}: attempt {n} failed to start", call_id=call_id,
                             n=number)  # fmt: skip
            live.queue.append((FromCallee(number, Failed()), None))

    def _command(self, live: _Live, leg: Leg, command: Command) -> None:
        try:
            if isinstance(command, Ring):
                leg.ring(command.media)
            elif isinstance(command, Progress183):
                leg.progress(command.media)
            elif isinstance(command, Answer):
                leg.answer(command.media)
            elif isinstance(command, HangUp):
                leg.hang_up(command.ending)
            elif isinstance(command, Cancel):
                leg.cancel()
        except Exception:
            self.log.failure("call {call_id}: leg command {command} failed",
                             call_id=live.call.id, command=command)  # fmt: skip

    def _with_extras(self, call_id: str, row: dict[str, Any]) -> dict[str, Any]:
        """The adapter-side CDR fields (media statistics), added as the row is committed
        (the pure core knows nothing of the relay)."""
        extras = {}
        for name, figures in self._cdr_extras.items():
            try:
                value = figures(call_id)
            except Exception:
                self.log.failure("call {call_id}: CDR extra {name} failed", call_id=call_id,
                                 name=name)  # fmt: skip
                continue
            if value is not None:
                extras[name] = value
        if not extras:
            return row
        return {**row, "extra": {**row.get("extra", {}), **extras}}

    def _commit(self, live: _Live, effect: CommitCdr) -> None:
        """SPEC §3 step 13: the ending messages go out after the CDR commit."""

        def committed(_result: object) -> None:
            self._perform(live, list(effect.then))
            live.committing = None
            self._finish(live)

        def failed(failure: Any) -> None:
            self.log.failure("call {call_id}: CDR not committed", failure, call_id=live.call.id)
            committed(None)

        d = self._writer.submit(self._with_extras(live.call.id, effect.row))
        live.committing = d
        d.addCallbacks(committed, failed)
