"""The relay on the real reactor with real UDP sockets on 127.0.0.1 (SPEC §12)."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock, deferLater

from tests.conftest import free_port
from tests.media.fakes import live_params, rtp
from vos3k.media.policy import Leg
from vos3k.media.relay import MediaManager, MediaSession

LOOPBACK = "127.0.0.1"


class Endpoint(DatagramProtocol):
    """A phone or gateway: records what it receives."""

    def __init__(self):
        self.got: list[tuple[bytes, tuple[str, int]]] = []

    def datagramReceived(self, data, addr):
        self.got.append((data, addr))


class Harness:
    def __init__(self, **params):
        base = free_port(socket.SOCK_DGRAM) & ~1
        self.clock = Clock()
        self.manager = MediaManager(
            reactor, self.clock, LOOPBACK, (base, base + 99), live_params(**params)
        )
        self.ports = []

    def endpoint(self, number=0):
        proto = Endpoint()
        port = reactor.listenUDP(number, proto, interface=LOOPBACK)
        self.ports.append(port)
        proto.addr = (LOOPBACK, port.getHost().port)
        proto.send = lambda data, dest: port.write(data, dest)
        return proto

    async def close(self):
        self.manager.close_all()
        for port in self.ports:
            await port.stopListening()
        await deferLater(reactor, 0, lambda: None)  # let the relay's sockets close


async def until(predicate, timeout=2.0):
    deadline = reactor.seconds() + timeout
    while not predicate():
        assert reactor.seconds() < deadline, "timed out waiting on loopback"
        await deferLater(reactor, 0.005, lambda: None)


def open_call(h: Harness, a: Endpoint, b: Endpoint) -> MediaSession:
    session = h.manager.open_session("loop-1")
    assert isinstance(session, MediaSession)
    session.set_remote(Leg.A, *a.addr, "sendrecv")
    session.set_remote(Leg.B, *b.addr, "sendrecv")
    return session


@pytest_twisted.ensureDeferred
async def test_rtp_flows_both_ways_through_the_proxy_ports():
    h = Harness()
    try:
        a, b = h.endpoint(), h.endpoint()
        session = open_call(h, a, b)
        for seq in range(1, 6):
            a.send(rtp(seq, ts=seq * 160), session.local_address(Leg.A))
            b.send(rtp(seq + 100, ts=seq * 160, ssrc=9), session.local_address(Leg.B))
        await until(lambda: len(a.got) == 5 and len(b.got) == 5)
        assert [d for d, _ in b.got] == [rtp(s, ts=s * 160) for s in range(1, 6)]
        assert {src for _, src in b.got} == {session.local_address(Leg.B)}
        assert {src for _, src in a.got} == {session.local_address(Leg.A)}
        figures = session.stats()
        assert (figures["a_packets"], figures["a_bytes"], figures["a_lost"]) == (5, 860, 0)
        assert figures["b_packets"] == 5
    finally:
        await h.close()


@pytest_twisted.ensureDeferred
async def test_tos_from_ss_qos_rtp_and_live_change():
    h = Harness(SS_QOS_RTP="160")
    try:
        session = h.manager.open_session("loop-tos")
        sockets = [side.port.socket for m in session.legs.values() for side in (m.rtp, m.rtcp)]
        assert {s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) for s in sockets} == {160}
        h.manager.set_tos(184)  # SS_QOS_RTP is live=now
        assert {s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) for s in sockets} == {184}
    finally:
        await h.close()


@pytest_twisted.ensureDeferred
async def test_latches_to_the_natted_source_not_the_sdp_port():
    h = Harness()
    try:
        sdp_only, real, b = h.endpoint(), h.endpoint(), h.endpoint()
        session = open_call(h, sdp_only, b)  # A's SDP names a port it does not send from
        real.send(rtp(1), session.local_address(Leg.A))
        await until(lambda: len(b.got) == 1)
        b.send(rtp(50, ssrc=9), session.local_address(Leg.B))
        await until(lambda: len(real.got) == 1)
        assert sdp_only.got == []
        assert session.stats()["a_remote"] == "{}:{}".format(*real.addr)
    finally:
        await h.close()


@pytest.mark.parametrize(
    ("strict", "stray_relayed"),
    [pytest.param("1", False, id="s12-strict-drops"), pytest.param("0", True, id="s12-relatch")],
)
@pytest_twisted.ensureDeferred
async def test_stray_source(strict, stray_relayed):
    h = Harness(SS_RTP_LATCH_STRICT=strict)
    try:
        a, stray, b = h.endpoint(), h.endpoint(), h.endpoint()
        session = open_call(h, a, b)
        a.send(rtp(1), session.local_address(Leg.A))
        stray.send(b"stray", session.local_address(Leg.A))
        a.send(rtp(2), session.local_address(Leg.A))  # same socket queue: arrives after
        await until(lambda: rtp(2) in [d for d, _ in b.got])
        assert (b"stray" in [d for d, _ in b.got]) is stray_relayed
        assert session.stats()["a_dropped"] == (0 if stray_relayed else 1)
    finally:
        await h.close()


@pytest_twisted.ensureDeferred
async def test_rtcp_relayed_between_the_odd_ports():
    h = Harness()
    try:
        a, a_rtcp, b, b_rtcp = (h.endpoint() for _ in range(4))
        session = h.manager.open_session("loop-rtcp")
        session.set_remote(Leg.A, *a.addr, "sendrecv")
        session.set_remote(Leg.B, *b.addr, "sendrecv", rtcp_port=b_rtcp.addr[1])
        ip, rtp_port = session.local_address(Leg.A)
        a_rtcp.send(b"\x81\xc8sender-report", (ip, rtp_port + 1))
        await until(lambda: len(b_rtcp.got) == 1)
        ip_b, rtp_port_b = session.local_address(Leg.B)
        assert b_rtcp.got == [(b"\x81\xc8sender-report", (ip_b, rtp_port_b + 1))]
        assert b.got == []
    finally:
        await h.close()


@pytest_twisted.ensureDeferred
async def test_media_timeout_and_ports_released_after_close():
    h = Harness(SS_NOMEDIAHANGUPTIME="2")
    try:
        a, b = h.endpoint(), h.endpoint()
        session = open_call(h, a, b)
        fired = []
        session.on_timeout(lambda s, leg: fired.append(leg))
        for second in range(3):
            a.send(rtp(second + 1), session.local_address(Leg.A))
            await until(lambda n=second: len(b.got) == n + 1)
            h.clock.advance(1)
        assert fired == [Leg.B]  # B never sent: SPEC §12, reason 15
        local_ports = [session.local_address(leg)[1] for leg in Leg]
        session.close()
        assert h.manager.ports_in_use == 0 and h.manager.ports_idle == 4  # pooled
        h.manager.drain_idle()
        await deferLater(reactor, 0, lambda: None)
        for number in local_ports:  # the sockets are really closed: the ports bind again
            for offset in (0, 1):
                probe = reactor.listenUDP(number + offset, DatagramProtocol(), interface=LOOPBACK)
                await probe.stopListening()
    finally:
        await h.close()


@pytest_twisted.ensureDeferred
async def test_a_taken_rtcp_port_moves_the_session_to_the_next_pair():
    # The RTP port binds, the RTCP port above it is taken: the pair is skipped with
    # fresh protocols (a failed one keeps its transport until the next reactor turn).
    h = Harness()
    low = h.manager.allocator.low
    blocker = reactor.listenUDP(low + 1, DatagramProtocol(), interface=LOOPBACK)
    try:
        session = h.manager.open_session("call-1")
        assert isinstance(session, MediaSession)
        assert session.local_address(Leg.A)[1] != low
        assert h.manager.ports_in_use == 4
    finally:
        await blocker.stopListening()
        await h.close()
