"""H.225.0 RAS codec (§7.7): captures, every message a gatekeeper exchanges, bad input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.h323 import ras
from vos3k.h323.h225 import Alias, AliasKind, TransportAddress
from vos3k.h323.ras import Malformed, RasKind, RasMessage

from .h323_captures import TSHARK, segments, tshark_fields, write_pcap

GUID = bytes(range(16))
CONF = bytes(range(16, 32))
EP = TransportAddress("192.0.2.20", 1719)
SIGNAL = TransportAddress("192.0.2.20", 1720)
GK = TransportAddress("192.0.2.1", 1719)
PHONE = (Alias(AliasKind.DIALED_DIGITS, "8001"), Alias(AliasKind.H323_ID, "alice"))
MD5_TOKEN = ras.PwdHash(PHONE[0], 1700000000, bytes.fromhex("00112233445566778899aabbccddeeff"))
CAT_TOKEN = ras.CatToken("8001\x00", 1700000000, 200, bytes(range(16)))

# SPEC §11's gatekeeper exchanges, one row per message vos3k receives or sends.
BUILT = [
    RasMessage(RasKind.GRQ, 1, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               aliases=PHONE, gatekeeper_identifier="vos3k"),
    RasMessage(RasKind.GCF, 1, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(GK,),
               gatekeeper_identifier="vos3k"),
    RasMessage(RasKind.GRJ, 1, protocol_identifier=(0, 0, 8, 2250, 0, 4),
               reason="terminalExcluded"),
    RasMessage(RasKind.RRQ, 2, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               call_signal_addresses=(SIGNAL,), aliases=PHONE, time_to_live=300,
               discovery_complete=True),
    RasMessage(RasKind.RRQ, 3, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               call_signal_addresses=(SIGNAL,), keep_alive=True, endpoint_identifier="ep-1",
               gatekeeper_identifier="vos3k", time_to_live=300),
    RasMessage(RasKind.RCF, 2, protocol_identifier=(0, 0, 8, 2250, 0, 4),
               call_signal_addresses=(TransportAddress("192.0.2.1", 1720),), aliases=PHONE,
               gatekeeper_identifier="vos3k", endpoint_identifier="ep-1", time_to_live=300),
    RasMessage(RasKind.RRJ, 2, protocol_identifier=(0, 0, 8, 2250, 0, 4),
               reason="securityDenial"),
    RasMessage(RasKind.URQ, 4, call_signal_addresses=(SIGNAL,), endpoint_identifier="ep-1",
               aliases=PHONE, reason="maintenance"),
    RasMessage(RasKind.UCF, 4),
    RasMessage(RasKind.URJ, 4, reason="notCurrentlyRegistered"),
    RasMessage(RasKind.ARQ, 5, endpoint_identifier="ep-1", aliases=PHONE,
               destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123456"),),
               source_call_signal_address=SIGNAL, bandwidth=1280, call_reference=77,
               conference_id=CONF, call_identifier=GUID, call_model="gatekeeperRouted"),
    RasMessage(RasKind.ARQ, 6, endpoint_identifier="ep-1", aliases=PHONE, answer_call=True,
               bandwidth=640, call_reference=78, conference_id=CONF, call_identifier=GUID),
    RasMessage(RasKind.ACF, 5, bandwidth=1280, call_model="gatekeeperRouted",
               destination_call_signal_address=TransportAddress("192.0.2.1", 1720)),
    RasMessage(RasKind.ARJ, 5, reason="calledPartyNotRegistered"),
    RasMessage(RasKind.ARJ, 5, reason="resourceUnavailable"),
    RasMessage(RasKind.DRQ, 7, endpoint_identifier="ep-1", conference_id=CONF, call_reference=77,
               reason="normalDrop", call_identifier=GUID, answer_call=False),
    RasMessage(RasKind.DCF, 7),
    RasMessage(RasKind.DRJ, 7, reason="notRegistered"),
    RasMessage(RasKind.IRQ, 8, call_reference=0, reply_address=GK, call_identifier=bytes(16)),
    RasMessage(RasKind.IRR, 8, endpoint_identifier="ep-1", ras_addresses=(EP,),
               call_signal_addresses=(SIGNAL,), aliases=PHONE),
    RasMessage(RasKind.BRQ, 9, endpoint_identifier="ep-1", conference_id=CONF, call_reference=77,
               bandwidth=1280, call_identifier=GUID),
    RasMessage(RasKind.BCF, 9, bandwidth=1280),
    # H.235 password tokens (H.225.0 §7.6 cryptoTokens, H.235.0 ClearToken in tokens).
    RasMessage(RasKind.RRQ, 10, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               call_signal_addresses=(SIGNAL,), aliases=PHONE, crypto_tokens=(MD5_TOKEN,)),
    RasMessage(RasKind.RRQ, 11, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               call_signal_addresses=(SIGNAL,), aliases=PHONE, clear_tokens=(CAT_TOKEN,)),
    RasMessage(RasKind.GRQ, 12, protocol_identifier=(0, 0, 8, 2250, 0, 4), ras_addresses=(EP,),
               aliases=PHONE, crypto_tokens=(MD5_TOKEN,)),
    RasMessage(RasKind.ARQ, 13, endpoint_identifier="ep-1", aliases=PHONE, bandwidth=1280,
               destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123456"),),
               call_reference=79, conference_id=CONF, call_identifier=GUID,
               crypto_tokens=(MD5_TOKEN,), clear_tokens=(CAT_TOKEN,)),
]  # fmt: skip


@pytest.mark.parametrize(
    "message", BUILT, ids=lambda m: f"h225-7.7-{m.kind.name}{'-keepalive' * m.keep_alive}"
)
def test_build_then_parse_is_equal(message):
    assert ras.parse(ras.encode(message)) == message


def test_encode_refuses_fields_a_kind_lacks():
    with pytest.raises(ValueError, match="no time_to_live"):
        ras.encode(RasMessage(RasKind.DCF, 1, time_to_live=5))
    with pytest.raises(ValueError, match="exactly one"):
        ras.encode(RasMessage(RasKind.GCF, 1, ras_addresses=(GK, EP)))
    with pytest.raises(ValueError, match="cannot encode"):
        ras.encode(RasMessage(RasKind.GRQ, 1))  # rasAddress is mandatory
    with pytest.raises(ValueError, match="cannot encode"):
        ras.encode(RasMessage(RasKind.GRJ, 1, reason="noSuchReason"))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff" * 20, id="per-garbage"),
        pytest.param(ras.encode(BUILT[3])[:12], id="truncated-rrq"),
    ],
)
def test_bad_per_is_a_value(data):
    assert isinstance(ras.parse(data), Malformed)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_parse_never_raises(data):
    assert isinstance(ras.parse(data), RasMessage | Malformed)


def _capture() -> dict[int, RasMessage]:
    return {
        s.frame: ras.parse(s.payload)
        for s in segments("ndpi-h323.pcap")
        if s.protocol == "udp" and 1719 in (s.src[1], s.dst[1])
    }


def test_every_capture_ras_message_decodes():
    kinds = {frame: m.kind.name for frame, m in _capture().items()}
    assert kinds == {
        59: "GRQ", 60: "GCF", 61: "RRQ", 62: "RCF", 63: "ARQ", 64: "ACF", 67: "IRQ",
        68: "IRQ", 69: "DRQ", 70: "DRQ", 71: "RRQ", 72: "RCF", 73: "RRQ", 74: "RCF", 75: "RRQ",
    }  # fmt: skip


def test_capture_fields():
    got = _capture()
    # Frame 59 is flagged malformed by Wireshark; pycrate (and so vos3k) reads it.
    assert got[59].aliases == (Alias(AliasKind.DIALED_DIGITS, "5295672"),)
    assert got[59].ras_addresses == (TransportAddress("17.2.0.124", 2034),)
    assert got[60].gatekeeper_identifier == "OpenH323 Gatekeeper on mfottekin"
    assert got[61].discovery_complete and got[61].call_signal_addresses == (
        TransportAddress("17.2.0.124", 1720),
    )
    assert (got[62].time_to_live, got[62].endpoint_identifier) == (3600, "474a74c8:274")
    arq = got[63]
    assert (arq.seq, arq.call_reference, arq.bandwidth) == (3, 1, 200000)
    assert arq.destination_call_signal_address == TransportAddress("17.2.0.122", 1720)
    assert (got[64].call_model, got[64].bandwidth) == ("direct", 2560)
    assert got[67].call_identifier == arq.call_identifier
    assert (got[69].reason, got[69].conference_id) == ("forcedDrop", arq.conference_id)
    # Tandberg lightweight RRQ (H.225.0 §7.9.1 keepAlive) and GK with 3 alternates.
    assert got[71].keep_alive and got[71].endpoint_identifier.endswith("_17")
    assert got[71].aliases == (
        Alias(AliasKind.H323_ID, "20203@am.sol"),
        Alias(AliasKind.DIALED_DIGITS, "2098"),
    )
    assert (got[72].time_to_live, got[72].alternate_gatekeepers) == (60, 3)
    assert got[72].gatekeeper_identifier == "am-vcs-0"


# ---------------------------------------------------------------- H.235 password tokens

# The ClearToken H323Plus's H235AuthSimpleMD5 hashes, written out from X.691 (aligned PER)
# by hand, field by field, so pycrate's encoder is checked and not trusted:
#   61 00       extension bit 0; optional-field bits timeStamp=1 password=1 dhkey=0
#               challenge=0 random=0 certificate=0 generalID=1 nonStandard=0; pad
#   01 00       tokenOID 0.0: length 1, content 0*40+0
#   c0 ...      timeStamp INTEGER (1..4294967295): octet count-1 in 2 bits, pad, then
#               (value - 1) in that many octets
#   0c ...      password BMPString (SIZE (1..128)): length-1 in 7 bits, pad, UCS-2
#               characters, OpenH323's trailing NUL included
#   08 ...      generalID BMPString (SIZE (1..128)): likewise
CLEAR_TOKEN_VECTORS = [
    ("2001", "secret", 1700000000,
     "6100" "0100" "c06553f0ff"
     "0c" "0073006500630072006500740000"
     "08" "00320030003000310000"),
    ("alice", "pw", 256,
     "6100" "0100" "00ff"
     "04" "007000770000"
     "0a" "0061006c0069006300650000"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("general_id", "password", "timestamp", "clear_token"),
    CLEAR_TOKEN_VECTORS,
    ids=["h235-md5-dialled-digits", "h235-md5-h323-id-one-octet-timestamp"],
)
def test_pwd_hash_is_md5_of_the_clear_token_per(general_id, password, timestamp, clear_token):
    expected = hashlib.md5(bytes.fromhex(clear_token)).digest()
    assert ras.pwd_hash_digest(general_id, password, timestamp) == expected


def test_pwd_hash_known_vector():
    # Pinned: MD5 of the first hand-encoded ClearToken above (alias 2001, "secret").
    digest = ras.pwd_hash_digest("2001", "secret", 1700000000)
    assert digest.hex() == "b3be953eae02dc8a210874bd371c954b"
    assert ras.pwd_hash_digest("2001", "secreT", 1700000000) != digest
    assert ras.pwd_hash_digest("2001", "secret", 1700000001) != digest


@pytest.mark.parametrize(
    ("random", "octet"), [(7, 7), (255, 255), (-1, 255), (-127, 129)], ids=lambda v: str(v)
)
def test_cat_challenge_is_md5_of_random_password_timestamp(random, octet):
    # H235AuthCAT: one octet (BYTE)random, the password, the timestamp big-endian.
    stomach = bytes([octet]) + b"secret" + bytes.fromhex("6553f100")
    assert ras.cat_challenge(random, "secret", 1700000000) == hashlib.md5(stomach).digest()


def test_pwd_hash_refuses_what_a_clear_token_cannot_carry():
    with pytest.raises(ValueError, match="ClearToken"):
        ras.pwd_hash_digest("x" * 200, "pw", 1)
    with pytest.raises(ValueError, match="ClearToken"):
        ras.pwd_hash_digest("2001", "pw", 0)  # TimeStamp is INTEGER (1..4294967295)


def test_other_crypto_tokens_are_skipped():
    # A cryptoGKPwdHash (the gatekeeper's own kind) is not an endpoint password token.
    body = ras.encode(BUILT[-4])
    pdu = ras.asn1().h225.RasMessage
    pdu.from_aper(body)
    kind, rrq = pdu.get_val()
    rrq["cryptoTokens"].append(("cryptoGKPwdHash", {
        "gatekeeperId": "gk", "timeStamp": 5,
        "token": {"algorithmOID": ras.MD5_OID, "paramS": {}, "hash": (1, 128)},
    }))  # fmt: skip
    rrq["tokens"] = [{"tokenOID": (0, 0), "timeStamp": 5}]  # not a CAT token
    parsed = ras.parse(pdu.to_aper((kind, rrq)))
    assert parsed.crypto_tokens == (MD5_TOKEN,)
    assert parsed.clear_tokens == ()


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
def test_tokens_decode_in_tshark(tmp_path):
    path = tmp_path / "tokens.pcap"
    write_pcap(path, [ras.encode(m) for m in BUILT[-4:]], port=1719, udp=True)
    fields = ["_ws.malformed", "h235.algorithmOID", "h235.hash", "h235.tokenOID",
              "h235.generalID", "h235.random", "h235.challenge"]  # fmt: skip
    rows = [dict(zip(fields, row, strict=True)) for row in tshark_fields(path, fields)]
    assert [r["_ws.malformed"] for r in rows] == ["", "", "", ""]
    md5 = {"h235.algorithmOID": "1.2.840.113549.2.5", "h235.hash": MD5_TOKEN.digest.hex()}
    cat = {"h235.tokenOID": "1.2.840.113548.10.1.2.1", "h235.generalID": "8001",
           "h235.random": "200", "h235.challenge": bytes(range(16)).hex()}  # fmt: skip
    for row, wanted in zip(rows, [md5, cat, md5, md5 | cat], strict=True):
        for name in fields[1:]:
            assert row[name] == wanted.get(name, ""), (name, row)
