"""The SIP transport and endpoint on real loopback sockets: IPv4 and IPv6, UDP and TCP, TOS."""

from __future__ import annotations

import os
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from vos3k.config import Address as ListenAddress
from vos3k.params import Actor, LiveParams
from vos3k.sip.endpoint import SipEndpoint
from vos3k.sip.message import Response, StreamFramer, parse
from vos3k.sip.transport import SipTransport, _grow_receive_buffer
from vos3k.store.db import open_store


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def options(transport: str, host: str, port: int, here: int) -> bytes:
    sent_by = f"[{host}]:{here}" if ":" in host else f"{host}:{here}"
    return (
        f"OPTIONS sip:{sent_by} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch=z9hG4bKloop{transport}{here};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@example.test>;tag=p\r\n"
        "To: <sip:example.test>\r\nCall-ID: loop@example.test\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def until(predicate, timeout=3.0):
    deadline = reactor.seconds() + timeout
    while not predicate():
        assert reactor.seconds() < deadline, "timed out waiting on loopback"
        await deferLater(reactor, 0.005, lambda: None)


class Rig:
    def __init__(self, hosts):
        self.store = open_store(None)
        self.params = LiveParams(self.store.params)
        self.endpoint = SipEndpoint(
            reactor,
            self.params,
            phone_of=lambda e164: None,
            registrations=self.store.registrations,
            secret=b"k" * 32,
        )
        self.transport = SipTransport(
            reactor, [ListenAddress(h, 0) for h in hosts], self.endpoint, tos=160
        )
        self.endpoint.transport = self.transport
        self.endpoint.startService()
        self.transport.startService()

    def port(self, kind: str, host: str) -> int:
        return next(p for t, h, p in self.transport.bound() if t == kind and h == host)

    async def close(self):
        self.endpoint.stopService()
        await self.transport.stopService()
        self.store.close()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")),
    ],
    ids=["ipv4", "rfc5118-ipv6"],
)
@pytest_twisted.ensureDeferred
async def test_options_over_udp_and_tcp(host):
    rig = Rig([host])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            udp.setblocking(False)
            here = udp.getsockname()[1]
            udp.sendto(
                options("UDP", host, rig.port("UDP", host), here), (host, rig.port("UDP", host))
            )
            got: list[bytes] = []

            def poll():
                try:
                    got.append(udp.recv(65535))
                except BlockingIOError:
                    pass
                return bool(got)

            await until(poll)
        reply = parse(got[0])
        assert isinstance(reply, Response) and reply.status == 200
        assert reply.top_via().rport == here  # RFC 3581: filled in, sent back there

        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.setblocking(False)
            tcp.connect_ex((host, rig.port("TCP", host)))
            await until(lambda: tcp.connect_ex((host, rig.port("TCP", host))) in (0, 106))
            here = tcp.getsockname()[1]
            tcp.send(options("TCP", host, 0, here))
            framer = StreamFramer()
            messages: list = []

            def read():
                try:
                    messages.extend(framer.feed(tcp.recv(65535)))
                except BlockingIOError:
                    pass
                return bool(messages)

            await until(read)
        assert messages[0].status == 200
    finally:
        await rig.close()


@pytest_twisted.ensureDeferred
async def test_tos_from_ss_qos_signal_follows_live_changes():
    rig = Rig(["127.0.0.1"])
    try:
        sock = rig.transport.udp[0].transport.socket
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 160
        rig.params.set("SS_QOS_SIGNAL", "184", Actor("ops", "test"))  # live=now (SPEC §9)
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 184
    finally:
        await rig.close()


def test_udp_receive_buffer_is_grown():
    """A burst waits in the kernel instead of being dropped (transport.UDP_RECEIVE_BUFFER)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        granted = _grow_receive_buffer(sock, 4 * 1024 * 1024)
        assert granted >= default
        if os.geteuid() == 0:  # SO_RCVBUFFORCE passes net.core.rmem_max
            assert granted >= 4 * 1024 * 1024
    finally:
        sock.close()
    assert _grow_receive_buffer(None) == 0
