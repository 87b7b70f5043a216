"""RFC 4028 session timers: header reading, negotiation and the refresh schedule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from vos3k.sip.message import Request, Response
from vos3k.sip.timers import (
    Expire,
    LegSession,
    Malformed,
    Negotiated,
    PeerRefreshed,
    RefreshAnswered,
    Refresher,
    SendRefresh,
    SessionKeeper,
    Tick,
    TimerHeaders,
    TooBrief,
    negotiate_as_uac,
    negotiate_as_uas,
    offer_headers,
    read_timer_headers,
    request_headers,
    response_headers,
)

US, PEER = Refresher.US, Refresher.PEER


def invite(*headers: tuple[str, str]) -> Request:
    return Request("INVITE", "sip:1@example.net", tuple(headers))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param((), TimerHeaders(), id="none"),
        pytest.param(
            (("Session-Expires", "1800;refresher=uac"), ("Supported", "100rel, timer")),
            TimerHeaders(1800, "uac", None, True, False),
            id="rfc4028-s4-session-expires-refresher",
        ),
        pytest.param(
            (("x", "600"), ("Min-SE", "120"), ("Require", "timer")),
            TimerHeaders(600, None, 120, True, False),
            id="rfc4028-s4-compact-x-and-min-se",
        ),
        pytest.param(
            (("Session-Expires", "90 ; Refresher=UAS"), ("Allow", "INVITE, UPDATE")),
            TimerHeaders(90, "uas", None, False, True),
            id="rfc3311-update-allowed",
        ),
        pytest.param(
            (("Session-Expires", "soon"),),
            Malformed("Session-Expires: 'soon' is not delta-seconds"),
            id="rfc4028-s4-not-delta-seconds",
        ),
        pytest.param(
            (("Session-Expires", "90;refresher=me"),),
            Malformed("Session-Expires: refresher='me'"),
            id="rfc4028-s4-bad-refresher",
        ),
        pytest.param(
            (("Min-SE", "-5"),),
            Malformed("Min-SE: '-5' is not delta-seconds"),
            id="rfc4028-s5-bad-min-se",
        ),
    ],
)
def test_read_timer_headers(headers, expected):
    assert read_timer_headers(invite(*headers)) == expected


@given(st.text(max_size=30), st.text(max_size=30))
def test_read_timer_headers_never_raises(session_expires, min_se):
    result = read_timer_headers(invite(("Session-Expires", session_expires), ("Min-SE", min_se)))
    assert isinstance(result, TimerHeaders | Malformed)


@pytest.mark.parametrize(
    ("request_", "ttl", "expected"),
    [
        pytest.param(TimerHeaders(), 600, None, id="rfc4028-s9-no-timer"),
        pytest.param(
            TimerHeaders(supported=True),
            600,
            Negotiated(600, PEER, True),
            id="rfc4028-s9-supported-we-add-ttl",
        ),
        pytest.param(
            TimerHeaders(1800, "uac", None, True),
            600,
            Negotiated(600, PEER, True),
            id="rfc4028-s9-lowered-to-ttl",
        ),
        pytest.param(
            TimerHeaders(300, None, None, True),
            600,
            Negotiated(300, PEER, True),
            id="rfc4028-s9-never-raised",
        ),
        pytest.param(
            TimerHeaders(1800, "uac", 900, True),
            600,
            Negotiated(900, PEER, True),
            id="rfc4028-s9-not-below-min-se",
        ),
        pytest.param(
            TimerHeaders(90, "uas", None, True),
            600,
            Negotiated(90, US, True),
            id="rfc4028-s9-uac-asks-uas-to-refresh",
        ),
        pytest.param(
            TimerHeaders(1800, None, None, False),
            600,
            Negotiated(600, US, False),
            id="rfc4028-s9-unsupported-so-we-refresh",
        ),
        pytest.param(TimerHeaders(60, None, None, True), 600, TooBrief(90), id="rfc4028-s9-422"),
        pytest.param(
            TimerHeaders(60, None, 120, True), 600, TooBrief(120), id="rfc4028-s9-422-their-min-se"
        ),
    ],
)
def test_negotiate_as_uas(request_, ttl, expected):
    assert negotiate_as_uas(request_, ttl) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(TimerHeaders(), None, id="rfc4028-s7.2-no-session-expires"),
        pytest.param(
            TimerHeaders(900, "uas", None, True),
            Negotiated(900, PEER, True),
            id="rfc4028-s7.2-uas-refreshes",
        ),
        pytest.param(
            TimerHeaders(900, "uac", None, True),
            Negotiated(900, US, True),
            id="rfc4028-s7.2-we-refresh",
        ),
        pytest.param(
            TimerHeaders(900, "uas", None, False),
            Negotiated(900, US, False),
            id="rfc4028-s7.2-no-require-timer-we-refresh",
        ),
    ],
)
def test_negotiate_as_uac(response, expected):
    assert negotiate_as_uac(response, 600) == expected


def test_header_builders():
    assert offer_headers(600) == (
        ("Supported", "timer"),
        ("Session-Expires", "600"),
        ("Min-SE", "90"),
    )
    assert response_headers(Negotiated(300, US, False)) == (
        ("Session-Expires", "300;refresher=uas"),
        ("Supported", "timer"),
    )
    assert response_headers(Negotiated(300, PEER, True)) == (
        ("Session-Expires", "300;refresher=uac"),
        ("Require", "timer"),
        ("Supported", "timer"),
    )
    assert request_headers(Negotiated(300, US, True)) == (
        ("Session-Expires", "300;refresher=uac"),
        ("Supported", "timer"),
    )
    # a 2xx we build is read back as the same timer by the UAC side
    reply = Response(200, "OK", response_headers(Negotiated(300, US, True)))
    assert negotiate_as_uac(read_timer_headers(reply), 600) == Negotiated(300, PEER, True)


REFRESH_UPDATE = SendRefresh("UPDATE", (("Session-Expires", "90;refresher=uac"),
                                        ("Supported", "timer")))  # fmt: skip
REFRESH_INVITE = SendRefresh("INVITE", REFRESH_UPDATE.headers)
PROBE = SendRefresh("INVITE", ())


def we_refresh(use_update=True):
    return LegSession.with_timer(Negotiated(90, US, True), 2, use_update, 0)


def peer_refreshes():
    return LegSession.with_timer(Negotiated(90, PEER, True), 2, True, 0)


# Each row: a session made at now_ms=0, then (now_ms, event, expected effects) in turn,
# and the deadline expected afterwards.
@pytest.mark.parametrize(
    ("make", "steps", "deadline"),
    [
        pytest.param(we_refresh, [], 45_000, id="ss-sip-session-update-segment-first-refresh"),
        pytest.param(we_refresh, [(44_999, Tick(), [])], 45_000, id="early-tick-does-nothing"),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE])],
            90_000,
            id="rfc3311-refresh-with-update",
        ),
        pytest.param(
            lambda: we_refresh(False),
            [(45_000, Tick(), [REFRESH_INVITE])],
            90_000,
            id="rfc4028-s7.4-refresh-with-reinvite",
        ),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE]), (45_100, RefreshAnswered(200), [])],
            90_100,
            id="rfc4028-s10-2xx-restarts",
        ),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE]), (45_100, RefreshAnswered(481), [Expire()])],
            None,
            id="spec-s8-reason-14-on-481",
        ),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE]), (45_100, RefreshAnswered(408), [Expire()])],
            None,
            id="spec-s8-reason-14-on-408",
        ),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE]), (77_000, RefreshAnswered(None), [Expire()])],
            None,
            id="spec-s8-reason-14-no-answer",
        ),
        pytest.param(
            we_refresh,
            [(45_000, Tick(), [REFRESH_UPDATE]), (45_100, RefreshAnswered(500), [])],
            90_000,
            id="rfc4028-s10-other-failure-retries-until-expiry",
        ),
        pytest.param(
            we_refresh,
            [
                (45_000, Tick(), [REFRESH_UPDATE]),
                (45_100, RefreshAnswered(500), []),
                (90_000, Tick(), [Expire()]),
            ],
            None,
            id="rfc4028-s10-expired-unrefreshed",
        ),
        pytest.param(
            we_refresh,
            [(10_000, PeerRefreshed(), [])],
            55_000,
            id="rfc4028-s10-peer-reinvite-refreshes",
        ),
        pytest.param(
            we_refresh,
            [(10_000, PeerRefreshed(Negotiated(120, US, True)), [])],
            70_000,
            id="rfc4028-s10-renegotiated-interval",
        ),
        pytest.param(peer_refreshes, [], 60_000, id="rfc4028-s10-grace-min-32-third"),
        pytest.param(
            peer_refreshes,
            [(59_000, PeerRefreshed(), [])],
            119_000,
            id="rfc4028-s10-peer-refreshed",
        ),
        pytest.param(
            peer_refreshes,
            [(60_000, Tick(), [Expire()])],
            None,
            id="spec-s8-reason-14-peer-never-refreshed",
        ),
        pytest.param(
            lambda: LegSession.with_timer(Negotiated(1800, PEER, True), 2, True, 0),
            [],
            1_768_000,
            id="rfc4028-s10-grace-32s",
        ),
        pytest.param(
            lambda: LegSession.probing(7200, 0),
            [(7_200_000, Tick(), [PROBE])],
            None,
            id="ss-sip-no-timer-reinvite-interval-probe",
        ),
        pytest.param(
            lambda: LegSession.probing(30, 0),
            [(30_000, Tick(), [PROBE]), (30_050, RefreshAnswered(488), [])],
            60_050,
            id="probe-any-answer-is-alive",
        ),
        pytest.param(
            lambda: LegSession.probing(30, 0),
            [(30_000, Tick(), [PROBE]), (30_050, RefreshAnswered(481), [Expire()])],
            None,
            id="spec-s8-reason-14-probe-481",
        ),
        pytest.param(
            we_refresh,
            [(45_000, RefreshAnswered(200), [])],
            45_000,
            id="stray-answer-ignored",
        ),
    ],
)
def test_schedule(make, steps, deadline):
    session = make()
    for now_ms, event, effects in steps:
        assert session.handle(event, now_ms) == effects
    assert session.next_deadline_ms() == deadline


def test_probe_off():
    assert LegSession.probing(0, 5) is None


def test_keeper_on_a_clock():
    clock = Clock()
    clock.advance(1000)
    sent, expired = [], []
    keeper = SessionKeeper(
        LegSession.with_timer(Negotiated(90, US, True), 3, False, 1_000_000),
        clock,
        lambda method, headers, on_answer: sent.append((method, on_answer)),
        lambda: expired.append(clock.seconds()),
    )
    clock.advance(29.999)
    assert sent == []
    clock.advance(0.001)  # 90 / 3 = 30 s
    assert [m for m, _ in sent] == ["INVITE"]
    sent[0][1](200)
    clock.advance(30)
    assert len(sent) == 2
    sent[1][1](None)
    assert expired == [1060.0]
    clock.advance(1000)
    assert len(sent) == 2 and expired == [1060.0]
    assert keeper.session.next_deadline_ms() is None


def test_keeper_stop_cancels():
    clock = Clock()
    sent = []
    keeper = SessionKeeper(
        LegSession.with_timer(Negotiated(90, PEER, True), 2, True, 0), clock,
        lambda *a: sent.append(a), lambda: sent.append("expired"),
    )  # fmt: skip
    keeper.stop()
    assert clock.getDelayedCalls() == []
    clock.advance(1000)
    assert sent == []
