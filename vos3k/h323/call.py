"""One H.323 call's Q.931/H.225.0 state machine, incoming or outgoing, sans-IO.

`H323Call.handle(event, now_ms) -> effects` and `next_deadline_ms()` (STYLE §2). The
transport feeds it decoded Q.931 messages of its TCP connection (one call per
connection: vos3k sends multipleCalls=FALSE), separate-H.245 PDUs and timer ticks; the
leg feeds it the switch's commands. Effects are wire bytes (`SendQ931`, `SendH245`),
connection work (`ConnectH245`, `ListenH245`, `Close`) and reports (`CallArrived`,
`Report(LegEvent)`, `DigitReceived`).

Rules (SPEC §11, §4; H.225.0 §8; H.323 §8.1.7):
- Incoming Setup: Call Proceeding at once when SS_H323_CALL_PROCEEDING_IMMEDIATELY=1;
  the caller's fast start proposals become the SDP offer; they are accepted in the first
  Alerting/Progress/Connect that carries the far side's media.
- Outgoing Setup offers fast start (SS_H323_FASTSTART=1) for the caller's codecs, and
  tunnelling when SS_H323_H245_TUNNELING=1. A callee that accepts no fast start is
  answered only once H.245 opened our channel (its media is what the caller needs).
- H.245 is tunnelled in h245Control when both sides set h245Tunnelling and
  SS_H323_H245_TUNNELING=1; else it runs over TCP to the peer's h245Address, or vos3k
  listens and sends its own h245Address in a Facility (startH245).
- Timers: Setup→response (SS_H323_TIMEOUT_SETUP), Call Proceeding→Alerting/Progress/
  Connect (ALERTING), Alerting→Connect (CONNECT): each None when the switch runs it
  (switch/call.py does for callee attempts). SS_H323_TIMEOUT_H245: media not up that
  long after Connect releases the call with cause 41 (SPEC §8 reason 15).
- Malformed input releases with Release Complete cause 100 (a message we cannot use)
  or 111 (no readable Q.931 header), then closes.
Q.850 causes travel as data; reasons are mapped only in switch/reasons.py.
"""

from __future__ import annotations

import enum
from typing import Any

from attrs import define, evolve, field, frozen

from vos3k.h323 import h225, h245, media, q931
from vos3k.h323.h225 import Body, Malformed, TransportAddress, UserInformation
from vos3k.h323.q931 import MessageType
from vos3k.switch.legs import (
    Answered,
    Failed,
    HungUp,
    LegEvent,
    Media,
    Proceeding,
    Progress,
    Ringing,
)

# Q.850 causes this module sends on its own account.
CAUSE_NORMAL = 16
CAUSE_INVALID_IE = 100  # Q.850: invalid information element contents
CAUSE_PROTOCOL_ERROR = 111  # Q.850: protocol error, unspecified
CAUSE_TEMPORARY_FAILURE = 41  # SPEC §8 reason 15's cause (media/H.245 not up)
CAUSE_NO_ANSWER = 19
CAUSE_INVALID_CALL_REFERENCE = 81
CAUSE_RECOVERY_ON_TIMER = 102
# Q.931 §4.5.7 call states reported in Status (answering Status Enquiry).
_CALL_STATE_VALUES = {
    "null": 0,
    "call_initiated": 1,
    "outgoing_proceeding": 3,
    "call_delivered": 4,
    "call_present": 6,
    "call_received": 7,
    "incoming_proceeding": 9,
    "active": 10,
    "released": 0,
}
# H.225.0 §7.4.6 / Table 5: ReleaseCompleteReason -> the Q.850 cause it stands for,
# used when a Release Complete carries no Cause IE.
RELEASE_REASON_CAUSE = {
    "noBandwidth": 34,
    "gatekeeperResources": 47,
    "unreachableDestination": 3,
    "destinationRejection": 16,
    "invalidRevision": 88,
    "noPermission": 111,
    "unreachableGatekeeper": 38,
    "gatewayResources": 42,
    "badFormatAddress": 28,
    "adaptiveBusy": 41,
    "inConf": 17,
    "undefinedReason": 31,
    "facilityCallDeflection": 16,
    "securityDenied": 31,
    "calledPartyNotRegistered": 20,
    "callerNotRegistered": 31,
    "newConnectionNeeded": 47,
    "nonStandardReason": 127,
    "replaceWithConferenceInvite": 31,
    "genericDataReason": 31,
    "neededFeatureNotSupported": 31,
    "tunnelledSignallingRejected": 127,
    "invalidCID": 31,
    "securityError": 31,
    "hopCountExceeded": 31,
}


# ---------------------------------------------------------------- settings


@frozen
class CallSettings:
    """The SPEC §9 H.323 parameters a call snapshots on arrival (ms; None = not run)."""

    fast_start: bool = True
    tunnelling: bool = True
    proceeding_immediately: bool = True
    progress_to_alerting: bool = False  # SS_H323_183_TO_ALERTING
    setup_ms: int | None = 10_000
    alerting_ms: int | None = 20_000
    connect_ms: int | None = 120_000
    h245_ms: int | None = 10_000

    @classmethod
    def from_snapshot(cls, snap: Any, *, switch_runs_attempt_timers: bool) -> CallSettings:
        """From a params Snapshot; callee legs leave the SPEC §4 timers to the switch."""

        def ms(seconds: int) -> int | None:
            return None if switch_runs_attempt_timers else seconds * 1000

        return cls(
            fast_start=bool(snap.h323_faststart),
            tunnelling=bool(snap.h323_h245_tunneling),
            proceeding_immediately=bool(snap.h323_call_proceeding_immediately),
            progress_to_alerting=bool(snap.h323_183_to_alerting),
            setup_ms=ms(snap.h323_timeout_setup_s),
            alerting_ms=ms(snap.h323_timeout_alerting_s),
            connect_ms=ms(snap.h323_timeout_connect_s),
            h245_ms=snap.h323_timeout_h245_s * 1000,
        )


# ---------------------------------------------------------------- events


class Input(enum.Enum):
    # from the peer
    SETUP = "setup"
    CALL_PROCEEDING = "call_proceeding"
    ALERTING = "alerting"
    PROGRESS = "progress"
    CONNECT = "connect"
    RELEASE_COMPLETE = "release_complete"
    FACILITY = "facility"
    STATUS_ENQUIRY = "status_enquiry"
    OTHER_MESSAGE = "other_message"  # Status, Information, Notify, ...: H.245 only
    MALFORMED = "malformed"
    CONNECTION_LOST = "connection_lost"
    H245_DATA = "h245_data"
    H245_READY = "h245_ready"  # the separate H.245 connection is up
    H245_LISTENING = "h245_listening"
    # timers
    TIMER_SETUP = "timer_setup"
    TIMER_ALERTING = "timer_alerting"
    TIMER_CONNECT = "timer_connect"
    TIMER_H245 = "timer_h245"
    # from the leg (the switch's commands)
    PLACE = "place"
    ALERT = "alert"
    SEND_PROGRESS = "send_progress"
    ANSWER = "answer"
    RELEASE = "release"
    SEND_DIGIT = "send_digit"


_MESSAGE_INPUT = {
    MessageType.SETUP: Input.SETUP,
    MessageType.CALL_PROCEEDING: Input.CALL_PROCEEDING,
    MessageType.ALERTING: Input.ALERTING,
    MessageType.PROGRESS: Input.PROGRESS,
    MessageType.CONNECT: Input.CONNECT,
    MessageType.RELEASE_COMPLETE: Input.RELEASE_COMPLETE,
    MessageType.FACILITY: Input.FACILITY,
    MessageType.STATUS_ENQUIRY: Input.STATUS_ENQUIRY,
}


@frozen
class MessageReceived:
    """One Q.931 message from the connection (the adapter parsed the TPKT payload)."""

    message: q931.Message | q931.Malformed

    @property
    def input(self) -> Input:
        if isinstance(self.message, q931.Malformed):
            return Input.MALFORMED
        return _MESSAGE_INPUT.get(self.message.message_type, Input.OTHER_MESSAGE)


@frozen
class ConnectionLost:
    input = Input.CONNECTION_LOST


@frozen
class H245Data:
    """One PDU from the separate H.245 TCP connection."""

    data: bytes
    input = Input.H245_DATA


@frozen
class H245Ready:
    input = Input.H245_READY


@frozen
class H245Listening:
    """The adapter listens for the peer's H.245 connection at `address`."""

    address: TransportAddress
    input = Input.H245_LISTENING


@frozen
class Tick:
    """The adapter's timer fired; the call works out which deadline passed."""


@frozen
class TimerFired:
    input: Input


@frozen
class Place:
    """Outgoing call (callee leg): send Setup."""

    caller: str
    callee: str
    local_media: Media | None  # the caller's offer: our fast start RTP address and codecs
    signal_address: TransportAddress | None = None  # vos3k's, for sourceCallSignalAddress
    destination: TransportAddress | None = None
    display: str = ""
    input = Input.PLACE


@frozen
class Alert:
    media: Media | None = None
    input = Input.ALERT


@frozen
class SendProgress:
    media: Media | None = None
    input = Input.SEND_PROGRESS


@frozen
class Answer:
    media: Media | None = None
    input = Input.ANSWER


@frozen
class Release:
    cause: int = CAUSE_NORMAL
    input = Input.RELEASE


@frozen
class SendDigit:
    digit: str
    duration_ms: int = 100
    input = Input.SEND_DIGIT


CallEvent = (
    MessageReceived
    | ConnectionLost
    | H245Data
    | H245Ready
    | H245Listening
    | TimerFired
    | Place
    | Alert
    | SendProgress
    | Answer
    | Release
    | SendDigit
)

# ---------------------------------------------------------------- effects


@frozen
class SendQ931:
    """A Q.931 message to write (the adapter frames it in TPKT)."""

    message_type: int
    data: bytes


@frozen
class SendH245:
    """A PDU for the separate H.245 connection."""

    data: bytes


@frozen
class ConnectH245:
    address: TransportAddress


@frozen
class ListenH245:
    """Listen for the peer's H.245 connection; answer with `H245Listening`."""


@frozen
class Close:
    """Close the call signalling (and any H.245) connection."""


@frozen
class CallArrived:
    """An incoming Setup was accepted for routing (SPEC §1 numbers)."""

    caller: str
    callee: str
    media: Media | None
    call_identifier: bytes | None
    source_aliases: tuple[h225.Alias, ...] = ()
    destination_aliases: tuple[h225.Alias, ...] = ()


@frozen
class Report:
    """An event for the switch (switch/legs.py)."""

    event: LegEvent


@frozen
class DigitReceived:
    digit: str
    duration_ms: int | None


@frozen
class MediaFailed:
    """H.245 did not bring media up within SS_H323_TIMEOUT_H245 of Connect: the call was
    released with `cause`; the switch ends it as reason 15, direction 2 (SPEC §8)."""

    cause: int


@frozen
class PeerMedia:
    """An incoming slow-start call's H.245 named where the caller receives RTP (our
    channel to it opened after Connect, H.323 §8.3): the leg points the proxy there."""

    media: Media


@frozen
class Dropped:
    input: Input
    state: State


Effect = (
    SendQ931
    | SendH245
    | ConnectH245
    | ListenH245
    | Close
    | CallArrived
    | Report
    | DigitReceived
    | MediaFailed
    | PeerMedia
    | Dropped
)

# ---------------------------------------------------------------- states and table


class State(enum.Enum):
    """Q.931 §2 call states (user side, as H.225.0 §8 profiles them)."""

    NULL = "null"  # U0
    CALL_INITIATED = "call_initiated"  # U1: Setup sent
    OUTGOING_PROCEEDING = "outgoing_proceeding"  # U3
    CALL_DELIVERED = "call_delivered"  # U4: Alerting received
    CALL_PRESENT = "call_present"  # U6: Setup received, not yet answered
    CALL_RECEIVED = "call_received"  # U7: Alerting sent
    INCOMING_PROCEEDING = "incoming_proceeding"  # U9: Call Proceeding sent
    ACTIVE = "active"  # U10
    RELEASED = "released"


class Action(enum.Enum):
    TAKE_SETUP = "take_setup"
    SEND_SETUP = "send_setup"
    SEND_ALERTING = "send_alerting"
    SEND_PROGRESS = "send_progress"
    SEND_CONNECT = "send_connect"
    TAKE_RESPONSE = "take_response"  # fast start, h245Address, tunnelled H.245
    REPORT_PROCEEDING = "report_proceeding"
    REPORT_RINGING = "report_ringing"
    REPORT_PROGRESS = "report_progress"
    REPORT_CONNECT = "report_connect"
    REPORT_RELEASE = "report_release"
    REPORT_LOST = "report_lost"
    REPORT_TIMEOUT = "report_timeout"
    REPORT_NO_ANSWER = "report_no_answer"
    REPORT_MEDIA_FAILURE = "report_media_failure"
    SEND_RELEASE = "send_release"
    SEND_RELEASE_MALFORMED = "send_release_malformed"
    SEND_RELEASE_TIMEOUT = "send_release_timeout"
    SEND_RELEASE_MEDIA = "send_release_media"
    SEND_RELEASE_UNKNOWN = "send_release_unknown"
    SEND_STATUS = "send_status"
    TAKE_H245 = "take_h245"
    H245_READY = "h245_ready"
    H245_LISTENING = "h245_listening"
    SEND_DIGIT = "send_digit"
    CLOSE = "close"


_S, _I, _A = State, Input, Action
_INCOMING_LIVE = (_S.CALL_PRESENT, _S.INCOMING_PROCEEDING, _S.CALL_RECEIVED)
_OUTGOING_LIVE = (_S.CALL_INITIATED, _S.OUTGOING_PROCEEDING, _S.CALL_DELIVERED)
_LIVE = (*_INCOMING_LIVE, *_OUTGOING_LIVE, _S.ACTIVE)

TABLE: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    # -- incoming (H.225.0 §8.1: vos3k is the called endpoint of the customer's call)
    (_S.NULL, _I.SETUP): (_S.CALL_PRESENT, (_A.TAKE_SETUP,)),
    **{(s, _I.ALERT): (_S.CALL_RECEIVED, (_A.SEND_ALERTING,)) for s in _INCOMING_LIVE},
    **{(s, _I.SEND_PROGRESS): (s, (_A.SEND_PROGRESS,)) for s in _INCOMING_LIVE},
    **{(s, _I.ANSWER): (_S.ACTIVE, (_A.SEND_CONNECT,)) for s in _INCOMING_LIVE},
    **{(s, _I.RELEASE_COMPLETE): (_S.RELEASED, (_A.REPORT_RELEASE, _A.CLOSE)) for s in _LIVE},
    # -- outgoing (vos3k calls the vendor)
    (_S.NULL, _I.PLACE): (_S.CALL_INITIATED, (_A.SEND_SETUP,)),
    (_S.CALL_INITIATED, _I.CALL_PROCEEDING): (
        _S.OUTGOING_PROCEEDING,
        (_A.TAKE_RESPONSE, _A.REPORT_PROCEEDING),
    ),
    **{
        (s, _I.ALERTING): (_S.CALL_DELIVERED, (_A.TAKE_RESPONSE, _A.REPORT_RINGING))
        for s in _OUTGOING_LIVE
    },
    **{(s, _I.PROGRESS): (s, (_A.TAKE_RESPONSE, _A.REPORT_PROGRESS)) for s in _OUTGOING_LIVE},
    (_S.CALL_INITIATED, _I.PROGRESS): (
        _S.OUTGOING_PROCEEDING,
        (_A.TAKE_RESPONSE, _A.REPORT_PROGRESS),
    ),
    **{(s, _I.CONNECT): (_S.ACTIVE, (_A.TAKE_RESPONSE, _A.REPORT_CONNECT)) for s in _OUTGOING_LIVE},
    (_S.CALL_INITIATED, _I.TIMER_SETUP): (
        _S.RELEASED,
        (_A.SEND_RELEASE_TIMEOUT, _A.REPORT_TIMEOUT, _A.CLOSE),
    ),
    (_S.OUTGOING_PROCEEDING, _I.TIMER_ALERTING): (
        _S.RELEASED,
        (_A.SEND_RELEASE_TIMEOUT, _A.REPORT_TIMEOUT, _A.CLOSE),
    ),
    (_S.CALL_DELIVERED, _I.TIMER_CONNECT): (
        _S.RELEASED,
        (_A.SEND_RELEASE_TIMEOUT, _A.REPORT_NO_ANSWER, _A.CLOSE),
    ),
    (_S.ACTIVE, _I.TIMER_H245): (
        _S.RELEASED,
        (_A.SEND_RELEASE_MEDIA, _A.REPORT_MEDIA_FAILURE, _A.CLOSE),
    ),
    # -- either direction
    **{(s, _I.RELEASE): (_S.RELEASED, (_A.SEND_RELEASE, _A.CLOSE)) for s in _LIVE},
    **{(s, _I.FACILITY): (s, (_A.TAKE_RESPONSE,)) for s in _LIVE},
    **{(s, _I.OTHER_MESSAGE): (s, (_A.TAKE_RESPONSE,)) for s in _LIVE},
    **{(s, _I.STATUS_ENQUIRY): (s, (_A.SEND_STATUS,)) for s in (*_LIVE, _S.NULL)},
    **{(s, _I.H245_DATA): (s, (_A.TAKE_H245,)) for s in _LIVE},
    **{(s, _I.H245_READY): (s, (_A.H245_READY,)) for s in _LIVE},
    **{(s, _I.H245_LISTENING): (s, (_A.H245_LISTENING,)) for s in _LIVE},
    **{(s, _I.SEND_DIGIT): (s, (_A.SEND_DIGIT,)) for s in _LIVE},
    **{
        (s, _I.MALFORMED): (_S.RELEASED, (_A.SEND_RELEASE_MALFORMED, _A.REPORT_LOST, _A.CLOSE))
        for s in (*_LIVE, _S.NULL)
    },
    **{(s, _I.CONNECTION_LOST): (_S.RELEASED, (_A.REPORT_LOST,)) for s in _LIVE},
    (_S.NULL, _I.CONNECTION_LOST): (_S.RELEASED, ()),
    # Q.931 §5.8.3.2: a message other than Setup for no call: Release Complete, cause 81.
    **{
        (_S.NULL, i): (_S.RELEASED, (_A.SEND_RELEASE_UNKNOWN, _A.CLOSE))
        for i in (
            _I.CALL_PROCEEDING,
            _I.ALERTING,
            _I.PROGRESS,
            _I.CONNECT,
            _I.FACILITY,
            _I.OTHER_MESSAGE,
        )
    },
    (_S.NULL, _I.RELEASE_COMPLETE): (_S.RELEASED, (_A.CLOSE,)),
    (_S.RELEASED, _I.RELEASE): (_S.RELEASED, ()),  # both sides ended at once
    (_S.RELEASED, _I.CONNECTION_LOST): (_S.RELEASED, ()),
}

# Which timer runs in which state (SPEC §4; H.245 in ACTIVE until media is up).
_STATE_TIMER = {
    State.CALL_INITIATED: Input.TIMER_SETUP,
    State.OUTGOING_PROCEEDING: Input.TIMER_ALERTING,
    State.CALL_DELIVERED: Input.TIMER_CONNECT,
    State.ACTIVE: Input.TIMER_H245,
}


class LocalProtocolError(Exception):
    """vos3k's own code sent a command the call's state does not allow (STYLE §5)."""


# ---------------------------------------------------------------- the call


@define
class H323Call:
    """One call on one call-signalling connection."""

    settings: CallSettings
    call_reference: int  # ours for outgoing calls; the peer's for incoming ones
    outgoing: bool
    call_identifier: bytes = bytes(h225.GUID_SIZE)  # outgoing: a fresh GUID from the adapter
    conference_id: bytes = bytes(h225.GUID_SIZE)
    h245_sdn: int = 0  # our random MSD number (adapter's choice)
    state: State = State.NULL
    deadline_ms: int | None = None
    tunnelling: bool = False  # H.245 goes in h245Control
    peer_h245: TransportAddress | None = None
    h245_connected: bool = False
    h245_requested: bool = False  # ConnectH245/ListenH245 already asked for
    session: h245.H245Session | None = None
    proposals: tuple[h225.FastStartChannel, ...] = ()  # an incoming Setup's fast start
    fast_start_done: bool = False
    local_media: Media | None = None
    remote_media: Media | None = None  # the peer's receive address, as SDP
    answer_pending: bool = False  # outgoing: Connect came before the media
    h245_out: list[bytes] = field(factory=list)
    answered: bool = False  # Connect sent (incoming) / Answered reported (outgoing)
    dropped: int = 0
    last_cause: int | None = None
    _out: list[Effect] = field(factory=list, init=False)
    _sent_message: bool = field(default=False, init=False)
    _next: State = field(default=State.NULL, init=False)

    # -- public ---------------------------------------------------------------------

    def next_deadline_ms(self) -> int | None:
        return self.deadline_ms

    def handle(self, event: CallEvent | Tick, now_ms: int) -> list[Effect]:
        if isinstance(event, Tick):
            if self.deadline_ms is None or now_ms < self.deadline_ms:
                return []
            event = TimerFired(_STATE_TIMER[self.state])
        rule = TABLE.get((self.state, event.input))
        if rule is None:
            if event.input in _LOCAL_INPUTS and self.state is not State.RELEASED:
                raise LocalProtocolError(f"{event.input.name} in {self.state.name}")
            self.dropped += 1
            return [Dropped(event.input, self.state)]
        next_state, actions = rule
        before = self.state
        self._out = []
        self._sent_message = False
        self._next = next_state
        for action in actions:
            getattr(self, f"_do_{action.value}")(event)
            if self.state is State.RELEASED:
                break  # an action released the call (malformed Setup, no media)
        if self.state is not State.RELEASED:
            self.state = self._next
        self._flush_h245()
        if self.state is not before or self.state is State.RELEASED:
            self._arm(now_ms)
        if self.state is State.ACTIVE and self.media_up and not self.answer_pending:
            self.deadline_ms = None
        return self._out

    @property
    def media_up(self) -> bool:
        return self.fast_start_done or (self.session is not None and self.session.media_up)

    # -- building messages -----------------------------------------------------------

    def _send(self, message_type: MessageType, info: UserInformation, *ies: Any) -> None:
        if self.h245_out and self.tunnelling and info.body is not Body.RELEASE_COMPLETE:
            info = evolve(info, h245_control=tuple(self.h245_out))
            self.h245_out.clear()
        user_user = q931.UserUser(h225.encode_user_information(info))
        message = q931.Message(
            message_type, self.call_reference, not self.outgoing, (*ies, user_user)
        )
        self._out.append(SendQ931(message_type, q931.encode(message)))
        self._sent_message = True

    def _info(self, body: Body, **fields: Any) -> UserInformation:
        if body in (Body.CONNECT, Body.SETUP, Body.FACILITY):
            fields.setdefault("conference_id", self.conference_id)
        return UserInformation(
            body,
            call_identifier=self.call_identifier,
            h245_tunnelling=self.tunnelling,
            **fields,
        )

    def _release(self, cause: int, event: Any = None) -> None:
        self.last_cause = cause
        info = UserInformation(
            Body.RELEASE_COMPLETE, call_identifier=self.call_identifier,
            h245_tunnelling=self.tunnelling,
        )  # fmt: skip
        if self.session is not None and self.session.state is h245.State.ACTIVE:
            # H.323 §8.5: EndSessionCommand precedes Release Complete.
            self._h245(h245.End())
            self._flush_h245()
        self._send(MessageType.RELEASE_COMPLETE, info, q931.Cause(cause))

    # -- incoming ----------------------------------------------------------------------

    def _do_take_setup(self, event: MessageReceived) -> None:
        message = event.message
        self.call_reference = message.call_reference  # Q.931 §4.3: the caller's value
        info = _uuie(message)
        if isinstance(info, Malformed) or info.body is not Body.SETUP:
            self.state = State.RELEASED
            self._release(CAUSE_INVALID_IE)
            self._out.append(Close())
            return
        if info.call_identifier:
            self.call_identifier = info.call_identifier
        if info.conference_id:
            self.conference_id = info.conference_id
        self.tunnelling = self.settings.tunnelling and info.h245_tunnelling
        self.peer_h245 = info.h245_address
        offer: Media | None = None
        if info.fast_start and self.settings.fast_start:
            channels = media.decode_channels(info.fast_start)
            if isinstance(channels, Malformed):
                self.state = State.RELEASED
                self._release(CAUSE_INVALID_IE)
                self._out.append(Close())
                return
            self.proposals = channels
            offer = media.offer_from_fast_start(channels)
        self._take_h245_control(info)
        if self.settings.proceeding_immediately:
            self._next = State.INCOMING_PROCEEDING
            self._send(MessageType.CALL_PROCEEDING, self._info(Body.CALL_PROCEEDING))
        called = message.find(q931.CalledPartyNumber)
        calling = message.find(q931.CallingPartyNumber)
        self._out.append(
            CallArrived(
                caller=_number(info.source_aliases, calling, fallback_any=True),
                callee=_number(info.destination_aliases, called, fallback_any=False),
                media=offer,
                call_identifier=info.call_identifier,
                source_aliases=info.source_aliases,
                destination_aliases=info.destination_aliases,
            )
        )

    def _answer_fields(self, answer: Media | None) -> dict[str, Any]:
        """fastStart acceptance for the first message carrying the far side's media."""
        if answer is not None:
            self._set_local_media(answer)
        if self.fast_start_done or not self.proposals or answer is None:
            return {}
        parsed = media.from_media(answer)
        if isinstance(parsed, Malformed):
            return {}
        accepted = media.accept_fast_start(self.proposals, parsed)
        if accepted is None:
            return {}
        self.fast_start_done = True
        return {"fast_start": accepted}

    def _do_send_alerting(self, event: Alert) -> None:
        fields = self._answer_fields(event.media)
        ies: tuple = ()
        if event.media is not None:
            ies = (q931.ProgressIndicator(8),)  # Q.931: in-band information available
        self._send(MessageType.ALERTING, self._info(Body.ALERTING, **fields), *ies)

    def _do_send_progress(self, event: SendProgress) -> None:
        fields = self._answer_fields(event.media)
        if self.settings.progress_to_alerting and event.media is not None:
            self._next = State.CALL_RECEIVED
            info = self._info(Body.ALERTING, **fields)
            self._send(MessageType.ALERTING, info, q931.ProgressIndicator(8))
            return
        self._send(
            MessageType.PROGRESS, self._info(Body.PROGRESS, **fields), q931.ProgressIndicator(8)
        )

    def _do_send_connect(self, event: Answer) -> None:
        fields = self._answer_fields(event.media)
        if not self.fast_start_done and self.proposals:
            fields["fast_connect_refused"] = True  # H.323 §8.1.7.2: fall back to H.245
        self._start_h245(fields)
        self.answered = True
        self._send(MessageType.CONNECT, self._info(Body.CONNECT, **fields))

    # -- outgoing ----------------------------------------------------------------------

    def _do_send_setup(self, event: Place) -> None:
        self.tunnelling = self.settings.tunnelling
        self._set_local_media(event.local_media)
        fast: tuple[bytes, ...] = ()
        offer = media.from_media(event.local_media)
        if self.settings.fast_start and not isinstance(offer, Malformed) and offer.rtp:
            fast = h225.fast_start_offer(media.offer_codecs(event.local_media), offer.rtp)
        info = UserInformation(
            Body.SETUP,
            call_identifier=self.call_identifier,
            conference_id=self.conference_id,
            source_aliases=(h225.Alias(h225.AliasKind.DIALED_DIGITS, event.caller),)
            if event.caller
            else (),
            destination_aliases=(h225.Alias(h225.AliasKind.DIALED_DIGITS, event.callee),),
            source_call_signal_address=event.signal_address,
            destination_call_signal_address=event.destination,
            fast_start=fast,
            h245_tunnelling=self.tunnelling,
            conference_goal="create",
        )
        ies: list[Any] = [q931.BearerCapability()]
        if event.display:
            ies.append(q931.Display(event.display))
        if event.caller:
            ies.append(q931.CallingPartyNumber(event.caller, presentation=0, screening=0))
        ies.append(q931.CalledPartyNumber(event.callee))
        self._send(MessageType.SETUP, info, *ies)

    def _do_take_response(self, event: MessageReceived) -> None:
        info = _uuie(event.message)
        if isinstance(info, Malformed):
            if event.message.user_user is None:
                return  # H.225.0 allows a few bare messages (Status, Notify)
            self.state = State.RELEASED
            self._release(CAUSE_INVALID_IE)
            self._out.append(Close())
            self._report_lost(CAUSE_INVALID_IE)
            return
        if self.outgoing and self.state in _OUTGOING_LIVE:
            # H.225.0 §10.4.2: tunnelling holds only if the callee echoes it.
            self.tunnelling = self.settings.tunnelling and info.h245_tunnelling
        if self.outgoing and info.fast_start and not self.fast_start_done:
            channels = media.decode_channels(info.fast_start)
            answer = (
                None if isinstance(channels, Malformed) else media.answer_from_fast_start(channels)
            )
            if answer is not None:
                self.fast_start_done = True
                self.remote_media = answer
        if info.h245_address is not None:
            self.peer_h245 = info.h245_address
            if not self.tunnelling and not self.fast_start_done:
                self._start_h245({})
        self._take_h245_control(info)

    def _do_report_proceeding(self, event: MessageReceived) -> None:
        self._out.append(Report(Proceeding()))

    def _do_report_ringing(self, event: MessageReceived) -> None:
        self._out.append(Report(Ringing(self.remote_media)))

    def _do_report_progress(self, event: MessageReceived) -> None:
        self._out.append(Report(Progress(self.remote_media)))

    def _do_report_connect(self, event: MessageReceived) -> None:
        if self.fast_start_done or self.remote_media is not None:
            self.answered = True
            self._out.append(Report(Answered(self.remote_media)))
            return
        # Slow start: the callee's media comes from H.245 (H.323 §8.3); answer then.
        self.answer_pending = True
        self._start_h245({})

    # -- releases and reports -----------------------------------------------------------

    def _do_report_release(self, event: MessageReceived) -> None:
        cause = _cause(event.message)
        self.last_cause = cause
        self._report_lost(cause)

    def _report_lost(self, cause: int | None) -> None:
        if self.outgoing and not self.answered:
            self._out.append(Report(Failed(cause=cause)))
        else:
            self._out.append(Report(HungUp(cause=cause)))

    def _do_report_lost(self, event: Any) -> None:
        if self.state is State.NULL:
            return  # nothing was reported for this connection yet
        if isinstance(event, ConnectionLost):
            # An unreachable vendor is "neither code nor cause" (switch/legs.py Failed).
            self._report_lost(None)
        else:
            self._report_lost(CAUSE_PROTOCOL_ERROR)

    def _do_report_timeout(self, event: TimerFired) -> None:
        self._out.append(Report(Failed()))  # SPEC §4 timer row: 21, 408

    def _do_report_no_answer(self, event: TimerFired) -> None:
        self._out.append(Report(Failed(code=480)))  # SPEC §4 timer row: 3, 480

    def _do_report_media_failure(self, event: TimerFired) -> None:
        # SPEC §8 reason 15 (H.245 not up in SS_H323_TIMEOUT_H245), cause 41.
        if not self.answered:
            self._report_lost(CAUSE_TEMPORARY_FAILURE)  # a slow-start vendor: the attempt failed
            return
        self._out.append(MediaFailed(CAUSE_TEMPORARY_FAILURE))

    def _do_send_release(self, event: Release) -> None:
        self._release(event.cause)

    def _do_send_release_malformed(self, event: MessageReceived) -> None:
        bad = event.message
        assert isinstance(bad, q931.Malformed)
        cause = CAUSE_INVALID_IE if bad.call_reference is not None else CAUSE_PROTOCOL_ERROR
        if self.state is State.NULL and bad.call_reference is not None:
            self.call_reference = bad.call_reference
        self._release(cause)

    def _do_send_release_unknown(self, event: MessageReceived) -> None:
        self.call_reference = event.message.call_reference
        self._release(CAUSE_INVALID_CALL_REFERENCE)

    def _do_send_release_timeout(self, event: TimerFired) -> None:
        cause = CAUSE_NO_ANSWER if event.input is Input.TIMER_CONNECT else CAUSE_RECOVERY_ON_TIMER
        self._release(cause)

    def _do_send_release_media(self, event: TimerFired) -> None:
        self._release(CAUSE_TEMPORARY_FAILURE)

    def _do_send_status(self, event: MessageReceived) -> None:
        # Q.931 §5.8.10: answer Status Enquiry with Status, cause 30.
        info = UserInformation(Body.STATUS, call_identifier=self.call_identifier)
        value = _CALL_STATE_VALUES[self.state.value]
        self._send(MessageType.STATUS, info, q931.Cause(30), q931.CallState(value))

    def _do_close(self, event: Any) -> None:
        self._out.append(Close())

    # -- H.245 -------------------------------------------------------------------------

    def _set_local_media(self, local: Media | None) -> None:
        if local is None:
            return
        self.local_media = local
        parsed = media.from_media(local)
        if self.session is not None and not isinstance(parsed, Malformed) and parsed.rtp:
            self._h245(h245.MediaKnown(parsed.rtp, parsed.codecs or media.ALL_CODECS))

    def _ensure_session(self) -> h245.H245Session:
        if self.session is None:
            self.session = h245.H245Session(sdn=self.h245_sdn)
            local = self.local_media
            self.local_media = None
            self._set_local_media(local)
        return self.session

    def _start_h245(self, fields: dict[str, Any]) -> None:
        """Open the H.245 channel: tunnelled at once, else connect or listen."""
        if self.fast_start_done and not self.tunnelling:
            return  # media is settled; a separate H.245 connection adds nothing
        self._ensure_session()
        if not self.tunnelling and not self.h245_requested:
            self.h245_requested = True
            if self.peer_h245 is not None:
                self._out.append(ConnectH245(self.peer_h245))
                return  # the session starts when the connection is up
            self._out.append(ListenH245())
            return
        if self.tunnelling and not self.fast_start_done:
            self._h245(h245.Start())

    def _take_h245_control(self, info: UserInformation) -> None:
        if not info.h245_control:
            return
        if not self.tunnelling:
            self.dropped += len(info.h245_control)
            return
        for pdu in info.h245_control:
            self._h245_pdu(pdu)

    def _h245_pdu(self, pdu: bytes) -> None:
        message = h245.parse(pdu)
        if isinstance(message, Malformed):
            self.dropped += 1  # H.245 §8: a bad PDU is not fatal to the call
            return
        self._ensure_session()
        self._h245(h245.Received(message))

    def _h245(self, event: h245.SessionEvent) -> None:
        assert self.session is not None
        for effect in self.session.handle(event, 0):
            match effect:
                case h245.Send(message=message):
                    self.h245_out.append(h245.encode(message))
                case h245.MediaUp():
                    self.remote_media = media.to_media(effect.remote_rtp, (effect.codec,))
                    if not self.outgoing:
                        self._out.append(PeerMedia(self.remote_media))
                    if self.answer_pending and self.state is not State.RELEASED:
                        self.answer_pending = False
                        self.answered = True
                        self._out.append(Report(Answered(self.remote_media)))
                        self.deadline_ms = None
                case h245.DigitReceived(digit=digit, duration_ms=duration):
                    self._out.append(DigitReceived(digit, duration))
                case h245.SessionEnded():
                    if self.state in _LIVE:
                        self.state = State.RELEASED
                        self._release(CAUSE_NORMAL)
                        self._out.append(Close())
                        self._report_lost(CAUSE_NORMAL)

    def _flush_h245(self) -> None:
        if not self.h245_out:
            return
        if self.tunnelling:
            info = UserInformation(
                Body.FACILITY,
                call_identifier=self.call_identifier,
                conference_id=self.conference_id,
                h245_tunnelling=True,
                h245_control=tuple(self.h245_out),
                facility_reason="transportedInformation",
            )
            self.h245_out.clear()
            user_user = q931.UserUser(h225.encode_user_information(info))
            message = q931.Message(
                MessageType.FACILITY, self.call_reference, not self.outgoing, (user_user,)
            )
            self._out.append(SendQ931(MessageType.FACILITY, q931.encode(message)))
        elif self.h245_connected:
            self._out += [SendH245(pdu) for pdu in self.h245_out]
            self.h245_out.clear()

    def _do_take_h245(self, event: H245Data) -> None:
        self._h245_pdu(event.data)

    def _do_h245_ready(self, event: H245Ready) -> None:
        self.h245_connected = True
        self._h245(h245.Start())

    def _do_h245_listening(self, event: H245Listening) -> None:
        # H.225.0 §8.2.4: Facility with reason startH245 carries our h245Address.
        info = UserInformation(
            Body.FACILITY, call_identifier=self.call_identifier,
            conference_id=self.conference_id, h245_address=event.address,
            facility_reason="startH245",
        )  # fmt: skip
        self._send(MessageType.FACILITY, info)

    def _do_send_digit(self, event: SendDigit) -> None:
        # H.245 §6: UserInputIndication needs a control channel, not capability exchange;
        # with fast start that channel is the tunnel (h245Control of a Facility).
        if self.tunnelling:
            self._ensure_session()
        carried = self.tunnelling or self.h245_connected
        if self.session is None or self.session.state is h245.State.ENDED or not carried:
            self.dropped += 1  # no H.245 to carry it (fast start without tunnelling)
            return
        self._h245(h245.SendDigit(event.digit, event.duration_ms))

    # -- timers ------------------------------------------------------------------------

    def _arm(self, now_ms: int) -> None:
        timer = _STATE_TIMER.get(self.state)
        length = None
        if timer is Input.TIMER_SETUP:
            length = self.settings.setup_ms
        elif timer is Input.TIMER_ALERTING:
            length = self.settings.alerting_ms
        elif timer is Input.TIMER_CONNECT:
            length = self.settings.connect_ms
        elif timer is Input.TIMER_H245 and not self.media_up:
            length = self.settings.h245_ms
        self.deadline_ms = None if length is None else now_ms + length


_LOCAL_INPUTS = frozenset(
    {Input.PLACE, Input.ALERT, Input.SEND_PROGRESS, Input.ANSWER, Input.SEND_DIGIT}
)


def _uuie(message: q931.Message) -> UserInformation | Malformed:
    data = message.user_user
    if data is None:
        return Malformed("no H.225.0 user-user information element")
    return h225.parse_user_information(data)


def _cause(message: q931.Message) -> int | None:
    cause = message.find(q931.Cause)
    if cause is not None:
        return cause.value
    info = _uuie(message)
    if isinstance(info, Malformed) or info.release_complete_reason is None:
        return None
    return RELEASE_REASON_CAUSE.get(info.release_complete_reason)


def _number(
    aliases: tuple[h225.Alias, ...], party: q931.PartyNumber | None, *, fallback_any: bool
) -> str:
    """SPEC §1: dialledDigits first, else the Q.931 party number."""
    for alias in aliases:
        if alias.kind == h225.AliasKind.DIALED_DIGITS and alias.value:
            return alias.value
    if party is not None and party.digits:
        return party.digits
    for alias in aliases:
        if alias.kind == "partyNumber" and alias.value:
            return alias.value
    if fallback_any and aliases:
        return aliases[0].value  # an h323-ID caller is still named in the CDR
    return ""
