"""SPEC §7 "Feed" / INTERFACE §6 "Real-time feed": order, durability, bound, backoff, acks."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import protocol, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.cdr.helpers import SHANGHAI, Rig, local_ms, make_row
from tests.conftest import free_port
from vos3k.cdr.forward import CdrFeed, parse_receiver
from vos3k.cdr.rows import row_to_pipe_line

STOP = local_ms(2026, 5, 1, 10, 0, 0)


@pytest.fixture
def reactor():
    """The reactor pytest-twisted runs (imported late, after it is installed)."""
    from twisted.internet import reactor as installed

    return installed


def rows(first: int, count: int) -> list[dict]:
    return [make_row(n, STOP + n * 1000) for n in range(first, first + count)]


def lines_of(batch: list[dict]) -> list[str]:
    return [row_to_pipe_line(r, SHANGHAI).rstrip("\n") for r in batch]


def start_feed(rig: Rig, reactor, **kw) -> CdrFeed:
    feed = CdrFeed(rig.store.cdrs, rig.params, reactor, SHANGHAI, **kw)
    feed.initial_delay_s, feed.max_delay_s = 0.05, 0.2  # SPEC's 1 s/30 s: see the clock test
    rig.writer.on_commit(feed.on_commit)
    feed.startService()
    return feed


class Receiver(protocol.Factory):
    """A loopback TCP receiver that can go down and come back on the same port."""

    def __init__(self, port: int):
        self.port_number = port
        self.data = b""
        self.conns: list[protocol.Protocol] = []
        self.port = None

    def buildProtocol(self, addr):
        proto = protocol.Protocol()
        proto.dataReceived = self._received
        proto.connectionMade = lambda: self.conns.append(proto)
        return proto

    def _received(self, data: bytes) -> None:
        self.data += data

    @property
    def lines(self) -> list[str]:
        return self.data.decode().splitlines()

    def up(self, reactor) -> None:
        self.port = reactor.listenTCP(self.port_number, self, interface="127.0.0.1")

    async def down(self) -> None:
        await self.port.stopListening()
        for proto in self.conns:
            proto.transport.loseConnection()
        self.conns.clear()


async def until(condition, reactor, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await task.deferLater(reactor, 0.01)
    assert condition(), "timed out"


def feed_rig(port: int, **params) -> Rig:
    return Rig(
        EXTERNAL_SEND_CDR=1, SERVER_CDR_REAL_TIME_REPORT_SERVER=f"127.0.0.1:{port}", **params
    )


@pytest_twisted.ensureDeferred
async def test_receiver_down_then_up_loses_nothing_and_keeps_order(reactor):
    receiver = Receiver(free_port())
    receiver.up(reactor)
    rig = feed_rig(receiver.port_number)
    feed = start_feed(rig, reactor)
    try:
        first, second = rows(0, 50), rows(50, 50)
        rig.commit(first)
        await until(lambda: len(receiver.lines) == 50, reactor)
        await receiver.down()
        await until(lambda: not feed.connected, reactor)
        rig.commit(second)
        await task.deferLater(reactor, 0.1)
        assert feed.pending == 50 and len(receiver.lines) == 50
        receiver.up(reactor)
        await until(lambda: len(receiver.lines) >= 100 and feed.pending == 0, reactor)
        assert receiver.lines == lines_of(first + second)
    finally:
        feed.stopService()
        await receiver.down()
    assert rig.store.cdrs.output_position("feed") == rig.store.cdrs.last_id()


@pytest_twisted.ensureDeferred
async def test_the_backlog_survives_a_restart(reactor):
    receiver = Receiver(free_port())  # not listening yet: the receiver is away
    rig = feed_rig(receiver.port_number)
    feed = start_feed(rig, reactor)
    batch = rows(0, 30)
    rig.commit(batch)
    assert feed.pending == 30
    feed.stopService()
    again = start_feed(rig, reactor)
    try:
        assert again.pending == 30
        receiver.up(reactor)
        await until(lambda: len(receiver.lines) == 30, reactor)
        more = rows(30, 5)
        rig.commit(more)
        await until(lambda: len(receiver.lines) == 35 and again.pending == 0, reactor)
        assert receiver.lines == lines_of(batch + more)
    finally:
        again.stopService()
        await receiver.down()


@pytest_twisted.ensureDeferred
async def test_cdrs_committed_while_off_are_never_sent_and_changes_are_live(reactor):
    one, two = Receiver(free_port()), Receiver(free_port())
    one.up(reactor)
    two.up(reactor)
    rig = Rig(SERVER_CDR_REAL_TIME_REPORT_SERVER=f"127.0.0.1:{one.port_number}")
    feed = start_feed(rig, reactor)
    try:
        rig.commit(rows(0, 10))  # EXTERNAL_SEND_CDR=0
        rig.set("EXTERNAL_SEND_CDR", 1)
        sent = rows(10, 5)
        rig.commit(sent)
        await until(lambda: len(one.lines) == 5, reactor)
        rig.set("SERVER_CDR_REAL_TIME_REPORT_SERVER", f"127.0.0.1:{two.port_number}")
        moved = rows(15, 5)
        rig.commit(moved)
        await until(lambda: len(two.lines) == 5, reactor)
        assert (one.lines, two.lines) == (lines_of(sent), lines_of(moved))
    finally:
        feed.stopService()
        await one.down()
        await two.down()


def test_a_full_backlog_drops_the_oldest_unsent_lines_and_counts_them():
    rig = feed_rig(9, EXTERNAL_MAX_CDR_PENDING_SIZE=1000)
    feed = start_feed(rig, MemoryReactorClock())
    rig.commit(rows(0, 1005))
    assert (feed.pending, feed.dropped_total) == (1000, 5)
    feed.stopService()
    assert rig.store.cdrs.output_position("feed") == 5  # ids 1-5 left the feed
    again = start_feed(rig, MemoryReactorClock())
    assert (again.pending, again.dropped_total) == (1000, 0)
    rig.set("EXTERNAL_MAX_CDR_PENDING_SIZE", 1000)
    rig.commit(rows(1005, 1))
    assert (again.pending, again.dropped_total) == (1000, 1)


def test_reconnect_after_1_s_doubling_to_30_s():
    rig = feed_rig(9)
    clock = MemoryReactorClock()
    feed = CdrFeed(rig.store.cdrs, rig.params, clock, SHANGHAI)
    feed.startService()
    delays = []
    for _ in range(8):
        factory = clock.tcpClients[-1][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        attempts = len(clock.tcpClients)
        waited = 0.0
        while len(clock.tcpClients) == attempts:
            clock.advance(0.5)
            waited += 0.5
        delays.append(waited)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_only_lines_the_receiver_did_not_acknowledge_are_resent_first():
    unacked = {"bytes": 0}
    rig = feed_rig(9)
    clock = MemoryReactorClock()
    feed = start_feed(rig, clock, unacked_bytes=lambda transport: unacked["bytes"])
    batch = rows(0, 3)
    lines = [line.encode() + b"\n" for line in lines_of(batch)]
    factory = clock.tcpClients[-1][2]
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    rig.commit(batch)
    assert transport.value() == b"".join(lines)
    unacked["bytes"] = len(lines[2]) + 2  # the last line and 2 bytes before it in flight
    clock.advance(0.05)
    assert feed.pending == 2
    unacked["bytes"] = len(lines[2])
    clock.advance(0.05)
    assert feed.pending == 1
    proto.connectionLost(Failure(ConnectionRefusedError()))
    factory.clientConnectionLost(None, Failure(ConnectionRefusedError()))
    clock.advance(feed.initial_delay_s)
    again = clock.tcpClients[-1][2].buildProtocol(None)
    resent = StringTransport()
    again.makeConnection(resent)
    assert resent.value() == lines[2]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("192.0.2.1:9000", ("192.0.2.1", 9000), id="SPEC-9-IP-PORT"),
        pytest.param("[2001:db8::1]:9000", ("2001:db8::1", 9000), id="SPEC-9-IPv6"),
        pytest.param("192.0.2.1", None, id="no-port"),
        pytest.param("192.0.2.1:0", None, id="port-0"),
        pytest.param(":9000", None, id="no-host"),
    ],
)
def test_parse_receiver(text, parsed):
    assert parse_receiver(text) == parsed
