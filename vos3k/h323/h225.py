"""H.225.0 H323-UserInformation and fast-start OLC codec over pycrate's aligned PER."""

from __future__ import annotations

import functools
import ipaddress
from enum import Enum, StrEnum
from typing import Any

from attrs import frozen

# H.225.0 §12 (version 4): { itu-t(0) recommendation(0) h(8) 2250 version(0) 4 }.
PROTOCOL_IDENTIFIER = (0, 0, 8, 2250, 0, 4)
GUID_SIZE = 16


# ---------------------------------------------------------------- pycrate


@frozen
class _Modules:
    h225: Any  # pycrate's H225.H323_MESSAGES namespace
    h245: Any  # pycrate's H245.MULTIMEDIA_SYSTEM_CONTROL namespace


@functools.cache
def asn1() -> _Modules:
    """Load pycrate's H.225.0/H.245 modules once, on first use, and patch its PER encoder.

    Measured here: compiling the 1.2 MB generated H225.py takes ~0.25 s when there is no
    bytecode yet, and the import costs ~0.12 s from bytecode (bench/ measures it; a
    pure core reads no clock).
    """
    from pycrate_asn1dir import H225, H245  # deliberately lazy: a 1.2 MB module

    _patch_extension_open_type_padding()
    return _Modules(H225.H323_MESSAGES, H245.MULTIMEDIA_SYSTEM_CONTROL)


def _patch_extension_open_type_padding() -> None:
    """Fix pycrate 0.8.1's aligned-PER padding of SEQUENCE extension additions.

    X.691 §19.7-19.9: after the root components come the normally-small length of the
    extension bitmap, the bitmap, then each addition as an open type, which in ALIGNED
    PER starts on an octet boundary. pycrate's `_CONSTRUCT._to_per` encodes the open
    types *before* it appends the bitmap, so `encode_unconst_open` pads the first one
    against the offset where the root part ended; the bitmap is then realigned again.
    Whenever those two pads add up to 8 bits or more the output gains a stray zero
    octet, which is what breaks an Alerting-UUIE carrying callIdentifier (SPEC §11):
    the root ends 1 bit past a boundary, 15 additions -> 7 + 2 pad bits instead of 1.

    An extension addition is always preceded by the realigned bitmap, so its own
    pre-padding must be empty; we drop it and let the bitmap realignment, which then
    sees the true offset, produce the single correct pad. Only the SEQUENCE/SET
    extension path passes a component whose name is one of its parent's additions.
    """
    from pycrate_asn1rt.codecs import ASN1CodecPER

    original = ASN1CodecPER.__dict__["encode_unconst_open"].__func__
    if getattr(original, "_vos3k_patched", False):
        return

    def encode_unconst_open(cla: Any, wrapped: Any) -> list:
        parent = getattr(wrapped, "_parent", None)
        extensions = getattr(parent, "_ext", None) or ()
        if cla.ALIGNED and wrapped._name in extensions and cla._off[-1] % 8:
            saved = cla._off[-1]
            cla._off[-1] = 0  # pretend aligned: no pre-pad is emitted
            try:
                out = original(cla, wrapped)
            finally:
                cla._off[-1] = saved + cla._off[-1]
            return out
        return original(cla, wrapped)

    encode_unconst_open._vos3k_patched = True  # type: ignore[attr-defined]
    ASN1CodecPER.encode_unconst_open = classmethod(encode_unconst_open)


# ---------------------------------------------------------------- values


@frozen
class Malformed:
    """A PER buffer pycrate cannot decode, or a decoded value we cannot represent."""

    reason: str


@frozen
class TransportAddress:
    host: str  # dotted IPv4 or IPv6 text
    port: int


class AliasKind(StrEnum):
    """AliasAddress alternatives vos3k encodes (H.225.0 §7.6 names, as in the ASN.1)."""

    DIALED_DIGITS = "dialledDigits"
    H323_ID = "h323-ID"
    URL_ID = "url-ID"
    EMAIL_ID = "email-ID"


@frozen
class Alias:
    """An AliasAddress. Other alternatives decode with `kind` a plain string and
    `value` their most useful text (transportID as host:port, partyNumber digits)."""

    kind: AliasKind | str
    value: str


class Body(StrEnum):
    """H323-UU-PDU h323-message-body alternatives (H.225.0 §7.6)."""

    SETUP = "setup"
    CALL_PROCEEDING = "callProceeding"
    CONNECT = "connect"
    ALERTING = "alerting"
    INFORMATION = "information"
    RELEASE_COMPLETE = "releaseComplete"
    FACILITY = "facility"
    PROGRESS = "progress"
    EMPTY = "empty"
    STATUS = "status"
    STATUS_INQUIRY = "statusInquiry"
    SETUP_ACKNOWLEDGE = "setupAcknowledge"
    NOTIFY = "notify"


@frozen
class UserInformation:
    """What vos3k reads from and writes into an H323-UserInformation PDU.

    Fields a body does not have stay at their defaults; `encode` refuses to put a field
    in a body whose UUIE lacks it. `release_complete_reason` and `facility_reason` are
    the names of the chosen ReleaseCompleteReason/FacilityReason alternative.
    """

    body: Body
    protocol_identifier: tuple[int, ...] | None = PROTOCOL_IDENTIFIER
    call_identifier: bytes | None = None
    conference_id: bytes | None = None
    source_aliases: tuple[Alias, ...] = ()
    destination_aliases: tuple[Alias, ...] = ()
    source_call_signal_address: TransportAddress | None = None
    destination_call_signal_address: TransportAddress | None = None
    h245_address: TransportAddress | None = None
    fast_start: tuple[bytes, ...] = ()
    fast_connect_refused: bool = False
    h245_tunnelling: bool = False
    h245_control: tuple[bytes, ...] = ()
    release_complete_reason: str | None = None
    facility_reason: str | None = None
    conference_goal: str | None = None  # Setup: create/join/invite/...
    media_wait_for_connect: bool = False


# Which UserInformation fields each body can carry, with the UUIE component name.
_SHARED = {"protocol_identifier": "protocolIdentifier", "call_identifier": "callIdentifier"}
_RESPONSE = {
    **_SHARED,
    "h245_address": "h245Address",
    "fast_start": "fastStart",
    "fast_connect_refused": "fastConnectRefused",
}
_BODY_FIELDS: dict[Body, dict[str, str]] = {
    Body.SETUP: {
        **_SHARED,
        "conference_id": "conferenceID",
        "source_aliases": "sourceAddress",
        "destination_aliases": "destinationAddress",
        "source_call_signal_address": "sourceCallSignalAddress",
        "destination_call_signal_address": "destCallSignalAddress",
        "h245_address": "h245Address",
        "fast_start": "fastStart",
        "conference_goal": "conferenceGoal",
        "media_wait_for_connect": "mediaWaitForConnect",
    },
    Body.CALL_PROCEEDING: _RESPONSE,
    Body.ALERTING: _RESPONSE,
    Body.PROGRESS: _RESPONSE,
    Body.CONNECT: {**_RESPONSE, "conference_id": "conferenceID"},
    Body.RELEASE_COMPLETE: {**_SHARED, "release_complete_reason": "reason"},
    Body.FACILITY: {
        **_SHARED,
        "conference_id": "conferenceID",
        "h245_address": "h245Address",
        "fast_start": "fastStart",
        "fast_connect_refused": "fastConnectRefused",
        "facility_reason": "reason",
    },
    Body.INFORMATION: _SHARED,
    Body.STATUS: _SHARED,
    Body.STATUS_INQUIRY: _SHARED,
    Body.SETUP_ACKNOWLEDGE: _SHARED,
    Body.NOTIFY: _SHARED,
    Body.EMPTY: {},
}
# Mandatory components vos3k has no field for: the value it always sends. H.225.0
# marks multipleCalls/maintainConnection mandatory in every UUIE that has them.
ENDPOINT_TYPE = {"gateway": {}, "mc": False, "undefinedNode": False}
_FIXED: dict[Body, dict[str, Any]] = {
    Body.SETUP: {
        "sourceInfo": ENDPOINT_TYPE,
        "activeMC": False,
        "callType": ("pointToPoint", 0),
        "canOverlapSend": False,
        "multipleCalls": False,
        "maintainConnection": False,
    },
    Body.CALL_PROCEEDING: {
        "destinationInfo": ENDPOINT_TYPE,
        "multipleCalls": False,
        "maintainConnection": False,
    },
    Body.CONNECT: {
        "destinationInfo": ENDPOINT_TYPE,
        "multipleCalls": False,
        "maintainConnection": False,
    },
    Body.FACILITY: {"multipleCalls": False, "maintainConnection": False},
}
_FIXED[Body.ALERTING] = _FIXED[Body.PROGRESS] = _FIXED[Body.CALL_PROCEEDING]
# What the encoder sends when the caller left a mandatory field at None.
_MANDATORY_DEFAULTS: dict[Body, dict[str, Any]] = {
    Body.SETUP: {"conferenceID": bytes(GUID_SIZE), "conferenceGoal": ("create", 0)},
    Body.CONNECT: {"conferenceID": bytes(GUID_SIZE)},
    Body.FACILITY: {"reason": ("undefinedReason", 0)},
}


# ---------------------------------------------------------------- conversions


def transport_to_asn1(address: TransportAddress) -> tuple[str, dict]:
    ip = ipaddress.ip_address(address.host)
    kind = "ipAddress" if ip.version == 4 else "ip6Address"
    return (kind, {"ip": ip.packed, "port": address.port})


def transport_from_asn1(value: tuple[str, Any]) -> TransportAddress | None:
    kind, inner = value
    if kind in ("ipAddress", "ip6Address"):
        return TransportAddress(str(ipaddress.ip_address(inner["ip"])), inner["port"])
    return None  # source routes, IPX, NetBIOS, NSAP: not reachable by vos3k


def alias_to_asn1(alias: Alias) -> tuple[str, str]:
    return (AliasKind(alias.kind).value, alias.value)


def alias_from_asn1(value: tuple[str, Any]) -> Alias:
    kind, inner = value
    try:
        return Alias(AliasKind(kind), inner)
    except ValueError:
        pass
    if kind == "transportID":
        address = transport_from_asn1(inner)
        text = f"{address.host}:{address.port}" if address else inner[0]
        return Alias(kind, text)
    if kind == "partyNumber":
        party_kind, number = inner
        if isinstance(number, dict):
            digits = number.get("publicNumberDigits", number.get("privateNumberDigits", ""))
            return Alias(kind, digits)
        return Alias(kind, number if isinstance(number, str) else party_kind)
    return Alias(kind, "")


def _choice_name(value: Any) -> str | None:
    return value[0] if isinstance(value, tuple) else None


def _to_asn1(info: UserInformation) -> dict:
    fields = _BODY_FIELDS[info.body]
    body: dict[str, Any] = dict(_FIXED.get(info.body, {}))
    for attribute, component in fields.items():
        value = getattr(info, attribute)
        if attribute == "protocol_identifier":
            body[component] = value or PROTOCOL_IDENTIFIER
        elif attribute == "call_identifier":
            body[component] = {"guid": value or bytes(GUID_SIZE)}
        elif attribute in ("source_aliases", "destination_aliases"):
            if value:
                body[component] = [alias_to_asn1(a) for a in value]
        elif attribute.endswith("address"):
            if value is not None:
                body[component] = transport_to_asn1(value)
        elif attribute == "fast_start":
            if value:
                body[component] = list(value)
        elif attribute in ("fast_connect_refused",):
            if value:
                body[component] = 0
        elif attribute == "media_wait_for_connect":
            body[component] = value
        elif attribute in ("release_complete_reason", "facility_reason", "conference_goal"):
            if value is not None:
                body[component] = (value, 0)
        elif value is not None:
            body[component] = value
    for component, default in _MANDATORY_DEFAULTS.get(info.body, {}).items():
        body.setdefault(component, default)
    for attribute, default in _DEFAULTS.items():
        if attribute not in fields and getattr(info, attribute) != default:
            raise ValueError(f"{info.body.value} UUIE has no {attribute}")
    pdu: dict[str, Any] = {
        "h323-message-body": (info.body.value, 0 if info.body is Body.EMPTY else body),
        "h245Tunnelling": info.h245_tunnelling,
    }
    if info.h245_control:
        pdu["h245Control"] = list(info.h245_control)
    return {"h323-uu-pdu": pdu}


_PDU_FIELDS = ("h245_tunnelling", "h245_control")
# Body-level fields with their defaults; protocolIdentifier is absent only from "empty".
_DEFAULTS = {
    a.name: a.default
    for a in UserInformation.__attrs_attrs__
    if a.name not in ("body", "protocol_identifier", *_PDU_FIELDS)
}


def _from_asn1(value: dict) -> UserInformation:
    pdu = value["h323-uu-pdu"]
    name, body = pdu["h323-message-body"]
    kind = Body(name)
    kwargs: dict[str, Any] = {
        "h245_tunnelling": bool(pdu.get("h245Tunnelling", False)),
        "h245_control": tuple(pdu.get("h245Control", ())),
    }
    if not isinstance(body, dict):
        body = {}
    for attribute, component in _BODY_FIELDS[kind].items():
        if component not in body:
            continue
        item = body[component]
        if attribute == "protocol_identifier":
            kwargs[attribute] = tuple(item)
        elif attribute == "call_identifier":
            kwargs[attribute] = item["guid"]
        elif attribute in ("source_aliases", "destination_aliases"):
            kwargs[attribute] = tuple(alias_from_asn1(a) for a in item)
        elif attribute.endswith("address"):
            kwargs[attribute] = transport_from_asn1(item)
        elif attribute == "fast_start":
            kwargs[attribute] = tuple(item)
        elif attribute == "fast_connect_refused":
            kwargs[attribute] = True
        elif attribute in ("release_complete_reason", "facility_reason", "conference_goal"):
            kwargs[attribute] = _choice_name(item)
        else:
            kwargs[attribute] = item
    return UserInformation(kind, **kwargs)


def parse_user_information(data: bytes) -> UserInformation | Malformed:
    """Decode the H323-UserInformation carried in a Q.931 user-user IE."""
    pdu = asn1().h225.H323_UserInformation
    try:
        pdu.from_aper(data)
        value = pdu.get_val()
    except Exception as error:  # pycrate raises many types on garbage
        return Malformed(f"H323-UserInformation: {type(error).__name__}: {error}")
    try:
        return _from_asn1(value)
    except (KeyError, TypeError, ValueError) as error:
        return Malformed(f"H323-UserInformation: unusable value: {error}")


def encode_user_information(info: UserInformation) -> bytes:
    """Encode (aligned PER). Raises ValueError for a value vos3k built wrongly."""
    pdu = asn1().h225.H323_UserInformation
    value = _to_asn1(info)
    try:
        return pdu.to_aper(value)
    except Exception as error:  # pycrate signals bad values many ways
        raise ValueError(f"cannot encode {info.body.value}: {error}") from error


# ---------------------------------------------------------------- fast start (H.245 OLC)


class Codec(StrEnum):
    """H.245 AudioCapability alternatives vos3k offers (SPEC §11)."""

    G711_ALAW = "g711Alaw64k"
    G711_ULAW = "g711Ulaw64k"
    G729 = "g729"
    G723_1 = "g7231"


class Direction(Enum):
    """Which way media flows as seen by the OLC's sender (H.323 §8.1.7.1).

    TRANSMIT: the codec is in forwardLogicalChannelParameters (sender -> receiver).
    RECEIVE: forward dataType is nullData and the codec is in the reverse parameters.
    """

    TRANSMIT = "transmit"
    RECEIVE = "receive"


@frozen
class FastStartChannel:
    """One OpenLogicalChannel of a fastStart list, reduced to what a call needs."""

    number: int
    direction: Direction
    codec: Codec | str  # a plain str for capabilities vos3k does not offer
    frames: int  # audio frames (ms for G.711) per packet
    session_id: int = 1
    media_channel: TransportAddress | None = None
    media_control_channel: TransportAddress | None = None
    silence_suppression: bool = False  # G.723.1 only


def _to_unicast(address: TransportAddress) -> tuple[str, tuple[str, dict]]:
    ip = ipaddress.ip_address(address.host)
    kind = "iPAddress" if ip.version == 4 else "iP6Address"
    return ("unicastAddress", (kind, {"network": ip.packed, "tsapIdentifier": address.port}))


def _from_unicast(value: tuple[str, Any]) -> TransportAddress | None:
    kind, inner = value
    if kind != "unicastAddress" or inner[0] not in ("iPAddress", "iP6Address"):
        return None
    address = inner[1]
    return TransportAddress(
        str(ipaddress.ip_address(address["network"])), address["tsapIdentifier"]
    )


def _audio(channel: FastStartChannel) -> tuple[str, Any]:
    codec = Codec(channel.codec)
    if codec is Codec.G723_1:
        return (
            "g7231",
            {
                "maxAl-sduAudioFrames": channel.frames,
                "silenceSuppression": channel.silence_suppression,
            },
        )
    return (codec.value, channel.frames)


def encode_olc(channel: FastStartChannel) -> bytes:
    """Encode one fastStart OpenLogicalChannel (aligned PER)."""
    params: dict[str, Any] = {"sessionID": channel.session_id}
    if channel.media_channel is not None:
        params["mediaChannel"] = _to_unicast(channel.media_channel)
    if channel.media_control_channel is not None:
        params["mediaControlChannel"] = _to_unicast(channel.media_control_channel)
    carried = {
        "dataType": ("audioData", _audio(channel)),
        "multiplexParameters": ("h2250LogicalChannelParameters", params),
    }
    value: dict[str, Any] = {"forwardLogicalChannelNumber": channel.number}
    if channel.direction is Direction.TRANSMIT:
        value["forwardLogicalChannelParameters"] = carried
    else:
        value["forwardLogicalChannelParameters"] = {
            "dataType": ("nullData", 0),
            "multiplexParameters": ("none", 0),
        }
        value["reverseLogicalChannelParameters"] = carried
    olc = asn1().h245.OpenLogicalChannel
    try:
        return olc.to_aper(value)
    except Exception as error:
        raise ValueError(f"cannot encode OLC {channel.number}: {error}") from error


def parse_olc(data: bytes) -> FastStartChannel | Malformed:
    """Decode one fastStart element; non-audio or non-H.225 channels are Malformed."""
    olc = asn1().h245.OpenLogicalChannel
    try:
        olc.from_aper(data)
        value = olc.get_val()
    except Exception as error:  # pycrate raises many types on garbage
        return Malformed(f"OpenLogicalChannel: {type(error).__name__}: {error}")
    try:
        forward = value["forwardLogicalChannelParameters"]
        if forward["dataType"][0] == "nullData" and "reverseLogicalChannelParameters" in value:
            direction, carried = Direction.RECEIVE, value["reverseLogicalChannelParameters"]
        else:
            direction, carried = Direction.TRANSMIT, forward
        data_type = carried["dataType"]
        if data_type[0] != "audioData":
            return Malformed(f"OpenLogicalChannel carries {data_type[0]}, not audio")
        name, detail = data_type[1]
        silence = False
        if isinstance(detail, dict):  # G.723.1
            frames, silence = detail["maxAl-sduAudioFrames"], detail["silenceSuppression"]
        elif isinstance(detail, int) and not isinstance(detail, bool):
            frames = detail
        else:
            frames = 0  # a capability with structured parameters vos3k does not read
        multiplex = carried.get("multiplexParameters", ("none", 0))
        params = multiplex[1] if multiplex[0] == "h2250LogicalChannelParameters" else {}
        media = params.get("mediaChannel")
        control = params.get("mediaControlChannel")
        try:
            codec: Codec | str = Codec(name)
        except ValueError:
            codec = name
        return FastStartChannel(
            number=value["forwardLogicalChannelNumber"],
            direction=direction,
            codec=codec,
            frames=frames,
            session_id=params.get("sessionID", 0),
            media_channel=_from_unicast(media) if media else None,
            media_control_channel=_from_unicast(control) if control else None,
            silence_suppression=silence,
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return Malformed(f"OpenLogicalChannel: unusable value: {error}")


# Default packetisation for our offers: 20 ms (G.711 counts ms, G.729 10 ms frames,
# G.723.1 30 ms frames, so one frame).
DEFAULT_FRAMES = {Codec.G711_ALAW: 20, Codec.G711_ULAW: 20, Codec.G729: 2, Codec.G723_1: 1}


def fast_start_offer(
    codecs: tuple[Codec, ...], rtp: TransportAddress, first_number: int = 1
) -> tuple[bytes, ...]:
    """The fastStart list of an outgoing Setup (SPEC §11, H.323 §8.1.7.1).

    For each codec, a RECEIVE channel carrying our RTP and RTCP addresses and a
    TRANSMIT channel carrying our RTCP address (the callee answers with its RTP one).
    """
    rtcp = TransportAddress(rtp.host, rtp.port + 1)
    out: list[bytes] = []
    number = first_number
    for codec in codecs:
        frames = DEFAULT_FRAMES[codec]
        out.append(
            encode_olc(FastStartChannel(number, Direction.RECEIVE, codec, frames, 1, rtp, rtcp))
        )
        out.append(
            encode_olc(
                FastStartChannel(number + 1, Direction.TRANSMIT, codec, frames, 1, None, rtcp)
            )
        )
        number += 2
    return tuple(out)
