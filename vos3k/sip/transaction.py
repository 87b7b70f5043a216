"""RFC 3261 §17 transactions with RFC 6026's Accepted state, sans-IO.

Rules of this file:

- Four machines (INVITE/non-INVITE x client/server), each one module-level table
  ``(state, input) -> (next state, actions)`` that reads next to the RFC.
- A peer's input the table lacks is dropped and reported (``Drop``); our own TU's
  misuse (a response in a state that cannot send one) raises ``LocalProtocolError``.
- Timers are armed on entering a state and cancelled on leaving it; a timer that
  survives a state change (Timer B/F across Proceeding) is listed in ``KEEP``.
  Reliable transports get zero-length D, I, J, K (§17.1.1.2, §17.2.1, §17.2.2).
- Time is an argument (``now_ms``).  ``TransactionLayer.next_deadline_ms()`` is the
  one deadline the adapter arms; at that time it calls ``handle(TimersDue(), now)``.

Public API (TransactionLayer is what the transport and the B2BUA use):

    layer = TransactionLayer(TimerConfig(t1_ms=500, ...))
    effects = layer.handle(RequestReceived(request, source), now_ms)
    effects = layer.handle(ResponseReceived(response, source), now_ms)
    effects = layer.handle(RequestSubmitted(request, destination), now_ms)
    effects = layer.handle(ResponseSubmitted(response, key), now_ms)
    effects = layer.handle(SendFailed(key), now_ms)
    effects = layer.handle(TimersDue(), now_ms)
    layer.next_deadline_ms() -> int | None

Effects: ``Send(message, destination, key)``, ``Deliver(message, key, cancels)``,
``ReportTimeout(key, request)``, ``ReportTransportError(key, request)``,
``Drop(message, reason)``.  ``Deliver.key`` is None for an ACK to a 2xx (passed to
the TU outside any transaction, §17.2.3 / §13.3.1.4) and for a 2xx retransmission
that arrives after its client transaction ended (§17.1.1.2: the TU re-ACKs it).
A CANCEL is delivered with ``cancels`` = the key of the INVITE server transaction
it matches (§9.2), or None (the TU answers 481).
"""

from __future__ import annotations

import heapq
import itertools
from enum import Enum

import attrs
from attrs import define, frozen

from vos3k.sip.message import (
    MAGIC_COOKIE,
    HeaderError,
    Request,
    Response,
    Via,
    build_response,
)

__all__ = [
    "Address",
    "Deliver",
    "Drop",
    "LocalProtocolError",
    "ReportTimeout",
    "ReportTransportError",
    "RequestReceived",
    "RequestSubmitted",
    "ResponseReceived",
    "ResponseSubmitted",
    "Send",
    "SendFailed",
    "TimerConfig",
    "TimersDue",
    "Transaction",
    "TransactionKey",
    "TransactionLayer",
    "build_ack_for_failure",
    "build_cancel",
    "client_key",
    "response_destination",
    "server_key",
]


class LocalProtocolError(Exception):
    """Our own code used a transaction wrongly (STYLE §5, h11's split)."""


@frozen
class Address:
    """Where a message came from or goes to; ``transport`` is UDP, TCP or TLS."""

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"


@frozen
class TimerConfig:
    """RFC 3261 §17.1.1.1 / Table 4 values in ms.

    ``invite_resend_ms``: an explicit Timer A schedule (VOS3000's
    ``SS_SIP_RESEND_INTERVAL``: waits before each INVITE resend); when empty,
    Timer A starts at T1 and doubles.
    """

    t1_ms: int = 500
    t2_ms: int = 4000
    t4_ms: int = 5000
    timer_b_ms: int | None = None  # default 64*T1
    timer_f_ms: int | None = None  # default 64*T1
    timer_d_ms: int = 32000  # §17.1.1.2: at least 32 s on unreliable transports
    invite_resend_ms: tuple[int, ...] = ()

    @property
    def b(self) -> int:
        return self.timer_b_ms if self.timer_b_ms is not None else 64 * self.t1_ms

    @property
    def f(self) -> int:
        return self.timer_f_ms if self.timer_f_ms is not None else 64 * self.t1_ms


# ---------------------------------------------------------------------------
# Keys (§17.1.3, §17.2.3)


@frozen(cache_hash=True)  # looked up in dicts several times per message
class TransactionKey:
    """Identifies one transaction.  Server keys carry sent-by (§17.2.3)."""

    branch: str
    method: str
    sent_by: tuple[str, int | None] | None = None  # None for client transactions
    legacy: tuple = ()  # RFC 2543 matching fields when the branch lacks the cookie


def client_key(message: Request | Response) -> TransactionKey:
    """§17.1.3: top Via branch + CSeq method.  Raises HeaderError on an invalid message."""
    branch = message.top_via().branch or ""
    return TransactionKey(branch, message.cseq().method)


def server_key(request: Request, method: str | None = None) -> TransactionKey:
    """§17.2.3: branch + sent-by + method (ACK -> INVITE); RFC 2543 fields without cookie."""
    via = request.top_via()
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return TransactionKey(branch, method, via.sent_by)
    # §17.2.3 RFC 2543 compatibility: Request-URI, From tag, Call-ID, CSeq number, top Via
    # (the To tag is left out: ours was added by the response the ACK answers)
    legacy = (
        request.uri,
        request.from_().tag,
        request.call_id(),
        request.cseq().number,
        str(via),
    )
    return TransactionKey(branch, method, via.sent_by, legacy)


def response_destination(via: Via, source: Address) -> Address:
    """§18.2.2 (with RFC 3581 rport): where a server transaction sends its responses."""
    if source.reliable:
        return source  # the same connection
    if via.maddr:
        return Address(source.transport, via.maddr, via.port or 5060)
    if via.rport is not None:
        return source  # RFC 3581 §4: back to the source address and port
    return Address(source.transport, source.host, via.port or 5060)


def _hop_request(request: Request, method: str, to_value: str) -> Request:
    """§17.1.1.3 / §9.1: same Request-URI, top Via, Route, From, Call-ID, CSeq number."""
    headers: list[tuple[str, str]] = [("Via", request.headers_named("via")[0].split(",")[0])]
    headers.append(("Max-Forwards", "70"))
    headers.extend(("Route", v) for v in request.headers_named("route"))
    headers.append(("To", to_value))
    headers.append(("From", request.headers_named("from")[0]))
    headers.append(("Call-ID", request.call_id()))
    headers.append(("CSeq", f"{request.cseq().number} {method}"))
    headers.append(("Content-Length", "0"))
    return Request(method, request.uri, tuple(headers))


def build_ack_for_failure(request: Request, response: Response) -> Request:
    """§17.1.1.3: the ACK a client INVITE transaction sends for a 300-699 (To from it)."""
    return _hop_request(request, "ACK", response.headers_named("to")[0])


def build_cancel(request: Request) -> Request:
    """§9.1: the CANCEL for our INVITE; same branch, so it follows the INVITE's hop.

    Submit it as a new client transaction (its key differs by method, §17.1.3).
    """
    return _hop_request(request, "CANCEL", request.headers_named("to")[0])


# ---------------------------------------------------------------------------
# Events (inputs to the layer) and effects (outputs)


@frozen
class RequestReceived:
    request: Request
    source: Address


@frozen
class ResponseReceived:
    response: Response
    source: Address


@frozen
class RequestSubmitted:
    """The TU sends a request: a client transaction, or stateless for an ACK to 2xx."""

    request: Request
    destination: Address


@frozen
class ResponseSubmitted:
    """The TU answers the server transaction ``key`` (from its Deliver)."""

    response: Response
    key: TransactionKey


@frozen
class SendFailed:
    """The adapter could not send for transaction ``key`` (§17.1.4, §17.2.4)."""

    key: TransactionKey


@frozen
class TimersDue:
    """The adapter's single timer fired; every timer due by ``now_ms`` runs."""


@frozen
class Send:
    message: Request | Response
    destination: Address
    key: TransactionKey | None = None


@frozen
class Deliver:
    message: Request | Response
    key: TransactionKey | None
    cancels: TransactionKey | None = None


@frozen
class ReportTimeout:
    """Timer B/F (no final response: the TU acts as on 408) or Timer H (no ACK)."""

    key: TransactionKey
    request: Request


@frozen
class ReportTransportError:
    key: TransactionKey
    request: Request


@frozen
class Drop:
    """A peer's message with no place: late, stray or out of order (counted)."""

    message: Request | Response | None
    reason: str


# ---------------------------------------------------------------------------
# The four machines


class Kind(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    INVITE_CLIENT = "invite client"
    NON_INVITE_CLIENT = "non-invite client"
    INVITE_SERVER = "invite server"
    NON_INVITE_SERVER = "non-invite server"


class State(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1/§7.2
    TERMINATED = "Terminated"


class Input(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    R1XX = "1xx received"
    R2XX = "2xx received"
    R3XX_6XX = "300-699 received"
    REQUEST = "request retransmission"
    ACK = "ACK received"
    TU_1XX = "TU sends 1xx"
    TU_2XX = "TU sends 2xx"
    TU_3XX_6XX = "TU sends 300-699"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TRANSPORT_ERROR = "transport error"


class Action(Enum):
    __hash__ = object.__hash__  # members are singletons: identity hash (table keys)

    DELIVER = "pass to TU"
    SEND_ACK = "send ACK"
    RETRANSMIT = "retransmit request"
    SEND_RESPONSE = "send TU's response"
    RESEND_RESPONSE = "resend last response"
    TIME_OUT = "report timeout"
    TRANSPORT_FAILED = "report transport error"


S, I, A = State, Input, Action  # noqa: E741 - short names keep the tables readable

# RFC 3261 §17.1.1 figure 5, with RFC 6026 §7.2's Accepted state
INVITE_CLIENT = {
    (S.CALLING, I.R1XX): (S.PROCEEDING, (A.DELIVER,)),
    (S.CALLING, I.R2XX): (S.ACCEPTED, (A.DELIVER,)),
    (S.CALLING, I.R3XX_6XX): (S.COMPLETED, (A.SEND_ACK, A.DELIVER)),
    (S.CALLING, I.TIMER_A): (S.CALLING, (A.RETRANSMIT,)),  # unreliable only
    (S.CALLING, I.TIMER_B): (S.TERMINATED, (A.TIME_OUT,)),
    (S.CALLING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.PROCEEDING, I.R1XX): (S.PROCEEDING, (A.DELIVER,)),
    (S.PROCEEDING, I.R2XX): (S.ACCEPTED, (A.DELIVER,)),
    (S.PROCEEDING, I.R3XX_6XX): (S.COMPLETED, (A.SEND_ACK, A.DELIVER)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.COMPLETED, I.R3XX_6XX): (S.COMPLETED, (A.SEND_ACK,)),  # retransmitted final
    (S.COMPLETED, I.R1XX): (S.COMPLETED, ()),  # late provisional: absorbed
    (S.COMPLETED, I.TIMER_D): (S.TERMINATED, ()),
    (S.COMPLETED, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.ACCEPTED, I.R2XX): (S.ACCEPTED, (A.DELIVER,)),  # the dialog ACKs each 2xx
    (S.ACCEPTED, I.R1XX): (S.ACCEPTED, ()),
    (S.ACCEPTED, I.TIMER_M): (S.TERMINATED, ()),
}

# RFC 3261 §17.1.2 figure 6
NON_INVITE_CLIENT = {
    (S.TRYING, I.R1XX): (S.PROCEEDING, (A.DELIVER,)),
    (S.TRYING, I.R2XX): (S.COMPLETED, (A.DELIVER,)),
    (S.TRYING, I.R3XX_6XX): (S.COMPLETED, (A.DELIVER,)),
    (S.TRYING, I.TIMER_E): (S.TRYING, (A.RETRANSMIT,)),  # unreliable only
    (S.TRYING, I.TIMER_F): (S.TERMINATED, (A.TIME_OUT,)),
    (S.TRYING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.PROCEEDING, I.R1XX): (S.PROCEEDING, (A.DELIVER,)),
    (S.PROCEEDING, I.R2XX): (S.COMPLETED, (A.DELIVER,)),
    (S.PROCEEDING, I.R3XX_6XX): (S.COMPLETED, (A.DELIVER,)),
    (S.PROCEEDING, I.TIMER_E): (S.PROCEEDING, (A.RETRANSMIT,)),
    (S.PROCEEDING, I.TIMER_F): (S.TERMINATED, (A.TIME_OUT,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.COMPLETED, I.R1XX): (S.COMPLETED, ()),  # retransmissions absorbed
    (S.COMPLETED, I.R2XX): (S.COMPLETED, ()),
    (S.COMPLETED, I.R3XX_6XX): (S.COMPLETED, ()),
    (S.COMPLETED, I.TIMER_K): (S.TERMINATED, ()),
}

# RFC 3261 §17.2.1 figure 7, with RFC 6026 §7.1's Accepted state
INVITE_SERVER = {
    (S.PROCEEDING, I.REQUEST): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_2XX): (S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_3XX_6XX): (S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.COMPLETED, I.REQUEST): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, I.TIMER_G): (S.COMPLETED, (A.RESEND_RESPONSE,)),  # unreliable only
    (S.COMPLETED, I.ACK): (S.CONFIRMED, ()),
    (S.COMPLETED, I.TIMER_H): (S.TERMINATED, (A.TIME_OUT,)),
    (S.COMPLETED, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.CONFIRMED, I.ACK): (S.CONFIRMED, ()),  # absorbed
    (S.CONFIRMED, I.REQUEST): (S.CONFIRMED, ()),
    (S.CONFIRMED, I.TIMER_I): (S.TERMINATED, ()),
    (S.ACCEPTED, I.REQUEST): (S.ACCEPTED, ()),  # RFC 6026 §7.1: the TU resends the 2xx
    (S.ACCEPTED, I.TU_2XX): (S.ACCEPTED, (A.SEND_RESPONSE,)),
    (S.ACCEPTED, I.ACK): (S.ACCEPTED, (A.DELIVER,)),
    (S.ACCEPTED, I.TIMER_L): (S.TERMINATED, ()),
}

# RFC 3261 §17.2.2 figure 8
NON_INVITE_SERVER = {
    (S.TRYING, I.REQUEST): (S.TRYING, ()),  # absorbed until the TU answers
    (S.TRYING, I.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.TRYING, I.TU_2XX): (S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.TRYING, I.TU_3XX_6XX): (S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.REQUEST): (S.PROCEEDING, (A.RESEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_1XX): (S.PROCEEDING, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_2XX): (S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TU_3XX_6XX): (S.COMPLETED, (A.SEND_RESPONSE,)),
    (S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
    (S.COMPLETED, I.REQUEST): (S.COMPLETED, (A.RESEND_RESPONSE,)),
    (S.COMPLETED, I.TIMER_J): (S.TERMINATED, ()),
    (S.COMPLETED, I.TRANSPORT_ERROR): (S.TERMINATED, (A.TRANSPORT_FAILED,)),
}

TABLES = {
    Kind.INVITE_CLIENT: INVITE_CLIENT,
    Kind.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Kind.INVITE_SERVER: INVITE_SERVER,
    Kind.NON_INVITE_SERVER: NON_INVITE_SERVER,
}

INITIAL = {
    Kind.INVITE_CLIENT: S.CALLING,
    Kind.NON_INVITE_CLIENT: S.TRYING,
    Kind.INVITE_SERVER: S.PROCEEDING,
    Kind.NON_INVITE_SERVER: S.TRYING,
}

# Timers armed on entering a state: (timer, unreliable only, duration in ms)
ENTRY = {
    (Kind.INVITE_CLIENT, S.CALLING): (
        (I.TIMER_A, True, lambda c: c.invite_resend_ms[0] if c.invite_resend_ms else c.t1_ms),
        (I.TIMER_B, False, lambda c: c.b),
    ),
    (Kind.INVITE_CLIENT, S.COMPLETED): ((I.TIMER_D, False, lambda c: c.timer_d_ms),),
    (Kind.INVITE_CLIENT, S.ACCEPTED): ((I.TIMER_M, False, lambda c: 64 * c.t1_ms),),
    (Kind.NON_INVITE_CLIENT, S.TRYING): (
        (I.TIMER_E, True, lambda c: c.t1_ms),
        (I.TIMER_F, False, lambda c: c.f),
    ),
    (Kind.NON_INVITE_CLIENT, S.COMPLETED): ((I.TIMER_K, False, lambda c: c.t4_ms),),
    (Kind.INVITE_SERVER, S.COMPLETED): (
        (I.TIMER_G, True, lambda c: c.t1_ms),
        (I.TIMER_H, False, lambda c: 64 * c.t1_ms),
    ),
    (Kind.INVITE_SERVER, S.CONFIRMED): ((I.TIMER_I, False, lambda c: c.t4_ms),),
    (Kind.INVITE_SERVER, S.ACCEPTED): ((I.TIMER_L, False, lambda c: 64 * c.t1_ms),),
    (Kind.NON_INVITE_SERVER, S.COMPLETED): ((I.TIMER_J, False, lambda c: 64 * c.t1_ms),),
}
# Timers that run on across a state change (§17.1.2.2: E and F continue in Proceeding)
KEEP = {(Kind.NON_INVITE_CLIENT, S.PROCEEDING): frozenset({I.TIMER_E, I.TIMER_F})}
# Timers whose wait is zero on a reliable transport (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2)
ZERO_WHEN_RELIABLE = frozenset({I.TIMER_D, I.TIMER_K, I.TIMER_I, I.TIMER_J})


def _response_input(status: int, tu: bool) -> Input:
    if status < 200:
        return I.TU_1XX if tu else I.R1XX
    if status < 300:
        return I.TU_2XX if tu else I.R2XX
    return I.TU_3XX_6XX if tu else I.R3XX_6XX


@define
class Transaction:
    """One transaction: ``handle(input, message, now_ms) -> effects``; timers inside."""

    kind: Kind
    key: TransactionKey
    request: Request
    peer: Address  # client: next hop; server: where responses go (§18.2.2)
    config: TimerConfig
    state: State = attrs.field(init=False)
    timers: dict[Input, int] = attrs.field(factory=dict)  # timer -> deadline ms
    intervals: dict[Input, int] = attrs.field(factory=dict)
    retransmits: int = 0
    last_response: Response | None = None
    ack: Request | None = None
    # the deadline the layer's heap holds an entry for (see TransactionLayer._run)
    indexed_ms: int | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self.state = INITIAL[self.kind]

    @property
    def reliable(self) -> bool:
        return self.peer.reliable

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED

    def next_deadline_ms(self) -> int | None:
        return min(self.timers.values(), default=None)

    def start(self, now_ms: int) -> list[Send | Deliver]:
        """Arm the initial state's timers; a client sends its request."""
        self._arm(self.state, now_ms)
        if self.kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT):
            return [Send(self.request, self.peer, self.key)]
        return []

    def handle(self, inp: Input, message: Request | Response | None, now_ms: int) -> list:
        rule = TABLES[self.kind].get((self.state, inp))
        if rule is None:
            if inp in (I.TU_1XX, I.TU_2XX, I.TU_3XX_6XX):
                raise LocalProtocolError(f"{self.kind.value} in {self.state.value}: {inp.value}")
            return [Drop(message, f"{inp.value} in {self.kind.value} {self.state.value}")]
        next_state, actions = rule
        if len(actions) == 1:
            effects = self._perform(actions[0], message, now_ms)
        else:
            effects = [e for action in actions for e in self._perform(action, message, now_ms)]
        if next_state is not self.state:
            self._enter(next_state, now_ms)
            if self.timers:
                effects += self._fire_zero(now_ms)
        return effects

    def fire_due(self, now_ms: int) -> list:
        """Run every timer due by ``now_ms``, earliest first."""
        effects: list = []
        while self.timers:
            timer, deadline = min(self.timers.items(), key=lambda kv: kv[1])
            if deadline > now_ms:
                break
            del self.timers[timer]
            effects += self.handle(timer, None, deadline)
        return effects

    # -- internals ---------------------------------------------------------

    def _arm(self, state: State, now_ms: int) -> None:
        for timer, unreliable_only, duration in ENTRY.get((self.kind, state), ()):
            if unreliable_only and self.reliable:
                continue
            wait = 0 if (timer in ZERO_WHEN_RELIABLE and self.reliable) else duration(self.config)
            self.timers[timer] = now_ms + wait
            self.intervals[timer] = wait

    def _enter(self, state: State, now_ms: int) -> None:
        keep = KEEP.get((self.kind, state))
        if keep is None or not self.timers:
            self.timers = {}
        else:
            self.timers = {t: d for t, d in self.timers.items() if t in keep}
        self.state = state
        self._arm(state, now_ms)

    def _fire_zero(self, now_ms: int) -> list:
        for deadline in self.timers.values():
            if deadline <= now_ms:
                return self.fire_due(now_ms)
        return []

    def _perform(self, action: Action, message: Request | Response | None, now_ms: int) -> list:
        if action is A.DELIVER:
            return [Deliver(message, self.key)]  # type: ignore[arg-type]
        if action is A.SEND_ACK:
            if self.ack is None:
                self.ack = build_ack_for_failure(self.request, message)  # type: ignore[arg-type]
            return [Send(self.ack, self.peer, self.key)]
        if action is A.RETRANSMIT:
            self._rearm_retransmit(now_ms)
            return [Send(self.request, self.peer, self.key)]
        if action is A.SEND_RESPONSE:
            self.last_response = message  # type: ignore[assignment]
            return [Send(message, self.peer, self.key)]  # type: ignore[arg-type]
        if action is A.RESEND_RESPONSE:
            if self.state is S.COMPLETED and self.kind is Kind.INVITE_SERVER and message is None:
                self._rearm(
                    I.TIMER_G, min(2 * self.intervals[I.TIMER_G], self.config.t2_ms), now_ms
                )
            if self.last_response is None:
                return []  # nothing sent yet: the retransmission is absorbed
            return [Send(self.last_response, self.peer, self.key)]
        if action is A.TIME_OUT:
            return [ReportTimeout(self.key, self.request)]
        return [ReportTransportError(self.key, self.request)]

    def _rearm(self, timer: Input, interval: int, now_ms: int) -> None:
        self.intervals[timer] = interval
        self.timers[timer] = now_ms + interval

    def _rearm_retransmit(self, now_ms: int) -> None:
        self.retransmits += 1
        cfg = self.config
        if self.kind is Kind.INVITE_CLIENT:
            if cfg.invite_resend_ms:
                # SS_SIP_RESEND_INTERVAL: one wait per resend, then no more resends
                if self.retransmits < len(cfg.invite_resend_ms):
                    self._rearm(I.TIMER_A, cfg.invite_resend_ms[self.retransmits], now_ms)
            else:
                self._rearm(I.TIMER_A, 2 * self.intervals[I.TIMER_A], now_ms)  # §17.1.1.2
        elif self.state is S.PROCEEDING:
            self._rearm(I.TIMER_E, cfg.t2_ms, now_ms)  # §17.1.2.2
        else:
            self._rearm(I.TIMER_E, min(2 * self.intervals[I.TIMER_E], cfg.t2_ms), now_ms)


# ---------------------------------------------------------------------------
# The layer: matching and timer bookkeeping


class TransactionLayer:
    """Matches messages to transactions and runs their timers (§17.1.3, §17.2.3).

    ``auto_trying``: answer every new INVITE with 100 Trying at once (§17.2.1
    allows it; it stops the caller's Timer A retransmissions early).
    """

    def __init__(self, config: TimerConfig | None = None, *, auto_trying: bool = True) -> None:
        self.config = config or TimerConfig()
        self.auto_trying = auto_trying
        self.transactions: dict[TransactionKey, Transaction] = {}
        self._heap: list[tuple[int, int, TransactionKey]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.transactions)

    def next_deadline_ms(self) -> int | None:
        heap = self._heap
        while heap:
            deadline, _seq, key = heap[0]
            txn = self.transactions.get(key)
            if txn is not None and txn.next_deadline_ms() == deadline:
                return deadline
            heapq.heappop(heap)  # stale: the timer moved or the transaction ended
        return None

    def handle(self, event: object, now_ms: int) -> list:
        if isinstance(event, RequestReceived):
            return self._request_received(event, now_ms)
        if isinstance(event, ResponseReceived):
            return self._response_received(event, now_ms)
        if isinstance(event, RequestSubmitted):
            return self._request_submitted(event, now_ms)
        if isinstance(event, ResponseSubmitted):
            txn = self.transactions.get(event.key)
            if txn is None:
                # the transaction ended first (Timer L, transport error): a race, not a bug
                return [Drop(event.response, "server transaction already terminated")]
            inp = _response_input(event.response.status, tu=True)
            return self._run(txn, txn.handle(inp, event.response, now_ms))
        if isinstance(event, SendFailed):
            txn = self.transactions.get(event.key)
            if txn is None:
                return []
            return self._run(txn, txn.handle(I.TRANSPORT_ERROR, None, now_ms))
        if isinstance(event, TimersDue):
            return self._timers_due(now_ms)
        raise LocalProtocolError(f"unknown event {event!r}")

    def get(self, key: TransactionKey) -> Transaction | None:
        return self.transactions.get(key)

    # -- internals ---------------------------------------------------------

    def _run(self, txn: Transaction, effects: list) -> list:
        """Bookkeeping after a transaction ran: forget it or re-index its deadline."""
        if txn.terminated:
            self.transactions.pop(txn.key, None)
        else:
            deadline = txn.next_deadline_ms()
            if deadline is None:
                txn.indexed_ms = None
            elif deadline != txn.indexed_ms:
                # one entry per deadline: a message that leaves the timers as they were
                # (a provisional, a retransmission) adds nothing to the heap
                heapq.heappush(self._heap, (deadline, next(self._seq), txn.key))
                txn.indexed_ms = deadline
        return effects

    def _timers_due(self, now_ms: int) -> list:
        effects: list = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            deadline, _seq, key = heapq.heappop(heap)
            txn = self.transactions.get(key)
            if txn is None:
                continue
            if txn.indexed_ms == deadline:
                txn.indexed_ms = None  # that entry is gone; _run adds the next one
            due = txn.next_deadline_ms()
            if due is None or due > now_ms:
                self._run(txn, [])  # stale entry: keep (or restore) the live one
                continue
            effects += self._run(txn, txn.fire_due(now_ms))
        return effects

    def _request_received(self, event: RequestReceived, now_ms: int) -> list:
        request = event.request
        try:
            key = server_key(request)
        except HeaderError as exc:
            return [Drop(request, f"unmatchable request: {exc}")]
        txn = self.transactions.get(key)
        if request.method == "ACK":
            if txn is None:
                return [Deliver(request, None)]  # ACK for a 2xx: the TU's (§17.2.3)
            return self._run(txn, txn.handle(I.ACK, request, now_ms))
        if txn is not None:
            return self._run(txn, txn.handle(I.REQUEST, request, now_ms))
        kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        peer = response_destination(request.top_via(), event.source)
        txn = Transaction(kind, key, request, peer, self.config)
        self.transactions[key] = txn
        effects = txn.start(now_ms)
        cancels = None
        if request.method == "CANCEL":
            # §9.2: the INVITE it cancels has the same key with method INVITE
            target = server_key(request, "INVITE")
            cancels = target if target in self.transactions else None
        effects.append(Deliver(request, key, cancels))
        if kind is Kind.INVITE_SERVER and self.auto_trying:
            trying = build_response(request, 100)
            effects += txn.handle(I.TU_1XX, trying, now_ms)
        return self._run(txn, effects)

    def _response_received(self, event: ResponseReceived, now_ms: int) -> list:
        response = event.response
        try:
            key = client_key(response)
        except HeaderError as exc:
            return [Drop(response, f"unmatchable response: {exc}")]
        txn = self.transactions.get(key)
        if txn is None:
            if key.method == "INVITE" and 200 <= response.status < 300:
                return [Deliver(response, None)]  # §17.1.1.2: the TU re-ACKs a late 2xx
            return [Drop(response, "no matching client transaction")]
        inp = _response_input(response.status, tu=False)
        return self._run(txn, txn.handle(inp, response, now_ms))

    def _request_submitted(self, event: RequestSubmitted, now_ms: int) -> list:
        request = event.request
        if request.method == "ACK":
            return [Send(request, event.destination, None)]  # ACK to 2xx: no transaction
        key = client_key(request)
        if key in self.transactions:
            raise LocalProtocolError(f"branch reused: {key}")
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        txn = Transaction(kind, key, request, event.destination, self.config)
        self.transactions[key] = txn
        return self._run(txn, txn.start(now_ms))
