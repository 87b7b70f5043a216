"""Even/odd RTP/RTCP port-pair allocator over the --rtp-ports range, sans-IO."""

from __future__ import annotations

from collections import deque

from attrs import frozen

from vos3k.switch.reasons import EndReason


@frozen
class PortPair:
    """One leg's ports: RTP on the even port, RTCP on the next odd one (RFC 3550 §11)."""

    rtp: int

    @property
    def rtcp(self) -> int:
        return self.rtp + 1


@frozen
class PortsExhausted:
    """No pair is free: SPEC §3 step 9 / §12, the call is refused before any attempt."""

    low: int
    high: int
    in_use: int

    # SPEC §8 row 5: Network Congestion, SIP 503, direction 2.
    end_reason = EndReason.NETWORK_CONGESTION


class PortAllocator:
    """Hands out pairs round-robin: a freed pair goes to the back of the queue.

    Round-robin keeps a just-freed pair idle as long as possible, so late packets of a
    call that just ended do not land in the next call on the same ports (the reason
    rtpengine and VOS3000 also rotate). Allocation and release are O(1).
    """

    def __init__(self, port_range: tuple[int, int]):
        low, high = port_range
        first = low + (low & 1)  # RFC 3550 §11: RTP on an even port, RTCP the odd one above
        self.low = low
        self.high = high
        self._free: deque[int] = deque(range(first, high, 2))
        self._in_use: set[int] = set()
        self.capacity = len(self._free)

    @property
    def pairs_in_use(self) -> int:
        return len(self._in_use)

    @property
    def ports_in_use(self) -> int:
        return 2 * len(self._in_use)

    @property
    def pairs_free(self) -> int:
        return len(self._free)

    def allocate(self) -> PortPair | PortsExhausted:
        """The least recently used free pair, or PortsExhausted (→ reason 5, SIP 503)."""
        if not self._free:
            return PortsExhausted(self.low, self.high, len(self._in_use))
        rtp = self._free.popleft()
        self._in_use.add(rtp)
        return PortPair(rtp)

    def release(self, pair: PortPair) -> bool:
        """Return a pair to the pool; releasing a free or foreign pair does nothing."""
        if pair.rtp not in self._in_use:
            return False
        self._in_use.remove(pair.rtp)
        self._free.append(pair.rtp)
        return True
