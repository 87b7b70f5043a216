"""Test doubles for the relay: live parameters without a database, a UDP-less reactor."""

from __future__ import annotations

import struct

from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock

from vos3k.params import LiveParams


class _NoStore:
    """ParamStore that starts from the given texts and persists nothing."""

    def __init__(self, texts: dict[str, str]):
        self.texts = texts

    def load(self) -> dict[str, str]:
        return dict(self.texts)

    def save(self, name, text, old, new, actor) -> None:
        self.texts[name] = text


def live_params(**texts: str) -> LiveParams:
    return LiveParams(_NoStore(texts))


class FakePort:
    """An IListeningPort whose writes are recorded on its reactor."""

    def __init__(self, reactor: FakeUdpReactor, number: int, protocol):
        self.reactor = reactor
        self.number = number
        self.protocol = protocol

    def write(self, data: bytes, addr) -> None:
        self.reactor.sent.append((self.number, data, addr))

    def stopListening(self) -> None:  # noqa: N802 (IListeningPort's name)
        del self.reactor.bound[self.number]


class FakeUdpReactor(Clock):
    """IReactorTime (task.Clock) plus listenUDP into a dict; `busy` ports refuse to bind."""

    def __init__(self, busy=()):
        super().__init__()
        self.bound: dict[int, FakePort] = {}
        self.sent: list[tuple[int, bytes, tuple[str, int]]] = []
        self.busy = set(busy)

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # noqa: N802, N803
        if port in self.busy or port in self.bound:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        fake = self.bound[port] = FakePort(self, port, protocol)
        return fake

    def deliver(self, port: int, data: bytes, source: tuple[str, int]) -> None:
        """A datagram from `source` arrives at local `port`."""
        self.bound[port].protocol.datagramReceived(data, source)


def rtp(seq: int, ts: int = 0, ssrc: int = 0x1234) -> bytes:
    """A 172-byte G.711 RTP packet (12-byte header, 20 ms of PCMU)."""
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160
