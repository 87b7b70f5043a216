"""H.225.0 RAS codec (§7.7): captures, every message a gatekeeper exchanges, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.h323 import ras
from vos3k.h323.h225 import Alias, AliasKind, TransportAddress
from vos3k.h323.ras import Malformed, RasKind, RasMessage

from .h323_captures import segments

GUID = bytes(range(16))
CONF = bytes(range(16, 32))
EP = TransportAddress("192.0.2.20", 1719)
SIGNAL = TransportAddress("192.0.2.20", 1720)
GK = TransportAddress("192.0.2.1", 1719)
PHONE = (Alias(AliasKind.DIALED_DIGITS, "8001"), Alias(AliasKind.H323_ID, "alice"))

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
