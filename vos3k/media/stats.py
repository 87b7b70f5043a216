"""Per-direction RTP statistics: packets, bytes, loss (RFC 3550 A.1/A.3), jitter (A.8)."""

from __future__ import annotations

from struct import Struct

from attrs import define, field

# RFC 3550 A.1 constants.
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

# RFC 3551 §6 tables 4 and 5: clock rates of the static payload types.
STATIC_CLOCK_RATES = {
    0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
    10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
    17: 22050, 18: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
    33: 90000, 34: 90000,
}  # fmt: skip
DEFAULT_CLOCK_RATE = 8000  # a dynamic type without an rtpmap: assume narrowband audio

_HEADER = Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_TS_MOD = 1 << 32


@define(slots=True)
class Source:
    """RFC 3550 A.1 `source`: the sequence state of one SSRC, plus A.8 jitter."""

    max_seq: int
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = RTP_SEQ_MOD + 1
    probation: int = MIN_SEQUENTIAL
    received: int = 0
    transit: int | None = None
    jitter16: int = 0  # A.8 integer form: the estimate scaled by 16

    @classmethod
    def first(cls, seq: int) -> Source:
        """A.1: a newly heard source starts on probation, one before its first packet."""
        source = cls(max_seq=seq)
        source.init_seq(seq)
        source.max_seq = (seq - 1) % RTP_SEQ_MOD
        source.probation = MIN_SEQUENTIAL
        return source

    def init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0

    def update_seq(self, seq: int) -> bool:
        """A.1 update_seq: True when the packet is valid and counted."""
        udelta = (seq - self.max_seq) % RTP_SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % RTP_SEQ_MOD:  # in sequence
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self.init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:  # in order, with permissible gap
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # the sequence number wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:  # a very large jump
            if seq == self.bad_seq:
                self.init_seq(seq)  # two in a row: the sender restarted; resync
            else:
                self.bad_seq = (seq + 1) % RTP_SEQ_MOD
                return False
        # else: a duplicate or reordered packet, counted as received (A.3)
        self.received += 1
        return True

    @property
    def expected(self) -> int:
        """A.3: extended highest sequence number received minus base, plus one."""
        if self.probation:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    def update_jitter(self, arrival: int, timestamp: int) -> None:
        """A.8 with arrival in timestamp units; the integer form keeps J scaled by 16."""
        transit = arrival - timestamp
        if self.transit is not None:
            # RTP timestamps wrap at 2^32: take the difference as a signed 32-bit value.
            d = (transit - self.transit + (_TS_MOD >> 1)) % _TS_MOD - (_TS_MOD >> 1)
            if d < 0:
                d = -d
            self.jitter16 += d - ((self.jitter16 + 8) >> 4)
        self.transit = transit


@define(slots=True)
class StreamStats:
    """One direction of one leg: what arrived on a relay port.

    `lost` is RFC 3550 A.3's cumulative number lost, signed: duplicates can make it
    negative. When the SSRC changes (a re-INVITE to another gateway, a restarted
    sender) the old source's figures are kept and a new one starts.
    """

    clock_rates: dict[int, int] = field(factory=dict)
    packets: int = 0
    bytes: int = 0
    ssrc: int | None = None
    source: Source | None = None
    clock_rate: int = DEFAULT_CLOCK_RATE
    past_expected: int = 0
    past_received: int = 0

    def packet(self, data: bytes, arrival_us: int) -> None:
        """Count one datagram; RTP version 2 headers also feed loss and jitter."""
        self.packets += 1
        self.bytes += len(data)
        if len(data) < 12:
            return
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        if first & 0xC0 != 0x80 or 64 <= second & 0x7F <= 95:
            return  # not RTP v2, or RTCP multiplexed on the RTP port (RFC 5761 §4)
        self.rtp(second & 0x7F, seq, timestamp, ssrc, arrival_us)

    def rtp(self, pt: int, seq: int, timestamp: int, ssrc: int, arrival_us: int) -> None:
        source = self.source
        if ssrc != self.ssrc or source is None:
            if source is not None:
                self.past_expected += source.expected
                self.past_received += source.received
            source = self.source = Source.first(seq)
            self.ssrc = ssrc
            self.clock_rate = self.clock_rates.get(pt) or STATIC_CLOCK_RATES.get(
                pt, DEFAULT_CLOCK_RATE
            )
        if source.update_seq(seq):
            source.update_jitter(arrival_us * self.clock_rate // 1_000_000, timestamp)

    @property
    def expected(self) -> int:
        return self.past_expected + (self.source.expected if self.source else 0)

    @property
    def received(self) -> int:
        return self.past_received + (self.source.received if self.source else 0)

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def jitter(self) -> int:
        """A.8 interarrival jitter of the current source, in timestamp units."""
        return self.source.jitter16 >> 4 if self.source else 0

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate

    def as_dict(self) -> dict[str, int | float]:
        """Plain figures for `call show` and the CDR's extra fields."""
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": self.lost,
            "jitter_ms": round(self.jitter_ms, 2),
        }
