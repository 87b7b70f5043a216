"""H.245 control: MultimediaSystemControlMessage codec and the per-call session, sans-IO.

The codec turns the aligned-PER PDUs (pycrate's H.245 module, loaded and patched by
`h225.asn1()`) into the small frozen values below and back; `parse` never raises.
`H245Session` is the one state machine a call runs, whether its H.245 travels tunnelled
in h245Control (H.225.0 §10.4.2) or over its own TCP connection (the caller decides,
call.py): H.245 §8.2 master/slave determination, §8.4 capability exchange, §8.5
unidirectional logical channels, §8.1 session end, and UserInputIndication (DTMF).

Rules of the session (H.323 §8.2, §8.3):
- It starts (TCS + MSD out) on `Start` or on the peer's first TCS/MSD.
- Our transmit channel opens once the peer's TCS is known, our TCS is acknowledged, the
  master/slave decision is made and the local media (our RTP address) is known; the
  codec is the first of our preference list the peer can receive.
- The peer's OLC is acknowledged with our RTP/RTCP addresses as soon as we know them.
- `MediaUp` reports where to send RTP (the peer's OLCAck mediaChannel) and the codec.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import Any

from attrs import define, field, frozen

from vos3k.h323.h225 import (
    DEFAULT_FRAMES,
    Codec,
    Direction,
    FastStartChannel,
    Malformed,
    TransportAddress,
    asn1,
    encode_olc,
    parse_olc,
)

# H.245 §7 (version 7): { itu-t(0) recommendation(0) h(8) 245 version(0) 7 }.
PROTOCOL_IDENTIFIER = (0, 0, 8, 245, 0, 7)
# H.323 Table 1: terminalType of a gateway without an MC.
TERMINAL_TYPE_GATEWAY = 60
SDN_MODULUS = 1 << 24  # H.245 §C.2: statusDeterminationNumber is 24 bits
# H.245 UserInputIndication signalType alphabet (H.245 §6.x, "0123456789#*ABCD!").
SIGNAL_ALPHABET = "0123456789#*ABCD!"

# ---------------------------------------------------------------- message values


@frozen
class Capability:
    """One audio capability of a TCS (receive direction, as terminals advertise)."""

    codec: Codec | str
    frames: int
    silence_suppression: bool = False


@frozen
class TerminalCapabilitySet:
    seq: int
    capabilities: tuple[Capability, ...] = ()
    user_input: bool = True  # receiveUserInputCapability dtmf/basicString advertised


@frozen
class TerminalCapabilitySetAck:
    seq: int


@frozen
class TerminalCapabilitySetReject:
    seq: int


@frozen
class MasterSlaveDetermination:
    terminal_type: int
    number: int  # statusDeterminationNumber


@frozen
class MasterSlaveDeterminationAck:
    master: bool  # the decision as it applies to the receiver of the Ack


@frozen
class MasterSlaveDeterminationReject:
    pass


@frozen
class OpenLogicalChannel:
    channel: FastStartChannel


@frozen
class OpenLogicalChannelAck:
    number: int
    media_channel: TransportAddress | None = None
    media_control_channel: TransportAddress | None = None
    session_id: int = 1


@frozen
class OpenLogicalChannelReject:
    number: int
    cause: str = "unspecified"


@frozen
class CloseLogicalChannel:
    number: int


@frozen
class CloseLogicalChannelAck:
    number: int


@frozen
class EndSessionCommand:
    pass


@frozen
class RoundTripDelayRequest:
    seq: int


@frozen
class RoundTripDelayResponse:
    seq: int


@frozen
class UserInput:
    """UserInputIndication: `signal` (one of SIGNAL_ALPHABET, with a duration) or
    `alphanumeric` text (H.245 §6.x; H.323 §10.5)."""

    alphanumeric: str | None = None
    signal: str | None = None
    duration_ms: int | None = None


@frozen
class OtherMessage:
    """A well-formed message vos3k does not act on; `kind` is e.g. 'request/requestMode'."""

    kind: str


H245Message = (
    TerminalCapabilitySet
    | TerminalCapabilitySetAck
    | TerminalCapabilitySetReject
    | MasterSlaveDetermination
    | MasterSlaveDeterminationAck
    | MasterSlaveDeterminationReject
    | OpenLogicalChannel
    | OpenLogicalChannelAck
    | OpenLogicalChannelReject
    | CloseLogicalChannel
    | CloseLogicalChannelAck
    | EndSessionCommand
    | RoundTripDelayRequest
    | RoundTripDelayResponse
    | UserInput
    | OtherMessage
)

# ---------------------------------------------------------------- codec helpers


def _unicast(address: TransportAddress) -> tuple:
    ip = ipaddress.ip_address(address.host)
    kind = "iPAddress" if ip.version == 4 else "iP6Address"
    return ("unicastAddress", (kind, {"network": ip.packed, "tsapIdentifier": address.port}))


def _from_unicast(value: Any) -> TransportAddress | None:
    if value is None or value[0] != "unicastAddress":
        return None
    kind, inner = value[1]
    if kind not in ("iPAddress", "iP6Address"):
        return None
    return TransportAddress(str(ipaddress.ip_address(inner["network"])), inner["tsapIdentifier"])


def _audio_value(cap: Capability) -> tuple:
    codec = Codec(cap.codec)
    if codec is Codec.G723_1:
        return (
            "g7231",
            {"maxAl-sduAudioFrames": cap.frames, "silenceSuppression": cap.silence_suppression},
        )
    return (codec.value, cap.frames)


def _audio_from(value: Any) -> Capability:
    name, detail = value
    try:
        codec: Codec | str = Codec(name)
    except ValueError:
        codec = name
    if isinstance(detail, dict) and "maxAl-sduAudioFrames" in detail:
        return Capability(codec, detail["maxAl-sduAudioFrames"], detail["silenceSuppression"])
    if isinstance(detail, int) and not isinstance(detail, bool):
        return Capability(codec, detail)
    return Capability(codec, 0)


def _olc_value(channel: FastStartChannel) -> Any:
    # One OLC encoder for fast start and H.245 (h225.encode_olc); reuse its value.
    olc = asn1().h245.OpenLogicalChannel
    olc.from_aper(encode_olc(channel))
    return olc.get_val()


_RECEIVING = ("receiveAudioCapability", "receiveAndTransmitAudioCapability")


def _tcs_value(tcs: TerminalCapabilitySet) -> dict:
    table = [
        {"capabilityTableEntryNumber": n, "capability": ("receiveAudioCapability", _audio_value(c))}
        for n, c in enumerate(tcs.capabilities, 1)
    ]
    audio = [[n for n in range(1, len(table) + 1)]] if table else []
    if tcs.user_input:
        for kind in ("basicString", "dtmf"):
            table.append(
                {
                    "capabilityTableEntryNumber": len(table) + 1,
                    "capability": ("receiveUserInputCapability", (kind, 0)),
                }
            )
    descriptor: dict[str, Any] = {"capabilityDescriptorNumber": 1}
    # H.245 §8.4: alternatives in one list, plus each user-input entry as its own list.
    alternatives = audio + [[n] for n in range(len(tcs.capabilities) + 1, len(table) + 1)]
    if alternatives:
        descriptor["simultaneousCapabilities"] = alternatives
    value: dict[str, Any] = {"sequenceNumber": tcs.seq, "protocolIdentifier": PROTOCOL_IDENTIFIER}
    if table:
        value["capabilityTable"] = table
        value["capabilityDescriptors"] = [descriptor]
    return value


def _tcs_from(value: dict) -> TerminalCapabilitySet:
    caps: list[Capability] = []
    user_input = False
    for entry in value.get("capabilityTable", ()):
        capability = entry.get("capability")
        if capability is None:
            continue
        kind, inner = capability
        if kind in _RECEIVING:
            caps.append(_audio_from(inner))
        elif kind in ("receiveUserInputCapability", "receiveAndTransmitUserInputCapability"):
            user_input = True
    return TerminalCapabilitySet(value["sequenceNumber"], tuple(caps), user_input)


def _to_asn1(message: H245Message) -> tuple:
    match message:
        case TerminalCapabilitySet():
            return ("request", ("terminalCapabilitySet", _tcs_value(message)))
        case TerminalCapabilitySetAck(seq=seq):
            return ("response", ("terminalCapabilitySetAck", {"sequenceNumber": seq}))
        case TerminalCapabilitySetReject(seq=seq):
            reject = {"sequenceNumber": seq, "cause": ("unspecified", 0)}
            return ("response", ("terminalCapabilitySetReject", reject))
        case MasterSlaveDetermination(terminal_type=kind, number=number):
            msd = {"terminalType": kind, "statusDeterminationNumber": number}
            return ("request", ("masterSlaveDetermination", msd))
        case MasterSlaveDeterminationAck(master=master):
            decision = ("master" if master else "slave", 0)
            return ("response", ("masterSlaveDeterminationAck", {"decision": decision}))
        case MasterSlaveDeterminationReject():
            reject = {"cause": ("identicalNumbers", 0)}
            return ("response", ("masterSlaveDeterminationReject", reject))
        case OpenLogicalChannel(channel=channel):
            return ("request", ("openLogicalChannel", _olc_value(channel)))
        case OpenLogicalChannelAck():
            params: dict[str, Any] = {"sessionID": message.session_id}
            if message.media_channel is not None:
                params["mediaChannel"] = _unicast(message.media_channel)
            if message.media_control_channel is not None:
                params["mediaControlChannel"] = _unicast(message.media_control_channel)
            ack = {
                "forwardLogicalChannelNumber": message.number,
                "forwardMultiplexAckParameters": ("h2250LogicalChannelAckParameters", params),
            }
            return ("response", ("openLogicalChannelAck", ack))
        case OpenLogicalChannelReject(number=number, cause=cause):
            reject = {"forwardLogicalChannelNumber": number, "cause": (cause, 0)}
            return ("response", ("openLogicalChannelReject", reject))
        case CloseLogicalChannel(number=number):
            clc = {"forwardLogicalChannelNumber": number, "source": ("user", 0)}
            return ("request", ("closeLogicalChannel", clc))
        case CloseLogicalChannelAck(number=number):
            return ("response", ("closeLogicalChannelAck", {"forwardLogicalChannelNumber": number}))
        case EndSessionCommand():
            return ("command", ("endSessionCommand", ("disconnect", 0)))
        case RoundTripDelayRequest(seq=seq):
            return ("request", ("roundTripDelayRequest", {"sequenceNumber": seq}))
        case RoundTripDelayResponse(seq=seq):
            return ("response", ("roundTripDelayResponse", {"sequenceNumber": seq}))
        case UserInput(alphanumeric=text, signal=signal, duration_ms=duration):
            if signal is not None:
                detail: dict[str, Any] = {"signalType": signal}
                if duration is not None:
                    detail["duration"] = duration
                return ("indication", ("userInput", ("signal", detail)))
            return ("indication", ("userInput", ("alphanumeric", text or "")))
    raise ValueError(f"vos3k does not send {message!r}")


def _from_asn1(value: tuple) -> H245Message | Malformed:
    group, (name, body) = value
    match name:
        case "terminalCapabilitySet":
            return _tcs_from(body)
        case "terminalCapabilitySetAck":
            return TerminalCapabilitySetAck(body["sequenceNumber"])
        case "terminalCapabilitySetReject":
            return TerminalCapabilitySetReject(body["sequenceNumber"])
        case "masterSlaveDetermination":
            return MasterSlaveDetermination(body["terminalType"], body["statusDeterminationNumber"])
        case "masterSlaveDeterminationAck":
            return MasterSlaveDeterminationAck(body["decision"][0] == "master")
        case "masterSlaveDeterminationReject":
            return MasterSlaveDeterminationReject()
        case "openLogicalChannel":
            olc = asn1().h245.OpenLogicalChannel
            channel = parse_olc(olc.to_aper(body))
            if isinstance(channel, Malformed):
                return channel
            return OpenLogicalChannel(channel)
        case "openLogicalChannelAck":
            params: dict = {}
            multiplex = body.get("forwardMultiplexAckParameters")
            if multiplex is not None and multiplex[0] == "h2250LogicalChannelAckParameters":
                params = multiplex[1]
            return OpenLogicalChannelAck(
                body["forwardLogicalChannelNumber"],
                _from_unicast(params.get("mediaChannel")),
                _from_unicast(params.get("mediaControlChannel")),
                params.get("sessionID", 1),
            )
        case "openLogicalChannelReject":
            return OpenLogicalChannelReject(body["forwardLogicalChannelNumber"], body["cause"][0])
        case "closeLogicalChannel":
            return CloseLogicalChannel(body["forwardLogicalChannelNumber"])
        case "closeLogicalChannelAck":
            return CloseLogicalChannelAck(body["forwardLogicalChannelNumber"])
        case "endSessionCommand":
            return EndSessionCommand()
        case "roundTripDelayRequest":
            return RoundTripDelayRequest(body["sequenceNumber"])
        case "roundTripDelayResponse":
            return RoundTripDelayResponse(body["sequenceNumber"])
        case "userInput":
            kind, detail = body
            if kind == "alphanumeric":
                return UserInput(alphanumeric=detail)
            if kind == "signal":
                return UserInput(signal=detail["signalType"], duration_ms=detail.get("duration"))
    return OtherMessage(f"{group}/{name}")


def parse(data: bytes) -> H245Message | Malformed:
    """Decode one MultimediaSystemControlMessage. Never raises on bad input."""
    pdu = asn1().h245.MultimediaSystemControlMessage
    try:
        pdu.from_aper(data)
        value = pdu.get_val()
    except Exception as error:  # pycrate raises many types on garbage
        return Malformed(f"H.245: {type(error).__name__}: {error}")
    try:
        return _from_asn1(value)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return Malformed(f"H.245: unusable value: {error}")


def encode(message: H245Message) -> bytes:
    """Encode (aligned PER). Raises ValueError for a value vos3k built wrongly."""
    pdu = asn1().h245.MultimediaSystemControlMessage
    value = _to_asn1(message)
    try:
        return pdu.to_aper(value)
    except Exception as error:  # pycrate signals bad values many ways
        raise ValueError(f"cannot encode {type(message).__name__}: {error}") from error


def master_slave(local: MasterSlaveDetermination, remote: MasterSlaveDetermination) -> bool | None:
    """H.245 §C.2.1: True if the local terminal is master, None if indeterminate."""
    if local.terminal_type != remote.terminal_type:
        return local.terminal_type > remote.terminal_type
    difference = (remote.number - local.number) % SDN_MODULUS
    if difference in (0, SDN_MODULUS // 2):
        return None
    # The remote number is "larger" (modulo 2^24) when the difference is below 2^23.
    return difference >= SDN_MODULUS // 2


# ---------------------------------------------------------------- session events


class Input(enum.Enum):
    START = "start"
    MEDIA_KNOWN = "media_known"
    SEND_DIGIT = "send_digit"
    END = "end"
    TCS = "tcs"
    TCS_ACK = "tcs_ack"
    TCS_REJECT = "tcs_reject"
    MSD = "msd"
    MSD_ACK = "msd_ack"
    MSD_REJECT = "msd_reject"
    OLC = "olc"
    OLC_ACK = "olc_ack"
    OLC_REJECT = "olc_reject"
    CLC = "clc"
    CLC_ACK = "clc_ack"
    END_SESSION = "end_session"
    USER_INPUT = "user_input"
    RTD_REQUEST = "rtd_request"
    RTD_RESPONSE = "rtd_response"
    OTHER = "other"


_MESSAGE_INPUT = {
    TerminalCapabilitySet: Input.TCS,
    TerminalCapabilitySetAck: Input.TCS_ACK,
    TerminalCapabilitySetReject: Input.TCS_REJECT,
    MasterSlaveDetermination: Input.MSD,
    MasterSlaveDeterminationAck: Input.MSD_ACK,
    MasterSlaveDeterminationReject: Input.MSD_REJECT,
    OpenLogicalChannel: Input.OLC,
    OpenLogicalChannelAck: Input.OLC_ACK,
    OpenLogicalChannelReject: Input.OLC_REJECT,
    CloseLogicalChannel: Input.CLC,
    CloseLogicalChannelAck: Input.CLC_ACK,
    EndSessionCommand: Input.END_SESSION,
    RoundTripDelayRequest: Input.RTD_REQUEST,
    RoundTripDelayResponse: Input.RTD_RESPONSE,
    UserInput: Input.USER_INPUT,
    OtherMessage: Input.OTHER,
}


@frozen
class Received:
    """A message from the peer (tunnelled or over the H.245 TCP connection)."""

    message: H245Message

    @property
    def input(self) -> Input:
        return _MESSAGE_INPUT[type(self.message)]


@frozen
class Start:
    """Begin capability exchange (H.323 §8.2: at once when H.245 is available)."""

    input = Input.START


@frozen
class MediaKnown:
    """Where we receive RTP (RTCP on port + 1) and the codecs we prefer, in order."""

    rtp: TransportAddress
    codecs: tuple[Codec, ...]
    input = Input.MEDIA_KNOWN


@frozen
class SendDigit:
    signal: str
    duration_ms: int = 100
    input = Input.SEND_DIGIT


@frozen
class End:
    """Our side ends the session: EndSessionCommand out (H.245 §8.1)."""

    input = Input.END


SessionEvent = Received | Start | MediaKnown | SendDigit | End


@frozen
class Send:
    message: H245Message


@frozen
class MediaUp:
    """Our transmit channel is open: send RTP to `remote_rtp` with `codec`."""

    remote_rtp: TransportAddress
    remote_rtcp: TransportAddress | None
    codec: Codec | str
    frames: int


@frozen
class PeerChannel:
    """The peer opened its transmit channel with this codec (we ACKed it)."""

    codec: Codec | str
    frames: int


@frozen
class DigitReceived:
    digit: str
    duration_ms: int | None


@frozen
class SessionEnded:
    """The peer sent EndSessionCommand, or refused our channel with no alternative."""

    reason: str


@frozen
class Dropped:
    input: Input
    state: State


SessionEffect = Send | MediaUp | PeerChannel | DigitReceived | SessionEnded | Dropped


class State(enum.Enum):
    IDLE = "idle"  # nothing exchanged yet
    ACTIVE = "active"  # our TCS and MSD are out
    ENDED = "ended"


class Action(enum.Enum):
    SEND_CAPABILITIES = "send_capabilities"
    ACK_TCS = "ack_tcs"
    NOTE_TCS_ACK = "note_tcs_ack"
    ANSWER_MSD = "answer_msd"
    NOTE_MSD_ACK = "note_msd_ack"
    NOTE_MEDIA = "note_media"
    ANSWER_OLC = "answer_olc"
    NOTE_OLC_ACK = "note_olc_ack"
    NOTE_OLC_REJECT = "note_olc_reject"
    ACK_CLC = "ack_clc"
    ANSWER_RTD = "answer_rtd"
    REPORT_DIGIT = "report_digit"
    SEND_DIGIT = "send_digit"
    SEND_END = "send_end"
    REPORT_END = "report_end"
    TRY_OPEN = "try_open"
    ACK_PENDING = "ack_pending"
    REJECT_TCS = "reject_tcs"


_I, _A, _S = Input, Action, State
_ANYTIME = {
    # Inputs handled the same way whether or not our side has started.
    _I.MEDIA_KNOWN: (_A.NOTE_MEDIA, _A.ACK_PENDING, _A.TRY_OPEN),
    _I.OLC: (_A.ANSWER_OLC,),
    _I.CLC: (_A.ACK_CLC,),
    _I.CLC_ACK: (),
    _I.USER_INPUT: (_A.REPORT_DIGIT,),
    _I.SEND_DIGIT: (_A.SEND_DIGIT,),
    _I.RTD_REQUEST: (_A.ANSWER_RTD,),
    _I.RTD_RESPONSE: (),
    _I.OTHER: (),
}
# H.245 §8 procedures folded into one table: (state, input) -> (next state, actions).
SESSION: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (_S.IDLE, _I.START): (_S.ACTIVE, (_A.SEND_CAPABILITIES,)),
    (_S.IDLE, _I.TCS): (_S.ACTIVE, (_A.ACK_TCS, _A.SEND_CAPABILITIES)),
    (_S.IDLE, _I.MSD): (_S.ACTIVE, (_A.SEND_CAPABILITIES, _A.ANSWER_MSD)),
    (_S.IDLE, _I.END): (_S.ENDED, ()),
    (_S.IDLE, _I.END_SESSION): (_S.ENDED, (_A.REPORT_END,)),
    (_S.ACTIVE, _I.START): (_S.ACTIVE, ()),
    (_S.ACTIVE, _I.TCS): (_S.ACTIVE, (_A.ACK_TCS, _A.TRY_OPEN)),
    (_S.ACTIVE, _I.TCS_ACK): (_S.ACTIVE, (_A.NOTE_TCS_ACK, _A.TRY_OPEN)),
    (_S.ACTIVE, _I.TCS_REJECT): (_S.ACTIVE, (_A.SEND_END, _A.REPORT_END)),
    (_S.ACTIVE, _I.MSD): (_S.ACTIVE, (_A.ANSWER_MSD, _A.TRY_OPEN)),
    (_S.ACTIVE, _I.MSD_ACK): (_S.ACTIVE, (_A.NOTE_MSD_ACK, _A.TRY_OPEN)),
    # H.245 §C.2: a reject means identical numbers; we stay with the decision we made.
    (_S.ACTIVE, _I.MSD_REJECT): (_S.ACTIVE, ()),
    (_S.ACTIVE, _I.OLC_ACK): (_S.ACTIVE, (_A.NOTE_OLC_ACK,)),
    (_S.ACTIVE, _I.OLC_REJECT): (_S.ACTIVE, (_A.NOTE_OLC_REJECT,)),
    (_S.ACTIVE, _I.END): (_S.ENDED, (_A.SEND_END,)),
    (_S.ACTIVE, _I.END_SESSION): (_S.ENDED, (_A.SEND_END, _A.REPORT_END)),
    **{(_S.IDLE, i): (_S.IDLE, a) for i, a in _ANYTIME.items()},
    **{(_S.ACTIVE, i): (_S.ACTIVE, a) for i, a in _ANYTIME.items()},
    (_S.ENDED, _I.END): (_S.ENDED, ()),
}


@define
class H245Session:
    """One call's H.245 control channel, whichever way it is carried."""

    sdn: int  # our statusDeterminationNumber: random, chosen by the adapter
    codecs: tuple[Codec, ...] = (Codec.G711_ALAW, Codec.G711_ULAW, Codec.G729, Codec.G723_1)
    state: State = State.IDLE
    local_rtp: TransportAddress | None = None
    peer_caps: TerminalCapabilitySet | None = None
    tcs_acked: bool = False
    master: bool | None = None
    next_seq: int = 1
    our_channel: FastStartChannel | None = None
    our_channel_up: bool = False
    pending_olcs: list[FastStartChannel] = field(factory=list)
    peer_channels: dict[int, FastStartChannel] = field(factory=dict)
    rejected: set[str] = field(factory=set)
    dropped: int = 0

    @property
    def media_up(self) -> bool:
        return self.our_channel_up

    def next_deadline_ms(self) -> int | None:
        # The H.245 timers the switch cares about (SS_H323_TIMEOUT_H245) run in call.py.
        return None

    def handle(self, event: SessionEvent, now_ms: int) -> list[SessionEffect]:
        rule = SESSION.get((self.state, event.input))
        if rule is None:
            self.dropped += 1
            return [Dropped(event.input, self.state)]
        next_state, actions = rule
        self.state = next_state
        effects: list[SessionEffect] = []
        for action in actions:
            effects += self._perform(action, event)
        return effects

    # -- actions ----------------------------------------------------------------------

    def _local_msd(self) -> MasterSlaveDetermination:
        return MasterSlaveDetermination(TERMINAL_TYPE_GATEWAY, self.sdn % SDN_MODULUS)

    def _perform(self, action: Action, event: Any) -> list[SessionEffect]:
        message = getattr(event, "message", None)
        match action:
            case Action.SEND_CAPABILITIES:
                caps = tuple(Capability(c, DEFAULT_FRAMES[c]) for c in self.codecs)
                tcs = TerminalCapabilitySet(self.next_seq, caps)
                self.next_seq += 1
                return [Send(tcs), Send(self._local_msd())]
            case Action.ACK_TCS:
                self.peer_caps = message
                return [Send(TerminalCapabilitySetAck(message.seq))]
            case Action.NOTE_TCS_ACK:
                self.tcs_acked = True
            case Action.ANSWER_MSD:
                decision = master_slave(self._local_msd(), message)
                if decision is None:
                    return [Send(MasterSlaveDeterminationReject())]
                self.master = decision
                return [Send(MasterSlaveDeterminationAck(master=not decision))]
            case Action.NOTE_MSD_ACK:
                self.master = message.master
            case Action.NOTE_MEDIA:
                self.local_rtp = event.rtp
                self.codecs = event.codecs or self.codecs
            case Action.ANSWER_OLC:
                self.pending_olcs.append(message.channel)
                return self._ack_pending()
            case Action.ACK_PENDING:
                return self._ack_pending()
            case Action.TRY_OPEN:
                return self._try_open()
            case Action.NOTE_OLC_ACK:
                channel = self.our_channel
                if channel is None or message.number != channel.number:
                    self.dropped += 1
                    return []
                if message.media_channel is None:
                    return [SessionEnded("OpenLogicalChannelAck without mediaChannel")]
                self.our_channel_up = True
                return [
                    MediaUp(
                        message.media_channel,
                        message.media_control_channel,
                        channel.codec,
                        channel.frames,
                    )
                ]
            case Action.NOTE_OLC_REJECT:
                if self.our_channel is not None and message.number == self.our_channel.number:
                    self.rejected.add(str(self.our_channel.codec))
                    self.our_channel = None
                    return self._try_open()
            case Action.ACK_CLC:
                self.peer_channels.pop(message.number, None)
                return [Send(CloseLogicalChannelAck(message.number))]
            case Action.ANSWER_RTD:
                return [Send(RoundTripDelayResponse(message.seq))]
            case Action.REPORT_DIGIT:
                text = message.signal if message.signal is not None else message.alphanumeric
                return [DigitReceived(d, message.duration_ms) for d in (text or "")]
            case Action.SEND_DIGIT:
                if event.signal not in SIGNAL_ALPHABET or len(event.signal) != 1:
                    raise ValueError(f"not a DTMF signal: {event.signal!r}")
                return [Send(UserInput(signal=event.signal, duration_ms=event.duration_ms))]
            case Action.SEND_END:
                return [Send(EndSessionCommand())]
            case Action.REPORT_END:
                reason = "endSessionCommand"
                if isinstance(message, TerminalCapabilitySetReject):
                    reason = "terminalCapabilitySetReject"
                return [SessionEnded(reason)]
        return []

    def _ack_pending(self) -> list[SessionEffect]:
        if self.local_rtp is None:
            return []  # acknowledged once our media address is known (MediaKnown)
        rtcp = TransportAddress(self.local_rtp.host, self.local_rtp.port + 1)
        effects: list[SessionEffect] = []
        for channel in self.pending_olcs:
            self.peer_channels[channel.number] = channel
            ack = OpenLogicalChannelAck(channel.number, self.local_rtp, rtcp, channel.session_id)
            effects += [Send(ack), PeerChannel(channel.codec, channel.frames)]
        self.pending_olcs.clear()
        return effects

    def _try_open(self) -> list[SessionEffect]:
        ready = (
            self.our_channel is None
            and not self.our_channel_up
            and self.peer_caps is not None
            and self.tcs_acked
            and self.master is not None
            and self.local_rtp is not None
        )
        if not ready:
            return []
        assert self.peer_caps is not None and self.local_rtp is not None
        receivable = {str(c.codec): c for c in self.peer_caps.capabilities}
        for codec in self.codecs:
            peer = receivable.get(codec.value)
            if peer is None or codec.value in self.rejected:
                continue
            frames = min(DEFAULT_FRAMES[codec], peer.frames) if peer.frames else 0
            frames = frames or DEFAULT_FRAMES[codec]
            rtcp = TransportAddress(self.local_rtp.host, self.local_rtp.port + 1)
            # H.245 §8.5: forward channel numbers are ours to choose; 1 is free on our side.
            channel = FastStartChannel(
                len(self.rejected) + 1, Direction.TRANSMIT, codec, frames, 1, None, rtcp
            )
            self.our_channel = channel
            return [Send(OpenLogicalChannel(channel))]
        self.state = State.ENDED
        return [Send(EndSessionCommand()), SessionEnded("no common codec")]
