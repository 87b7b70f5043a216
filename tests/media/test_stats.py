"""RTP statistics against hand-computed RFC 3550 A.1/A.3/A.8 examples."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.media.stats import StreamStats


def rtp(seq, ts=0, ssrc=0x1234, pt=0, payload=b"\xd5" * 160):
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


def feed(seqs, ssrc=0x1234):
    stats = StreamStats()
    for i, seq in enumerate(seqs):
        stats.packet(rtp(seq, ts=i * 160, ssrc=ssrc), arrival_us=i * 20_000)
    return stats


@pytest.mark.parametrize(
    ("seqs", "expected", "received", "lost"),
    [
        # A.1: the first packet is on probation; the source is valid from the second.
        pytest.param(range(100, 110), 9, 9, 0, id="rfc3550-A1-probation-in-order"),
        pytest.param([100, 101, 102, 104, 105], 5, 4, 1, id="rfc3550-A3-one-lost"),
        pytest.param([65533, 65534, 65535, 0, 1, 3], 6, 5, 1, id="rfc3550-A1-seq-wrap"),
        pytest.param([10, 11, 13, 12, 14], 4, 4, 0, id="rfc3550-A1-reordered"),
        pytest.param([10, 11, 12, 12, 13], 3, 4, -1, id="rfc3550-A3-duplicate-negative"),
        pytest.param([10, 11, 12, 5000, 5001, 5002], 2, 2, 0, id="rfc3550-A1-restart-resync"),
        pytest.param([10, 11, 12, 5000, 13], 3, 3, 0, id="rfc3550-A1-stray-jump-ignored"),
        pytest.param([10, 12, 13], 1, 1, 0, id="rfc3550-A1-probation-restarts"),
        pytest.param([10], 0, 0, 0, id="rfc3550-A1-still-on-probation"),
        pytest.param([100, 101, 2000, 2001], 1901, 3, 1898, id="rfc3550-A1-gap-under-dropout"),
    ],
)
def test_loss(seqs, expected, received, lost):
    stats = feed(seqs)
    assert (stats.expected, stats.received, stats.lost) == (expected, received, lost)
    assert stats.packets == len(seqs)
    assert stats.bytes == 172 * len(seqs)  # 12-byte header + 160 bytes of G.711


def test_ssrc_change_keeps_the_old_sources_figures():
    stats = StreamStats()
    for i, seq in enumerate([1, 2, 3, 5]):  # source 1: expected 4 (2..5), received 3
        stats.packet(rtp(seq, ssrc=1), i * 20_000)
    for i, seq in enumerate([700, 701, 703]):  # source 2: expected 3 (701..703), received 2
        stats.packet(rtp(seq, ssrc=2), (i + 4) * 20_000)
    assert (stats.expected, stats.received, stats.lost) == (7, 5, 2)
    assert stats.ssrc == 2


# A.8 by hand, 8 kHz: arrivals 0, 20, 45, 60, 80 ms with timestamps 0..640 step 160.
# Packet 1 is on probation; packet 2 sets transit 0; then D = 40, 40, 0 units and the
# integer form J16 += |D| - ((J16 + 8) >> 4) gives 40, 77, 72; J = J16 >> 4.
JITTER_ARRIVALS_US = [0, 20_000, 45_000, 60_000, 80_000]


def test_jitter_rfc3550_a8_by_hand():
    stats = StreamStats()
    trace = []
    for i, arrival in enumerate(JITTER_ARRIVALS_US):
        stats.packet(rtp(i + 1, ts=i * 160), arrival)
        trace.append(stats.source.jitter16)
    assert trace == [0, 0, 40, 77, 72]
    assert stats.jitter == 4
    assert stats.jitter_ms == 0.5


@pytest.mark.parametrize(
    ("pt", "clock_rates", "interval_us", "step", "jitter"),
    [
        pytest.param(0, {}, 20_000, 160, 0, id="rfc3551-pcmu-8k-steady"),
        pytest.param(9, {}, 20_000, 160, 0, id="rfc3551-g722-8k-rtp-clock"),
        pytest.param(96, {96: 48000}, 20_000, 960, 0, id="rtpmap-dynamic-48k"),
        # A wrong clock rate shows up as jitter: 48 kHz timestamps read at 8 kHz give
        # |D| = 800 per packet; A.8's integer form settles at J16 = 12792, J = 799.
        pytest.param(96, {}, 20_000, 960, 799, id="dynamic-default-8k-mismatch"),
    ],
)
def test_clock_rates(pt, clock_rates, interval_us, step, jitter):
    stats = StreamStats(clock_rates=clock_rates)
    for i in range(200):
        stats.packet(rtp(i, ts=i * step, pt=pt), i * interval_us)
    assert stats.jitter == jitter


def test_jitter_survives_timestamp_wrap():
    stats = StreamStats()
    start = (1 << 32) - 3 * 160
    for i in range(8):
        stats.packet(rtp(i, ts=(start + i * 160) % (1 << 32)), 1_000_000 + i * 20_000)
    assert stats.source.jitter16 == 0


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x80\x00\x00", id="short"),
        pytest.param(struct.pack("!BBHII", 0x40, 0, 1, 0, 1), id="rtp-version-1"),
        pytest.param(struct.pack("!BBHII", 0x81, 200, 6, 0, 1), id="rfc5761-rtcp-sr-muxed"),
        pytest.param(b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"x" * 12, id="rfc5389-stun"),
    ],
)
def test_non_rtp_is_counted_not_sequenced(data):
    stats = StreamStats()
    stats.packet(data, 0)
    stats.packet(data, 20_000)
    assert (stats.packets, stats.bytes) == (2, 2 * len(data))
    assert stats.source is None
    assert stats.as_dict() == {"packets": 2, "bytes": 2 * len(data), "lost": 0, "jitter_ms": 0}


@given(st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 10**12)), max_size=50))
def test_any_datagrams_are_counted(datagrams):
    stats = StreamStats()
    for data, arrival in datagrams:
        stats.packet(data, arrival)
    assert stats.packets == len(datagrams)
    assert stats.bytes == sum(len(d) for d, _ in datagrams)
    assert 0 <= stats.received <= stats.packets
    assert stats.jitter >= 0


@given(st.lists(st.integers(0, 65535), min_size=1, max_size=300))
def test_lost_is_expected_minus_received(seqs):
    stats = feed(seqs)
    assert stats.lost == stats.expected - stats.received
    assert stats.received <= len(seqs)
