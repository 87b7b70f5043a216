"""The call core's media side: server releases (SPEC §3 step 12, §8 rows 14/15) and the
SPEC §12 proxy/media-check plan each attempt's Setup carries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.switch.fakes import World, default_directory, mapping, snapshot, vendor
from vos3k.media.policy import Leg
from vos3k.switch.call import (
    Cancel,
    CommitCdr,
    Dropped,
    FromCallee,
    HangUp,
    ServerRelease,
    StartAttempt,
    State,
    ToCallee,
    ToCaller,
)
from vos3k.switch.legs import Answered, Ending, Media, Ringing
from vos3k.switch.reasons import EndDirection, EndReason

D = Decimal
T0 = 1_777_000_000_000
VF1 = vendor("VF1", "198.51.100.20")
ANSWER = Media(b"v=0\r\n", address="198.51.100.20", port=4000)
# SPEC §12 auto: public and equal to the signalling source (TEST-NET addresses count as
# private to Python, so the customer signals from a public address here).
PUBLIC_IP = "81.2.69.160"
PUBLIC_OFFER = Media(b"v=0\r\n", address=PUBLIC_IP, port=4000)
NATTED_OFFER = Media(b"v=0\r\n", address="192.168.1.10", port=4000)  # SPEC §12: private


def customer(**kw):
    return mapping(callee_prefix_rewrite="00*:*", **kw)


def world(*routing, snap=None, **kw):
    return World(default_directory(*routing, customer=customer(**kw)), snap)


def only(effects, kind):
    found = [e for e in effects if isinstance(e, kind)]
    assert len(found) == 1, effects
    return found[0]


@pytest.mark.parametrize(
    ("reason", "q850"),
    [
        pytest.param(EndReason.MEDIA_TIMEOUT, 41, id="SPEC-12-media-timeout-15"),
        pytest.param(EndReason.SESSION_TIMEOUT, 102, id="SPEC-8-session-timeout-14"),
    ],
)
def test_server_release_while_talking_byes_both_ways(reason, q850):
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(ANSWER)), T0 + 1000)
    commit = only(call.handle(ServerRelease(reason), T0 + 31_000), CommitCdr)
    bye = Ending(reason, None, q850)
    assert commit.then == (ToCaller(HangUp(bye)), ToCallee(1, HangUp(bye)))
    cdr = commit.cdr
    assert (cdr.end_reason, cdr.end_direction) == (reason, EndDirection.SERVER)
    # SPEC §8 "bill = yes": 30 s at 0.06/min 60/60 is charged; the caller had a 200.
    assert (cdr.hold_time, cdr.sip_code, cdr.fee) == (30_000, 200, D("0.06"))
    assert call.state is State.ENDED
    assert (w.load.total, w.load.calls("VF1")) == (0, 0)


def test_server_release_before_answer_fails_the_setup_with_500():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Ringing()), T0 + 500)
    commit = only(call.handle(ServerRelease(EndReason.MEDIA_TIMEOUT), T0 + 2000), CommitCdr)
    ending = Ending(EndReason.MEDIA_TIMEOUT, 500, 41)
    assert commit.then == (ToCaller(HangUp(ending)), ToCallee(1, Cancel()))
    assert (commit.cdr.end_reason, commit.cdr.sip_code, commit.cdr.fee) == (15, 500, 0)


def test_no_rtp_pair_refuses_with_503_reason_5_and_no_failover():
    """SPEC §3 step 9: no free RTP pair is vos3k's refusal (5, 503, direction 2), not a
    vendor 503: the next candidate is never tried."""
    w = world(VF1, vendor("VF2", "198.51.100.30"))
    call, effects = w.arrive(T0)
    assert only(effects, StartAttempt).setup.gateway in {"VF1", "VF2"}
    commit = only(call.handle(ServerRelease(EndReason.NETWORK_CONGESTION), T0 + 10), CommitCdr)
    ending = Ending(EndReason.NETWORK_CONGESTION, 503, 42)
    assert commit.then == (ToCaller(HangUp(ending)), ToCallee(1, Cancel()))
    cdr = commit.cdr
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (
        EndReason.NETWORK_CONGESTION,
        EndDirection.SERVER,
        503,
    )
    assert call.state is State.ENDED and len(call.attempts) == 1
    assert (w.load.total, w.load.calls("VF1"), w.load.calls("VF2")) == (0, 0, 0)


def test_server_release_after_the_end_is_dropped():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(ANSWER)), T0 + 1000)
    call.handle(ServerRelease(EndReason.MEDIA_TIMEOUT), T0 + 5000)
    late = call.handle(ServerRelease(EndReason.MEDIA_TIMEOUT), T0 + 6000)
    assert late == [Dropped(ServerRelease(EndReason.MEDIA_TIMEOUT).input, "ended")]


@pytest.mark.parametrize(
    ("caller_mode", "callee_mode", "default", "offer", "proxied"),
    [
        pytest.param("must_on", "off", "off", PUBLIC_OFFER, True, id="SPEC-12-must_on-wins"),
        pytest.param("off", "must_on", "off", PUBLIC_OFFER, True, id="SPEC-12-must_on-callee"),
        pytest.param("off", "on", "on", NATTED_OFFER, False, id="SPEC-12-off-beats-on"),
        pytest.param("auto", "on", "off", PUBLIC_OFFER, True, id="SPEC-12-on-either"),
        pytest.param("auto", "auto", "on", PUBLIC_OFFER, False, id="SPEC-12-auto-public"),
        pytest.param("auto", "auto", "off", NATTED_OFFER, True, id="SPEC-12-auto-natted"),
        pytest.param("auto", "auto", "on", None, False, id="SPEC-12-auto-late-offer"),
        pytest.param("default", "default", "on", PUBLIC_OFFER, True, id="SPEC-12-default-on"),
        pytest.param("default", "default", "off", NATTED_OFFER, False, id="SPEC-12-default-off"),
        pytest.param("default", "auto", "auto", NATTED_OFFER, True, id="SPEC-12-default-auto"),
    ],
)
def test_setup_carries_the_proxy_decision(caller_mode, callee_mode, default, offer, proxied):
    callee = vendor("VF1", "198.51.100.20", media_proxy=callee_mode)
    snap = snapshot(SS_MEDIAPROXYMODE=default)
    w = world(callee, snap=snap, media_proxy=caller_mode, ip=PUBLIC_IP)
    _, effects = w.arrive(T0, media=offer, source_ip=PUBLIC_IP)
    assert only(effects, StartAttempt).setup.proxy_media is proxied


@pytest.mark.parametrize(
    ("caller_check", "callee_check", "watched"),
    [
        pytest.param("none", "none", set(), id="SPEC-12-no-check"),
        pytest.param("rx", "none", {Leg.A}, id="SPEC-12-customer-rx"),
        pytest.param("tx", "none", {Leg.B}, id="SPEC-12-customer-tx"),
        pytest.param("none", "rx", {Leg.B}, id="SPEC-12-vendor-rx"),
        pytest.param("both", "none", {Leg.A, Leg.B}, id="SPEC-12-both"),
    ],
)
def test_setup_carries_the_media_check(caller_check, callee_check, watched):
    callee = vendor("VF1", "198.51.100.20", media_check=callee_check)
    _, effects = world(callee, media_check=caller_check).arrive(T0, media=PUBLIC_OFFER)
    assert only(effects, StartAttempt).setup.media_watch == frozenset(watched)
