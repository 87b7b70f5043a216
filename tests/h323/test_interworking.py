"""SPEC §11/§12 interworking pieces of the H.323 legs: proxy rewriting, DTMF, slow start,
the H.245 timeout as reason 15 and ip=dynamic routing; fakes, no sockets."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from vos3k.h323 import call as c
from vos3k.h323 import h245, media
from vos3k.h323.h225 import Codec, TransportAddress
from vos3k.h323.legs import H323CalleeLeg, H323CallerLeg
from vos3k.h323.transport import CallDriver, new_counters
from vos3k.media.policy import Leg as Side
from vos3k.switch.legs import Answered, Dtmf, Failed, HungUp, Setup
from vos3k.switch.reasons import EndReason

from .test_call import FAST, SLOW, incoming, received, sent

CALLER_RTP = TransportAddress("198.51.100.7", 40000)
VENDOR_RTP = TransportAddress("203.0.113.9", 50000)


class FakeSession:
    """The part of media/relay.py's MediaSession the legs use."""

    def __init__(self) -> None:
        self.remote: dict[Side, tuple[str, int]] = {}
        self.watched: frozenset | None = None
        self.timeout = None
        self.closed = False

    def local_address(self, side: Side) -> tuple[str, int]:
        return ("192.0.2.1", 31000 if side is Side.A else 31002)

    def set_remote(self, side: Side, ip: str, port: int, direction: str = "sendrecv") -> None:
        self.remote[side] = (ip, port)

    def watch(self, legs: frozenset) -> None:
        self.watched = legs

    def on_timeout(self, callback) -> None:
        self.timeout = callback

    def close(self) -> None:
        self.closed = True


class FakeMedia:
    def __init__(self) -> None:
        self.sessions: dict[str, FakeSession] = {}

    def open_session(self, call_id: str) -> FakeSession:
        return self.sessions.setdefault(call_id, FakeSession())

    def session(self, call_id: str) -> FakeSession | None:
        return self.sessions.get(call_id)


def _setup(**changes) -> Setup:
    fields = dict(
        call_id="call-1", attempt=1, caller="861", callee="4930", target_ip="203.0.113.9",
        target_port=1720, protocol="h323", gateway="vendor",
        media=media.to_media(CALLER_RTP, (Codec.G711_ULAW,)),
    )  # fmt: skip
    fields.update(changes)
    return Setup(**fields)


def _callee(**kwargs) -> tuple[H323CalleeLeg, list, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    events: list = []
    leg = H323CalleeLeg(reactor, c.CallSettings(), events.append, new_counters(), None, **kwargs)
    return leg, events, reactor


def test_callee_leg_offers_the_proxy_and_answers_with_it():
    """SPEC §12: the vendor gets side B's address, the caller side A's; each side's real
    address becomes that side's remote."""
    proxy = FakeMedia()
    released = []
    leg, events, reactor = _callee(media=proxy, release=lambda *a: released.append(a) or True)
    leg.offer(_setup(media_watch=frozenset({Side.B})))
    session = proxy.sessions["call-1"]
    assert session.remote[Side.A] == ("198.51.100.7", 40000)
    assert leg.driver.call.local_media.address == "192.0.2.1"
    assert leg.driver.call.local_media.port == 31002
    assert reactor.tcpClients[0][:2] == ("203.0.113.9", 1720)
    leg.reported(Answered(media.to_media(VENDOR_RTP, (Codec.G711_ULAW,))))
    (answered,) = events
    assert (answered.media.address, answered.media.port) == ("192.0.2.1", 31000)
    assert b"c=IN IP4 192.0.2.1" in answered.media.body
    assert session.remote[Side.B] == ("203.0.113.9", 50000)
    assert session.watched == frozenset({Side.B})
    session.timeout(session, Side.B)  # SPEC §12: silence -> reason 15 via the engine
    assert released == [("call-1", EndReason.MEDIA_TIMEOUT)]


@pytest.mark.parametrize(
    ("registered", "connected"),
    [
        pytest.param(None, None, id="SPEC-2-dynamic-unregistered-fails"),
        pytest.param(TransportAddress("198.51.100.3", 1721), ("198.51.100.3", 1721),
                     id="SPEC-2-dynamic-registered"),
    ],
)  # fmt: skip
def test_dynamic_gateway_is_located_by_name(registered, connected):
    asked = []
    leg, events, reactor = _callee(locate=lambda name: asked.append(name) or registered)
    leg.offer(_setup(target_ip="dynamic", gateway="dyn-gw"))
    assert asked == ["dyn-gw"]
    if connected is None:
        assert events == [Failed()] and reactor.tcpClients == []
    else:
        assert events == [] and reactor.tcpClients[0][:2] == connected


def _caller(engine) -> tuple[H323CallerLeg, FakeMedia]:
    proxy = FakeMedia()
    driver = CallDriver(MemoryReactorClock(), incoming(), new_counters())
    leg = H323CallerLeg(engine, driver, ("198.51.100.7", 1720), proxy)
    return leg, proxy


class FakeEngine:
    def __init__(self, live: bool = True) -> None:
        self.released: list = []
        self.live = live
        self.events: list = []

    def incoming(self, leg, arrival):
        self.arrival = arrival
        return type("Accepted", (), {"call_id": "call-9", "report": self.events.append})()

    def release(self, call_id: str, reason: EndReason) -> bool:
        self.released.append((call_id, reason))
        return self.live


@pytest.mark.parametrize(
    ("live", "released", "reported"),
    [
        pytest.param(True, [("call-9", EndReason.MEDIA_TIMEOUT)], [], id="SPEC-8-reason-15"),
        pytest.param(False, [("call-9", EndReason.MEDIA_TIMEOUT)], [HungUp(cause=41)],
                     id="call-already-gone"),
    ],
)  # fmt: skip
def test_h245_timeout_is_a_server_release(live, released, reported):
    engine = FakeEngine(live)
    leg, _ = _caller(engine)
    leg.arrived(c.CallArrived("861", "4930", None, None))
    leg.media_failed(c.MediaFailed(41))
    assert engine.released == released and engine.events == reported


def test_slow_start_caller_is_offered_our_capabilities_and_gets_its_address():
    engine = FakeEngine()
    leg, proxy = _caller(engine)
    leg.arrived(c.CallArrived("861", "4930", None, None))
    offer = media.from_media(engine.arrival.media)
    assert offer.codecs == media.ALL_CODECS  # SPEC §11: what our TCS offers
    assert offer.rtp == TransportAddress("198.51.100.7", 9)
    session = proxy.open_session("call-9")
    leg.peer_media(c.PeerMedia(media.to_media(CALLER_RTP, (Codec.G711_ALAW,))))
    assert session.remote[Side.A] == ("198.51.100.7", 40000)
    leg.hang_up(type("E", (), {"q850": 16})())
    assert session.closed


def test_digits_cross_as_dtmf_both_ways():
    """SPEC §11: UserInputIndication <-> the engine's Dtmf."""
    engine = FakeEngine()
    leg, _ = _caller(engine)
    leg.arrived(c.CallArrived("861", "4930", None, None))
    leg.digit(c.DigitReceived("5", None))
    assert engine.events == [Dtmf("5", 100)]


def test_send_digit_goes_tunnelled_on_a_fast_start_call():
    call = incoming()
    call.handle(received(FAST[4]), 0)  # ooh323c: fast start + tunnelling
    call.handle(c.Answer(media.to_media(VENDOR_RTP, (Codec.G711_ULAW,))), 10)
    effects = call.handle(c.SendDigit("#", 160), 20)
    ((_facility, info),) = sent(effects)
    assert [h245.parse(p) for p in info.h245_control] == [
        h245.UserInput(signal="#", duration_ms=160)
    ]


def test_incoming_slow_start_reports_the_callers_address_once_h245_opens():
    """H.323 §8.3: without fast start the caller's receive address arrives in the
    OpenLogicalChannelAck of our channel, after Connect (`PeerMedia` for the proxy)."""
    call = incoming()
    call.handle(received(SLOW[4]), 0)
    call.handle(c.Answer(media.to_media(VENDOR_RTP, (Codec.G711_ULAW,))), 10)
    call.handle(c.H245Listening(TransportAddress("192.0.2.1", 40000)), 11)
    call.handle(c.H245Ready(), 20)
    peer_caps = h245.TerminalCapabilitySet(1, (h245.Capability(Codec.G711_ULAW, 20),))
    for message in (
        peer_caps,
        h245.TerminalCapabilitySetAck(1),
        h245.MasterSlaveDeterminationAck(master=False),
    ):
        effects = call.handle(c.H245Data(h245.encode(message)), 30)
    (olc,) = [h245.parse(e.data) for e in effects if isinstance(e, c.SendH245)]
    ack = h245.OpenLogicalChannelAck(olc.channel.number, CALLER_RTP, None)
    effects = call.handle(c.H245Data(h245.encode(ack)), 40)
    assert c.PeerMedia(media.to_media(CALLER_RTP, (Codec.G711_ULAW,))) in effects
    assert call.next_deadline_ms() is None  # media is up: no SS_H323_TIMEOUT_H245
