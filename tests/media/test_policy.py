"""SPEC §12 proxy decision, NAT detection, media_check and hold."""

from __future__ import annotations

import pytest

from vos3k.media.policy import (
    Direction,
    Leg,
    LegMedia,
    MediaCheck,
    ProxyMode,
    looks_natted,
    resolve,
    should_proxy,
    should_send,
    watched_legs,
)

OFF, ON, AUTO, MUST, DEF = (
    ProxyMode.OFF,
    ProxyMode.ON,
    ProxyMode.AUTO,
    ProxyMode.MUST_ON,
    ProxyMode.DEFAULT,
)
PUBLIC = (
    "81.2.69.160",
    "81.2.69.160",
)  # SDP address = signalling source, public (not TEST-NET: Python calls those private)
NATTED = ("192.168.1.10", "81.2.69.162")  # private SDP behind a public source


def leg(mode, addresses=PUBLIC):
    return LegMedia(mode, *addresses)


@pytest.mark.parametrize(
    ("a", "b", "default", "proxy"),
    [
        pytest.param(leg(MUST), leg(OFF), "off", True, id="s12-must_on-beats-off"),
        pytest.param(leg(OFF), leg(MUST), "off", True, id="s12-must_on-either-leg"),
        pytest.param(leg(OFF), leg(ON), "on", False, id="s12-off-beats-on"),
        pytest.param(leg(ON), leg(OFF, NATTED), "on", False, id="s12-off-beats-nat"),
        pytest.param(leg(ON), leg(AUTO), "off", True, id="s12-on-either-leg"),
        pytest.param(leg(AUTO), leg(ON), "off", True, id="s12-on-callee-leg"),
        pytest.param(leg(AUTO), leg(AUTO), "on", False, id="s12-auto-public-direct"),
        pytest.param(leg(AUTO, NATTED), leg(AUTO), "off", True, id="s12-auto-caller-natted"),
        pytest.param(leg(AUTO), leg(AUTO, NATTED), "off", True, id="s12-auto-callee-natted"),
        pytest.param(leg(DEF), leg(DEF), "on", True, id="s12-default-is-SS_MEDIAPROXYMODE-on"),
        pytest.param(leg(DEF), leg(DEF), "off", False, id="s12-default-off"),
        pytest.param(leg(DEF), leg(ON), "off", False, id="s12-default-off-beats-on"),
        pytest.param(leg(DEF), leg(OFF), "must_on", True, id="s12-default-must_on"),
        pytest.param(leg(DEF, NATTED), leg(AUTO), "auto", True, id="s12-default-auto-nat"),
        pytest.param(leg(DEF), leg(AUTO), "auto", False, id="s12-default-auto-public"),
    ],
)
def test_proxy_decision(a, b, default, proxy):
    assert should_proxy(a, b, default) is proxy


@pytest.mark.parametrize(
    ("sdp_ip", "signal_ip", "natted"),
    [
        pytest.param("10.0.0.5", "10.0.0.5", True, id="s12-private-rfc1918"),
        pytest.param("172.16.3.4", "81.2.69.161", True, id="s12-private-172"),
        pytest.param("100.64.1.1", "100.64.1.1", True, id="rfc6598-cgnat"),
        pytest.param("fd00::5", "fd00::5", True, id="rfc4193-ula"),
        pytest.param("81.2.69.160", "81.2.69.162", True, id="s12-differs-from-source"),
        pytest.param("81.2.69.160", "81.2.69.160", False, id="s12-public-same"),
        pytest.param("2001:db8::1", "2001:db8::1", True, id="doc-prefix-is-private"),
        pytest.param("0.0.0.0", "81.2.69.160", False, id="rfc3264-hold-unknown"),
        pytest.param(None, "81.2.69.160", False, id="late-offer-unknown"),
        pytest.param("gw.example.net", "81.2.69.160", True, id="fqdn-differs"),
    ],
)
def test_looks_natted(sdp_ip, signal_ip, natted):
    assert looks_natted(sdp_ip, signal_ip) is natted


@pytest.mark.parametrize(
    ("mode", "default", "resolved"),
    [
        pytest.param(DEF, "auto", AUTO, id="default-from-param"),
        pytest.param(ON, "off", ON, id="own-mode-kept"),
        pytest.param(DEF, DEF, ON, id="default-of-default-is-on"),
    ],
)
def test_resolve(mode, default, resolved):
    assert resolve(mode, default) is resolved


N, RX, TX, BOTH = MediaCheck.NONE, MediaCheck.RX, MediaCheck.TX, MediaCheck.BOTH


@pytest.mark.parametrize(
    ("a_check", "b_check", "watched"),
    [
        pytest.param(N, N, set(), id="s12-none"),
        pytest.param(RX, N, {Leg.A}, id="s12-caller-rx"),
        pytest.param(TX, N, {Leg.B}, id="s12-caller-tx-watches-callee"),
        pytest.param(N, RX, {Leg.B}, id="s12-callee-rx"),
        pytest.param(N, TX, {Leg.A}, id="s12-callee-tx-watches-caller"),
        pytest.param(BOTH, N, {Leg.A, Leg.B}, id="s12-both"),
        pytest.param(RX, RX, {Leg.A, Leg.B}, id="s12-union"),
    ],
)
def test_watched_legs(a_check, b_check, watched):
    assert watched_legs(a_check, b_check) == frozenset(watched)


@pytest.mark.parametrize(
    ("direction", "ip", "sends"),
    [
        pytest.param(Direction.SENDRECV, "81.2.69.160", True, id="s12-sendrecv"),
        pytest.param(Direction.SENDONLY, "81.2.69.160", True, id="s12-sendonly"),
        pytest.param(Direction.RECVONLY, "81.2.69.160", False, id="s12-hold-recvonly"),
        pytest.param(Direction.INACTIVE, "81.2.69.160", False, id="s12-hold-inactive"),
        pytest.param(Direction.SENDRECV, "0.0.0.0", False, id="s12-hold-0.0.0.0"),
        pytest.param(Direction.SENDRECV, "::", False, id="s12-hold-ipv6-unspecified"),
    ],
)
def test_should_send(direction, ip, sends):
    assert should_send(direction, ip) is sends
