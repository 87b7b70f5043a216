"""The signalling trace hub: decoding, filters, bounded queues, the transports' hooks."""

from __future__ import annotations

import io
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import task

from vos3k.h323 import h225, q931, ras
from vos3k.h323.h225 import Alias, AliasKind, Body, TransportAddress
from vos3k.sip import message as sip
from vos3k.trace import (
    HUB,
    Direction,
    Tap,
    TraceFilter,
    TraceHub,
    decode_q931,
    decode_ras,
    decode_sip,
)

NOW_MS = 1_767_268_800_123  # 2026-01-01 12:00:00.123 UTC

INVITE = (
    b"INVITE sip:4930123456@192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:8613800001@192.0.2.10>;tag=a\r\n"
    b"To: <sip:4930123456@192.0.2.1>\r\n"
    b"Call-ID: c1@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


def _setup() -> q931.Message:
    info = h225.UserInformation(
        Body.SETUP,
        call_identifier=bytes(range(16)),
        conference_id=bytes(16),
        source_aliases=(Alias(AliasKind.H323_ID, "gw-east"),),
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123456"),),
        h245_tunnelling=True,
    )
    return q931.Message(
        q931.MessageType.SETUP,
        0x1234,
        ies=(
            q931.CallingPartyNumber("8613800001"),
            q931.CalledPartyNumber("4930123456"),
            q931.UserUser(h225.encode_user_information(info)),
        ),
    )


def test_sip_decoding_shows_start_line_headers_and_numbers():
    message = sip.parse(INVITE)
    numbers, lines = decode_sip(message)
    assert lines[0] == "INVITE sip:4930123456@192.0.2.1 SIP/2.0"
    assert "Call-ID: c1@192.0.2.10" in lines
    assert lines[-1] == "(body 4 bytes, application/sdp)"
    assert numbers == ("4930123456", "8613800001")


def test_q931_decoding_shows_type_party_numbers_and_uuie():
    numbers, lines = decode_q931(q931.parse(q931.encode(_setup())))
    assert lines[0] == f"SETUP cr={0x1234} (from originator)"
    assert "Calling-Party-Number: 8613800001" in lines
    assert "Called-Party-Number: 4930123456" in lines
    uuie = next(line for line in lines if line.startswith("H.225"))
    assert "call-id=000102030405060708090a0b0c0d0e0f" in uuie
    assert "destination=4930123456(dialledDigits)" in uuie
    assert "h245-tunnelling=yes" in uuie
    assert set(numbers) == {"8613800001", "4930123456", "gw-east"}


def test_q931_release_complete_shows_cause():
    message = q931.Message(q931.MessageType.RELEASE_COMPLETE, 7, True, (q931.Cause(17),))
    _numbers, lines = decode_q931(message)
    assert lines == ("RELEASE COMPLETE cr=7 (to originator)", "Cause: 17 (location 0)")


def test_ras_decoding_names_the_kind():
    rrq = ras.RasMessage(
        ras.RasKind.RRQ,
        5,
        aliases=(Alias(AliasKind.DIALED_DIGITS, "2098"),),
        ras_addresses=(TransportAddress("192.0.2.30", 1719),),
        call_signal_addresses=(TransportAddress("192.0.2.30", 1720),),
        time_to_live=60,
    )
    numbers, lines = decode_ras(ras.parse(ras.encode(rrq)))
    assert lines == ("RRQ seq=5 aliases=2098(dialledDigits) ttl=60",)
    assert numbers == ("2098",)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x08\x02\x00", "malformed Q.931"),
        (b"", "malformed Q.931"),
    ],
    ids=["truncated-header", "empty"],
)
def test_malformed_q931_is_shown_not_raised(data, expected):
    _numbers, lines = decode_q931(q931.parse(data))
    assert lines[0].startswith(expected)


@given(st.binary(max_size=300))
def test_any_q931_bytes_decode_to_lines(data):
    numbers, lines = decode_q931(q931.parse(data))
    assert lines and all(isinstance(line, str) for line in lines)
    assert all(isinstance(n, str) for n in numbers)


@given(st.binary(max_size=300))
def test_any_ras_bytes_decode_to_lines(data):
    _numbers, lines = decode_ras(ras.parse(data))
    assert len(lines) == 1


@pytest.mark.parametrize(
    ("ip", "number", "host", "numbers", "wanted"),
    [
        (None, None, "192.0.2.10", (), True),
        ("192.0.2.10", None, "192.0.2.10", (), True),
        ("192.0.2.10", None, "192.0.2.11", (), False),
        ("192.0.2.0/24", None, "192.0.2.99", (), True),
        ("192.0.2.0/24", None, "198.51.100.1", (), False),
        ("2001:db8::/32", None, "192.0.2.1", (), False),
        (None, "4930", "192.0.2.10", ("8613800001", "4930123456"), True),
        (None, "4931", "192.0.2.10", ("8613800001", "4930123456"), False),
        ("192.0.2.10", "4930", "192.0.2.10", ("4930123456",), True),
        ("192.0.2.10", "4930", "192.0.2.11", ("4930123456",), False),
    ],
    ids=["all", "ip", "other-ip", "cidr", "outside-cidr", "v6-cidr-v4-host", "number",
         "other-number", "both", "both-wrong-ip"],
)  # fmt: skip
def test_filters(ip, number, host, numbers, wanted):
    trace_filter = TraceFilter(ip, number)
    assert (trace_filter.wants_ip(host) and trace_filter.wants_numbers(numbers)) is wanted


@pytest.mark.parametrize(
    ("ip", "number"),
    [("300.1.1.1", None), ("host.example", None), (None, "12 34"), (None, "")],
    ids=["bad-octet", "name", "space", "empty"],
)
def test_bad_filters_are_values(ip, number):
    assert isinstance(TraceFilter.parse(ip, number), str)


class Screen:
    def __init__(self) -> None:
        self.text = ""
        self.backlog = 0

    def write(self, text: str) -> None:
        self.text += text


def _tap(
    hub: TraceHub, trace_filter: TraceFilter | None = None, **kwargs
) -> tuple[Tap, Screen, task.Clock]:
    screen, clock = Screen(), task.Clock()
    tap = Tap(
        trace_filter or TraceFilter(),
        screen.write,
        clock,
        tz=UTC,
        backlog=lambda: screen.backlog,
        **kwargs,
    )
    hub.add(tap)
    return tap, screen, clock


def test_hub_is_inactive_without_taps():
    hub = TraceHub()
    assert hub.active is False
    tap, _screen, _clock = _tap(hub)
    assert hub.active is True
    hub.remove(tap)
    assert hub.active is False
    assert tap.closed


def test_tap_writes_on_a_later_turn_with_time_direction_and_address():
    hub = TraceHub()
    _, screen, clock = _tap(hub)
    hub.sip(Direction.IN, sip.parse(INVITE), "UDP", "192.0.2.10", 5060, NOW_MS)
    assert screen.text == ""  # never written from inside the transport's call
    clock.advance(0)
    head, first = screen.text.splitlines()[:2]
    assert head == "2026-01-01 12:00:00.123 SIP in from UDP 192.0.2.10:5060"
    assert first == "  INVITE sip:4930123456@192.0.2.1 SIP/2.0"


def test_taps_see_only_what_their_filters_match():
    hub = TraceHub()
    by_ip, ip_screen, ip_clock = _tap(hub, TraceFilter(ip="192.0.2.20"))
    by_number, number_screen, number_clock = _tap(hub, TraceFilter(number="8613800001"))
    hub.sip(Direction.IN, sip.parse(INVITE), "UDP", "192.0.2.10", 5060, NOW_MS)
    hub.q931(Direction.OUT, q931.encode(_setup()), "192.0.2.20", 1720, NOW_MS)
    ip_clock.advance(0)
    number_clock.advance(0)
    assert "SIP" not in ip_screen.text and "Q.931 out to TCP 192.0.2.20:1720" in ip_screen.text
    assert "SIP in" in number_screen.text and "Q.931 out" in number_screen.text
    assert (by_ip.matched, by_number.matched) == (1, 2)


def test_a_slow_terminal_makes_the_tap_drop_and_count_never_block():
    hub = TraceHub()
    tap, screen, clock = _tap(hub, limit=3)
    screen.backlog = 10**6  # the admin's SSH window is full
    for _ in range(5):
        hub.sip(Direction.IN, sip.parse(INVITE), "UDP", "192.0.2.10", 5060, NOW_MS)
    clock.advance(0)
    assert (tap.queued, tap.dropped, screen.text) == (3, 2, "")
    screen.backlog = 0  # the window opens again
    clock.advance(0.1)
    assert tap.shown == 3 and screen.text.count("SIP in") == 3


def test_the_log_file_gets_every_match_even_when_the_terminal_drops():
    hub = TraceHub()
    log_file = io.StringIO()
    tap, _screen, _clock = _tap(hub, limit=1, log_file=log_file)
    for _ in range(3):
        hub.ras(Direction.IN, ras.RasMessage(ras.RasKind.GRQ, 1), "192.0.2.30", 1719, NOW_MS)
    assert tap.dropped == 2
    assert log_file.getvalue().count("RAS in from UDP 192.0.2.30:1719\n  GRQ seq=1\n") == 3


def test_a_decoding_bug_does_not_reach_the_transport():
    hub = TraceHub()
    _tap(hub)
    hub.sip(Direction.IN, object(), "UDP", "192.0.2.10", 5060, NOW_MS)  # not a message


# ---------------------------------------------------------------- the transports' hooks


class Sink:
    def __init__(self) -> None:
        self.messages = []

    def message_received(self, message, source) -> None:
        self.messages.append(message)


class Udp:
    def __init__(self) -> None:
        self.sent = []

    def write(self, data, host, port) -> None:
        self.sent.append((data, host, port))


@pytest.fixture
def global_tap():
    screen, clock = Screen(), task.Clock()
    tap = Tap(TraceFilter(), screen.write, clock, tz=UTC)
    HUB.add(tap)
    yield screen, clock
    HUB.remove(tap)


def test_sip_transport_traces_what_it_receives_and_sends(global_tap):
    from vos3k.sip.transaction import Address
    from vos3k.sip.transport import SipTransport

    screen, clock = global_tap
    reactor = task.Clock()
    reactor.advance(NOW_MS / 1000)
    sink = Sink()
    transport = SipTransport(reactor, [], sink)
    udp = Udp()
    transport.udp.append(udp)
    udp.ipv6 = False
    transport.datagram_received(udp, INVITE, "192.0.2.10", 5060)
    reply = sip.Response(200, "OK", sink.messages[0].headers)
    transport.send(reply, Address("UDP", "192.0.2.10", 5060))
    clock.advance(0)
    assert "SIP in from UDP 192.0.2.10:5060\n  INVITE" in screen.text
    assert "SIP out to UDP 192.0.2.10:5060\n  SIP/2.0 200 OK" in screen.text


def test_h323_signalling_traces_received_and_sent_q931(global_tap):
    from twisted.internet.testing import StringTransport

    from vos3k.h323 import tpkt
    from vos3k.h323.transport import CallDriver, SignallingConnection, new_counters

    screen, clock = global_tap

    class Call:
        state = None

        def handle(self, event, now_ms):
            return []

        def next_deadline_ms(self):
            return None

    driver = CallDriver(task.Clock(), Call(), new_counters())
    connection = SignallingConnection(driver)
    connection.makeConnection(StringTransport(peerAddress=_Peer("192.0.2.20", 1720)))
    connection.dataReceived(tpkt.encode(q931.encode(_setup())))
    from vos3k.h323 import call as core

    driver._perform([core.SendQ931(q931.MessageType.SETUP, q931.encode(_setup()))])
    clock.advance(0)
    assert "Q.931 in from TCP 192.0.2.20:1720\n  SETUP" in screen.text
    assert "Q.931 out to TCP 192.0.2.20:1720\n  SETUP" in screen.text


class _Peer:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
