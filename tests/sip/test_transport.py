"""SIP over UDP/TCP (vos3k/sip/transport.py): framing, Via stamping, malformed input, sending."""

from __future__ import annotations

import errno

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import MessageLengthError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher

from vos3k.config import Address as ListenAddress
from vos3k.sip.message import Request, Response, parse
from vos3k.sip.transaction import Address
from vos3k.sip.transport import (
    MAX_DATAGRAM,
    SipDatagramProtocol,
    SipStreamProtocol,
    SipTransport,
    stamp_via,
)

PHONE = ("192.0.2.10", 5062)


def sip(
    method="OPTIONS",
    *,
    via="SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1;rport",
    extra="",
    body=b"",
    cseq_method=None,
) -> bytes:
    head = (
        f"{method} sip:vos3k.test SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:1001@vos3k.test>;tag=a1\r\n"
        "To: <sip:vos3k.test>\r\n"
        "Call-ID: call-1@192.0.2.10\r\n"
        f"CSeq: 7 {cseq_method or method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


RESPONSE = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class Sink:
    def __init__(self):
        self.got: list[tuple[Request | Response, Address]] = []
        self.fail = False

    def message_received(self, message, source):
        if self.fail:
            raise RuntimeError("a bug in the endpoint")
        self.got.append((message, source))


class FakeDatagram:
    """The part of udp.Port the protocol uses."""

    def __init__(self, host="127.0.0.1", port=5060):
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.host = IPv4Address("UDP", host, port)

    def write(self, data, addr):
        self.written.append((data, addr))

    def getHost(self):  # noqa: N802 (Twisted's name)
        return self.host


@pytest.fixture
def rig():
    reactor = MemoryReactorClock()
    sink = Sink()
    transport = SipTransport(
        reactor, [ListenAddress("127.0.0.1", 5060)], sink, tcp_idle_s=30, max_stream_size=2000
    )
    udp = SipDatagramProtocol(transport, transport.listen[0])
    udp.makeConnection(FakeDatagram())
    transport.udp.append(udp)
    return reactor, transport, udp, sink


def replies(udp):
    return [(parse(data), addr) for data, addr in udp.transport.written]


def connect(transport, peer=("192.0.2.20", 40000)):
    stream = SipStreamProtocol(transport)
    wire = StringTransport(peerAddress=IPv4Address("TCP", *peer))
    stream.makeConnection(wire)
    return stream, wire


# -- Via received/rport (RFC 3261 §18.2.1, RFC 3581 §4) ------------------------------


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        (
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1;rport",
            ("192.0.2.10", 5062),
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1;received=192.0.2.10;rport=5062",
        ),
        (
            "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1",
            ("203.0.113.9", 31000),
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;received=203.0.113.9;rport=31000",
        ),
        (
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1",
            ("203.0.113.9", 31000),
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;received=203.0.113.9",
        ),
        (
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1",
            ("192.0.2.10", 5062),
            "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK1",
        ),
        (
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport",
            ("2001:db8::9", 5070),
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=2001:db8::9;rport=5070",
        ),
        (
            "SIP/2.0/UDP [2001:DB8::1];branch=z9hG4bK1",
            ("2001:db8::1", 5060),
            "SIP/2.0/UDP [2001:DB8::1];branch=z9hG4bK1",
        ),
    ],
    ids=[
        "rfc3581-s4-rport-same-host",
        "rfc3581-s4-nat",
        "rfc3261-s18.2.1-received",
        "rfc3261-s18.2.1-same-host",
        "rfc5118-ipv6-rport",
        "rfc5118-ipv6-same-host",
    ],
)
def test_stamp_via(via, source, expected):
    request = parse(sip(via=via))
    stamped = stamp_via(request, Address("UDP", *source))
    assert stamped.headers_named("via")[0] == expected


def test_stamp_via_touches_only_the_top_via():
    request = parse(
        sip(via="SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.6;branch=z9hG4bK2")
    )
    stamped = stamp_via(request, Address("UDP", "203.0.113.9", 4000))
    assert [v.host for v in stamped.vias()] == ["10.0.0.5", "10.0.0.6"]
    assert stamped.vias()[1].received is None
    assert stamped.top_via().rport == 4000


# -- receiving over UDP -----------------------------------------------------------------


def test_udp_request_reaches_the_sink_stamped(rig):
    _reactor, transport, udp, sink = rig
    udp.datagramReceived(sip(), PHONE)
    [(message, source)] = sink.got
    assert source == Address("UDP", *PHONE)
    assert message.top_via().rport == 5062 and message.top_via().received == "192.0.2.10"
    assert transport.stats["received"] == 1


@pytest.mark.parametrize(
    ("packet", "status"),
    [
        (sip("OPTIONS", cseq_method="INVITE"), 400),
        (sip("INVITE", extra="Max-Forwards: 0\r\n").replace(b"Max-Forwards: 70\r\n", b""), 483),
        (sip("OPTIONS", extra="Require: frobnicate\r\n"), 420),
        (sip().replace(b"sip:vos3k.test SIP/2.0", b"sip:vos3k.test SIP/7.0"), 505),
        (sip().replace(b"sip:vos3k.test", b"http://vos3k.test"), 416),
        (sip(body=b"v=0\r\n").replace(b"Content-Length: 5", b"Content-Length: 50"), 400),
    ],
    ids=[
        "rfc3261-s8.2-cseq-mismatch",
        "rfc3261-s16.3-max-forwards",
        "rfc3261-s8.2.2.3-require",
        "rfc3261-s8.2.2-version",
        "rfc3261-s8.2.1-scheme",
        "rfc3261-s18.3-short-body",
    ],
)
def test_malformed_requests_are_answered(rig, packet, status):
    _reactor, transport, udp, sink = rig
    udp.datagramReceived(packet, PHONE)
    assert sink.got == []
    [(reply, addr)] = replies(udp)
    assert reply.status == status and addr == PHONE
    assert reply.call_id() == "call-1@192.0.2.10"
    assert transport.stats["malformed"] == 1


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00\xff garbage",
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n",
        RESPONSE.replace(b"CSeq: 1 OPTIONS", b"CSeq: x"),
    ],
    ids=["rfc3261-s18.1.2-garbage", "rfc3261-s8.2-no-from-to", "rfc3261-s18.1.2-bad-response"],
)
def test_unanswerable_input_is_dropped_and_counted(rig, packet):
    _reactor, transport, udp, sink = rig
    udp.datagramReceived(packet, PHONE)
    assert sink.got == [] and udp.transport.written == []
    assert transport.stats["malformed"] == 1


def test_ack_is_never_answered_even_when_bad(rig):
    _reactor, transport, udp, _sink = rig
    udp.datagramReceived(sip("ACK", cseq_method="INVITE"), PHONE)
    assert udp.transport.written == [] and transport.stats["malformed"] == 1


def test_responses_reach_the_sink(rig):
    _reactor, _transport, udp, sink = rig
    udp.datagramReceived(RESPONSE, PHONE)
    [(message, _source)] = sink.got
    assert isinstance(message, Response) and message.status == 200


def test_admission_hook_runs_before_parsing(rig):
    _reactor, transport, udp, sink = rig
    seen = []

    def refuse(ip, port, kind):
        seen.append((ip, port, kind))
        return False

    transport.admit_source = refuse
    udp.datagramReceived(b"garbage that would count as malformed", PHONE)
    udp.datagramReceived(sip(), PHONE)
    assert seen == [(*PHONE, "UDP")] * 2
    assert sink.got == [] and transport.stats["dropped"] == 2
    assert transport.stats["malformed"] == 0


def test_oversized_datagram_is_dropped(rig):
    _reactor, transport, udp, sink = rig
    body = b"x" * (MAX_DATAGRAM + 1 - len(sip()))
    udp.datagramReceived(sip(body=body) + b"x" * 10, PHONE)
    assert sink.got == [] and udp.transport.written == []
    assert transport.stats["malformed"] == 1


def test_a_bug_behind_the_transport_is_logged_once_and_serving_goes_on(rig):
    _reactor, transport, udp, sink = rig
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        sink.fail = True
        udp.datagramReceived(sip(), PHONE)
        sink.fail = False
        udp.datagramReceived(sip(), PHONE)
    finally:
        globalLogPublisher.removeObserver(events.append)
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1 and failures[0]["call_id"] == "call-1@192.0.2.10"
    assert transport.stats["errors"] == 1 and len(sink.got) == 1


# -- TCP ---------------------------------------------------------------------------------


def test_tcp_message_split_across_segments(rig):
    _reactor, _transport, _udp, sink = rig
    stream, _wire = connect(rig[1])
    data = sip(
        via="SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bK9",
        body=b"v=0\r\n",
        extra="Content-Type: application/sdp\r\n",
    )
    for chunk in (data[:10], data[10:-3], data[-3:]):
        assert sink.got == []
        stream.dataReceived(chunk)
    [(message, source)] = sink.got
    assert message.body == b"v=0\r\n"
    assert source == Address("TCP", "192.0.2.20", 40000)
    assert message.top_via().received is None  # sent-by is the source: nothing to add


def test_tcp_two_messages_in_one_segment(rig):
    stream, _wire = connect(rig[1])
    stream.dataReceived(sip() + sip("REGISTER"))
    assert [m.method for m, _s in rig[3].got] == ["OPTIONS", "REGISTER"]


def test_tcp_oversized_message_gets_513_then_close(rig):
    _reactor, transport, _udp, sink = rig
    stream, wire = connect(transport)
    stream.dataReceived(sip(body=b"x" * 3000))
    assert sink.got == []
    reply = parse(wire.value())
    assert reply.status == 513
    assert wire.disconnecting
    assert transport.stats["malformed"] == 1


def test_tcp_keepalive_gets_a_pong(rig):
    stream, wire = connect(rig[1])
    stream.dataReceived(b"\r\n\r\n")
    assert wire.value() == b"\r\n"


def test_tcp_idle_connection_closes(rig):
    reactor, transport, _udp, _sink = rig
    stream, wire = connect(transport)
    reactor.advance(20)
    stream.dataReceived(sip())  # activity restarts the idle timer
    reactor.advance(20)
    assert not wire.disconnecting
    reactor.advance(11)
    assert wire.disconnecting


# -- sending -----------------------------------------------------------------------------


def test_udp_send_leaves_from_the_listening_socket(rig):
    _reactor, transport, udp, _sink = rig
    response = parse(RESPONSE)
    transport.send(response, Address("UDP", "198.51.100.7", 5090))
    assert udp.transport.written == [(RESPONSE, ("198.51.100.7", 5090))]
    assert transport.stats["sent"] == 1


def test_udp_send_to_an_address_family_without_socket_fails(rig):
    _reactor, transport, _udp, _sink = rig
    failed = []
    transport.send(parse(RESPONSE), Address("UDP", "2001:db8::1", 5060), lambda: failed.append(1))
    assert failed == [1]


def test_tcp_send_reuses_the_incoming_connection(rig):
    reactor, transport, _udp, _sink = rig
    _stream, wire = connect(transport)
    transport.send(parse(RESPONSE), Address("TCP", "192.0.2.20", 40000))
    assert wire.value() == RESPONSE
    assert reactor.tcpClients == []


def test_tcp_send_opens_one_connection_and_queues(rig):
    reactor, transport, _udp, _sink = rig
    dest = Address("TCP", "198.51.100.7", 5060)
    transport.send(parse(RESPONSE), dest)
    transport.send(parse(RESPONSE), dest)
    [(host, port, factory, _timeout, _bind)] = reactor.tcpClients
    assert (host, port) == ("198.51.100.7", 5060)
    stream = factory.buildProtocol(None)
    wire = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    stream.makeConnection(wire)
    assert wire.value() == RESPONSE * 2
    assert transport.connections[(host, port)] is stream


def test_tcp_connect_failure_reports_an_error(rig):
    reactor, transport, _udp, _sink = rig
    failed = []
    transport.send(parse(RESPONSE), Address("TCP", "198.51.100.7", 5060), lambda: failed.append(1))
    [(_h, _p, factory, _t, _b)] = reactor.tcpClients
    connector = reactor.connectors[0]
    factory.clientConnectionFailed(connector, None)
    assert failed == [1]
    transport.send(parse(RESPONSE), Address("TCP", "198.51.100.7", 5060))
    assert len(reactor.tcpClients) == 2  # the failed connect was forgotten


def test_tls_is_not_offered(rig):
    failed = []
    rig[1].send(parse(RESPONSE), Address("TLS", "198.51.100.7", 5061), lambda: failed.append(1))
    assert failed == [1]


def test_local_address_uses_the_listen_address(rig):
    assert rig[1].local_address(Address("UDP", "198.51.100.7", 5060)) == Address(
        "UDP", "127.0.0.1", 5060
    )


class _Socket:
    """A UDP socket that fails its first sendto calls with the given errno values."""

    def __init__(self, *errnos: int) -> None:
        self.errnos = list(errnos)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.errnos:
            raise OSError(self.errnos.pop(0), "fake")
        self.sent.append((data, addr))
        return len(data)


class _Port:
    """Twisted's UDP Port as SipDatagramProtocol uses it: write() checks, socket sends."""

    def __init__(self, sock: _Socket) -> None:
        self.socket = sock
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))


@pytest.mark.parametrize(
    ("errnos", "sent", "raises"),
    [
        ((), 1, None),
        ((errno.EINTR,), 1, None),  # retried, as Port.write does
        ((errno.ECONNREFUSED,), 0, None),  # an earlier datagram's ICMP error: ignored
        ((errno.EMSGSIZE,), 0, MessageLengthError),  # the transport counts a send error
        ((errno.EPERM,), 0, OSError),
    ],
    ids=["sent", "eintr-retried", "econnrefused-ignored", "emsgsize", "other-errors-raise"],
)
def test_udp_write_checks_a_host_once_then_uses_the_socket(errnos, sent, raises):
    port = _Port(_Socket(*errnos))
    udp = SipDatagramProtocol(None, ListenAddress("127.0.0.1", 5060))  # type: ignore[arg-type]
    udp.transport = port
    udp.write(b"first", "192.0.2.7", 5060)
    assert port.written == [(b"first", ("192.0.2.7", 5060))]  # Twisted's checks ran
    if raises is None:
        udp.write(b"second", "192.0.2.7", 5060)
    else:
        with pytest.raises(raises):
            udp.write(b"second", "192.0.2.7", 5060)
    assert len(port.written) == 1
    assert port.socket.sent == [(b"second", ("192.0.2.7", 5060))] * sent
    udp.write(b"other host", "192.0.2.8", 5060)
    assert port.written[-1] == (b"other host", ("192.0.2.8", 5060))
