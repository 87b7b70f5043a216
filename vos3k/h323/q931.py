"""Q.931 message and information-element codec as profiled by H.225.0 §7, sans-IO."""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from attrs import field, frozen

# Q.931 §4.2: protocol discriminator for Q.931/I.451 user-network call control.
PROTOCOL_DISCRIMINATOR = 0x08
# Q.931 §4.5.30 / H.225.0 §7.2.2.1: user-user protocol discriminator "X.208/X.209 coded
# user information", which is how the H323-UserInformation PDU is carried.
USER_USER_X208 = 0x05
# H.225.0 §7.2.2.1: the call reference value is two octets; the top bit is the flag.
MAX_CALL_REFERENCE = 0x7FFF


class MessageType(IntEnum):
    """Q.931 Table 4-1 message types used by H.225.0 (§7.3 and Table 4)."""

    ALERTING = 0x01
    CALL_PROCEEDING = 0x02
    PROGRESS = 0x03
    SETUP = 0x05
    SETUP_ACKNOWLEDGE = 0x0D
    CONNECT = 0x07
    CONNECT_ACKNOWLEDGE = 0x0F
    USER_INFORMATION = 0x20
    RELEASE_COMPLETE = 0x5A
    FACILITY = 0x62
    NOTIFY = 0x6E
    STATUS_ENQUIRY = 0x75
    INFORMATION = 0x7B
    STATUS = 0x7D


class IEId(IntEnum):
    """Q.931 Table 4-3 codeset 0 information element identifiers we decode."""

    BEARER_CAPABILITY = 0x04
    CAUSE = 0x08
    CALL_STATE = 0x14
    PROGRESS_INDICATOR = 0x1E
    DISPLAY = 0x28
    CALLING_PARTY_NUMBER = 0x6C
    CALLED_PARTY_NUMBER = 0x70
    USER_USER = 0x7E


@frozen
class Malformed:
    """Bytes that are not a usable Q.931 message.

    `call_reference`/`from_destination` are set when the header was readable, so the
    caller can still answer with Release Complete cause 100/111 (SPEC §11).
    """

    reason: str
    call_reference: int | None = None
    from_destination: bool | None = None


@frozen
class BearerCapability:
    """Q.931 §4.5.5. H.225.0 Setup: speech or 3.1 kHz audio, 64 kbit/s, G.711."""

    transfer_capability: int = 0x00  # speech
    coding_standard: int = 0  # ITU-T
    transfer_mode: int = 0  # circuit mode
    transfer_rate: int = 0x10  # 64 kbit/s
    rate_multiplier: int | None = None  # octet 4.1, present when the rate is multirate
    layer1_protocol: int | None = 0x05  # G.711 A-law; 0x02 is µ-law
    rest: bytes = b""  # octets 5a onwards, kept verbatim

    ie_id = IEId.BEARER_CAPABILITY


@frozen
class PartyNumber:
    """Q.931 §4.5.8 / §4.5.10: type of number, numbering plan, IA5 digits."""

    digits: str
    type_of_number: int = 0  # unknown
    numbering_plan: int = 1  # ISDN/telephony (E.164)
    # Octet 3a (calling party only): presentation and screening indicators.
    presentation: int | None = None
    screening: int | None = None


@frozen
class CallingPartyNumber(PartyNumber):
    ie_id = IEId.CALLING_PARTY_NUMBER


@frozen
class CalledPartyNumber(PartyNumber):
    ie_id = IEId.CALLED_PARTY_NUMBER


@frozen
class Cause:
    """Q.931 §4.5.12 with Q.850 values (SPEC §8)."""

    value: int = field()
    location: int = 0  # user
    coding_standard: int = 0
    recommendation: int | None = None  # octet 3a
    diagnostics: bytes = b""

    ie_id = IEId.CAUSE

    @value.validator
    def _check_value(self, _attribute: object, value: int) -> None:
        if not 0 <= value <= 127:
            raise ValueError(f"Q.850 cause {value} out of 0..127")


@frozen
class CallState:
    """Q.931 §4.5.7, carried by Status."""

    value: int
    coding_standard: int = 0

    ie_id = IEId.CALL_STATE


@frozen
class ProgressIndicator:
    """Q.931 §4.5.23. Description 8 = in-band information now available (SPEC §11)."""

    description: int
    location: int = 0
    coding_standard: int = 0

    ie_id = IEId.PROGRESS_INDICATOR


@frozen
class Display:
    """Q.931 §4.5.16, IA5 text (decoded as Latin-1 so no octet is lost)."""

    text: str

    ie_id = IEId.DISPLAY


@frozen
class UserUser:
    """Q.931 §4.5.30 with H.225.0's two-octet length: the H323-UserInformation PDU."""

    data: bytes
    protocol_discriminator: int = USER_USER_X208

    ie_id = IEId.USER_USER


@frozen
class UnknownIE:
    """Any other element, or a known one whose contents did not parse: kept verbatim.

    Single-octet elements (Q.931 §4.5.1, identifier bit 8 set) have empty `data`.
    """

    ie_id: int
    data: bytes = b""


InformationElement = (
    BearerCapability
    | CallingPartyNumber
    | CalledPartyNumber
    | Cause
    | CallState
    | ProgressIndicator
    | Display
    | UserUser
    | UnknownIE
)
IE = TypeVar("IE")


@frozen
class Message:
    """One Q.931 message. IEs are kept in wire order (Q.931 §4.5: ascending ids)."""

    message_type: int
    call_reference: int
    # Q.931 §4.3: flag 0 = sent by the side that allocated the call reference,
    # 1 = sent towards it (i.e. from the destination side).
    from_destination: bool = False
    ies: tuple[InformationElement, ...] = ()

    def find(self, kind: type[IE]) -> IE | None:
        """The first IE of this class, or None."""
        for ie in self.ies:
            if isinstance(ie, kind):
                return ie
        return None

    @property
    def user_user(self) -> bytes | None:
        """The H.225.0 PDU carried in the user-user IE, if any."""
        uu = self.find(UserUser)
        if uu is None or uu.protocol_discriminator != USER_USER_X208:
            return None
        return uu.data


# ---------------------------------------------------------------- decoding


def parse(data: bytes) -> Message | Malformed:
    """Decode one Q.931 message (a TPKT payload). Never raises on bad input."""
    if len(data) < 3:
        return Malformed(f"{len(data)} octets is shorter than a Q.931 header")
    if data[0] != PROTOCOL_DISCRIMINATOR:
        return Malformed(f"protocol discriminator {data[0]:#04x}, expected 0x08")
    cr_len = data[1] & 0x0F
    if data[1] & 0xF0 or cr_len > 2:
        return Malformed(f"call reference length octet {data[1]:#04x}")
    if len(data) < 3 + cr_len:
        return Malformed("truncated call reference")
    call_reference, from_destination = 0, False
    if cr_len:
        raw = int.from_bytes(data[2 : 2 + cr_len], "big")
        flag_bit = 1 << (8 * cr_len - 1)
        from_destination = bool(raw & flag_bit)
        call_reference = raw & (flag_bit - 1)
    pos = 2 + cr_len
    message_type = data[pos]
    if message_type & 0x80:
        # Q.931 §4.4: bit 8 of the message type is reserved for escape/extension.
        return Malformed(
            f"message type {message_type:#04x} has bit 8 set", call_reference, from_destination
        )
    pos += 1
    ies: list[InformationElement] = []
    while pos < len(data):
        ie_id = data[pos]
        if ie_id & 0x80:
            ies.append(UnknownIE(ie_id))
            pos += 1
            continue
        # H.225.0 §7.2.2.1: the user-user IE has a two-octet length.
        length_size = 2 if ie_id == IEId.USER_USER else 1
        if pos + 1 + length_size > len(data):
            return Malformed(f"IE {ie_id:#04x}: truncated length", call_reference, from_destination)
        length = int.from_bytes(data[pos + 1 : pos + 1 + length_size], "big")
        start = pos + 1 + length_size
        if start + length > len(data):
            return Malformed(
                f"IE {ie_id:#04x}: length {length} runs past the end ({len(data) - start} left)",
                call_reference,
                from_destination,
            )
        ies.append(_decode_ie(ie_id, data[start : start + length]))
        pos = start + length
    try:
        message_type = MessageType(message_type)
    except ValueError:
        pass  # Q.931 §5.8.4: unknown types are the state machine's to answer (Status 97)
    return Message(message_type, call_reference, from_destination, tuple(ies))


def _decode_ie(ie_id: int, body: bytes) -> InformationElement:
    decoder = _DECODERS.get(ie_id)
    if decoder is None:
        return UnknownIE(ie_id, body)
    try:
        return decoder(body)
    except (IndexError, ValueError):
        # Q.931 §5.8.7.2: a content error in an element is handled by whoever needs it;
        # the element survives verbatim.
        return UnknownIE(ie_id, body)


def _decode_bearer(body: bytes) -> BearerCapability:
    octet3, octet4 = body[0], body[1]
    pos = 2
    multiplier = None
    if octet4 & 0x1F == 0x18:  # multirate (64 kbit/s base rate): octet 4.1 follows
        multiplier = body[pos] & 0x7F
        pos += 1
    layer1 = None
    if pos < len(body) and (body[pos] >> 5) & 0x03 == 0x01:  # layer 1 identifier
        layer1 = body[pos] & 0x1F
        pos += 1
    return BearerCapability(
        transfer_capability=octet3 & 0x1F,
        coding_standard=(octet3 >> 5) & 0x03,
        transfer_mode=(octet4 >> 5) & 0x03,
        transfer_rate=octet4 & 0x1F,
        rate_multiplier=multiplier,
        layer1_protocol=layer1,
        rest=bytes(body[pos:]),
    )


def _decode_party(kind: type[PartyNumber], body: bytes) -> PartyNumber:
    octet3 = body[0]
    presentation = screening = None
    pos = 1
    if not octet3 & 0x80:  # extension bit 0: octet 3a follows
        presentation = (body[1] >> 5) & 0x03
        screening = body[1] & 0x03
        pos = 2
    digits = body[pos:]
    if any(d > 0x7F for d in digits):
        raise ValueError("digits are not IA5")
    return kind(
        digits=digits.decode("ascii"),
        type_of_number=(octet3 >> 4) & 0x07,
        numbering_plan=octet3 & 0x0F,
        presentation=presentation,
        screening=screening,
    )


def _decode_cause(body: bytes) -> Cause:
    octet3 = body[0]
    pos = 1
    recommendation = None
    if not octet3 & 0x80:
        recommendation = body[1] & 0x7F
        pos = 2
    return Cause(
        value=body[pos] & 0x7F,
        location=octet3 & 0x0F,
        coding_standard=(octet3 >> 5) & 0x03,
        recommendation=recommendation,
        diagnostics=bytes(body[pos + 1 :]),
    )


def _decode_progress(body: bytes) -> ProgressIndicator:
    if len(body) != 2:
        raise ValueError("progress indicator is two octets")
    return ProgressIndicator(
        description=body[1] & 0x7F,
        location=body[0] & 0x0F,
        coding_standard=(body[0] >> 5) & 0x03,
    )


def _decode_call_state(body: bytes) -> CallState:
    if len(body) != 1:
        raise ValueError("call state is one octet")
    return CallState(value=body[0] & 0x3F, coding_standard=body[0] >> 6)


def _decode_user_user(body: bytes) -> UserUser:
    return UserUser(data=bytes(body[1:]), protocol_discriminator=body[0])


_DECODERS = {
    IEId.BEARER_CAPABILITY: _decode_bearer,
    IEId.CAUSE: _decode_cause,
    IEId.CALL_STATE: _decode_call_state,
    IEId.PROGRESS_INDICATOR: _decode_progress,
    IEId.DISPLAY: lambda body: Display(body.decode("latin-1")),
    IEId.CALLING_PARTY_NUMBER: lambda body: _decode_party(CallingPartyNumber, body),
    IEId.CALLED_PARTY_NUMBER: lambda body: _decode_party(CalledPartyNumber, body),
    IEId.USER_USER: _decode_user_user,
}


# ---------------------------------------------------------------- encoding


def encode(message: Message) -> bytes:
    """Serialise a message (raises ValueError only for values we built wrongly)."""
    if not 0 <= message.call_reference <= MAX_CALL_REFERENCE:
        raise ValueError(f"call reference {message.call_reference} out of 0..32767")
    if not 0 <= message.message_type <= 0x7F:
        raise ValueError(f"message type {message.message_type} out of 0..127")
    cr = message.call_reference | (0x8000 if message.from_destination else 0)
    out = bytearray((PROTOCOL_DISCRIMINATOR, 2))
    out += cr.to_bytes(2, "big")
    out.append(message.message_type)
    for ie in message.ies:
        out += encode_ie(ie)
    return bytes(out)


def encode_ie(ie: InformationElement) -> bytes:
    if isinstance(ie, UnknownIE):
        ie_id, body = ie.ie_id, ie.data
        if ie_id & 0x80:
            if body:
                raise ValueError(f"single-octet IE {ie_id:#04x} cannot carry data")
            return bytes((ie_id,))
    else:
        ie_id, body = ie.ie_id, _ENCODERS[type(ie)](ie)
    if ie_id == IEId.USER_USER:
        if len(body) > 0xFFFF:
            raise ValueError("user-user IE longer than 65535 octets")
        return bytes((ie_id,)) + len(body).to_bytes(2, "big") + body
    if len(body) > 0xFF:
        raise ValueError(f"IE {ie_id:#04x} longer than 255 octets")
    return bytes((ie_id, len(body))) + body


def _encode_bearer(ie: BearerCapability) -> bytes:
    out = bytearray(
        (
            0x80 | (ie.coding_standard & 0x03) << 5 | ie.transfer_capability & 0x1F,
            0x80 | (ie.transfer_mode & 0x03) << 5 | ie.transfer_rate & 0x1F,
        )
    )
    if ie.rate_multiplier is not None:
        out.append(0x80 | ie.rate_multiplier & 0x7F)
    if ie.layer1_protocol is not None:
        # Bit 8 is the extension bit: 0 when octet 5a follows in `rest`.
        ext = 0x00 if ie.rest else 0x80
        out.append(ext | 0x20 | ie.layer1_protocol & 0x1F)
    return bytes(out) + ie.rest


def _encode_party(ie: PartyNumber) -> bytes:
    octet3 = (ie.type_of_number & 0x07) << 4 | ie.numbering_plan & 0x0F
    if ie.presentation is None and ie.screening is None:
        head = bytes((0x80 | octet3,))
    else:
        head = bytes((octet3, 0x80 | (ie.presentation or 0) << 5 | (ie.screening or 0)))
    return head + ie.digits.encode("ascii")


def _encode_cause(ie: Cause) -> bytes:
    octet3 = (ie.coding_standard & 0x03) << 5 | ie.location & 0x0F
    if ie.recommendation is None:
        head = bytes((0x80 | octet3,))
    else:
        head = bytes((octet3, 0x80 | ie.recommendation & 0x7F))
    return head + bytes((0x80 | ie.value,)) + ie.diagnostics


_ENCODERS = {
    BearerCapability: _encode_bearer,
    CallingPartyNumber: _encode_party,
    CalledPartyNumber: _encode_party,
    Cause: _encode_cause,
    CallState: lambda ie: bytes(((ie.coding_standard & 0x03) << 6 | ie.value & 0x3F,)),
    ProgressIndicator: lambda ie: bytes(
        (
            0x80 | (ie.coding_standard & 0x03) << 5 | ie.location & 0x0F,
            0x80 | ie.description & 0x7F,
        )
    ),
    Display: lambda ie: ie.text.encode("latin-1"),
    UserUser: lambda ie: bytes((ie.protocol_discriminator,)) + ie.data,
}
