"""H.245 codec and session: round trips, real captures, two sessions talking (H.245 §8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.h323 import h225, h245, q931, tpkt
from vos3k.h323.h225 import Codec, Direction, FastStartChannel, Malformed, TransportAddress

from .h323_captures import TSHARK, tcp_streams, tshark_fields, write_pcap

A = TransportAddress("10.0.0.1", 5000)
A_RTCP = TransportAddress("10.0.0.1", 5001)
B = TransportAddress("10.0.0.2", 6000)

BUILT = [
    h245.TerminalCapabilitySet(
        1, (h245.Capability(Codec.G711_ALAW, 20), h245.Capability(Codec.G723_1, 1, True))
    ),
    h245.TerminalCapabilitySet(7, (), user_input=False),
    h245.TerminalCapabilitySetAck(1),
    h245.TerminalCapabilitySetReject(2),
    h245.MasterSlaveDetermination(60, 1234),
    h245.MasterSlaveDeterminationAck(True),
    h245.MasterSlaveDeterminationAck(False),
    h245.MasterSlaveDeterminationReject(),
    h245.OpenLogicalChannel(
        FastStartChannel(1, Direction.TRANSMIT, Codec.G729, 2, 1, None, A_RTCP)
    ),
    h245.OpenLogicalChannelAck(1, A, A_RTCP),
    h245.OpenLogicalChannelReject(3),
    h245.CloseLogicalChannel(2),
    h245.CloseLogicalChannelAck(2),
    h245.EndSessionCommand(),
    h245.UserInput(alphanumeric="12"),
    h245.UserInput(signal="#", duration_ms=80),
    h245.RoundTripDelayRequest(3),
    h245.RoundTripDelayResponse(3),
]


@pytest.mark.parametrize("message", BUILT, ids=[type(m).__name__ for m in BUILT])
def test_round_trip(message):
    assert h245.parse(h245.encode(message)) == message


@given(st.binary(max_size=64))
@settings(max_examples=150, deadline=None)
def test_parse_never_raises(data):
    result = h245.parse(data)
    assert isinstance(result, Malformed | h245.OtherMessage) or type(result) in {
        type(m) for m in BUILT
    } | {h245.OpenLogicalChannel}


def _capture_h245() -> list[bytes]:
    """Every H.245 PDU in the captures: separate TCP (nDPI 1232) and tunnelled (ooh323c)."""
    out: list[bytes] = []
    for segments in tcp_streams("ndpi-h323.pcap", 1232).values():
        reassembler = tpkt.TpktReassembler()
        for _frame, payload in segments:
            out += [p for p in reassembler.feed(payload) if isinstance(p, bytes)]
    for segments in tcp_streams("ooh323c-loopback-faststart-tunnel.pcapng", 1720).values():
        reassembler = tpkt.TpktReassembler()
        for _frame, payload in segments:
            for packet in reassembler.feed(payload):
                info = h225.parse_user_information(q931.parse(packet).user_user)
                out += list(info.h245_control)
    return out


CAPTURED = _capture_h245()


def test_captured_h245_decodes():
    kinds = [type(h245.parse(pdu)).__name__ for pdu in CAPTURED]
    assert "Malformed" not in kinds
    for kind in (
        "TerminalCapabilitySet",
        "MasterSlaveDetermination",
        "MasterSlaveDeterminationAck",
        "OpenLogicalChannel",
        "OpenLogicalChannelAck",
    ):
        assert kind in kinds
    tcs = [m for m in map(h245.parse, CAPTURED) if isinstance(m, h245.TerminalCapabilitySet)]
    assert {str(c.codec) for t in tcs for c in t.capabilities} >= {"g711Alaw64k", "g711Ulaw64k"}


@pytest.mark.parametrize(
    ("local", "remote", "master"),
    [
        ((60, 5), (50, 9), True),  # H.245 §C.2: larger terminalType wins
        ((50, 5), (60, 1), False),
        ((60, 5), (60, 9), False),  # remote number larger modulo 2^24
        ((60, 9), (60, 5), True),
        ((60, 1), (60, (1 << 24) - 1), True),  # wrap: remote is "smaller"
        ((60, 5), (60, 5), None),  # identical: indeterminate
    ],
    ids=["type-wins", "type-loses", "number-loses", "number-wins", "wraps", "identical"],
)
def test_master_slave(local, remote, master):
    assert (
        h245.master_slave(
            h245.MasterSlaveDetermination(*local), h245.MasterSlaveDetermination(*remote)
        )
        is master
    )


def _run(sessions, first):
    """Deliver Sends between two sessions until quiet; return every non-Send effect."""
    queue = [(0, e) for e in first]
    seen: list[list] = [[], []]
    while queue:
        sender, effect = queue.pop(0)
        if isinstance(effect, h245.Send):
            receiver = 1 - sender
            wire = h245.parse(h245.encode(effect.message))  # through the real codec
            for out in sessions[receiver].handle(h245.Received(wire), 1000):
                queue.append((receiver, out))
        else:
            seen[sender].append(effect)
    return seen


def test_two_sessions_open_media_both_ways():
    ours = h245.H245Session(sdn=100)
    theirs = h245.H245Session(sdn=200, codecs=(Codec.G729, Codec.G711_ULAW))
    theirs.handle(h245.MediaKnown(B, (Codec.G729, Codec.G711_ULAW)), 0)
    first = ours.handle(h245.MediaKnown(A, (Codec.G711_ULAW, Codec.G729)), 0)
    assert first == []  # nothing goes out before the session starts
    seen = _run([ours, theirs], ours.handle(h245.Start(), 0))
    ups = [e for e in seen[0] if isinstance(e, h245.MediaUp)]
    assert ups == [h245.MediaUp(B, TransportAddress("10.0.0.2", 6001), Codec.G711_ULAW, 20)]
    assert next(e for e in seen[1] if isinstance(e, h245.MediaUp)).remote_rtp == A
    assert ours.master is False and theirs.master is True  # terminal types equal, 200 > 100
    assert h245.PeerChannel(Codec.G729, 2) in seen[0]


def test_peer_olc_waits_for_local_media():
    session = h245.H245Session(sdn=1)
    olc = h245.OpenLogicalChannel(FastStartChannel(9, Direction.TRANSMIT, Codec.G711_ALAW, 20))
    assert session.handle(h245.Received(olc), 0) == []
    effects = session.handle(h245.MediaKnown(A, (Codec.G711_ALAW,)), 0)
    assert h245.Send(h245.OpenLogicalChannelAck(9, A, A_RTCP)) in effects


def test_olc_reject_falls_back_then_ends():
    session = h245.H245Session(sdn=1, codecs=(Codec.G729, Codec.G711_ALAW))
    session.handle(h245.MediaKnown(A, (Codec.G729, Codec.G711_ALAW)), 0)
    session.handle(h245.Start(), 0)
    caps = (h245.Capability(Codec.G729, 2), h245.Capability(Codec.G711_ALAW, 20))
    session.handle(h245.Received(h245.TerminalCapabilitySet(1, caps)), 0)
    session.handle(h245.Received(h245.MasterSlaveDeterminationAck(True)), 0)
    (send,) = session.handle(h245.Received(h245.TerminalCapabilitySetAck(1)), 0)
    assert send.message.channel.codec is Codec.G729
    (retry,) = session.handle(h245.Received(h245.OpenLogicalChannelReject(1)), 0)
    assert retry.message.channel.codec is Codec.G711_ALAW
    effects = session.handle(h245.Received(h245.OpenLogicalChannelReject(2)), 0)
    assert effects == [h245.Send(h245.EndSessionCommand()), h245.SessionEnded("no common codec")]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (h245.UserInput(signal="5", duration_ms=100), [h245.DigitReceived("5", 100)]),
        (
            h245.UserInput(alphanumeric="*1"),
            [h245.DigitReceived("*", None), h245.DigitReceived("1", None)],
        ),
        (h245.RoundTripDelayRequest(4), [h245.Send(h245.RoundTripDelayResponse(4))]),
        (h245.CloseLogicalChannel(3), [h245.Send(h245.CloseLogicalChannelAck(3))]),
        (h245.EndSessionCommand(), [h245.SessionEnded("endSessionCommand")]),
        (h245.OtherMessage("request/requestMode"), []),
    ],
    ids=["uii-signal", "uii-alphanumeric", "rtd", "clc", "end-session", "other"],
)
def test_single_messages(message, expected):
    assert h245.H245Session(sdn=1).handle(h245.Received(message), 0) == expected


def test_send_digit_and_end():
    session = h245.H245Session(sdn=1)
    session.handle(h245.Start(), 0)
    assert session.handle(h245.SendDigit("7", 120), 0) == [
        h245.Send(h245.UserInput(signal="7", duration_ms=120))
    ]
    assert session.handle(h245.End(), 0) == [h245.Send(h245.EndSessionCommand())]
    dropped = session.handle(h245.Received(h245.TerminalCapabilitySetAck(1)), 0)
    assert dropped == [h245.Dropped(h245.Input.TCS_ACK, h245.State.ENDED)]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_built_h245_decodes_in_tshark(tmp_path):
    path = tmp_path / "built-h245.pcap"
    # Port 1720 with Facility-tunnelled H.245 is what tshark follows without options.
    frames = []
    for number, message in enumerate(BUILT):
        info = h225.UserInformation(
            h225.Body.FACILITY,
            h245_tunnelling=True,
            h245_control=(h245.encode(message),),
            facility_reason="undefinedReason",
        )
        q = q931.Message(q931.MessageType.FACILITY, 10 + number, True,
                         (q931.UserUser(h225.encode_user_information(info)),))  # fmt: skip
        frames.append(tpkt.encode(q931.encode(q)))
    write_pcap(path, frames, port=1720)
    fields = ["_ws.malformed", "_ws.expert.severity", "h245.pdu_type"]
    rows = tshark_fields(path, fields)
    assert len(rows) == len(BUILT)
    for message, row in zip(BUILT, rows, strict=True):
        assert row[0] == "" and row[1] == "", (message, row)
        assert row[2] != "", (message, row)
