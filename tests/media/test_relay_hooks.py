"""What the relay tells the rest of vos3k: the first RTP of a leg (SPEC §4
SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START), per-call figures (`call show`, CDR) and the
global `stats` counters (SPEC §12 Statistics)."""

from __future__ import annotations

import pytest

from tests.media.fakes import FakeUdpReactor, live_params, rtp
from vos3k.media.policy import Direction, Leg
from vos3k.media.relay import MediaManager, MediaSession

A_SDP = ("192.168.1.10", 4000)
B_SDP = ("81.2.69.170", 5000)


def manager(**params) -> MediaManager:
    reactor = FakeUdpReactor()
    return MediaManager(reactor, reactor, "10.9.9.9", (20000, 20099), live_params(**params))


def opened(mgr: MediaManager, call_id: str = "c1") -> MediaSession:
    session = mgr.open_session(call_id)
    assert isinstance(session, MediaSession)
    session.set_remote(Leg.A, *A_SDP, Direction.SENDRECV)
    session.set_remote(Leg.B, *B_SDP, Direction.SENDRECV)
    return session


def send(mgr: MediaManager, session: MediaSession, leg: Leg, seq: int) -> None:
    source = A_SDP if leg is Leg.A else B_SDP
    mgr.reactor.deliver(session.local_address(leg)[1], rtp(seq), source)


@pytest.mark.parametrize(
    ("sender", "fired"),
    [
        pytest.param(Leg.B, 1, id="SPEC-4-vendor-rtp-starts"),
        pytest.param(Leg.A, 0, id="caller-rtp-is-not-the-vendor"),
    ],
)
def test_first_rtp_callback_fires_once_for_its_leg(sender, fired):
    mgr = manager()
    session = opened(mgr)
    calls = []
    session.on_first_rtp(Leg.B, lambda: calls.append(True))
    for seq in range(5):
        send(mgr, session, sender, seq)
    assert len(calls) == fired


def test_first_rtp_rearmed_per_attempt_ignores_earlier_packets():
    mgr = manager()
    session = opened(mgr)
    send(mgr, session, Leg.B, 1)  # the previous attempt's early media
    calls = []
    session.on_first_rtp(Leg.B, lambda: calls.append("attempt 2"))
    assert calls == []
    send(mgr, session, Leg.B, 2)
    assert calls == ["attempt 2"]


def test_first_rtp_callback_failure_is_logged_and_relaying_goes_on():
    mgr = manager()
    session = opened(mgr)

    def broken():
        raise RuntimeError("boom")

    session.on_first_rtp(Leg.B, broken)
    send(mgr, session, Leg.B, 1)
    send(mgr, session, Leg.B, 2)
    assert [dest for _, _, dest in mgr.reactor.sent] == [A_SDP, A_SDP]


def test_closed_session_never_reports_first_rtp():
    mgr = manager()
    session = opened(mgr)
    calls = []
    session.on_first_rtp(Leg.B, lambda: calls.append(True))
    relay = session.legs[Leg.B].relay
    session.close()
    session.on_first_rtp(Leg.B, lambda: calls.append(True))
    relay.datagramReceived(rtp(1), B_SDP)  # a packet already queued for the closed port
    assert calls == []


def test_call_stats_per_direction_and_none_when_not_proxied():
    mgr = manager()
    session = opened(mgr)
    for seq in (1, 2, 4):  # seq 3 lost
        send(mgr, session, Leg.A, seq)
    send(mgr, session, Leg.B, 1)
    figures = mgr.call_stats("c1")
    assert (figures["a_packets"], figures["a_lost"], figures["a_bytes"]) == (3, 1, 3 * 172)
    assert (figures["b_packets"], figures["b_lost"]) == (1, 0)
    assert figures["a_local"] == "10.9.9.9:20000"
    assert mgr.call_stats("no-such-call") is None
    session.close()
    assert mgr.call_stats("c1") is None


def test_global_counters_survive_closed_sessions():
    mgr = manager(SS_NOMEDIAHANGUPTIME="2")
    first = opened(mgr, "c1")
    send(mgr, first, Leg.A, 1)
    send(mgr, first, Leg.B, 1)
    first.close()
    second = opened(mgr, "c2")
    send(mgr, second, Leg.A, 1)
    second.on_timeout(lambda _session, _leg: None)
    mgr.reactor.advance(1)
    mgr.reactor.advance(1)
    mgr.reactor.advance(1)
    counters = mgr.counters()
    assert counters == {
        "rtp_sessions": 1,
        "rtp_sessions_total": 2,
        "rtp_media_timeouts_total": 1,
        "rtp_packets_total": 3,
        "rtp_bytes_total": 3 * 172,
        "rtp_lost_total": 0,
        "rtp_dropped_total": 0,
    }
