"""Twisted adapters for H.323: Q.931/TPKT over TCP, separate H.245 over TCP, RAS over UDP.

The only H.323 code that touches sockets or a clock (STYLE §2). `CallDriver` runs one
`call.H323Call` core: it turns bytes into events, carries out the core's effects and
keeps one IDelayedCall armed at `next_deadline_ms()`. Reports go to a `CallListener`
(the legs in legs.py). `RasService` does the same for the `gk.Gatekeeper` core.

Bad input never takes the server down: a TPKT framing error or an unparsable message
releases that call (Release Complete cause 100/111 where a call reference is known) and
closes that connection only; an exception in vos3k's own code is logged once with
`log.failure` and closes only the connection it came from.
"""

from __future__ import annotations

import abc
import os
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.service import MultiService, Service
from twisted.internet import protocol
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from vos3k.h323 import call as core
from vos3k.h323 import gk, q931, ras, tpkt
from vos3k.h323.h225 import TransportAddress
from vos3k.trace import HUB as TRACE
from vos3k.trace import Direction as TraceDirection

log = Logger()

# SPEC §11 / RFC 1006: H.225.0 messages are small; 8 KiB bounds a hostile peer's buffer
# (the largest captured Setup, with 4 fast start proposals, is under 1 KiB).
MAX_TPKT = 8192


def new_counters() -> dict[str, int]:
    return {
        "calls_in": 0,
        "calls_out": 0,
        "received": 0,
        "sent": 0,
        "malformed": 0,
        "errors": 0,
        "dropped": 0,
        "ras_received": 0,
        "ras_sent": 0,
        "ras_malformed": 0,
    }


class CallListener(Protocol):
    """What a driver reports to (legs.py)."""

    def arrived(self, event: core.CallArrived) -> None: ...

    def reported(self, event: Any) -> None: ...

    def digit(self, event: core.DigitReceived) -> None: ...

    def media_failed(self, event: core.MediaFailed) -> None: ...

    def peer_media(self, event: core.PeerMedia) -> None: ...


class CallDriver:
    """One H323Call and its connections (call signalling, maybe H.245)."""

    def __init__(
        self,
        reactor: Any,
        call: core.H323Call,
        counters: dict[str, int],
        listener: CallListener | None = None,
    ) -> None:
        self.reactor = reactor
        self.call = call
        self.counters = counters
        self.listener = listener
        self.signalling: protocol.Protocol | None = None
        self.h245: protocol.Protocol | None = None
        self.h245_port: Any = None
        self.pending: list[bytes] = []  # framed Q.931 written once connected
        self.remote = ("", 0)  # where an outgoing call connects (for the trace)
        self.h245_pending: list[bytes] = []
        self.closed = False
        self._timer: IDelayedCall | None = None
        self._queue: deque[Any] = deque()
        self._busy = False

    # -- events in ------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def handle(self, event: Any, at_ms: int | None = None) -> None:
        """Feed an event; events raised while effects run are handled after them."""
        self._queue.append((event, at_ms))
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                queued, at = self._queue.popleft()
                try:
                    effects = self.call.handle(queued, self.now_ms() if at is None else at)
                except core.LocalProtocolError:
                    log.failure("h323: command {event} refused", event=queued)
                    continue
                except Exception:
                    self.counters["errors"] += 1
                    log.failure("h323: call core failed on {event}", event=queued)
                    self._close()
                    continue
                self._perform(effects)
        finally:
            self._busy = False
        self._arm()

    def attach(self, signalling: protocol.Protocol) -> None:
        self.signalling = signalling
        for data in self.pending:
            signalling.transport.write(data)
        self.pending.clear()
        if self.closed:
            signalling.transport.loseConnection()

    # -- effects ----------------------------------------------------------------------

    def _perform(self, effects: list[Any]) -> None:
        for effect in effects:
            match effect:
                case core.SendQ931(data=data):
                    self.counters["sent"] += 1
                    if TRACE.active:  # issue 11: an admin's `trace on`
                        self._trace(data)
                    self._write(tpkt.encode(data))
                case core.SendH245(data=data):
                    framed = tpkt.encode(data)
                    if self.h245 is not None and self.h245.transport is not None:
                        self.h245.transport.write(framed)
                    else:
                        self.h245_pending.append(framed)
                case core.ConnectH245(address=address):
                    factory = protocol.ClientFactory.forProtocol(H245Connection)
                    factory.driver = self
                    self.reactor.connectTCP(address.host, address.port, factory, timeout=10)
                case core.ListenH245():
                    self._listen_h245()
                case core.Close():
                    self._close()
                case core.CallArrived():
                    if self.listener is not None:
                        self.listener.arrived(effect)
                case core.Report(event=event):
                    if self.listener is not None:
                        self.listener.reported(event)
                case core.DigitReceived():
                    if self.listener is not None:
                        self.listener.digit(effect)
                case core.MediaFailed():
                    if self.listener is not None:
                        self.listener.media_failed(effect)
                case core.PeerMedia():
                    if self.listener is not None:
                        self.listener.peer_media(effect)
                case core.Dropped():
                    self.counters["dropped"] += 1

    def _trace(self, data: bytes) -> None:
        host, port = self.remote
        if self.signalling is not None and self.signalling.transport is not None:
            peer = self.signalling.transport.getPeer()
            host, port = peer.host, peer.port
        TRACE.q931(TraceDirection.OUT, data, host, port, self.now_ms())

    def _write(self, data: bytes) -> None:
        if self.signalling is not None and self.signalling.transport is not None:
            self.signalling.transport.write(data)
        else:
            self.pending.append(data)

    def _listen_h245(self) -> None:
        host = "0.0.0.0"
        if self.signalling is not None and self.signalling.transport is not None:
            host = self.signalling.transport.getHost().host
        factory = protocol.ServerFactory.forProtocol(H245Connection)
        factory.driver = self
        self.h245_port = self.reactor.listenTCP(0, factory, interface=host)
        port = self.h245_port.getHost().port
        self.handle(core.H245Listening(TransportAddress(host, port)))

    def _close(self) -> None:
        self.closed = True
        if self.signalling is not None and self.signalling.transport is not None:
            self.signalling.transport.loseConnection()
        if self.h245 is not None and self.h245.transport is not None:
            self.h245.transport.loseConnection()
        if self.h245_port is not None:
            self.h245_port.stopListening()
            self.h245_port = None

    def _arm(self) -> None:
        deadline = self.call.next_deadline_ms()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if deadline is None or self.call.state is core.State.RELEASED:
            return
        delay = max(0, deadline - self.now_ms()) / 1000
        self._timer = self.reactor.callLater(delay, self._fire, deadline)

    def _fire(self, deadline: int) -> None:
        self._timer = None
        # Never let float seconds read the deadline a millisecond early.
        self.handle(core.Tick(), max(self.now_ms(), deadline))


class _Framed(protocol.Protocol, abc.ABC):
    """TPKT framing shared by the call-signalling and H.245 connections."""

    driver: CallDriver

    def connectionMade(self) -> None:
        self.reassembler = tpkt.TpktReassembler(MAX_TPKT)

    def dataReceived(self, data: bytes) -> None:
        try:
            for packet in self.reassembler.feed(data):
                self.packet(packet)
        except Exception:
            self.driver.counters["errors"] += 1
            log.failure("h323: connection from {peer} failed", peer=str(self.transport.getPeer()))
            self.transport.loseConnection()

    @abc.abstractmethod
    def packet(self, packet: bytes | tpkt.TpktMalformed) -> None:
        """One reassembled TPKT payload, or why the stream is broken."""


class SignallingConnection(_Framed):
    """One TCP call-signalling connection (H.225.0 §7.4: one call per connection)."""

    def __init__(self, driver: CallDriver | None = None, make: Callable | None = None) -> None:
        self.driver = driver  # type: ignore[assignment]
        self._make = make

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.driver is None and self._make is not None:
            peer = self.transport.getPeer()
            self.driver = self._make(peer.host, peer.port)
        self.driver.attach(self)

    def packet(self, packet: bytes | tpkt.TpktMalformed) -> None:
        counters = self.driver.counters
        counters["received"] += 1
        if isinstance(packet, tpkt.TpktMalformed):
            counters["malformed"] += 1
            self.driver.handle(core.MessageReceived(q931.Malformed(packet.reason)))
            return
        message = q931.parse(packet)
        if isinstance(message, q931.Malformed):
            counters["malformed"] += 1
        if TRACE.active:
            peer = self.transport.getPeer()
            TRACE.q931(TraceDirection.IN, message, peer.host, peer.port, self.driver.now_ms())
        self.driver.handle(core.MessageReceived(message))

    def connectionLost(self, reason: Any = None) -> None:
        if self.driver is not None:
            self.driver.handle(core.ConnectionLost())


class H245Connection(_Framed):
    """The separate H.245 TCP connection (H.245 over TPKT, H.225.0 §8.2.4)."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.driver = self.factory.driver
        self.driver.h245 = self
        for data in self.driver.h245_pending:
            self.transport.write(data)
        self.driver.h245_pending.clear()
        if self.driver.h245_port is not None:
            self.driver.h245_port.stopListening()  # one peer per call
            self.driver.h245_port = None
        self.driver.handle(core.H245Ready())

    def packet(self, packet: bytes | tpkt.TpktMalformed) -> None:
        if isinstance(packet, tpkt.TpktMalformed):
            self.driver.counters["malformed"] += 1
            self.transport.loseConnection()
            return
        self.driver.handle(core.H245Data(packet))


class _OutgoingFactory(protocol.ClientFactory):
    def __init__(self, driver: CallDriver) -> None:
        self.driver = driver

    def buildProtocol(self, addr: Any) -> SignallingConnection:
        connection = SignallingConnection(self.driver)
        connection.factory = self
        return connection

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.driver.handle(core.ConnectionLost())


class SignallingFactory(protocol.ServerFactory):
    """Accepts calls on --h323-listen; `make(host, port)` builds each call's driver."""

    def __init__(self, make: Callable[[str, int], CallDriver], admit: Callable[[str], bool]):
        self.make = make
        self.admit = admit

    def buildProtocol(self, addr: Any) -> SignallingConnection | None:
        if not self.admit(addr.host):
            return None  # SPEC §3 step 1: refused sources get nothing at all
        connection = SignallingConnection(make=self.make)
        connection.factory = self
        return connection


def connect_call(reactor: Any, driver: CallDriver, host: str, port: int) -> None:
    """Open the call-signalling connection of an outgoing call."""
    driver.remote = (host, port)
    reactor.connectTCP(host, port, _OutgoingFactory(driver), timeout=10)


def new_identifiers() -> tuple[int, bytes, bytes, int]:
    """A call reference, callIdentifier, conferenceID and MSD number for a new call."""
    random = os.urandom(23)
    reference = int.from_bytes(random[:2], "big") & 0x7FFF or 1
    sdn = int.from_bytes(random[20:23], "big")
    return reference, random[2:18], random[4:20], sdn


# ---------------------------------------------------------------- RAS


class RasProtocol(protocol.DatagramProtocol):
    """UDP RAS for one Gatekeeper core, with one timer at its next deadline."""

    def __init__(
        self,
        reactor: Any,
        keeper: gk.Gatekeeper,
        counters: dict[str, int],
        refresh: Callable[[gk.Gatekeeper], None] = lambda _keeper: None,
    ) -> None:
        self.reactor = reactor
        self.keeper = keeper
        self.counters = counters
        self.refresh = refresh  # live parameters (TTL, gatekeeper id) before each request
        self._timer: IDelayedCall | None = None

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:
        self.counters["ras_received"] += 1
        try:
            message = ras.parse(data)
            if TRACE.active:
                TRACE.ras(TraceDirection.IN, message, addr[0], addr[1], self._now())
            if isinstance(message, ras.Malformed):
                self.counters["ras_malformed"] += 1
            self.refresh(self.keeper)
            event = gk.RasReceived(message, TransportAddress(addr[0], addr[1]))
            self._perform(self.keeper.handle(event, self._now()))
        except Exception:
            self.counters["errors"] += 1
            log.failure("h323: RAS datagram from {host} failed", host=addr[0])
        self._arm()

    def _now(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def _perform(self, effects: list[Any]) -> None:
        for effect in effects:
            if isinstance(effect, gk.SendRas) and self.transport is not None:
                if TRACE.active:
                    to = effect.to
                    TRACE.ras(TraceDirection.OUT, effect.message, to.host, to.port, self._now())
                self.counters["ras_sent"] += 1
                self.transport.write(ras.encode(effect.message), (effect.to.host, effect.to.port))
            elif isinstance(effect, gk.Registered | gk.Unregistered):
                log.info("h323: {what} {endpoint}", what=type(effect).__name__.lower(),
                         endpoint=effect.endpoint.endpoint_id)  # fmt: skip

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.keeper.next_deadline_ms()
        if deadline is not None:
            delay = max(0, deadline - self._now()) / 1000
            self._timer = self.reactor.callLater(delay, self._fire, deadline)

    def _fire(self, deadline: int) -> None:
        self._timer = None
        try:
            self._perform(self.keeper.handle(gk.Tick(), max(self._now(), deadline)))
        except Exception:
            self.counters["errors"] += 1
            log.failure("h323: RAS timer failed")
        self._arm()

    def stopProtocol(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()


class H323Service(MultiService):
    """The listeners: TCP call signalling and UDP RAS, each only when configured."""

    def __init__(self, reactor: Any) -> None:
        super().__init__()
        self.reactor = reactor
        self.counters = new_counters()
        self.ports: list[Any] = []

    def listen_tcp(self, address: Any, factory: protocol.ServerFactory) -> None:
        self._add(lambda: self.reactor.listenTCP(address.port, factory, interface=address.host))

    def listen_udp(self, address: Any, datagram: protocol.DatagramProtocol) -> None:
        self._add(lambda: self.reactor.listenUDP(address.port, datagram, interface=address.host))

    def _add(self, start: Callable[[], Any]) -> None:
        _Listener(start, self.ports).setServiceParent(self)


class _Listener(Service):
    """Binds in privilegedStartService (as VosService.add_listener expects)."""

    def __init__(self, start: Callable[[], Any], ports: list[Any]) -> None:
        self._start = start
        self._ports = ports
        self._port: Any = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._port = self._start()
        self._ports.append(self._port)

    def startService(self) -> None:
        super().startService()
        if self._port is None:
            self._port = self._start()
            self._ports.append(self._port)

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            port, self._port = self._port, None
            return port.stopListening()
        return None
