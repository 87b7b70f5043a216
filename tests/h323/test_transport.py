"""The Twisted adapters and legs with StringTransport and MemoryReactorClock (STYLE §8)."""

from __future__ import annotations

from attrs import frozen
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from vos3k.h323 import call as core
from vos3k.h323 import gk, media, q931, ras, tpkt, transport
from vos3k.h323.h225 import Codec, TransportAddress
from vos3k.h323.legs import H323CallerLeg, H323LegFactory
from vos3k.switch.legs import Answered, Ending, HungUp, Proceeding, Ringing, Setup

from .replay import NDPI, OOH_FAST, ras_datagrams, tpkt_payloads

FAST = tpkt_payloads(OOH_FAST, 1720)
ANSWER = media.to_media(TransportAddress("203.0.113.5", 30000), (Codec.G711_ULAW,))


@frozen
class _Accepted:
    call_id: str
    report: object


class FakeEngine:
    def __init__(self):
        self.arrivals = []
        self.events = []
        self.legs = []

    def incoming(self, leg, arrival):
        self.arrivals.append(arrival)
        self.legs.append(leg)
        return _Accepted("c1", self.events.append)


def _messages(data: bytes) -> list[q931.Message]:
    return [q931.parse(p) for p in tpkt.TpktReassembler().feed(data)]


def _incoming(reactor, engine):
    counters = transport.new_counters()

    def make(host, port):
        call = core.H323Call(core.CallSettings(), call_reference=1, outgoing=False, h245_sdn=9)
        driver = transport.CallDriver(reactor, call, counters)
        H323CallerLeg(engine, driver, (host, port))
        return driver

    factory = transport.SignallingFactory(make, lambda ip: ip != "192.0.2.66")
    connection = factory.buildProtocol(IPv4Address("TCP", "127.0.0.9", 40000))
    wire = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.9", 40000))
    connection.makeConnection(wire)
    return connection, wire, counters


def test_caller_leg_through_the_engine_interface():
    reactor, engine = MemoryReactorClock(), FakeEngine()
    connection, wire, counters = _incoming(reactor, engine)
    setup = tpkt.encode(FAST[4])  # in three TCP segments: TPKT reassembly
    connection.dataReceived(setup[:5])
    connection.dataReceived(setup[5:17])
    connection.dataReceived(setup[17:])
    (arrival,) = engine.arrivals
    assert (arrival.protocol, arrival.source_ip, arrival.source_port) == (
        "h323",
        "127.0.0.9",
        40000,
    )
    assert arrival.media.codecs == ("PCMU",)
    leg = engine.legs[0]
    leg.ring(None)
    leg.answer(ANSWER)
    sent = _messages(wire.value())
    assert [m.message_type for m in sent] == [
        q931.MessageType.CALL_PROCEEDING,
        q931.MessageType.ALERTING,
        q931.MessageType.CONNECT,
    ]
    connection.dataReceived(tpkt.encode(FAST[20]))  # the caller's Release Complete
    assert engine.events == [HungUp(cause=16)]
    assert wire.disconnecting
    assert counters["received"] == 2 and counters["sent"] == 3


def test_refused_source_gets_no_connection():
    factory = transport.SignallingFactory(lambda h, p: None, lambda ip: False)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.66", 1)) is None


def test_truncated_and_oversize_tpkt_close_that_connection():
    reactor, engine = MemoryReactorClock(), FakeEngine()
    connection, wire, counters = _incoming(reactor, engine)
    connection.dataReceived(b"\x03\x00\xff\xff")  # over MAX_TPKT
    (release,) = _messages(wire.value())
    assert release.message_type == q931.MessageType.RELEASE_COMPLETE
    assert release.find(q931.Cause).value == 111
    assert wire.disconnecting and counters["malformed"] == 1
    assert engine.arrivals == []


def test_hang_up_sends_the_endings_cause():
    reactor, engine = MemoryReactorClock(), FakeEngine()
    connection, wire, _ = _incoming(reactor, engine)
    connection.dataReceived(tpkt.encode(FAST[4]))
    engine.legs[0].hang_up(Ending(6, 404, 3))  # SPEC §8 reason 6 -> Q.850 3
    release = _messages(wire.value())[-1]
    assert release.find(q931.Cause).value == 3
    assert wire.disconnecting


def _callee(reactor, settings=None):
    events = []
    factory = H323LegFactory(
        reactor, lambda: settings or core.CallSettings(setup_ms=None, alerting_ms=None,
                                                        connect_ms=None),
        transport.new_counters(), lambda: TransportAddress("203.0.113.5", 1720),
    )  # fmt: skip
    offer = media.to_media(TransportAddress("198.51.100.7", 20000), (Codec.G711_ULAW,))
    setup = Setup("c1", 1, "861380", "4930123", "192.0.2.20", 1720, "h323", "gw", media=offer)
    leg = factory.create_leg(setup, events.append)
    leg.offer(setup)
    return leg, events


def test_callee_leg_places_the_call_and_reports():
    reactor = MemoryReactorClock()
    leg, events = _callee(reactor)
    ((host, port, client, _timeout, _bind),) = reactor.tcpClients
    assert (host, port) == ("192.0.2.20", 1720)
    connection = client.buildProtocol(IPv4Address("TCP", host, port))
    wire = StringTransport()
    connection.makeConnection(wire)
    (setup,) = _messages(wire.value())
    assert setup.message_type == q931.MessageType.SETUP
    assert setup.find(q931.CalledPartyNumber).digits == "4930123"
    for frame in (6, 8, 10):
        connection.dataReceived(tpkt.encode(FAST[frame]))
    assert [type(e) for e in events] == [Proceeding, Ringing, Answered]
    assert events[-1].media.port == 14032
    leg.hang_up(Ending(1, None, 16))
    assert _messages(wire.value())[-1].message_type == q931.MessageType.RELEASE_COMPLETE


def test_callee_unreachable_is_failed_without_cause():
    reactor = MemoryReactorClock()
    _leg, events = _callee(reactor)
    ((_host, _port, client, _timeout, _bind),) = reactor.tcpClients
    client.clientConnectionFailed(None, None)
    assert [(type(e).__name__, e.code, e.cause) for e in events] == [("Failed", None, None)]


def test_callee_setup_timer_fires_from_the_reactor_clock():
    reactor = MemoryReactorClock()
    _leg, events = _callee(reactor, core.CallSettings(setup_ms=10_000))
    reactor.advance(9.999)
    assert events == []
    reactor.advance(0.001)
    assert [(type(e).__name__, e.cause) for e in events] == [("Failed", None)]


class FakeUdp:
    def __init__(self):
        self.written = []

    def write(self, data, addr):
        self.written.append((ras.parse(data), addr))


def test_ras_protocol_answers_captured_grq_and_probes_at_expiry():
    reactor = MemoryReactorClock()
    settings = gk.GkSettings("vos3k", 60, TransportAddress("127.0.0.1", 1719),
                             TransportAddress("127.0.0.1", 1720))  # fmt: skip
    keeper = gk.Gatekeeper(settings, lambda ip: True, lambda ip, port: True, lambda q: None)
    counters = transport.new_counters()
    proto = transport.RasProtocol(reactor, keeper, counters)
    proto.transport = FakeUdp()
    datagrams = ras_datagrams(NDPI)
    for frame in (59, 61):
        source, data = datagrams[frame]
        proto.datagramReceived(data, source)
    proto.datagramReceived(b"\x00garbage", ("10.0.0.1", 1719))
    kinds = [m.kind for m, _ in proto.transport.written]
    assert kinds == [ras.RasKind.GCF, ras.RasKind.RCF]
    assert counters["ras_malformed"] == 1
    reactor.advance(60)
    assert proto.transport.written[-1][0].kind is ras.RasKind.IRQ
    reactor.advance(gk.IRR_GRACE_MS / 1000)
    assert keeper.registrations == {}
