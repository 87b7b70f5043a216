"""The RTP/RTCP port-pair allocator (SPEC §12 Ports, §8 reason 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.media.ports import PortAllocator, PortPair, PortsExhausted
from vos3k.switch.reasons import EndReason


@pytest.mark.parametrize(
    ("port_range", "expected"),
    [
        pytest.param((10000, 10007), [10000, 10002, 10004, 10006], id="rfc3550-s11-even-rtp"),
        pytest.param((10001, 10008), [10002, 10004, 10006], id="odd-low-rounds-up"),
        pytest.param((10000, 10006), [10000, 10002, 10004], id="odd-rtcp-must-fit"),
        pytest.param((10000, 10000), [], id="one-port-no-pair"),
    ],
)
def test_pairs_cover_the_range(port_range, expected):
    allocator = PortAllocator(port_range)
    got = []
    while isinstance(pair := allocator.allocate(), PortPair):
        got.append(pair.rtp)
        assert pair.rtcp == pair.rtp + 1
        assert port_range[0] <= pair.rtp and pair.rtcp <= port_range[1]
    assert got == expected
    assert allocator.capacity == len(expected)


def test_exhaustion_is_a_value_mapped_to_reason_5():
    allocator = PortAllocator((20000, 20003))
    allocator.allocate()
    allocator.allocate()
    exhausted = allocator.allocate()
    assert exhausted == PortsExhausted(20000, 20003, 2)
    assert exhausted.end_reason is EndReason.NETWORK_CONGESTION
    assert allocator.ports_in_use == 4


def test_freed_pair_is_not_reused_at_once():
    allocator = PortAllocator((10000, 10009))  # 5 pairs
    first = allocator.allocate()
    allocator.release(first)
    following = [allocator.allocate().rtp for _ in range(4)]
    assert first.rtp not in following
    assert allocator.allocate() == first  # only once every other pair was handed out


def test_release_is_idempotent_and_ignores_foreign_pairs():
    allocator = PortAllocator((10000, 10009))
    pair = allocator.allocate()
    assert allocator.release(pair) is True
    assert allocator.release(pair) is False
    assert allocator.release(PortPair(30000)) is False
    assert allocator.pairs_free == allocator.capacity == 5
    assert allocator.ports_in_use == 0


def test_no_leak_after_10000_calls():
    allocator = PortAllocator((10000, 10099))
    live = []
    for call in range(10_000):
        live.append(allocator.allocate())
        if call % 3 != 0:  # calls overlap: some end at once, some later
            allocator.release(live.pop(0))
        if len(live) > 20:
            allocator.release(live.pop())
    for pair in live:
        allocator.release(pair)
    assert allocator.pairs_in_use == 0
    assert allocator.pairs_free == allocator.capacity == 50
    assert sorted(allocator.allocate().rtp for _ in range(50)) == list(range(10000, 10100, 2))


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=200))
def test_pairs_in_use_are_distinct(steps):
    allocator = PortAllocator((10000, 10019))
    held: list[PortPair] = []
    for allocate, index in steps:
        if allocate:
            pair = allocator.allocate()
            if isinstance(pair, PortPair):
                assert pair not in held
                held.append(pair)
            else:
                assert len(held) == allocator.capacity
        elif held:
            allocator.release(held.pop(index % len(held)))
        assert allocator.pairs_in_use + allocator.pairs_free == allocator.capacity
        assert allocator.pairs_in_use == len(held)
