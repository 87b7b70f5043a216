"""Q.931 codec (H.225.0 §7 profile): IEs, message types, captures, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.h323 import q931
from vos3k.h323.q931 import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    CallState,
    Cause,
    Display,
    Malformed,
    Message,
    MessageType,
    ProgressIndicator,
    UnknownIE,
    UserUser,
)
from vos3k.h323.tpkt import TpktReassembler

from .h323_captures import tcp_streams

IE_VECTORS = [
    pytest.param(BearerCapability(), "04038090a5", id="q931-4.5.5-speech-64k-g711a"),
    pytest.param(
        BearerCapability(
            transfer_capability=0x08, transfer_rate=0x18, rate_multiplier=2, layer1_protocol=None
        ),
        "0403889882",
        id="q931-4.5.5-multirate",
    ),
    pytest.param(Cause(16), "08028090", id="q850-16-normal-clearing"),
    pytest.param(
        Cause(34, location=2, recommendation=0, diagnostics=b"\x01"),
        "08040280a201",
        id="q931-4.5.12-octet-3a-diagnostics",
    ),
    pytest.param(
        CalledPartyNumber("12345", type_of_number=1, numbering_plan=1),
        "7006913132333435",
        id="q931-4.5.8-called",
    ),
    pytest.param(
        CallingPartyNumber("99", presentation=1, screening=3),
        "6c0401a33939",
        id="q931-4.5.10-calling-3a",
    ),
    pytest.param(ProgressIndicator(8), "1e028088", id="q931-4.5.23-inband-available"),
    pytest.param(CallState(10), "14010a", id="q931-4.5.7-active"),
    pytest.param(Display("vos3k"), "2805766f73336b", id="q931-4.5.16-display"),
    pytest.param(UserUser(b"\x20\x80"), "7e0003052080", id="h225-7.2.2.1-user-user-2-octet-len"),
    pytest.param(UnknownIE(0xA1), "a1", id="q931-4.5.1-single-octet"),
    pytest.param(UnknownIE(0x27, b"\x80"), "270180", id="unknown-kept"),
]


@pytest.mark.parametrize(("ie", "wire"), IE_VECTORS)
def test_ie_vectors(ie, wire):
    assert q931.encode_ie(ie).hex() == wire
    message = Message(MessageType.SETUP, 1, False, (ie,))
    encoded = q931.encode(message)
    assert encoded == bytes.fromhex("0802000105" + wire)
    assert q931.parse(encoded) == message


@pytest.mark.parametrize("message_type", list(MessageType), ids=lambda t: f"q931-4.4-{t.name}")
@pytest.mark.parametrize("from_destination", [False, True], ids=["flag0", "flag1"])
def test_every_message_type_round_trips(message_type, from_destination):
    message = Message(
        message_type, 0x1234, from_destination, (Cause(16), Display("x"), UserUser(b"uu"))
    )
    encoded = q931.encode(message)
    assert encoded[2] >> 7 == from_destination  # Q.931 §4.3 call reference flag
    assert q931.parse(encoded) == message


def test_unknown_message_type_parses_as_int():
    parsed = q931.parse(bytes.fromhex("080200014f"))
    assert parsed == Message(0x4F, 1, False, ())
    assert not isinstance(parsed.message_type, MessageType)


def test_find_and_user_user():
    message = Message(MessageType.SETUP, 1, ies=(Display("a"), UserUser(b"pdu")))
    assert message.find(Display) == Display("a")
    assert message.find(Cause) is None
    assert message.user_user == b"pdu"
    assert Message(MessageType.SETUP, 1, ies=(UserUser(b"p", 4),)).user_user is None


@pytest.mark.parametrize(
    ("hex_data", "reason", "call_reference"),
    [
        pytest.param("", "shorter than a Q.931 header", None, id="empty"),
        pytest.param("0802", "shorter than a Q.931 header", None, id="truncated-header"),
        pytest.param("090200017b", "protocol discriminator 0x09", None, id="q931-4.2-wrong-pd"),
        pytest.param("0803000001", "call reference length", None, id="q931-4.3-cr-too-long"),
        pytest.param("080200", "truncated call reference", None, id="truncated-cr"),
        pytest.param("08020001", "truncated call reference", None, id="no-message-type"),
        pytest.param("0802000185", "bit 8 set", 1, id="q931-4.4-type-bit8"),
        pytest.param("08020001057e00", "truncated length", 1, id="uu-length-cut"),
        pytest.param("0802000105280541", "runs past the end", 1, id="ie-overrun"),
        pytest.param("08020001057e0010050000", "runs past the end", 1, id="uu-overrun"),
    ],
)
def test_malformed_is_a_value(hex_data, reason, call_reference):
    parsed = q931.parse(bytes.fromhex(hex_data))
    assert isinstance(parsed, Malformed)
    assert reason in parsed.reason
    assert parsed.call_reference == call_reference


def test_bad_ie_content_is_kept_verbatim():
    # Q.931 §5.8.7.2: a content error does not lose the rest of the message.
    data = bytes.fromhex("080200010508001e01806c02ff802801ff")
    parsed = q931.parse(data)
    assert parsed.ies == (
        UnknownIE(0x08, b""),
        UnknownIE(0x1E, b"\x80"),
        UnknownIE(0x6C, b"\xff\x80"),
        Display("\xff"),
    )
    assert q931.encode(parsed) == data


def test_encode_rejects_our_own_mistakes():
    with pytest.raises(ValueError):
        q931.encode(Message(MessageType.SETUP, 0x8000))
    with pytest.raises(ValueError):
        q931.encode_ie(UnknownIE(0xA1, b"x"))
    with pytest.raises(ValueError):
        q931.encode_ie(Display("x" * 256))
    with pytest.raises(ValueError):
        Cause(128)


@given(st.binary(max_size=200))
def test_parse_never_raises(data):
    assert isinstance(q931.parse(data), Message | Malformed)


_ies = st.one_of(
    st.builds(Cause, value=st.integers(0, 127), location=st.integers(0, 15)),
    st.builds(
        CalledPartyNumber,
        digits=st.text("0123456789*#", max_size=20),
        type_of_number=st.integers(0, 7),
        numbering_plan=st.integers(0, 15),
    ),
    st.builds(
        CallingPartyNumber,
        digits=st.text("0123456789", max_size=20),
        presentation=st.integers(0, 3),
        screening=st.integers(0, 3),
    ),
    st.builds(ProgressIndicator, description=st.integers(0, 127)),
    st.builds(Display, text=st.text(st.characters(max_codepoint=255), max_size=80)),
    st.builds(UserUser, data=st.binary(max_size=600)),
    st.builds(BearerCapability, layer1_protocol=st.one_of(st.none(), st.integers(0, 31))),
    st.builds(UnknownIE, ie_id=st.integers(0x80, 0xFF)),
)


@given(
    message_type=st.sampled_from(list(MessageType)),
    call_reference=st.integers(0, 0x7FFF),
    flag=st.booleans(),
    ies=st.lists(_ies, max_size=6),
)
def test_round_trip(message_type, call_reference, flag, ies):
    message = Message(message_type, call_reference, flag, tuple(ies))
    assert q931.parse(q931.encode(message)) == message


CAPTURE_FLOWS = [
    pytest.param(
        "ndpi-h323.pcap",
        [
            (6, "SETUP", False), (10, "CALL_PROCEEDING", True), (14, "ALERTING", True),
            (18, "CONNECT", True), (47, "SETUP", False), (50, "ALERTING", True),
            (65, "SETUP", False), (66, "RELEASE_COMPLETE", True),
        ],
        id="ndpi-openh323-abilis-gnugk",
    ),
    pytest.param(
        "ooh323c-loopback-faststart-tunnel.pcapng",
        [
            (4, "SETUP", False), (6, "CALL_PROCEEDING", True), (8, "ALERTING", True),
            (10, "CONNECT", True), (12, "FACILITY", False), (13, "FACILITY", True),
            (14, "FACILITY", False), (15, "FACILITY", True), (16, "FACILITY", False),
            (17, "FACILITY", True), (18, "FACILITY", False), (20, "RELEASE_COMPLETE", False),
        ],
        id="ooh323c-faststart-tunnel",
    ),
    pytest.param(
        "ooh323c-loopback-slowstart-h245-peercrash.pcapng",
        [(4, "SETUP", False), (6, "CALL_PROCEEDING", True), (8, "ALERTING", True),
         (10, "CONNECT", True)],
        id="ooh323c-slowstart",
    ),
]  # fmt: skip


def capture_messages(name: str) -> list[tuple[int, bytes]]:
    """(frame, Q.931 bytes) of every TPKT on port 1720, reassembled per direction."""
    out = []
    for segments in tcp_streams(name, 1720).values():
        reassembler = TpktReassembler()
        for frame, payload in segments:
            for item in reassembler.feed(payload):
                assert isinstance(item, bytes), item
                out.append((frame, item))
    return sorted(out)


@pytest.mark.parametrize(("capture", "expected"), CAPTURE_FLOWS)
def test_captures_decode(capture, expected):
    got = []
    for frame, data in capture_messages(capture):
        message = q931.parse(data)
        assert isinstance(message, Message), (frame, message)
        assert message.user_user is not None
        got.append((frame, message.message_type.name, message.from_destination))
    assert got == expected


def test_capture_ies():
    messages = dict(capture_messages("ndpi-h323.pcap"))
    # Frame 65 (GnuGk call): numbers and bearer capability decode though its UUIE is bad.
    setup = q931.parse(messages[65])
    assert setup.find(CalledPartyNumber).digits.isdigit()
    assert setup.find(CallingPartyNumber) is not None
    # The Alerting split over frames 48 and 50 needed TPKT reassembly.
    assert q931.parse(messages[50]).message_type is MessageType.ALERTING
    release = dict(capture_messages("ooh323c-loopback-faststart-tunnel.pcapng"))[20]
    assert q931.parse(release).find(Cause).value == 16
