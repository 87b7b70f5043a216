"""H.225.0 UUIE and fast-start OLC codec: captures, round trips, pycrate's Alerting fault."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.h323 import h225, q931
from vos3k.h323.h225 import (
    Alias,
    AliasKind,
    Body,
    Codec,
    Direction,
    FastStartChannel,
    Malformed,
    TransportAddress,
    UserInformation,
)

from .h323_captures import CAPTURES
from .test_q931 import capture_messages

GUID = bytes(range(16))
CONF = bytes(range(16, 32))
RTP = TransportAddress("192.0.2.10", 40000)
OFFER = h225.fast_start_offer(tuple(Codec), RTP)
# H.245 EndSessionCommand (disconnect), encoded by pycrate, to tunnel in h245Control.
END_SESSION = h225.asn1().h245.MultimediaSystemControlMessage.to_aper(
    ("command", ("endSessionCommand", ("disconnect", 0)))
)


def test_load_is_lazy_and_cached():
    modules = h225.asn1()
    assert h225.asn1() is modules  # loaded once
    assert hasattr(modules.h225, "H323_UserInformation")


# One message of each kind vos3k sends (SPEC §11); reused by the tshark test.
BUILT = [
    UserInformation(
        Body.SETUP,
        call_identifier=GUID,
        conference_id=CONF,
        source_aliases=(Alias(AliasKind.DIALED_DIGITS, "8613800138000"),
                        Alias(AliasKind.H323_ID, "vos3k")),
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123456"),),
        source_call_signal_address=TransportAddress("192.0.2.1", 1720),
        destination_call_signal_address=TransportAddress("198.51.100.7", 1720),
        fast_start=OFFER,
        h245_tunnelling=True,
        conference_goal="create",
    ),
    UserInformation(Body.CALL_PROCEEDING, call_identifier=GUID, h245_tunnelling=True),
    UserInformation(Body.ALERTING, call_identifier=GUID, h245_tunnelling=True),
    UserInformation(Body.ALERTING, call_identifier=GUID, fast_start=OFFER[:2]),
    UserInformation(Body.PROGRESS, call_identifier=GUID, fast_start=OFFER[2:4],
                    h245_address=TransportAddress("192.0.2.1", 30000)),
    UserInformation(Body.CONNECT, call_identifier=GUID, conference_id=CONF,
                    h245_address=TransportAddress("2001:db8::1", 30001), h245_tunnelling=True),
    UserInformation(Body.RELEASE_COMPLETE, call_identifier=GUID,
                    release_complete_reason="unreachableDestination"),
    UserInformation(Body.RELEASE_COMPLETE, call_identifier=GUID),
    UserInformation(Body.FACILITY, call_identifier=GUID, facility_reason="startH245",
                    h245_address=TransportAddress("192.0.2.1", 30002)),
    UserInformation(Body.FACILITY, call_identifier=GUID, facility_reason="undefinedReason",
                    h245_tunnelling=True, h245_control=(END_SESSION,)),
    UserInformation(Body.EMPTY, h245_tunnelling=True, h245_control=(END_SESSION,)),
    UserInformation(Body.INFORMATION, call_identifier=GUID),
    UserInformation(Body.STATUS, call_identifier=GUID),
    UserInformation(Body.NOTIFY, call_identifier=GUID),
    UserInformation(Body.CALL_PROCEEDING, call_identifier=GUID, fast_connect_refused=True),
]  # fmt: skip


@pytest.mark.parametrize("info", BUILT, ids=lambda i: f"h225-7.6-{i.body.value}")
def test_build_then_parse_is_equal(info):
    assert h225.parse_user_information(h225.encode_user_information(info)) == info


def test_alerting_with_call_identifier_pycrate_fault():
    """SPEC §11 pitfall: pycrate 0.8.1 put a stray zero octet after the extension bitmap
    (its open type was padded against the end of the root part, X.691 §19.7-19.9) when
    the root ends 1 bit past a boundary, as with a bare destinationInfo. The expected
    bytes were checked with tshark 4.0: 15-bit bitmap, one pad bit, then the 17-octet
    callIdentifier open type; unpatched pycrate emitted "...0e 86 00 00 11..."."""
    value = {
        "h323-uu-pdu": {
            "h323-message-body": (
                "alerting",
                {
                    "protocolIdentifier": h225.PROTOCOL_IDENTIFIER,
                    "destinationInfo": {"mc": False, "undefinedNode": False},
                    "callIdentifier": {"guid": GUID},
                    "multipleCalls": False,
                    "maintainConnection": False,
                },
            ),
            "h245Tunnelling": True,
        }
    }
    pdu = h225.asn1().h225.H323_UserInformation
    encoded = pdu.to_aper(value)
    assert encoded.hex() == ("2380060008914a0004000e86001100" + GUID.hex() + "0100010010800180")
    pdu.from_aper(encoded)  # pycrate's own decoder agrees with the fixed encoder
    assert pdu.get_val() == value
    info = h225.parse_user_information(encoded)
    assert (info.body, info.call_identifier) == (Body.ALERTING, GUID)


def test_patch_does_not_disturb_unaffected_layouts():
    # Connect's root ends octet-aligned (conferenceID), so it never hit the fault.
    info = UserInformation(Body.CONNECT, call_identifier=GUID, conference_id=CONF)
    encoded = h225.encode_user_information(info)
    assert encoded.count(GUID) == 1
    assert h225.parse_user_information(encoded) == info


def test_fields_a_body_lacks_are_refused():
    with pytest.raises(ValueError, match="no fast_start"):
        h225.encode_user_information(UserInformation(Body.RELEASE_COMPLETE, fast_start=(b"",)))
    with pytest.raises(ValueError, match="no source_aliases"):
        h225.encode_user_information(
            UserInformation(Body.CONNECT, source_aliases=(Alias(AliasKind.H323_ID, "x"),))
        )
    with pytest.raises(ValueError):
        h225.encode_user_information(UserInformation(Body.SETUP, call_identifier=b"short"))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x20", id="truncated"),
        pytest.param(b"\xff" * 40, id="per-garbage"),
        pytest.param(h225.encode_user_information(BUILT[0])[:30], id="truncated-setup"),
    ],
)
def test_bad_per_is_a_value(data):
    assert isinstance(h225.parse_user_information(data), Malformed)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_parse_never_raises(data):
    assert isinstance(h225.parse_user_information(data), UserInformation | Malformed)


CAPTURE_BODIES = [
    pytest.param("ndpi-h323.pcap", 6, Body.SETUP, id="openh323-setup"),
    pytest.param("ndpi-h323.pcap", 10, Body.CALL_PROCEEDING, id="310i-call-proceeding"),
    pytest.param("ndpi-h323.pcap", 14, Body.ALERTING, id="310i-alerting"),
    pytest.param("ndpi-h323.pcap", 18, Body.CONNECT, id="310i-connect"),
    pytest.param("ndpi-h323.pcap", 47, Body.SETUP, id="abilis-setup-v3"),
    pytest.param("ndpi-h323.pcap", 50, Body.ALERTING, id="abilis-alerting-reassembled"),
    pytest.param("ndpi-h323.pcap", 65, None, id="gnugk-setup-malformed-frame-65"),
    pytest.param("ndpi-h323.pcap", 66, Body.RELEASE_COMPLETE, id="gnugk-release-complete"),
] + [
    pytest.param(capture, frame, None, id=f"{capture.split('-')[2]}-frame-{frame}")
    for capture in ("ooh323c-loopback-faststart-tunnel.pcapng",
                    "ooh323c-loopback-slowstart-h245-peercrash.pcapng")
    for frame, _ in capture_messages(capture)
]  # fmt: skip


@pytest.mark.parametrize(("capture", "frame", "body"), CAPTURE_BODIES)
def test_capture_uuies(capture, frame, body):
    message = q931.parse(dict(capture_messages(capture))[frame])
    info = h225.parse_user_information(message.user_user)
    if frame == 65 and capture == "ndpi-h323.pcap":
        # Wireshark flags it too ("too long integer"); it must be a clean value.
        assert isinstance(info, Malformed)
        assert "H323-UserInformation" in info.reason
        return
    assert isinstance(info, UserInformation), info
    expected = (
        body
        or {
            q931.MessageType.SETUP: Body.SETUP,
            q931.MessageType.CALL_PROCEEDING: Body.CALL_PROCEEDING,
            q931.MessageType.ALERTING: Body.ALERTING,
            q931.MessageType.CONNECT: Body.CONNECT,
            q931.MessageType.FACILITY: Body.FACILITY,
            q931.MessageType.RELEASE_COMPLETE: Body.RELEASE_COMPLETE,
        }[message.message_type]
    )
    assert info.body is expected


def _info(capture: str, frame: int) -> UserInformation:
    message = q931.parse(dict(capture_messages(capture))[frame])
    return h225.parse_user_information(message.user_user)


def test_capture_fields():
    setup = _info("ndpi-h323.pcap", 6)
    assert setup.source_aliases == (Alias(AliasKind.H323_ID, "m.jemec"),)
    assert setup.fast_start == () and not setup.h245_tunnelling
    connect = _info("ndpi-h323.pcap", 18)
    assert connect.h245_address == TransportAddress("10.1.6.18", 1232)
    assert connect.call_identifier == setup.call_identifier

    tunnel = "ooh323c-loopback-faststart-tunnel.pcapng"
    setup = _info(tunnel, 4)
    assert setup.h245_tunnelling
    assert setup.destination_call_signal_address == TransportAddress("127.0.0.2", 1720)
    assert setup.source_call_signal_address == TransportAddress("127.0.0.3", 12030)
    assert [h225.parse_olc(o) for o in setup.fast_start] == [
        FastStartChannel(1001, Direction.RECEIVE, Codec.G711_ULAW, 240, 1,
                         TransportAddress("127.0.0.3", 14030),
                         TransportAddress("127.0.0.3", 14031)),
        FastStartChannel(1002, Direction.TRANSMIT, Codec.G711_ULAW, 30, 1, None,
                         TransportAddress("127.0.0.3", 14033)),
    ]  # fmt: skip
    connect = _info(tunnel, 10)
    assert h225.parse_olc(connect.fast_start[1]).media_channel == TransportAddress(
        "127.0.0.2", 14032
    )
    facility = _info(tunnel, 12)
    assert facility.body is Body.FACILITY and len(facility.h245_control) == 1
    assert _info(tunnel, 20).release_complete_reason == "undefinedReason"


CHANNELS = [
    FastStartChannel(1, Direction.RECEIVE, Codec.G711_ALAW, 20, 1, RTP,
                     TransportAddress("192.0.2.10", 40001)),
    FastStartChannel(2, Direction.TRANSMIT, Codec.G711_ULAW, 30, 1, None,
                     TransportAddress("192.0.2.10", 40001)),
    FastStartChannel(3, Direction.TRANSMIT, Codec.G729, 2, 1,
                     TransportAddress("2001:db8::5", 5004), None),
    FastStartChannel(4, Direction.RECEIVE, Codec.G723_1, 1, 1, RTP, None,
                     silence_suppression=True),
]  # fmt: skip


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: f"h245-olc-{c.codec.value}")
def test_olc_round_trip(channel):
    assert h225.parse_olc(h225.encode_olc(channel)) == channel


def test_fast_start_offer_shape():
    # H.323 §8.1.7.1: per codec a receive channel (our RTP+RTCP) and a transmit one.
    channels = [h225.parse_olc(o) for o in OFFER]
    assert [(c.codec, c.direction) for c in channels] == [
        (codec, direction) for codec in Codec
        for direction in (Direction.RECEIVE, Direction.TRANSMIT)
    ]  # fmt: skip
    assert [c.number for c in channels] == list(range(1, 9))
    assert all(c.media_control_channel == TransportAddress("192.0.2.10", 40001) for c in channels)
    assert [c.media_channel for c in channels[::2]] == [RTP] * 4
    assert [c.media_channel for c in channels[1::2]] == [None] * 4


@pytest.mark.parametrize(
    "data", [pytest.param(b"", id="empty"), pytest.param(b"\xff\x00\xff", id="garbage")]
)
def test_bad_olc_is_a_value(data):
    assert isinstance(h225.parse_olc(data), Malformed)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=60))
def test_parse_olc_never_raises(data):
    assert isinstance(h225.parse_olc(data), FastStartChannel | Malformed)


def test_captures_dir_exists():
    assert (CAPTURES / "SOURCES.md").is_file()
