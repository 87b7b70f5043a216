"""H.225.0 RAS message codec: RasMessage PER <-> small frozen values, sans-IO."""

from __future__ import annotations

import functools
import hashlib
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

__all__ = [
    "CAT_OID",
    "MD5_OID",
    "CatToken",
    "Malformed",
    "PwdHash",
    "RasKind",
    "RasMessage",
    "cat_challenge",
    "encode",
    "parse",
    "pwd_hash_digest",
]

# H.235 password tokens as OpenH323/H323Plus (h235auth.cxx H235AuthSimpleMD5, H235AuthCAT)
# build them and GnuGk (gkauth.cxx SimplePasswordAuth) checks them.
MD5_OID = (1, 2, 840, 113549, 2, 5)  # HASHED.algorithmOID of cryptoEPPwdHash: MD5 (RFC 1321)
CAT_OID = (1, 2, 840, 113548, 10, 1, 2, 1)  # ClearToken.tokenOID of a Cisco Access Token
PWD_CLEAR_TOKEN_OID = (0, 0)  # tokenOID of the ClearToken the MD5 is taken over ("0.0")


@frozen
class PwdHash:
    """A CryptoH323Token cryptoEPPwdHash (H.225.0 §7.6, H.235.0 "MD5 password"):
    the endpoint's `alias`, an H.235 TimeStamp (UTC seconds) and `digest`, the
    HASHED token's BIT STRING as octets; `algorithm` is its algorithmOID."""

    alias: Alias
    timestamp: int
    digest: bytes
    algorithm: tuple[int, ...] = MD5_OID


@frozen
class CatToken:
    """A ClearToken (RasMessage `tokens`) with tokenOID CAT_OID: `general_id` as sent
    (OpenH323 appends a NUL), timeStamp, the one-octet `random` and the MD5 `challenge`."""

    general_id: str
    timestamp: int
    random: int
    challenge: bytes


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
    crypto_tokens: tuple[PwdHash, ...] = ()  # cryptoEPPwdHash tokens; other kinds skipped
    clear_tokens: tuple[CatToken, ...] = ()  # CAT ClearTokens; other tokenOIDs skipped


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
    "crypto_tokens": ("cryptoTokens",),
    "clear_tokens": ("tokens",),
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
    if attribute == "crypto_tokens":
        return tuple(t for t in map(_pwd_hash_from_asn1, value) if t is not None)
    if attribute == "clear_tokens":
        return tuple(t for t in map(_cat_from_asn1, value) if t is not None)
    return value


def _bits_to_bytes(value: tuple[int, int]) -> bytes:
    """A pycrate BIT STRING (value, length in bits) as octets, the last one zero-padded."""
    number, length = value
    pad = -length % 8
    return (number << pad).to_bytes((length + pad) // 8, "big")


def _pwd_hash_from_asn1(token: tuple[str, Any]) -> PwdHash | None:
    kind, body = token
    if kind != "cryptoEPPwdHash":
        return None
    hashed = body["token"]
    return PwdHash(
        alias_from_asn1(body["alias"]),
        body["timeStamp"],
        _bits_to_bytes(hashed["hash"]),
        tuple(hashed["algorithmOID"]),
    )


def _cat_from_asn1(token: dict[str, Any]) -> CatToken | None:
    wanted = ("generalID", "timeStamp", "random", "challenge")
    if tuple(token["tokenOID"]) != CAT_OID or any(name not in token for name in wanted):
        return None
    return CatToken(token["generalID"], token["timeStamp"], token["random"], token["challenge"])


def _pwd_hash_to_asn1(token: PwdHash) -> tuple[str, dict[str, Any]]:
    hashed = {
        "algorithmOID": token.algorithm,
        "paramS": {},
        "hash": (int.from_bytes(token.digest, "big"), len(token.digest) * 8),
    }
    alias = alias_to_asn1(token.alias)
    return ("cryptoEPPwdHash", {"alias": alias, "timeStamp": token.timestamp, "token": hashed})


def _cat_to_asn1(token: CatToken) -> dict[str, Any]:
    return {
        "tokenOID": CAT_OID,
        "timeStamp": token.timestamp,
        "challenge": token.challenge,
        "random": token.random,
        "generalID": token.general_id,
    }


@functools.cache
def _h235() -> Any:
    """pycrate's H235-SECURITY-MESSAGES (compiled into its H225 module, loaded by asn1())."""
    asn1()
    from pycrate_asn1dir import H225

    return H225.H235_SECURITY_MESSAGES


def _ucs2_plus_nul(text: str) -> str:
    """OpenH323's GetUCS2plusNULL: the string with one trailing NUL character."""
    return text if text.endswith("\x00") else text + "\x00"


def pwd_hash_digest(general_id: str, password: str, timestamp: int) -> bytes:
    """The MD5 of a cryptoEPPwdHash token (H235AuthSimpleMD5, "Cisco compatible").

    It is MD5 (RFC 1321) over the aligned-PER encoding (X.691) of an H.235 ClearToken
    { tokenOID 0.0, timeStamp, password, generalID }, both strings BMPString with one
    trailing NUL appended, generalID being the token's alias as text. Raises ValueError
    for values a ClearToken cannot carry (over 127 characters, timestamp 0 or >= 2**32).
    """
    clear = _h235().ClearToken
    value = {
        "tokenOID": PWD_CLEAR_TOKEN_OID,
        "timeStamp": timestamp,
        "password": _ucs2_plus_nul(password),
        "generalID": _ucs2_plus_nul(general_id),
    }
    try:
        encoded = clear.to_aper(value)
    except Exception as error:  # pycrate signals constraint violations many ways
        raise ValueError(f"cannot encode ClearToken: {error}") from error
    return hashlib.md5(encoded).digest()


def cat_challenge(random: int, password: str, timestamp: int) -> bytes:
    """The CAT challenge (H235AuthCAT): MD5 over the random as one octet, the password's
    octets (UTF-8), and the timestamp as a 32-bit big-endian integer."""
    stomach = bytes([random & 0xFF]) + password.encode()  # (BYTE)random, as OpenH323 casts
    return hashlib.md5(stomach + (timestamp & 0xFFFFFFFF).to_bytes(4, "big")).digest()


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
    if attribute == "crypto_tokens":
        return [_pwd_hash_to_asn1(t) for t in value]
    if attribute == "clear_tokens":
        return [_cat_to_asn1(t) for t in value]
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
