"""The real-time CDR feed: one TCP connection, one pipe line per committed CDR, in id order.

SPEC.md §7 "Feed" and INTERFACE.md §6 "Real-time feed":
- on while EXTERNAL_SEND_CDR=1 and SERVER_CDR_REAL_TIME_REPORT_SERVER is set (live);
  CDRs committed while off are never sent, and switching off discards the backlog;
- the backlog is durable: the store keeps `feed` = the id up to which every CDR was
  delivered (or dropped, or committed while off) in cdr_outputs; the lines themselves
  are the CDRs after it, so a restart rebuilds the backlog from the store;
- at most EXTERNAL_MAX_CDR_PENDING_SIZE lines wait; beyond, the oldest unsent lines
  leave the feed only (never SQLite or the files), counted in `feed_dropped` and logged;
- reconnect 1 s after a failure, doubling to 30 s;
- a line is delivered once the receiver's TCP acknowledged it.  We learn that from the
  socket: bytes not yet acknowledged = the kernel's send queue (Linux SIOCOUTQ, which
  counts unsent and unacknowledged bytes) + what Twisted still buffers.  Every line's
  end offset in the connection's byte stream is kept; a line whose end is at or below
  (bytes written - unacknowledged) is delivered.  This is measured every POLL_S while
  lines are in flight and when the receiver closes its side (FIN), before our socket
  closes.  When the connection breaks, the lines not known delivered are sent again,
  first, on the next connection.  At most WINDOW_BYTES are in flight at a time.

Known limit: the backlog after a restart is "every CDR after `feed`", newest
EXTERNAL_MAX_CDR_PENDING_SIZE kept; lines dropped behind lines still in flight at the
moment of a crash may come back (or in-flight ones go) after that restart.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections import deque
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any

from twisted.application.service import Service
from twisted.internet import error, protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vos3k.cdr.rows import row_to_pipe_line
from vos3k.params import LiveParams, Param
from vos3k.store.repos import CdrRepo

OUTPUT = "feed"
POLL_S = 0.02
PERSIST_S = 0.5
WINDOW_BYTES = 256 * 1024
_FEED_PARAMS = frozenset({"feed_enabled", "feed_server"})


def parse_receiver(text: str) -> tuple[str, int] | None:
    """`IP:PORT` or `[IPv6]:PORT` as (host, port); None if it is not one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def kernel_unacked_bytes(transport: Any) -> int:
    """Bytes the receiver has not acknowledged: Linux SIOCOUTQ (= TIOCOUTQ) on the
    socket plus the bytes Twisted has not yet handed to the kernel."""
    fd = transport.getHandle().fileno()
    queued = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    buffered = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    return queued + buffered


@implementer(IHalfCloseableProtocol)
class _FeedProtocol(protocol.Protocol):
    def __init__(self, feed: CdrFeed):
        self.feed = feed

    def connectionMade(self) -> None:
        self.feed._connected(self)

    def dataReceived(self, data: bytes) -> None:
        """The receiver has nothing to say; whatever it sends is ignored."""

    def readConnectionLost(self) -> None:  # noqa: N802 - IHalfCloseableProtocol
        # The receiver closed its side: our socket is still open, so ask it what got
        # through before closing (the acknowledged lines are not sent again).
        self.feed._poll()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:  # noqa: N802 - IHalfCloseableProtocol
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.feed._disconnected(self)


class _FeedFactory(protocol.ClientFactory):
    def __init__(self, feed: CdrFeed):
        self.feed = feed

    def buildProtocol(self, addr: Any) -> _FeedProtocol:
        return _FeedProtocol(self.feed)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.feed._connect_failed(self, reason)

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.feed._connection_ended(self)


class CdrFeed(Service):
    """The feed output; register `on_commit` with the CDR writer."""

    log = Logger()
    initial_delay_s = 1.0  # SPEC §7: reconnect after 1 s, doubling to 30 s
    max_delay_s = 30.0

    def __init__(
        self,
        repo: CdrRepo,
        params: LiveParams,
        reactor: Any,
        tz: tzinfo | None,
        unacked_bytes: Callable[[Any], int] = kernel_unacked_bytes,
    ):
        self._repo = repo
        self._params = params
        self._reactor = reactor
        self._tz = tz
        self._unacked_bytes = unacked_bytes
        self._queue: deque[tuple[int, bytes]] = deque()  # undelivered lines, id order
        self._ends: deque[int] = deque()  # stream end offset of each in-flight line
        self._inflight = 0  # the first N queue entries are written on this connection
        self._sent = 0  # bytes written on this connection
        self._done = 0  # of which known delivered
        self._position = 0  # every CDR up to this id is done with
        self._newest = 0  # the newest id queued (or passed while off)
        self._saved_position: int | None = None
        self._receiver: tuple[str, int] | None = None
        self._factory: _FeedFactory | None = None
        self._connector: Any = None
        self._proto: _FeedProtocol | None = None
        self._delay = self.initial_delay_s
        self._retry: Any = None
        self._poll_call: Any = None
        self._persist_call: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self.dropped_total = 0
        self.delivered_total = 0

    # -- figures (`stats`: feed_pending, feed_dropped)

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def connected(self) -> bool:
        return self._proto is not None

    @property
    def position(self) -> int:
        return self._position

    # -- life cycle

    def startService(self) -> None:
        super().startService()
        self._unsubscribe = self._params.subscribe(self._param_changed)
        self._receiver = self._wanted_receiver()
        stored = self._repo.output_position(OUTPUT)
        if self._receiver is None:
            self._skip_to(max(stored, self._repo.last_id()))
        else:
            self._load_backlog(stored)
        self._persist()
        if self._receiver is not None:
            self._connect()

    def stopService(self) -> None:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._stop_connection()
        self._persist()

    def _wanted_receiver(self) -> tuple[str, int] | None:
        snap = self._params.snapshot
        if not snap.feed_enabled or not snap.feed_server:
            return None
        receiver = parse_receiver(snap.feed_server)
        if receiver is None:
            self.log.error("CDR feed: receiver {server!r} is not IP:PORT", server=snap.feed_server)
        return receiver

    def _load_backlog(self, stored: int) -> None:
        """The durable backlog: the CDRs after the stored position, newest N kept."""
        limit = self._params.snapshot.feed_max_pending
        waiting = self._repo.count(after_id=stored)
        rows = self._repo.query(after_id=stored, limit=limit, newest_first=True)
        rows.reverse()
        self._queue = deque((row["id"], self._line(row)) for row in rows)
        self._position = stored
        self._newest = rows[-1]["id"] if rows else stored
        self._advance_position()
        dropped = waiting - len(rows)
        if dropped:
            self._dropped(dropped)
        if rows:
            self.log.info("CDR feed: {n} lines waiting from before the restart", n=len(rows))

    def _line(self, row: Mapping[str, Any]) -> bytes:
        return row_to_pipe_line(row, self._tz).encode()

    # -- committed CDRs in

    def on_commit(self, written: list[tuple[int, Mapping[str, Any]]]) -> None:
        """CdrWriter.on_commit callback: queue each new CDR's line, then send."""
        if not self.running or not written:
            return
        if self._receiver is None:
            # SPEC §7: CDRs committed while the feed is off are never sent.
            self._skip_to(written[-1][0])
            self._schedule_persist()
            return
        for cdr_id, row in written:
            if cdr_id > self._newest:
                self._queue.append((cdr_id, self._line(row)))
                self._newest = cdr_id
        self._trim()
        self._pump()

    def _trim(self) -> None:
        """EXTERNAL_MAX_CDR_PENDING_SIZE: the oldest unsent lines leave the feed."""
        limit = self._params.snapshot.feed_max_pending
        excess = len(self._queue) - limit
        dropped = 0
        while excess > 0 and len(self._queue) > self._inflight:
            del self._queue[self._inflight]
            excess -= 1
            dropped += 1
        if dropped:
            self._advance_position()
            self._dropped(dropped)

    def _dropped(self, count: int) -> None:
        self.dropped_total += count
        self.log.warn(
            "CDR feed backlog full: {n} oldest unsent lines dropped from the feed "
            "({total} in all; SQLite and the files keep them)",
            n=count,
            total=self.dropped_total,
        )

    # -- sending and acknowledgement

    def _pump(self) -> None:
        if self._proto is None:
            return
        lines = []
        while self._inflight < len(self._queue) and self._sent - self._done < WINDOW_BYTES:
            line = self._queue[self._inflight][1]
            lines.append(line)
            self._sent += len(line)
            self._ends.append(self._sent)
            self._inflight += 1
        if lines:
            self._proto.transport.writeSequence(lines)
        if self._inflight and self._poll_call is None:
            self._poll_call = self._reactor.callLater(POLL_S, self._timed_poll)

    def _timed_poll(self) -> None:
        self._poll_call = None
        self._poll()
        self._pump()

    def _poll(self) -> None:
        """Retire every in-flight line the receiver's TCP has acknowledged."""
        if self._proto is None or not self._inflight:
            return
        try:
            unacked = self._unacked_bytes(self._proto.transport)
        except OSError:
            return  # the socket is going away: what is in flight will be resent
        acked = self._sent - unacked
        delivered = 0
        while self._ends and self._ends[0] <= acked:
            self._done = self._ends.popleft()
            self._queue.popleft()
            self._inflight -= 1
            delivered += 1
        if delivered:
            self.delivered_total += delivered
            self._advance_position()

    def _skip_to(self, cdr_id: int) -> None:
        """Every CDR up to `cdr_id` is done without being sent (committed while off)."""
        self._position = self._newest = max(self._position, self._newest, cdr_id)

    def _advance_position(self) -> None:
        # Everything before the oldest waiting line is done; with none waiting, all is.
        done = self._queue[0][0] - 1 if self._queue else self._newest
        self._position = max(self._position, done)
        self._schedule_persist()

    def _schedule_persist(self) -> None:
        if self._persist_call is None:
            self._persist_call = self._reactor.callLater(PERSIST_S, self._persist)

    def _persist(self) -> None:
        if self._persist_call is not None and self._persist_call.active():
            self._persist_call.cancel()
        self._persist_call = None
        if self._position != self._saved_position:
            try:
                self._repo.set_output_position(OUTPUT, self._position)
            except Exception:
                self.log.failure("CDR feed: storing the position failed")
                return
            self._saved_position = self._position

    # -- the connection

    def _connect(self) -> None:
        self._retry = None
        if self._receiver is None or not self.running:
            return
        host, port = self._receiver
        self._factory = _FeedFactory(self)
        self._connector = self._reactor.connectTCP(host, port, self._factory, timeout=10)

    def _connected(self, proto: _FeedProtocol) -> None:
        if self._factory is None or proto.feed is not self:
            proto.transport.loseConnection()
            return
        self._proto = proto
        self._delay = self.initial_delay_s
        self._inflight = self._sent = self._done = 0
        self._ends.clear()
        host, port = self._receiver or ("", 0)
        self.log.info(
            "CDR feed connected to {host}:{port}, {n} lines waiting",
            host=host,
            port=port,
            n=len(self._queue),
        )
        self._pump()

    def _disconnected(self, proto: _FeedProtocol) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = None
        if self._inflight:
            self.log.info("CDR feed: connection lost, {n} lines to resend", n=self._inflight)
        # The lines not known delivered stay at the front and go first next time.
        self._inflight = self._sent = self._done = 0
        self._ends.clear()
        self._persist()

    def _connect_failed(self, factory: _FeedFactory, reason: Failure) -> None:
        if factory is self._factory:
            self.log.info(
                "CDR feed: cannot connect ({reason}); retry in {delay} s",
                reason=reason.getErrorMessage(),
                delay=self._delay,
            )
            self._schedule_reconnect()

    def _connection_ended(self, factory: _FeedFactory) -> None:
        if factory is self._factory:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._retry is None and self._receiver is not None and self.running:
            self._retry = self._reactor.callLater(self._delay, self._connect)
            self._delay = min(self._delay * 2, self.max_delay_s)

    def _stop_connection(self) -> None:
        self._factory = None  # late callbacks of the old connection are ignored
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        proto = self._proto
        if proto is not None:
            self._poll()
            self._disconnected(proto)
            proto.transport.abortConnection()
        elif self._connector is not None:
            try:
                self._connector.stopConnecting()
            except error.NotConnectingError:
                pass  # it already failed or connected: the factory is detached anyway
        self._connector = None
        self._delay = self.initial_delay_s

    # -- live parameters (SPEC §9: all "now")

    def _param_changed(self, param: Param, old: Any, new: Any) -> None:
        if param.attr == "feed_max_pending":
            self._trim()
            return
        if param.attr not in _FEED_PARAMS or not self.running:
            return
        receiver = self._wanted_receiver()
        if receiver == self._receiver:
            return
        was_on = self._receiver is not None
        self._stop_connection()
        self._receiver = receiver
        if receiver is None:
            if self._queue:
                self.log.info("CDR feed off: {n} unsent lines discarded", n=len(self._queue))
            self._queue.clear()
            self._skip_to(self._repo.last_id())
            self._persist()
            return
        if not was_on:
            # Only CDRs committed from now on are sent.
            self._queue.clear()
            self._skip_to(self._repo.last_id())
            self._persist()
        self._connect()
