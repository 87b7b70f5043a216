"""TPKT framing (RFC 1006 §6): reassembly across segmentation, limits, bad input."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.h323 import tpkt
from vos3k.h323.tpkt import TpktMalformed, TpktReassembler


def test_encode_header_counts_itself():
    assert tpkt.encode(b"\x08\x02") == b"\x03\x00\x00\x06\x08\x02"


def test_encode_refuses_oversize_payload():
    with pytest.raises(ValueError, match="exceeds"):
        tpkt.encode(bytes(0xFFFF - 3))
    assert len(tpkt.encode(bytes(0xFFFF - 4))) == 0xFFFF


@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_segmentation_yields_the_payloads(payloads, cuts):
    stream = b"".join(tpkt.encode(p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    reassembler = TpktReassembler()
    out = []
    for start, end in pairwise(points):
        out += reassembler.feed(stream[start:end])
    assert out == payloads
    assert reassembler.pending == 0


def test_byte_by_byte_holds_partial_packet():
    reassembler = TpktReassembler()
    frame = tpkt.encode(b"abc")
    for octet in frame[:-1]:
        assert reassembler.feed(bytes((octet,))) == []
    assert reassembler.pending == len(frame) - 1
    assert reassembler.feed(frame[-1:]) == [b"abc"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\x04\x00\x00\x08abcd", "version 4", id="rfc1006-6-version"),
        pytest.param(b"\x03\x00\x00\x03", "shorter than its own header", id="rfc1006-6-underflow"),
        pytest.param(b"\x03\x00\x10\x01", "exceeds the limit of 4096", id="size-limit"),
        pytest.param(b"GET / HTTP/1.1\r\n", "version 71", id="not-tpkt"),
    ],
)
def test_framing_errors_are_values_and_end_the_stream(data, reason):
    reassembler = TpktReassembler(max_size=4096)
    good = tpkt.encode(b"ok")
    out = reassembler.feed(good + data)
    assert out[0] == b"ok"
    assert len(out) == 2
    assert isinstance(out[1], TpktMalformed)
    assert reason in out[1].reason
    assert reassembler.failed == out[1]
    assert reassembler.feed(good) == []  # no resynchronisation after a framing error


def test_header_only_packet_is_a_keepalive():
    # ndpi-h323-overflow.pcap: "03 00 00 04", a TPKT with no payload.
    reassembler = TpktReassembler()
    assert reassembler.feed(b"\x03\x00\x00\x04" + tpkt.encode(b"x")) == [b"x"]
    assert reassembler.keepalives == 1


def test_max_size_must_leave_room_for_payload():
    with pytest.raises(ValueError):
        TpktReassembler(max_size=4)


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_garbage_yields_payloads_or_one_error(chunks):
    reassembler = TpktReassembler(max_size=512)
    out = []
    for chunk in chunks:
        out += reassembler.feed(chunk)
    assert all(isinstance(item, bytes | TpktMalformed) for item in out)
    errors = [item for item in out if isinstance(item, TpktMalformed)]
    assert len(errors) <= 1
    if errors:
        assert out[-1] is errors[0]
