"""The RTP/RTCP relay on Twisted: sessions of two port pairs, latching, media timeout.

Bound pairs are pooled: a closed session's pairs stay bound (their protocols pointed at
throwaway sides, so stray packets are counted and dropped) and the next session takes
them, skipping listenUDP/stopListening and Twisted's per-port log lines, the largest
non-SIP cost per call at high CPS.  The pool is bounded (IDLE_PAIRS); pairs beyond it go
back to the allocator.  A pair is reused only after REUSE_AFTER_S idle (late RTP of the
old call is dropped, not latched by the new one) unless the range is otherwise
exhausted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from vos3k.media.policy import OTHER, Direction, Leg, should_send
from vos3k.media.ports import PortAllocator, PortPair, PortsExhausted
from vos3k.media.stats import StreamStats

__all__ = ["OTHER", "Leg", "MediaManager", "MediaSession", "PortsExhausted", "install_media"]

Address = tuple[str, int]
TimeoutCallback = Callable[["MediaSession", Leg], object]
FirstRtpCallback = Callable[[], object]

# A pair that cannot be bound (another program holds a port) goes back to the pool and
# the next one is tried; after this many failures the call is refused as exhausted.
BIND_ATTEMPTS = 8
# The media watchdog's period: a timeout fires between T and T + 1 s after the last RTP.
WATCHDOG_PERIOD_S = 1.0
# Idle bound pairs kept for the next sessions (2 sockets each), and how long a pair
# rests before reuse: at 2,000 pairs/s of churn (1,000 CPS) 100 ms is 200 pairs, well
# within the bound, so the pool keeps serving at that rate.
IDLE_PAIRS = 512
REUSE_AFTER_S = 0.1

log = Logger()


@define(slots=True, eq=False)
class _Side:
    """One socket of one leg (its RTP or its RTCP port) and the far end it talks to.

    `dest` is where this leg's endpoint receives: first its SDP address, then the
    source its packets come from (latching, SPEC §12).
    """

    strict: bool
    # SPEC §10: a source the geofence forbids is never latched to (its packets drop).
    refuse: Callable[[str], bool] | None = None
    send: Callable[[bytes, Address], int] | None = None
    port: Any = None
    dest: Address | None = None
    sdp: Address | None = None
    latched: bool = False
    packets: int = 0
    bytes: int = 0
    dropped: int = 0
    send_errors: int = 0

    def latch(self, addr: Address) -> bool:
        """A packet from a new source: follow it, or drop it in strict mode or when the
        source is refused (only new sources pay for that check)."""
        if (self.latched and self.strict and addr != self.dest) or (
            self.refuse is not None and self.refuse(addr[0])
        ):
            self.dropped += 1
            return False
        self.dest = addr
        self.latched = True
        return True

    def point_to(self, addr: Address | None) -> None:
        """A new SDP address; an unchanged one (a session refresh) keeps the latch."""
        if addr == self.sdp:
            return
        self.sdp = addr
        self.dest = addr
        self.latched = False


class _RtcpRelay(DatagramProtocol):
    """Datagrams arriving at `here` leave from `there` towards `there.dest`."""

    noisy = False  # no "Starting protocol" log line per port

    def __init__(self, here: _Side, there: _Side):
        self.here = here
        self.there = there

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        here = self.here
        if not here.latched or addr != here.dest:
            if not here.latch(addr):
                return
        here.packets += 1
        here.bytes += len(data)
        there = self.there
        if there.dest is not None:
            try:
                there.send(data, there.dest)
            except OSError:  # a full socket buffer or an unreachable peer: count, go on
                there.send_errors += 1


class _RtpRelay(DatagramProtocol):
    """As _RtcpRelay, feeding the leg's RTP statistics instead of plain counters.

    `first`, when armed, is called once on the next accepted packet (MediaStarted)."""

    noisy = False

    def __init__(self, here: _Side, there: _Side, stats: StreamStats, seconds):
        self.here = here
        self.there = there
        self.stats = stats
        self.seconds = seconds
        self.first: FirstRtpCallback | None = None

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        here = self.here
        if not here.latched or addr != here.dest:
            if not here.latch(addr):
                return
        self.stats.packet(data, int(self.seconds() * 1_000_000))
        if self.first is not None:
            self._started()
        there = self.there
        if there.dest is not None:
            try:
                there.send(data, there.dest)
            except OSError:
                there.send_errors += 1

    def _started(self) -> None:
        callback, self.first = self.first, None
        try:
            callback()
        except Exception:
            log.failure("first-RTP callback failed")


def _idle_sides() -> tuple[_Side, _Side]:
    """Where an idle pair's protocols point: packets are counted there and go nowhere."""
    return _Side(strict=False), _Side(strict=False)


@define(slots=True, eq=False)
class _Bound:
    """One pair bound to its two protocols, lent to one session at a time."""

    pair: PortPair
    rtp_port: Any
    rtcp_port: Any
    rtp: _RtpRelay
    rtcp: _RtcpRelay
    tos: int
    idle_since: float = 0.0

    def lend(self, rtp: _Side, far_rtp: _Side, rtcp: _Side, far_rtcp: _Side, stats) -> None:
        """Point the protocols at a session's sides: fresh latching, stats and remotes."""
        relay = self.rtp
        relay.here, relay.there, relay.stats, relay.first = rtp, far_rtp, stats, None
        self.rtcp.here, self.rtcp.there = rtcp, far_rtcp
        rtp.port, rtcp.port = self.rtp_port, self.rtcp_port
        rtp.send, rtcp.send = _sender(self.rtp_port), _sender(self.rtcp_port)

    def rest(self, now: float) -> None:
        """Back from a session: nothing it held is reachable from the sockets any more."""
        here, there = _idle_sides()
        self.rtp.here, self.rtp.there, self.rtp.stats = here, there, StreamStats()
        self.rtp.first = None
        self.rtcp.here, self.rtcp.there = _idle_sides()
        self.idle_since = now

    def unbind(self) -> None:
        self.rtp_port.stopListening()
        self.rtcp_port.stopListening()


@define(slots=True, eq=False)
class _LegMedia:
    """Both sockets of one leg, its statistics and its media-timeout state."""

    bound: _Bound
    pair: PortPair
    rtp: _Side
    rtcp: _Side
    stats: StreamStats
    relay: _RtpRelay
    sends: bool = False  # per its SDP direction (SPEC §12); unknown until set_remote
    seen: int = 0  # stats.packets at the last watchdog look
    active_at: float = 0.0


def _sendable(ip: str, port: int) -> Address | None:
    """An SDP address we may send to: an IP literal, not hold (0.0.0.0), port not 0."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None  # the signalling layer resolves names; never resolve per packet
    if address.is_unspecified or not 0 < port < 65536:
        return None
    return (ip, port)


class MediaSession:
    """One proxied call: leg A (caller side) and leg B (callee side), a pair each."""

    log = Logger()

    def __init__(self, manager: MediaManager, call_id: str, timeout_s: int):
        self.manager = manager
        self.call_id = call_id
        self.timeout_s = timeout_s
        self.legs: dict[Leg, _LegMedia] = {}
        self.watched: frozenset[Leg] = frozenset(Leg)
        self.closed = False
        self.timed_out: Leg | None = None
        self._on_timeout: TimeoutCallback | None = None

    def local_address(self, leg: Leg) -> Address:
        """(media IP, RTP port) to write into the SDP sent to `leg`'s endpoint."""
        return (self.manager.media_ip, self.legs[leg].pair.rtp)

    def set_remote(
        self,
        leg: Leg,
        ip: str,
        port: int,
        direction: Direction | str = Direction.SENDRECV,
        rtcp_port: int | None = None,
    ) -> None:
        """`leg`'s SDP (offer or answer, re-INVITE/UPDATE included): where it receives
        RTP (RTCP on port + 1 unless its SDP says a=rtcp, RFC 3605) and whether it sends."""
        media = self.legs[leg]
        media.rtp.point_to(_sendable(ip, port))
        media.rtcp.point_to(_sendable(ip, rtcp_port if rtcp_port is not None else port + 1))
        sends = should_send(Direction(direction), ip)
        if sends and not media.sends:
            # Coming off hold restarts the count (SPEC §12: hold pauses the timeout).
            media.active_at = self.manager.clock.seconds()
            media.seen = media.stats.packets
        media.sends = sends

    def on_first_rtp(self, leg: Leg, callback: FirstRtpCallback) -> None:
        """Call `callback()` once, on the next RTP packet from `leg`'s endpoint: the
        vendor's first RTP stops the hunt (SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START, SPEC
        §4). Re-arming replaces the callback; packets before arming do not count."""
        if not self.closed:
            self.legs[leg].relay.first = callback

    def watch(self, legs: frozenset[Leg]) -> None:
        """The legs whose RTP the timeout checks (policy.watched_legs of media_check)."""
        self.watched = frozenset(legs)

    def on_timeout(self, callback: TimeoutCallback) -> None:
        """Arm the media timeout now (SPEC §3 step 11: at answer); `callback(session, leg)`
        is called once when a watched sending leg is silent for SS_NOMEDIAHANGUPTIME s,
        and the switching core ends the call with reason 15, direction 2."""
        if self.closed or self.timeout_s <= 0:
            return
        self._on_timeout = callback
        now = self.manager.clock.seconds()
        for media in self.legs.values():
            media.active_at = now
            media.seen = media.stats.packets
        self.manager._watch(self)

    def check(self, now: float) -> None:
        """The watchdog's look: has every watched, sending leg sent RTP recently?"""
        for leg, media in self.legs.items():  # A before B: a deterministic first report
            if leg not in self.watched:
                continue
            packets = media.stats.packets
            if not media.sends or packets != media.seen:
                media.seen = packets
                media.active_at = now
            elif now - media.active_at >= self.timeout_s:
                self._fire(leg)
                return

    def _fire(self, leg: Leg) -> None:
        callback, self._on_timeout = self._on_timeout, None
        self.timed_out = leg
        self.manager._unwatch(self)
        self.manager.timeouts_total += 1
        self.log.info(
            "call {call_id}: no RTP from leg {leg} for {timeout_s} s",
            call_id=self.call_id,
            leg=leg.name,
            timeout_s=self.timeout_s,
        )
        if callback is None:
            return
        try:
            callback(self, leg)
        except Exception:
            self.log.failure("call {call_id}: media timeout callback failed", call_id=self.call_id)

    def stats(self) -> dict[str, Any]:
        """Per-direction figures for `call show` and the CDR extras: `a_*` is the RTP
        received from leg A (A→B), `b_*` from leg B (B→A)."""
        figures: dict[str, Any] = {}
        for leg, media in self.legs.items():
            prefix = leg.value + "_"
            for key, value in media.stats.as_dict().items():
                figures[prefix + key] = value
            figures[prefix + "rtcp_packets"] = media.rtcp.packets
            figures[prefix + "dropped"] = media.rtp.dropped + media.rtcp.dropped
            figures[prefix + "local"] = f"{self.manager.media_ip}:{media.pair.rtp}"
            dest = media.rtp.dest
            figures[prefix + "remote"] = f"{dest[0]}:{dest[1]}" if dest else ""
        return figures

    def close(self) -> None:
        """Stop relaying and give the ports back; safe to call on every end path."""
        if self.closed:
            return
        self.closed = True
        self._on_timeout = None
        self.manager._closed(self)


def _set_tos(port: Any, tos: int) -> None:
    """IP TOS / IPv6 traffic class of RTP sockets (SS_QOS_RTP); best effort."""
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    except OSError:
        pass  # an unprivileged or odd platform: the packets still flow, unmarked


def _sender(port: Any) -> Callable[[bytes, Address], int]:
    """The socket's own sendto (the hot path skips udp.Port.write's address checks)."""
    sock = getattr(port, "socket", None)
    return sock.sendto if sock is not None else port.write


# `stats` totals, summed over the RTP of both legs (closed sessions kept in `_past`).
_TOTALS = ("packets", "bytes", "lost", "dropped")


def _figure(media: _LegMedia, key: str) -> int:
    if key == "dropped":
        return media.rtp.dropped + media.rtcp.dropped
    return getattr(media.stats, key)


@define(eq=False)
class MediaManager:
    """Owns the port allocator, the live sessions and the one media-watchdog timer.

    `reactor` binds the sockets (IReactorUDP), `clock` times everything (IReactorTime);
    `params` is the LiveParams whose snapshot a session takes when it opens.
    """

    reactor: IReactorUDP
    clock: IReactorTime
    media_ip: str
    port_range: tuple[int, int]
    params: Any
    idle_pairs: int = IDLE_PAIRS
    # Set by the protection layer: True for an RTP source to drop (the geofence).
    source_filter: Callable[[str], bool] | None = None
    allocator: PortAllocator = field(init=False)
    _idle: deque[_Bound] = field(init=False, factory=deque)
    sessions: dict[str, MediaSession] = field(init=False, factory=dict)
    _watching: set[MediaSession] = field(init=False, factory=set)
    _watchdog: LoopingCall | None = field(init=False, default=None)
    sessions_total: int = field(init=False, default=0)
    timeouts_total: int = field(init=False, default=0)
    _past: dict[str, int] = field(init=False, factory=lambda: dict.fromkeys(_TOTALS, 0))
    log = Logger()

    def __attrs_post_init__(self) -> None:
        self.allocator = PortAllocator(self.port_range)

    @property
    def ports_in_use(self) -> int:
        """Ports (not pairs) the sessions hold, for `stats` (idle pooled pairs excluded)."""
        return self.allocator.ports_in_use - 2 * len(self._idle)

    @property
    def ports_idle(self) -> int:
        """Ports bound and pooled for the next sessions."""
        return 2 * len(self._idle)

    def open_session(self, call_id: str) -> MediaSession | PortsExhausted:
        """Two bound port pairs for a proxied call, or PortsExhausted (reason 5, 503).

        A call that already has a session gets it back (failover reuses the caller's
        pair).
        """
        existing = self.sessions.get(call_id)
        if existing is not None:
            return existing
        snapshot = self.params.snapshot
        strict = bool(snapshot["SS_RTP_LATCH_STRICT"])
        tos = int(snapshot["SS_QOS_RTP"])
        session = MediaSession(self, call_id, int(snapshot["SS_NOMEDIAHANGUPTIME"]))
        refuse = self.source_filter
        sides = {leg: (_Side(strict, refuse), _Side(strict, refuse)) for leg in Leg}
        for leg in Leg:
            bound = self._take(tos)
            if isinstance(bound, PortsExhausted):
                self._unbind(session)
                return bound
            rtp, rtcp = sides[leg]
            far_rtp, far_rtcp = sides[OTHER[leg]]
            stats = StreamStats()
            bound.lend(rtp, far_rtp, rtcp, far_rtcp, stats)
            session.legs[leg] = _LegMedia(bound, bound.pair, rtp, rtcp, stats, bound.rtp)
        self.sessions[call_id] = session
        self.sessions_total += 1
        return session

    def _take(self, tos: int) -> _Bound | PortsExhausted:
        """A rested idle pair, else a newly bound one, else (range exhausted) any idle
        pair, else PortsExhausted."""
        idle = self._idle
        if idle and self.clock.seconds() - idle[0].idle_since >= REUSE_AFTER_S:
            bound = idle.popleft()
        else:
            bound = self._bind(tos)
            if isinstance(bound, PortsExhausted):
                if not idle:
                    return bound
                bound = idle.popleft()
        if bound.tos != tos:
            _set_tos(bound.rtp_port, tos)
            _set_tos(bound.rtcp_port, tos)
            bound.tos = tos
        return bound

    def _bind(self, tos: int) -> _Bound | PortsExhausted:
        """Bind the next free pair; fresh protocols per try, since a protocol object whose
        port failed keeps that transport until the reactor's next turn."""
        for _ in range(BIND_ATTEMPTS):
            pair = self.allocator.allocate()
            if isinstance(pair, PortsExhausted):
                return pair
            bound = []
            rtp = _RtpRelay(*_idle_sides(), StreamStats(), self.clock.seconds)
            rtcp = _RtcpRelay(*_idle_sides())
            try:
                for number, protocol in ((pair.rtp, rtp), (pair.rtcp, rtcp)):
                    bound.append(self.reactor.listenUDP(number, protocol, interface=self.media_ip))
            except CannotListenError:
                for port in bound:
                    port.stopListening()
                self.allocator.release(pair)  # to the back of the queue; try the next
                continue
            for port in bound:
                _set_tos(port, tos)
            return _Bound(pair, bound[0], bound[1], rtp, rtcp, tos)
        return PortsExhausted(self.allocator.low, self.allocator.high, self.allocator.pairs_in_use)

    def _unbind(self, session: MediaSession) -> None:
        """Give a session's pairs back: to the idle pool while it has room, else unbound
        and released to the allocator.  The session's sides lose their sockets."""
        now = self.clock.seconds()
        for media in session.legs.values():
            bound = media.bound
            for side in (media.rtp, media.rtcp):
                side.send = None
                side.dest = None
            bound.rest(now)
            if len(self._idle) < self.idle_pairs:
                self._idle.append(bound)
            else:
                bound.unbind()
                self.allocator.release(bound.pair)

    def drain_idle(self) -> None:
        """Unbind every idle pair and release it to the allocator (shutdown)."""
        while self._idle:
            bound = self._idle.popleft()
            bound.unbind()
            self.allocator.release(bound.pair)

    def _closed(self, session: MediaSession) -> None:
        for media in session.legs.values():
            for key in _TOTALS:
                self._past[key] += _figure(media, key)
        self._unwatch(session)
        self._unbind(session)
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]

    def session(self, call_id: str) -> MediaSession | None:
        return self.sessions.get(call_id)

    def release(self, call_id: str) -> None:
        """The call ended (any protocol, any path): close its session if it has one."""
        session = self.sessions.get(call_id)
        if session is not None:
            session.close()

    def call_stats(self, call_id: str) -> dict[str, Any] | None:
        """A proxied call's per-direction figures (`call show`, the CDR's extra), or
        None when the call's media is not proxied (or already released)."""
        session = self.sessions.get(call_id)
        return None if session is None else session.stats()

    def counters(self) -> dict[str, int]:
        """Global figures for `stats`: open sessions and, since start, sessions, media
        timeouts, and RTP packets/bytes/lost plus dropped packets over all sessions."""
        totals = dict(self._past)
        for session in self.sessions.values():
            for media in session.legs.values():
                for key in _TOTALS:
                    totals[key] += _figure(media, key)
        return {
            "rtp_sessions": len(self.sessions),
            "rtp_sessions_total": self.sessions_total,
            "rtp_media_timeouts_total": self.timeouts_total,
            **{f"rtp_{key}_total": value for key, value in totals.items()},
        }

    def set_tos(self, tos: int) -> None:
        """SS_QOS_RTP changed (live=now): re-mark every open socket (idle ones as they
        are taken)."""
        for session in self.sessions.values():
            for media in session.legs.values():
                _set_tos(media.rtp.port, tos)
                _set_tos(media.rtcp.port, tos)
                media.bound.tos = tos

    def close_all(self) -> None:
        """Shutdown: every session ends and every port (pooled ones too) is released."""
        for session in list(self.sessions.values()):
            session.close()
        self.drain_idle()

    def _watch(self, session: MediaSession) -> None:
        self._watching.add(session)
        if self._watchdog is None:
            self._watchdog = LoopingCall(self._tick)
            self._watchdog.clock = self.clock
            self._watchdog.start(WATCHDOG_PERIOD_S, now=False).addErrback(
                lambda failure: self.log.failure("media watchdog stopped", failure)
            )

    def _unwatch(self, session: MediaSession) -> None:
        self._watching.discard(session)
        if not self._watching and self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _tick(self) -> None:
        now = self.clock.seconds()
        for session in list(self._watching):
            session.check(now)


def install_media(service: Any) -> MediaManager:
    """Give a VosService its RTP proxy: `service.media`, the `rtp_ports_in_use` gauge,
    live SS_QOS_RTP, and every session closed when the service stops."""
    settings = service.settings
    manager = MediaManager(
        service.reactor, service.reactor, settings.media_ip, settings.rtp_ports, service.params
    )
    service.media = manager
    service.gauges["rtp_ports_in_use"] = lambda: manager.ports_in_use
    for key in manager.counters():
        service.gauges[key] = lambda key=key: manager.counters()[key]

    def on_param(param, old, new) -> None:
        if param.name == "SS_QOS_RTP":
            manager.set_tos(int(new))

    service.params.subscribe(on_param)

    _MediaService(manager).setServiceParent(service)
    return manager


class _MediaService(Service):
    """Closes every media session when vos3k stops (its ports go back to the pool)."""

    name = "media"

    def __init__(self, manager: MediaManager):
        self.manager = manager

    def stopService(self):
        self.manager.close_all()
        return super().stopService()
