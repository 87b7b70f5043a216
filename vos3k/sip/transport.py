"""SIP over UDP and TCP on Twisted: bytes in and out, RFC 3261 §18 and RFC 3581 rules.

The only Twisted code of the SIP stack.  For every `--sip-listen` address it binds a
UDP port and a TCP port (IPv4 or IPv6), and for each packet or framed stream message:

1. asks ``admit_source(ip, port, transport)`` first, before any parsing (SPEC §3 step 1:
   ACL, blacklist, geofence and rate limit live in the protection layer that supplies
   it; refused packets are counted as ``signalling_dropped``);
2. parses (``message.parse`` / ``StreamFramer``) and validates; a ``Malformed`` request
   is answered with ``error_response`` when ``reply_possible`` and otherwise dropped,
   both counted as ``sip_malformed`` -- bad input never logs a traceback (STYLE §7);
3. stamps the top Via of a request with ``received`` and ``rport`` (RFC 3261 §18.2.1,
   RFC 3581 §4) and hands the message to the sink (the endpoint) with its source.

A traceback means a vos3k bug: it is caught here, at the boundary, logged once with the
Call-ID, and the transport keeps serving.

Sending (``send``): UDP leaves from a listening socket, so peers see our SIP port;
TCP reuses a connection to the same (host, port) -- the one a request came in on, for
its responses (§18.2.2) -- or opens one.  Idle connections close after ``tcp_idle_s``.
Sizes: a datagram over 65507 bytes is dropped; a stream message over ``max_stream_size``
gets 513 and the connection closes (the stream cannot be resynchronised).  Signalling
sockets carry the SS_QOS_SIGNAL TOS byte, best effort.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from vos3k.sip.message import (
    HeaderError,
    KeepAlive,
    Malformed,
    Request,
    Response,
    StreamFramer,
    Via,
    error_response,
    header_key,
    parse,
    parse_via,
    serialise,
    split_values,
    validate_request,
    validate_response,
)
from vos3k.sip.transaction import Address, response_destination
from vos3k.trace import HUB as TRACE
from vos3k.trace import Direction as TraceDirection

__all__ = [
    "MAX_DATAGRAM",
    "MessageSink",
    "SipTransport",
    "admit_all",
    "stamp_via",
]

MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4 (65535 - 8 - 20)
DEFAULT_STREAM_MAX = 65535
DEFAULT_TCP_IDLE_S = 900
_ROUTE_CACHE_MAX = 65536
_CHECKED_HOSTS_MAX = 4096


class MessageSink(Protocol):
    """What the transport delivers to (the endpoint)."""

    def message_received(self, message: Request | Response, source: Address) -> None: ...


def admit_all(ip: str, port: int, transport: str) -> bool:
    """The default pre-parse hook: every source is admitted."""
    return True


def stamp_via(request: Request, source: Address) -> Request:
    """Add ``received`` and fill ``rport`` in the top Via (RFC 3261 §18.2.1, RFC 3581 §4).

    ``received`` is added when the sent-by host differs from the packet's source, or
    when the client asked for rport (RFC 3581 §4: then it is always added).  Only the
    first via-parm changes; other values and headers stay as received.
    """
    headers = request.headers
    index = next((i for i, (n, _v) in enumerate(headers) if header_key(n) == "via"), None)
    if index is None:
        return request
    value = headers[index][1]
    parts = split_values(value)
    via = parse_via(parts[0])
    wants_rport = via.rport is not None
    if not wants_rport and _same_host(via.host, source.host):
        return request
    params: list[tuple[str, str | None]] = [
        (k, v) for k, v in via.params if k.lower() not in ("received", "rport")
    ]
    params.append(("received", source.host))
    if wants_rport:
        params.append(("rport", str(source.port)))
    parts[0] = str(Via(via.transport, via.host, via.port, tuple(params), via.protocol))
    # with_line keeps what validation parsed (From, To, CSeq...): only Via changed
    return request.with_line(index, ", ".join(parts))


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _is_ipv6(host: str) -> bool:
    return ":" in host


def _call_id(message: object) -> str:
    """Best-effort Call-ID for a log line; never raises."""
    try:
        if isinstance(message, Request | Response):
            return message.header("call-id") or "-"
        if isinstance(message, Malformed):
            for name, value in message.headers:
                if header_key(name) == "call-id":
                    return value
    except Exception:  # a log field must not turn one error into two
        return "-"
    return "-"


def _set_tos(sock: Any, tos: int) -> None:
    """IP TOS / IPv6 traffic class (SS_QOS_SIGNAL); best effort."""
    if sock is None:
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    except (OSError, AttributeError):
        pass  # unprivileged or odd platform: the packets still flow, unmarked


# A burst of requests, or a moment the reactor spends elsewhere (a CDR batch, a GC
# pass), must wait in the kernel rather than be dropped: the default UDP receive buffer
# (~208 KiB) holds about 300 INVITEs.  Kamailio and rtpengine raise theirs the same way.
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux, needs CAP_NET_ADMIN


def _grow_receive_buffer(sock: Any, size: int = UDP_RECEIVE_BUFFER) -> int:
    """Ask for a `size`-byte receive buffer (past net.core.rmem_max when privileged);
    the size the kernel granted (it reports double what it keeps for bookkeeping)."""
    if sock is None:
        return 0
    for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except (OSError, AttributeError):
            continue
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    except OSError:
        return 0


# ---------------------------------------------------------------------------
# Twisted protocols: thin, everything goes to SipTransport


class SipDatagramProtocol(protocol.DatagramProtocol):
    """One UDP listening socket."""

    noisy = False  # no log line per start/stop (the service logs its addresses)

    def __init__(self, owner: SipTransport, local: Any) -> None:
        self.owner = owner
        self.local = local  # the configured listen address (host, port)
        self._checked: set[str] = set()  # hosts Twisted's Port.write has accepted

    def startProtocol(self) -> None:
        self.owner.udp_started(self)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.owner.datagram_received(self, data, addr[0], addr[1])

    def write(self, data: bytes, host: str, port: int) -> None:
        sock = getattr(self.transport, "socket", None)
        if host not in self._checked or sock is None:
            # Twisted's Port.write checks the address (an IP of this socket's family)
            # on every datagram; once it took a host, the socket is used directly
            self.transport.write(data, (host, port))
            if len(self._checked) >= _CHECKED_HOSTS_MAX:
                self._checked.clear()  # bounded: hosts come from the network
            self._checked.add(host)
            return
        while True:
            try:
                sock.sendto(data, (host, port))
                return
            except OSError as exc:  # the errors Port.write maps, mapped the same way
                if exc.args[0] == errno.EINTR:
                    continue
                if exc.args[0] == errno.EMSGSIZE:
                    raise error.MessageLengthError("message too long") from None
                if exc.args[0] == errno.ECONNREFUSED:
                    return  # unconnected UDP: an ICMP error of an earlier datagram
                raise

    @property
    def ipv6(self) -> bool:
        return _is_ipv6(self.local.host)


class SipStreamProtocol(protocol.Protocol):
    """One TCP connection, accepted or opened by us."""

    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner
        self.framer = StreamFramer(owner.max_stream_size)
        self.peer: Address | None = None
        self.pending: list[bytes] = []
        self.idle_call: Any = None
        self.closed = False

    def connectionMade(self) -> None:
        self.owner.stream_made(self)

    def dataReceived(self, data: bytes) -> None:
        self.owner.stream_received(self, data)

    def connectionLost(self, reason: Any = None) -> None:
        self.owner.stream_lost(self)

    def send(self, data: bytes) -> None:
        self.transport.write(data)


class _StreamFactory(protocol.ClientFactory):
    """Accepts connections; as a client factory, reports failed connects."""

    noisy = False

    def __init__(self, owner: SipTransport, pending: bytes = b"", on_error=None) -> None:
        self.owner = owner
        self.first = pending
        self.on_error = on_error

    def buildProtocol(self, addr: Any) -> SipStreamProtocol:
        stream = SipStreamProtocol(self.owner)
        stream.factory = self
        if self.first:
            stream.pending.append(self.first)
        return stream

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.owner.connect_failed(self, connector)


# ---------------------------------------------------------------------------
# The transport


class SipTransport(Service):
    """All SIP sockets of the process; a child of VosService (binds before the reactor)."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        listen: Sequence[Any],
        sink: MessageSink,
        *,
        admit_source: Callable[[str, int, str], bool] = admit_all,
        tos: int = 0,
        max_stream_size: int = DEFAULT_STREAM_MAX,
        tcp_idle_s: float = DEFAULT_TCP_IDLE_S,
    ) -> None:
        self.reactor = reactor
        self.listen = tuple(listen)
        self.sink = sink
        self.admit_source = admit_source
        self.tos = tos
        self.receive_buffer = 0  # bytes the kernel granted the UDP sockets (last bound)
        self.max_stream_size = max_stream_size
        self.tcp_idle_s = tcp_idle_s
        self.stats = {"received": 0, "sent": 0, "malformed": 0, "dropped": 0, "errors": 0}
        self.udp: list[SipDatagramProtocol] = []
        self.ports: list[Any] = []
        self.connections: dict[tuple[str, int], SipStreamProtocol] = {}
        self._udp_route: dict[tuple[str, int], SipDatagramProtocol] = {}
        self._connecting: dict[tuple[str, int], _StreamFactory] = {}
        self._local_cache: dict[str, str] = {}

    # -- service ---------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Bind every address now, so a busy port stops start-up (CannotListenError)."""
        super().privilegedStartService()
        for address in self.listen:
            udp = SipDatagramProtocol(self, address)
            self.udp.append(udp)
            self.ports.append(
                self.reactor.listenUDP(
                    address.port, udp, interface=address.host, maxPacketSize=65535
                )
            )
            factory = _StreamFactory(self)
            self.ports.append(self.reactor.listenTCP(address.port, factory, interface=address.host))

    def startService(self) -> None:
        if not self.ports:
            self.privilegedStartService()
        super().startService()

    def stopService(self) -> Any:
        super().stopService()
        for stream in list(self.connections.values()):
            stream.transport.loseConnection()
        self.connections.clear()
        ports, self.ports = self.ports, []
        self.udp.clear()
        return defer.gatherResults(
            [defer.maybeDeferred(p.stopListening) for p in ports], consumeErrors=True
        )

    def bound(self) -> list[tuple[str, str, int]]:
        """(transport, host, port) actually bound (port 0 in tests becomes a real one)."""
        out = []
        for port in self.ports:
            host = port.getHost()
            out.append((host.type, host.host, host.port))
        return out

    def set_tos(self, tos: int) -> None:
        """Apply a new SS_QOS_SIGNAL value to every signalling socket (live, SPEC §9)."""
        self.tos = tos
        for udp in self.udp:
            _set_tos(getattr(udp.transport, "socket", None), tos)
        for stream in self.connections.values():
            _set_tos(_handle(stream), tos)

    # -- receiving ---------------------------------------------------------------

    def udp_started(self, udp: SipDatagramProtocol) -> None:
        sock = getattr(udp.transport, "socket", None)
        _set_tos(sock, self.tos)
        self.receive_buffer = _grow_receive_buffer(sock)

    def datagram_received(
        self, udp: SipDatagramProtocol, data: bytes, host: str, port: int
    ) -> None:
        source = Address("UDP", host, port)
        try:
            self.stats["received"] += 1
            if not self.admit_source(host, port, "UDP"):
                self.stats["dropped"] += 1
                return
            if len(self._udp_route) >= _ROUTE_CACHE_MAX:
                self._udp_route.clear()  # bounded: sources come from the network
            self._udp_route[(host, port)] = udp
            if len(data) > MAX_DATAGRAM:
                self.stats["malformed"] += 1
                return
            self._message(parse(data), source, None)
        except Exception:
            self._failure(data, source)

    def stream_made(self, stream: SipStreamProtocol) -> None:
        peer = stream.transport.getPeer()
        stream.peer = Address("TCP", peer.host, peer.port)
        key = (peer.host, peer.port)
        self._connecting.pop(key, None)
        self.connections[key] = stream
        _set_tos(_handle(stream), self.tos)
        for data in stream.pending:
            self._write_stream(stream, data)
        stream.pending.clear()
        self._touch(stream)

    def stream_received(self, stream: SipStreamProtocol, data: bytes) -> None:
        source = stream.peer
        assert source is not None
        self._touch(stream)
        try:
            items = stream.framer.feed(data)
        except Exception:
            self._failure(data, source)
            stream.transport.loseConnection()
            return
        for item in items:
            try:
                self.stats["received"] += 1
                if not self.admit_source(source.host, source.port, "TCP"):
                    self.stats["dropped"] += 1
                    continue
                self._message(item, source, stream)
            except Exception:
                self._failure(item, source)
        if stream.framer.broken:
            # RFC 3261 §18.3: a stream that lost its framing cannot go on
            stream.transport.loseConnection()

    def stream_lost(self, stream: SipStreamProtocol) -> None:
        stream.closed = True
        if stream.idle_call is not None and stream.idle_call.active():
            stream.idle_call.cancel()
        if stream.peer is not None:
            key = (stream.peer.host, stream.peer.port)
            if self.connections.get(key) is stream:
                del self.connections[key]

    def connect_failed(self, factory: _StreamFactory, connector: Any) -> None:
        dest = connector.getDestination()
        self._connecting.pop((dest.host, dest.port), None)
        if factory.on_error is not None:
            factory.on_error()

    def _message(self, item: Any, source: Address, stream: SipStreamProtocol | None) -> None:
        if isinstance(item, KeepAlive):
            if stream is not None:
                self._write_stream(stream, b"\r\n")  # RFC 5626 §4.4.1 pong
            return
        if isinstance(item, Malformed):
            self._malformed(item, source)
            return
        if isinstance(item, Request):
            bad = validate_request(item)
            if bad is not None:
                self._malformed(bad, source)
                return
            item = stamp_via(item, source)
        else:
            if validate_response(item) is not None:
                self.stats["malformed"] += 1  # §18.1.2: a bad response is discarded
                return
        if TRACE.active:  # issue 11: an admin's `trace on`; one check when off
            now_ms = int(self.reactor.seconds() * 1000)
            TRACE.sip(TraceDirection.IN, item, source.transport, source.host, source.port, now_ms)
        try:
            self.sink.message_received(item, source)
        except Exception:
            self._failure(item, source)

    def _malformed(self, malformed: Malformed, source: Address) -> None:
        self.stats["malformed"] += 1
        reply = error_response(malformed, to_tag=None)
        if reply is None:
            return
        destination = source
        try:
            destination = response_destination(reply.top_via(), source)
        except HeaderError:
            pass  # unreadable Via: answer where the bytes came from
        self.send(reply, destination)

    def _failure(self, item: Any, source: Address) -> None:
        """A vos3k bug surfaced by one message: log it once, keep serving (STYLE §7)."""
        self.stats["errors"] += 1
        self.log.failure(
            "SIP message from {source} (call {call_id}) raised an internal error",
            source=f"{source.transport}:{source.host}:{source.port}",
            call_id=_call_id(item),
        )

    # -- sending -------------------------------------------------------------------

    def send(
        self,
        message: Request | Response,
        destination: Address,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        """Send one message; ``on_error`` runs (perhaps later) if it cannot go out."""
        data = serialise(message)
        kind = destination.transport.upper()
        if TRACE.active:
            now_ms = int(self.reactor.seconds() * 1000)
            host, port = destination.host, destination.port
            TRACE.sip(TraceDirection.OUT, message, kind, host, port, now_ms)
        if kind == "UDP":
            self._send_udp(data, destination, on_error)
        elif kind == "TCP":
            self._send_tcp(data, destination, on_error)
        elif on_error is not None:
            on_error()  # TLS and others are not offered (INTERFACE §3: UDP and TCP)

    def _send_udp(self, data: bytes, dest: Address, on_error: Callable[[], None] | None) -> None:
        udp = self._udp_route.get((dest.host, dest.port)) or self._udp_for(dest.host)
        if udp is None or len(data) > MAX_DATAGRAM:
            if on_error is not None:
                on_error()
            return
        try:
            udp.write(data, dest.host, dest.port)
        except Exception:  # unresolvable name, EMSGSIZE, unreachable: a transport error
            if on_error is not None:
                on_error()
            return
        self.stats["sent"] += 1

    def _udp_for(self, host: str) -> SipDatagramProtocol | None:
        ipv6 = _is_ipv6(host)
        for udp in self.udp:
            if udp.ipv6 == ipv6:
                return udp
        return None

    def _send_tcp(self, data: bytes, dest: Address, on_error: Callable[[], None] | None) -> None:
        key = (dest.host, dest.port)
        stream = self.connections.get(key)
        if stream is not None and not stream.closed:
            self._write_stream(stream, data)
            self.stats["sent"] += 1
            return
        factory = self._connecting.get(key)
        if factory is not None:
            factory.first += data  # a connect is under way: queue behind its first message
            self.stats["sent"] += 1
            return
        factory = _StreamFactory(self, data, on_error)
        self._connecting[key] = factory
        self.reactor.connectTCP(dest.host, dest.port, factory, timeout=10)
        self.stats["sent"] += 1

    def _write_stream(self, stream: SipStreamProtocol, data: bytes) -> None:
        stream.send(data)
        self._touch(stream)

    def _touch(self, stream: SipStreamProtocol) -> None:
        """Restart the idle timer of a connection (one per connection)."""
        if stream.idle_call is not None and stream.idle_call.active():
            stream.idle_call.reset(self.tcp_idle_s)
        elif not stream.closed:
            stream.idle_call = self.reactor.callLater(self.tcp_idle_s, self._idle, stream)

    def _idle(self, stream: SipStreamProtocol) -> None:
        if not stream.closed:
            stream.transport.loseConnection()

    # -- addresses -----------------------------------------------------------------

    def local_address(self, destination: Address) -> Address:
        """Our address as ``destination`` should see it (Via sent-by, Contact).

        The listening address of the same family; for a wildcard listener, the
        interface the kernel would route from (a connected UDP socket sends nothing).
        """
        ipv6 = _is_ipv6(destination.host)
        candidates = [a for a in self.listen if _is_ipv6(a.host) == ipv6] or list(self.listen)
        listen = candidates[0]
        port = self._bound_port(listen)
        host = listen.host
        if host in ("0.0.0.0", "::"):
            host = self._route_source(destination.host, ipv6) or ("::1" if ipv6 else "127.0.0.1")
        return Address(destination.transport, host, port)

    def _bound_port(self, listen: Any) -> int:
        if listen.port:
            return listen.port
        for udp in self.udp:
            if udp.local is listen and udp.transport is not None:
                return udp.transport.getHost().port
        return listen.port

    def _route_source(self, host: str, ipv6: bool) -> str | None:
        cached = self._local_cache.get(host)
        if cached is not None:
            return cached
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 9))
                found = probe.getsockname()[0]
        except OSError:
            return None
        if len(self._local_cache) >= 1024:
            self._local_cache.clear()
        self._local_cache[host] = found
        return found


def _handle(stream: SipStreamProtocol) -> Any:
    get = getattr(stream.transport, "getHandle", None)
    try:
        return get() if get is not None else None
    except Exception:
        return None


def listen_hosts(listen: Iterable[Any]) -> list[str]:
    """The configured listen hosts, wildcards left out (for the digest uri-host rule)."""
    return [a.host for a in listen if a.host not in ("0.0.0.0", "::")]
