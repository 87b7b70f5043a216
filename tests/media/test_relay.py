"""Relay logic on a fake reactor and task.Clock: latching, strict mode, media timeout,
exhaustion and port release (SPEC §12)."""

from __future__ import annotations

import pytest

from tests.media.fakes import FakeUdpReactor, live_params, rtp
from vos3k.media.policy import Direction, Leg
from vos3k.media.ports import PortsExhausted
from vos3k.media.relay import REUSE_AFTER_S, MediaManager, MediaSession
from vos3k.switch.reasons import EndReason

A_SDP = ("192.168.1.10", 4000)  # the caller's SDP: a private address (behind NAT)
A_NAT = ("81.2.69.160", 31000)  # where its packets really come from
B_SDP = ("81.2.69.170", 5000)  # the callee gateway, public


def manager(port_range=(20000, 20099), busy=(), **params):
    reactor = FakeUdpReactor(busy)
    return MediaManager(reactor, reactor, "10.9.9.9", port_range, live_params(**params))


def opened(mgr: MediaManager, call_id="c1") -> MediaSession:
    session = mgr.open_session(call_id)
    assert isinstance(session, MediaSession)
    session.set_remote(Leg.A, *A_SDP, Direction.SENDRECV)
    session.set_remote(Leg.B, *B_SDP, Direction.SENDRECV)
    return session


def port(session, leg, rtcp=False):
    return session.local_address(leg)[1] + (1 if rtcp else 0)


def test_session_takes_two_pairs_on_the_media_ip():
    mgr = manager()
    session = opened(mgr)
    assert session.local_address(Leg.A) == ("10.9.9.9", 20000)
    assert session.local_address(Leg.B) == ("10.9.9.9", 20002)
    assert sorted(mgr.reactor.bound) == [20000, 20001, 20002, 20003]
    assert mgr.ports_in_use == 4
    assert mgr.open_session("c1") is session  # the same call keeps its pairs


def test_relays_both_ways_to_sdp_then_latched_source():
    mgr = manager()
    session = opened(mgr)
    reactor = mgr.reactor
    # Before A sends anything, B's RTP goes to A's SDP address.
    reactor.deliver(port(session, Leg.B), rtp(1), B_SDP)
    # A's first packet latches A to its NATed source (SPEC §12 Latching).
    reactor.deliver(port(session, Leg.A), rtp(7), A_NAT)
    reactor.deliver(port(session, Leg.B), rtp(2), B_SDP)
    assert reactor.sent == [
        (port(session, Leg.A), rtp(1), A_SDP),
        (port(session, Leg.B), rtp(7), B_SDP),
        (port(session, Leg.A), rtp(2), A_NAT),
    ]


@pytest.mark.parametrize(
    ("strict", "b_packet_goes_to", "a_dropped"),
    [
        pytest.param("0", ("81.2.69.99", 999), 0, id="s12-new-source-replaces"),
        pytest.param("1", A_NAT, 1, id="s12-strict-drops-new-source"),
    ],
)
def test_new_source(strict, b_packet_goes_to, a_dropped):
    mgr = manager(SS_RTP_LATCH_STRICT=strict)
    session = opened(mgr)
    reactor = mgr.reactor
    reactor.deliver(port(session, Leg.A), rtp(1), A_NAT)
    reactor.deliver(port(session, Leg.A), rtp(2), ("81.2.69.99", 999))
    reactor.deliver(port(session, Leg.B), rtp(1), B_SDP)
    assert reactor.sent[-1] == (port(session, Leg.A), rtp(1), b_packet_goes_to)
    assert len(reactor.sent) == 3 - a_dropped
    assert session.stats()["a_dropped"] == a_dropped


def test_a_refused_source_is_never_latched():
    # SPEC §10: RTP from a geofenced source is dropped; the known source keeps flowing
    mgr = manager()
    mgr.source_filter = lambda ip: ip == "81.2.69.99"  # the geofenced one
    session = opened(mgr)
    reactor = mgr.reactor
    reactor.deliver(port(session, Leg.A), rtp(1), A_NAT)
    reactor.deliver(port(session, Leg.A), rtp(2), ("81.2.69.99", 999))
    reactor.deliver(port(session, Leg.B), rtp(1), B_SDP)
    assert reactor.sent == [
        (port(session, Leg.B), rtp(1), B_SDP),
        (port(session, Leg.A), rtp(1), A_NAT),
    ]
    assert session.stats()["a_dropped"] == 1


def test_rtcp_relayed_and_latched_separately():
    mgr = manager(SS_RTP_LATCH_STRICT="1")
    session = opened(mgr)
    reactor = mgr.reactor
    reactor.deliver(port(session, Leg.A, rtcp=True), b"\x81\xc8rtcp-sr", ("81.2.69.160", 31001))
    reactor.deliver(port(session, Leg.B, rtcp=True), b"\x81\xc9rtcp-rr", ("81.2.69.170", 5001))
    assert reactor.sent == [
        (port(session, Leg.B, rtcp=True), b"\x81\xc8rtcp-sr", ("81.2.69.170", 5001)),
        (port(session, Leg.A, rtcp=True), b"\x81\xc9rtcp-rr", ("81.2.69.160", 31001)),
    ]
    assert session.stats()["a_rtcp_packets"] == 1
    assert session.stats()["a_packets"] == 0  # RTCP is not counted as RTP


def test_rtcp_port_from_sdp_a_rtcp():
    mgr = manager()
    session = opened(mgr)
    session.set_remote(Leg.B, "81.2.69.170", 5000, "sendrecv", rtcp_port=6007)  # RFC 3605
    mgr.reactor.deliver(port(session, Leg.A, rtcp=True), b"\x81\xc8x", A_NAT)
    assert mgr.reactor.sent[-1][2] == ("81.2.69.170", 6007)


@pytest.mark.parametrize(
    ("ip", "sdp_port"),
    [
        pytest.param("0.0.0.0", 5000, id="rfc3264-hold-address"),
        pytest.param("81.2.69.170", 0, id="rfc3264-port-0-rejected-stream"),
        pytest.param("gw.example.net", 5000, id="name-not-resolved-per-packet"),
    ],
)
def test_no_sendable_address_no_send(ip, sdp_port):
    mgr = manager()
    session = opened(mgr)
    session.set_remote(Leg.B, ip, sdp_port, Direction.SENDRECV)
    mgr.reactor.deliver(port(session, Leg.A), rtp(1), A_NAT)
    assert mgr.reactor.sent == []


def test_new_sdp_address_resets_the_latch_refresh_keeps_it():
    mgr = manager(SS_RTP_LATCH_STRICT="1")
    session = opened(mgr)
    reactor = mgr.reactor
    reactor.deliver(port(session, Leg.B), rtp(1), ("81.2.69.171", 5002))  # latched
    session.set_remote(Leg.B, *B_SDP, "sendrecv")  # a session refresh: same SDP
    reactor.deliver(port(session, Leg.A), rtp(1), A_NAT)
    assert reactor.sent[-1][2] == ("81.2.69.171", 5002)
    session.set_remote(Leg.B, "81.2.69.180", 6000, "sendrecv")  # re-INVITE: new gateway
    reactor.deliver(port(session, Leg.A), rtp(2), A_NAT)
    assert reactor.sent[-1][2] == ("81.2.69.180", 6000)
    reactor.deliver(port(session, Leg.B), rtp(1, ssrc=9), ("81.2.69.180", 6000))
    assert session.stats()["b_dropped"] == 0  # the new gateway may latch despite strict


def test_stats_per_direction():
    mgr = manager()
    session = opened(mgr)
    for seq in (1, 2, 3, 5):
        mgr.reactor.deliver(port(session, Leg.A), rtp(seq, ts=seq * 160), A_NAT)
    mgr.reactor.deliver(port(session, Leg.B), rtp(1), B_SDP)
    figures = session.stats()
    assert figures["a_packets"] == 4 and figures["a_bytes"] == 4 * 172
    assert figures["a_lost"] == 1  # RFC 3550 A.3: 2..5 expected, 4 missing
    assert figures["b_packets"] == 1
    assert figures["a_local"] == "10.9.9.9:20000"
    assert figures["a_remote"] == "81.2.69.160:31000"
    assert figures["b_remote"] == "81.2.69.170:5000"


# --- media timeout (SPEC §12, §8 reason 15) -------------------------------------------


def arm(mgr, session):
    """Start the media timeout as the switching core does at answer; collect firings."""
    fired = []
    session.on_timeout(lambda s, leg: fired.append((s.call_id, leg, mgr.reactor.seconds())))
    return fired


def drive(mgr, session, seconds, a_sends=True, b_sends=False):
    """Advance the clock in 100 ms steps; A and/or B send RTP meanwhile."""
    for step in range(round(seconds * 10)):
        if a_sends:
            mgr.reactor.deliver(port(session, Leg.A), rtp(step), A_NAT)
        if b_sends:
            mgr.reactor.deliver(port(session, Leg.B), rtp(step), B_SDP)
        mgr.reactor.advance(0.1)


def test_silent_callee_times_out_after_the_parameter():
    mgr = manager(SS_NOMEDIAHANGUPTIME="5")
    session = opened(mgr)
    fired = arm(mgr, session)
    drive(mgr, session, 4.9)
    assert fired == []
    drive(mgr, session, 5)
    assert [(cid, leg) for cid, leg, _ in fired] == [("c1", Leg.B)]
    assert 5.0 <= fired[0][2] <= 6.0  # SPEC §12: after SS_NOMEDIAHANGUPTIME s (1 s watchdog)
    assert session.timed_out is Leg.B
    assert mgr.reactor.getDelayedCalls() == []  # nothing left to watch: the timer stops


def test_rearming_restarts_from_now():
    mgr = manager(SS_NOMEDIAHANGUPTIME="3")
    session = opened(mgr)
    fired = arm(mgr, session)
    drive(mgr, session, 2.5)
    fired = arm(mgr, session)
    drive(mgr, session, 2.5)
    assert fired == []
    drive(mgr, session, 2)
    assert [leg for _, leg, _ in fired] == [Leg.B]


def test_timeout_fires_once():
    mgr = manager(SS_NOMEDIAHANGUPTIME="3")
    session = opened(mgr)
    fired = arm(mgr, session)
    drive(mgr, session, 20)
    assert len(fired) == 1
    assert EndReason.MEDIA_TIMEOUT == 15  # what the caller of on_timeout ends the call with


@pytest.mark.parametrize(
    ("params", "b_remote", "watch", "b_sends"),
    [
        pytest.param({"SS_NOMEDIAHANGUPTIME": "0"}, ("81.2.69.170", 5000, "sendrecv"), None,
                     False, id="s9-zero-is-off"),
        pytest.param({}, ("81.2.69.170", 5000, "recvonly"), None, False, id="s12-hold-recvonly"),
        pytest.param({}, ("81.2.69.170", 5000, "inactive"), None, False, id="s12-hold-inactive"),
        pytest.param({}, ("0.0.0.0", 5000, "sendrecv"), None, False, id="s12-hold-0.0.0.0"),
        pytest.param({}, ("81.2.69.170", 5000, "sendrecv"), frozenset({Leg.A}), False,
                     id="s12-media_check-rx-on-caller-only"),
        pytest.param({}, ("81.2.69.170", 5000, "sendrecv"), frozenset(), False,
                     id="s12-media_check-none"),
        pytest.param({}, ("81.2.69.170", 5000, "sendrecv"), None, True, id="both-sending"),
    ],
)  # fmt: skip
def test_no_timeout(params, b_remote, watch, b_sends):
    mgr = manager(**{"SS_NOMEDIAHANGUPTIME": "2", **params})
    session = opened(mgr)
    session.set_remote(Leg.B, *b_remote)
    if watch is not None:
        session.watch(watch)
    fired = arm(mgr, session)
    drive(mgr, session, 8, b_sends=b_sends)
    assert fired == []


def test_coming_off_hold_restarts_the_count():
    mgr = manager(SS_NOMEDIAHANGUPTIME="3")
    session = opened(mgr)
    session.set_remote(Leg.B, *B_SDP, "recvonly")
    fired = arm(mgr, session)
    drive(mgr, session, 10)
    assert fired == []
    session.set_remote(Leg.B, *B_SDP, "sendrecv")
    drive(mgr, session, 2.9)
    assert fired == []
    drive(mgr, session, 2)
    assert [leg for _, leg, _ in fired] == [Leg.B]


def test_close_stops_the_timeout_and_is_idempotent():
    mgr = manager(SS_NOMEDIAHANGUPTIME="2")
    session = opened(mgr)
    fired = []
    session.on_timeout(lambda s, leg: fired.append(leg))
    session.close()
    session.close()
    mgr.reactor.advance(10)
    assert fired == []
    assert mgr.reactor.getDelayedCalls() == []
    assert mgr.ports_in_use == 0 and mgr.ports_idle == len(mgr.reactor.bound) == 4
    assert mgr.session("c1") is None


def test_a_failing_callback_is_logged_not_raised():
    mgr = manager(SS_NOMEDIAHANGUPTIME="1")
    session = opened(mgr)
    session.on_timeout(lambda s, leg: 1 / 0)
    mgr.reactor.advance(3)
    assert session.timed_out is not None
    other = opened(mgr, "c2")  # the watchdog still serves other calls
    fired = []
    other.on_timeout(lambda s, leg: fired.append(leg))
    mgr.reactor.advance(3)
    assert fired == [Leg.A]  # nobody sends on the fake reactor: A is checked first


# --- ports: exhaustion, bind failures, leaks ------------------------------------------


def test_exhausted_when_no_second_pair_and_first_released():
    mgr = manager(port_range=(20000, 20005))  # three pairs
    assert isinstance(mgr.open_session("c1"), MediaSession)
    refused = mgr.open_session("c2")
    assert isinstance(refused, PortsExhausted)
    assert refused.end_reason is EndReason.NETWORK_CONGESTION
    assert mgr.ports_in_use == 4  # c2's one pair went back (to the idle pool)
    assert mgr.ports_idle == 2 and mgr.session("c2") is None


def test_busy_ports_are_skipped():
    mgr = manager(port_range=(20000, 20009), busy={20001, 20004})
    session = mgr.open_session("c1")
    assert session.local_address(Leg.A)[1] == 20002
    assert session.local_address(Leg.B)[1] == 20006
    assert mgr.ports_in_use == 4


def test_all_busy_is_exhaustion():
    mgr = manager(port_range=(20000, 20099), busy=set(range(20000, 20100)))
    assert isinstance(mgr.open_session("c1"), PortsExhausted)
    assert mgr.ports_in_use == 0


def test_no_leak_after_10000_sessions():
    mgr = manager(port_range=(20000, 20019))
    live = []
    for call in range(10_000):
        session = mgr.open_session(f"call-{call}")
        if isinstance(session, MediaSession):
            live.append(session)
        if call % 2 or len(live) > 4:
            live.pop(0).close()
    for session in live:
        session.close()
    assert mgr.ports_in_use == 0 and mgr.sessions == {}
    assert len(mgr.reactor.bound) == mgr.ports_idle <= 20
    mgr.close_all()  # shutdown: the idle pool is unbound too
    assert mgr.reactor.bound == {} and mgr.ports_idle == 0
    assert mgr.allocator.pairs_free == 10


def test_close_all_and_live_tos():
    mgr = manager()
    opened(mgr, "c1")
    opened(mgr, "c2")
    mgr.set_tos(184)  # fake ports have no socket: best effort, nothing raised
    mgr.close_all()
    assert mgr.ports_in_use == 0 and mgr.sessions == {}


def test_install_media_on_a_service():
    from types import SimpleNamespace

    from twisted.application.service import MultiService

    from vos3k.media.relay import install_media
    from vos3k.params import SYSTEM

    service = MultiService()
    service.reactor = FakeUdpReactor()
    service.settings = SimpleNamespace(media_ip="10.9.9.9", rtp_ports=(20000, 20099))
    service.params = live_params()
    service.gauges = {}
    manager = install_media(service)
    assert service.media is manager
    manager.open_session("c1")
    assert service.gauges["rtp_ports_in_use"]() == 4
    # the relay's global counters are `stats` gauges too (SPEC §12 Statistics)
    assert (service.gauges["rtp_sessions"](), service.gauges["rtp_sessions_total"]()) == (1, 1)
    service.params.set("SS_QOS_RTP", "184", SYSTEM)  # live: re-marks open sockets
    service.startService()
    service.stopService()  # shutdown closes every session
    assert service.gauges["rtp_ports_in_use"]() == 0


# --- the idle pool of bound pairs -------------------------------------------------------


def test_a_closed_sessions_pairs_serve_the_next_call_reset():
    mgr = manager(SS_RTP_LATCH_STRICT="1")
    first = opened(mgr, "c1")
    mgr.reactor.deliver(port(first, Leg.A), rtp(1), A_NAT)  # latches A
    ports = {leg: port(first, leg) for leg in Leg}
    first.close()
    bound = dict(mgr.reactor.bound)
    mgr.reactor.deliver(ports[Leg.A], rtp(2), A_NAT)  # late RTP to an idle pair: dropped
    assert mgr.reactor.sent == [(ports[Leg.B], rtp(1), B_SDP)]
    mgr.reactor.advance(REUSE_AFTER_S)
    second = opened(mgr, "c2")
    # The same sockets (no listenUDP), with fresh latching, statistics and remotes.
    assert {leg: port(second, leg) for leg in Leg} == ports and mgr.reactor.bound == bound
    assert mgr.ports_in_use == 4 and mgr.ports_idle == 0
    mgr.reactor.deliver(ports[Leg.A], rtp(3), ("81.2.69.99", 4444))  # a new source latches
    assert mgr.reactor.sent[-1] == (ports[Leg.B], rtp(3), B_SDP)
    assert second.stats()["a_packets"] == 1 and first.stats()["a_packets"] == 1


def test_a_just_closed_pair_rests_unless_the_range_is_exhausted():
    mgr = manager(port_range=(20000, 20007))  # four pairs
    first = opened(mgr, "c1")
    first.close()
    second = opened(mgr, "c2")  # not rested yet: the allocator's next pairs
    assert {port(second, leg) for leg in Leg} == {20004, 20006}
    third = opened(mgr, "c3")  # the range is used up: the resting pairs serve
    assert {port(third, leg) for leg in Leg} == {20000, 20002}
    assert isinstance(mgr.open_session("c4"), PortsExhausted)


def test_the_pool_is_bounded_the_rest_is_released():
    reactor = FakeUdpReactor()
    mgr = MediaManager(reactor, reactor, "10.9.9.9", (20000, 20099), live_params(), idle_pairs=3)
    sessions = [opened(mgr, f"c{n}") for n in range(4)]
    for session in sessions:
        session.close()
    assert mgr.ports_idle == 6 and len(reactor.bound) == 6
    assert mgr.allocator.pairs_in_use == 3 and mgr.ports_in_use == 0
