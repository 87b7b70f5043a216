"""`trace on|off` in the admin shell: interactive only, per session, filters, log file."""

from __future__ import annotations

import pytest
from twisted.conch.insults import insults
from twisted.internet import task
from twisted.internet.testing import StringTransport

from vos3k.admin.shell import build_shell
from vos3k.admin.terminal import ShellTerminal
from vos3k.sip import message as sip
from vos3k.trace import HUB, Direction

from .conftest import NOW_MS

INVITE = sip.parse(
    b"INVITE sip:4930123456@192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:8613800001@192.0.2.10>;tag=a\r\n"
    b"To: <sip:4930123456@192.0.2.1>\r\n"
    b"Call-ID: c1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)


@pytest.fixture
def clock(service):
    service.reactor = task.Clock()
    yield service.reactor
    for tap in HUB.taps:  # a failed test must not leave a tap on the process hub
        HUB.remove(tap)


def _connect(service, user="operator"):
    transport = StringTransport()
    server = insults.ServerProtocol(ShellTerminal, build_shell(), service, user, "192.0.2.1")
    server.makeConnection(transport)
    transport.clear()
    return server, transport


def _invite_from(host: str) -> None:
    HUB.sip(Direction.IN, INVITE, "UDP", host, 5060, NOW_MS)


@pytest.mark.parametrize(
    ("line", "user", "code", "error"),
    [
        ("trace on", "operator", 1, "trace needs an interactive session"),
        ("trace off", "operator", 1, "trace needs an interactive session"),
        ("trace on", "viewer", 1, "needs role operator"),
        ("trace on bogus=1", "operator", 2, "unknown key 'bogus'"),
    ],
    ids=["exec-on", "exec-off", "viewer", "unknown-key"],
)
def test_refusals_outside_an_interactive_operator_session(run, clock, line, user, code, error):
    outcome = run(line, user)
    assert (outcome.code, outcome.out) == (code, "")
    assert error in outcome.err
    assert HUB.active is False


def test_trace_streams_matching_messages_above_the_line_being_typed(service, clock):
    server, transport = _connect(service)
    server.dataReceived(b"trace on ip=192.0.2.10\r")
    assert b"trace on: ip=192.0.2.10; 'trace off' stops it" in transport.value()
    assert HUB.active
    server.dataReceived(b"call li")  # half a line typed when the messages come in
    transport.clear()
    _invite_from("192.0.2.10")
    _invite_from("192.0.2.99")  # outside the filter
    assert transport.value() == b""  # written on a later turn, not inside the transport
    clock.advance(0)
    shown = transport.value()
    assert b"SIP in from UDP 192.0.2.10:5060\r\n  INVITE sip:4930123456@192.0.2.1" in shown
    assert b"192.0.2.99" not in shown
    assert shown.endswith(b"operator@vos3k> call li")  # the prompt and the line, redrawn
    server.dataReceived(b"st\r")
    assert b"(none)" in transport.value()  # the editor still had "call li" + "st"


def test_trace_off_reports_counts_and_removes_the_tap(service, clock):
    server, transport = _connect(service)
    server.dataReceived(b"trace on number=8613800001\r")
    _invite_from("192.0.2.10")
    clock.advance(0)
    server.dataReceived(b"trace off\r")
    assert b"trace off: 1 messages shown, 0 dropped" in transport.value()
    assert HUB.active is False
    server.dataReceived(b"trace off\r")
    assert b"error: trace is not on in this session" in transport.value()


def test_each_session_has_its_own_trace(service, clock):
    first, first_out = _connect(service)
    second, second_out = _connect(service)
    first.dataReceived(b"trace on number=999\r")
    second.dataReceived(b"trace on number=4930\r")
    first_out.clear()
    second_out.clear()
    _invite_from("192.0.2.10")
    clock.advance(0)
    assert b"INVITE" not in first_out.value() and b"INVITE" in second_out.value()
    first.dataReceived(b"trace on\r")  # again: replaces the filter, still one tap
    assert len(HUB.taps) == 2


def test_the_trace_ends_with_the_session(service, clock):
    server, _transport = _connect(service)
    server.dataReceived(b"trace on\r")
    assert HUB.active
    server.connectionLost(None)
    assert HUB.active is False


def test_trace_file_under_the_data_dir(service, clock, tmp_path):
    server, transport = _connect(service)
    server.dataReceived(b"trace on file=calls.txt\r")
    path = tmp_path / "trace" / "calls.txt"
    assert f"also to {path}".encode() in transport.value()
    _invite_from("192.0.2.10")
    clock.advance(0)
    server.dataReceived(b"trace off\r")
    text = path.read_text()
    assert "SIP in from UDP 192.0.2.10:5060\n  INVITE sip:4930123456@192.0.2.1 SIP/2.0\n" in text
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"trace on file=../etc/passwd\r", b"a plain file name"),
        (b"trace on file=.hidden\r", b"a plain file name"),
        (b"trace on ip=300.0.0.1\r", b"not an IP address or CIDR"),
        (b"trace on number='1 2'\r", b"is not a number"),
    ],
    ids=["path-escape", "dot-file", "bad-ip", "bad-number"],
)
def test_bad_values_are_command_errors(service, clock, line, error):
    server, transport = _connect(service)
    server.dataReceived(line)
    assert b"\r\nerror: " in transport.value() and error in transport.value()
    assert HUB.active is False
