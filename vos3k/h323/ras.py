"""H.225.0 RAS message codec: RasMessage PER <-> small frozen values, sans-IO."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from attrs import frozen

from vos3k.h323.h225 import (
    ENDPOINT_TYPE,
    GUID_SIZE,
    PROTOCOL_IDENTIFIER,
    Alias,
    Malformed,
    TransportAddress,
    alias_from_asn1,
    alias_to_asn1,
    asn1,
    transport_from_asn1,
    transport_to_asn1,
)

__all__ = ["Malformed", "RasKind", "RasMessage", "encode", "parse"]


class RasKind(StrEnum):
    """RasMessage alternatives (H.225.0 §7.7), named as in the ASN.1."""

    GRQ = "gatekeeperRequest"
    GCF = "gatekeeperConfirm"
    GRJ = "gatekeeperReject"
    RRQ = "registrationRequest"
    RCF = "registrationConfirm"
    RRJ = "registrationReject"
    URQ = "unregistrationRequest"
    UCF = "unregistrationConfirm"
    URJ = "unregistrationReject"
    ARQ = "admissionRequest"
    ACF = "admissionConfirm"
    ARJ = "admissionReject"
    BRQ = "bandwidthRequest"
    BCF = "bandwidthConfirm"
    BRJ = "bandwidthReject"
    DRQ = "disengageRequest"
    DCF = "disengageConfirm"
    DRJ = "disengageReject"
    LRQ = "locationRequest"
    LCF = "locationConfirm"
    LRJ = "locationReject"
    IRQ = "infoRequest"
    IRR = "infoRequestResponse"
    NSM = "nonStandardMessage"
    XRS = "unknownMessageResponse"
    RIP = "requestInProgress"
    RAI = "resourcesAvailableIndicate"
    RAC = "resourcesAvailableConfirm"
    IACK = "infoRequestAck"
    INAK = "infoRequestNak"
    SCI = "serviceControlIndication"
    SCR = "serviceControlResponse"
    ACS = "admissionConfirmSequence"  # a SEQUENCE OF AdmissionConfirm; we read the first


@frozen
class RasMessage:
    """What a gatekeeper needs from one RAS message; fields a kind lacks stay default.

    `aliases` is the sender's own alias list (endpointAlias, terminalAlias or srcInfo),
    `destination_aliases` the called party (ARQ/LRQ destinationInfo). `reason` names
    the chosen alternative of rejectReason, disengageReason or the URQ reason.
    `answer_call` is ARQ answerCall or DRQ/BRQ answeredCall. `bandwidth` counts
    100 bit/s units (H.225.0 BandWidth).
    """

    kind: RasKind
    seq: int
    protocol_identifier: tuple[int, ...] | None = None
    gatekeeper_identifier: str | None = None
    endpoint_identifier: str | None = None
    aliases: tuple[Alias, ...] = ()
    destination_aliases: tuple[Alias, ...] = ()
    ras_addresses: tuple[TransportAddress, ...] = ()
    call_signal_addresses: tuple[TransportAddress, ...] = ()
    destination_call_signal_address: TransportAddress | None = None
    source_call_signal_address: TransportAddress | None = None
    reply_address: TransportAddress | None = None
    time_to_live: int | None = None
    keep_alive: bool = False
    discovery_complete: bool = False
    call_identifier: bytes | None = None
    conference_id: bytes | None = None
    call_reference: int | None = None
    answer_call: bool = False
    bandwidth: int | None = None
    call_model: str | None = None  # "direct" or "gatekeeperRouted"
    reason: str | None = None
    alternate_gatekeepers: int = 0  # how many were offered (decode only)


# field -> the components that carry it, first match per message kind wins.
_COMPONENTS: dict[str, tuple[str, ...]] = {
    "protocol_identifier": ("protocolIdentifier",),
    "gatekeeper_identifier": ("gatekeeperIdentifier",),
    "endpoint_identifier": ("endpointIdentifier",),
    "aliases": ("endpointAlias", "terminalAlias", "srcInfo"),
    "destination_aliases": ("destinationInfo",),
    "ras_addresses": ("rasAddress",),
    "call_signal_addresses": ("callSignalAddress",),
    "destination_call_signal_address": ("destCallSignalAddress",),
    "source_call_signal_address": ("srcCallSignalAddress",),
    "reply_address": ("replyAddress",),
    "time_to_live": ("timeToLive",),
    "keep_alive": ("keepAlive",),
    "discovery_complete": ("discoveryComplete",),
    "call_identifier": ("callIdentifier",),
    "conference_id": ("conferenceID",),
    "call_reference": ("callReferenceValue",),
    "answer_call": ("answerCall", "answeredCall"),
    "bandwidth": ("bandWidth",),
    "call_model": ("callModel",),
    "reason": ("rejectReason", "disengageReason", "reason"),
    "alternate_gatekeepers": ("alternateGatekeeper",),
}
# Mandatory components a field does not cover (or covers with a None/empty default):
# what vos3k sends. H.225.0 §7.7 marks each of these as not OPTIONAL.
_FILLERS: dict[str, Any] = {
    "protocolIdentifier": PROTOCOL_IDENTIFIER,
    "endpointType": ENDPOINT_TYPE,
    "terminalType": ENDPOINT_TYPE,
    "endpointVendor": {"vendor": {"t35CountryCode": 0, "t35Extension": 0, "manufacturerCode": 0}},
    "callType": ("pointToPoint", 0),
    "callModel": ("gatekeeperRouted", 0),  # SPEC §11: ARQ calls are routed via vos3k
    "bandWidth": 1280,  # 128 kbit/s: two G.711 directions
    "callReferenceValue": 0,
    "conferenceID": bytes(GUID_SIZE),
    "callIdentifier": {"guid": bytes(GUID_SIZE)},
    "callSignalAddress": [],
    "srcInfo": [],
    "disengageReason": ("normalDrop", 0),
    "allowedBandWidth": 0,
    "uuiesRequested": {
        name: False
        for name in (
            "setup",
            "callProceeding",
            "connect",
            "alerting",
            "information",
            "releaseComplete",
            "facility",
            "progress",
            "empty",
        )
    },
    "supportsAssignedGK": False,
    "willSupplyUUIEs": False,
    "maintainConnection": False,
    "willRespondToIRR": False,
    "activeMC": False,
    "canMapAlias": False,
    "canMapSrcAlias": False,
    "needResponse": False,
    "unsolicited": False,
}
_LISTS = ("aliases", "destination_aliases", "ras_addresses", "call_signal_addresses")
# BOOLEAN components are mandatory wherever they exist, so False is sent, not omitted.
_FLAGS = ("keep_alive", "discovery_complete", "answer_call")


def _type_of(kind: RasKind) -> Any:
    if kind is RasKind.ACS:
        kind = RasKind.ACF
    return asn1().h225.RasMessage._cont[kind.value]


def _component(kind: RasKind, attribute: str) -> str | None:
    present = _type_of(kind)._cont
    for name in _COMPONENTS[attribute]:
        if name in present:
            return name
    return None


def _is_sequence_of(kind: RasKind, component: str) -> bool:
    return _type_of(kind)._cont[component].TYPE == "SEQUENCE OF"


def _decode_field(attribute: str, value: Any, many: bool) -> Any:
    if attribute in ("aliases", "destination_aliases"):
        return tuple(alias_from_asn1(a) for a in value)
    if attribute in _LISTS or attribute.endswith("address"):
        addresses = [transport_from_asn1(a) for a in (value if many else [value])]
        usable = tuple(a for a in addresses if a is not None)
        if attribute in _LISTS:
            return usable
        return usable[0] if usable else None
    if attribute == "protocol_identifier":
        return tuple(value)
    if attribute == "call_identifier":
        return value["guid"]
    if attribute in ("reason", "call_model"):
        return value[0]
    if attribute == "alternate_gatekeepers":
        return len(value)
    if attribute in _FLAGS:
        return bool(value)
    return value


def parse(data: bytes) -> RasMessage | Malformed:
    """Decode one RAS datagram. Never raises on bad input."""
    pdu = asn1().h225.RasMessage
    try:
        pdu.from_aper(data)
        name, body = pdu.get_val()
    except Exception as error:  # pycrate raises many types on garbage
        return Malformed(f"RasMessage: {type(error).__name__}: {error}")
    try:
        kind = RasKind(name)
        if kind is RasKind.ACS:
            body = body[0]
        kwargs: dict[str, Any] = {}
        for attribute in _COMPONENTS:
            component = _component(kind, attribute)
            if component is not None and component in body:
                many = _is_sequence_of(kind, component)
                kwargs[attribute] = _decode_field(attribute, body[component], many)
        return RasMessage(kind, body["requestSeqNum"], **kwargs)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return Malformed(f"RasMessage {name}: unusable value: {error}")


_DEFAULTS = {a.name: a.default for a in RasMessage.__attrs_attrs__}


def _encode_field(attribute: str, value: Any, many: bool) -> Any:
    if attribute in ("aliases", "destination_aliases"):
        return [alias_to_asn1(a) for a in value]
    if attribute in _LISTS:
        if many:
            return [transport_to_asn1(a) for a in value]
        if len(value) != 1:
            raise ValueError(f"{attribute} takes exactly one address here")
        return transport_to_asn1(value[0])
    if attribute.endswith("address"):
        return [transport_to_asn1(value)] if many else transport_to_asn1(value)
    if attribute == "call_identifier":
        return {"guid": value}
    if attribute in ("reason", "call_model"):
        return (value, 0)
    return value


def encode(message: RasMessage) -> bytes:
    """Encode (aligned PER). Raises ValueError for a value vos3k built wrongly."""
    kind = message.kind
    if kind is RasKind.ACS:
        raise ValueError("vos3k sends AdmissionConfirm, not a sequence of them")
    kind_type = _type_of(kind)
    body: dict[str, Any] = {"requestSeqNum": message.seq}
    for attribute in _COMPONENTS:
        value = getattr(message, attribute)
        if value == _DEFAULTS[attribute] and attribute not in _FLAGS:
            continue
        if attribute == "alternate_gatekeepers":
            raise ValueError("alternate gatekeepers are decoded only")
        component = _component(kind, attribute)
        if component is None:
            if value == _DEFAULTS[attribute]:
                continue
            raise ValueError(f"{kind.name} has no {attribute}")
        body[component] = _encode_field(attribute, value, _is_sequence_of(kind, component))
    mandatory = list(kind_type._root_mand) + [
        name for name in kind_type._ext if not kind_type._cont[name]._opt
    ]
    for component in mandatory:
        if component not in body and component in _FILLERS:
            body[component] = _FILLERS[component]
    pdu = asn1().h225.RasMessage
    try:
        return pdu.to_aper((kind.value, body))
    except Exception as error:  # pycrate signals bad values many ways
        raise ValueError(f"cannot encode {kind.name}: {error}") from error
