"""CDR durability through a running vos3k (issue 7 "Done when", SPEC §7).

- kill -9 mid-load: every call a party saw end (the caller got the 200 to its BYE, which
  vos3k sends only after the commit, SPEC §3 step 13) has exactly one CDR after the
  restart, in SQLite and in the hourly files, and the balance is the initial one minus
  the sum of the CDR fees (charged exactly once).
- the real-time feed: the receiver goes down and comes back between calls; every CDR
  line arrives once, in CDR order (INTERFACE §6 "Real-time feed").
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from decimal import Decimal

import pytest

from tests.conftest import free_port
from tests.integration.harness import (
    SETUP,
    Sipp,
    Vos3k,
    fee_of,
    needs_sipp,
    render,
    stop_process,
    wait_until,
)
from vos3k.store.models import Account, Gateway, Rate

pytestmark = [pytest.mark.integration, needs_sipp]

NET = "127.0.8"
INITIAL = Decimal("1000")


def provision(server: Vos3k, vendor_port: int | None) -> None:
    server.init()
    server.set_params(SS_CDR_RECORD_TO_FILE="1", SS_NOMEDIAHANGUPTIME="0")
    with server.store() as store:
        store.rates.put(Rate("T3", "7", Decimal("0.60"), 1, 1, "durability"), SETUP)
        store.accounts.add(Account("K", "prepaid", INITIAL, rate_table="T3"), SETUP)
        store.gateways.add(Gateway("CK", "mapping", f"{NET}.10", account="K"), SETUP)
        if vendor_port is not None:
            store.gateways.add(
                Gateway("VK", "routing", f"{NET}.20", port=vendor_port, prefixes=("7",)),
                SETUP,
            )


def file_lines(server: Vos3k) -> list[str]:
    lines = []
    for path in sorted((server.data_dir / "cdr").glob("*.txt")):
        lines += path.read_text().splitlines()
    return lines


def test_kill9_mid_load_loses_and_duplicates_nothing(tmp_path):
    vos = Vos3k(tmp_path / "server")
    (tmp_path / "server").mkdir()
    vendor_port = free_port(socket.SOCK_DGRAM, host=f"{NET}.20")
    provision(vos, vendor_port)
    vos.start()
    uas = Sipp("vendor", tmp_path, render("uas_answer.xml", tmp_path, HOLD_MS=30000),
               f"{NET}.20", vendor_port)  # fmt: skip
    uac = Sipp("caller", tmp_path, render("uac_call.xml", tmp_path), f"{NET}.10")
    try:
        uas.serve()
        calls = [(f"7{n:06d}", "5000001") for n in range(400)]
        uac.call(vos, calls, "-r", "40", "-l", "40", "-d", "300", "-timeout", "60s")
        # kill while CDRs are being committed: after the 40th, with calls still arriving
        assert wait_until(lambda: len(vos.cdrs()) >= 40, 30), vos.cdrs()
        vos.kill9()
        killed_at = len(vos.cdrs())
    finally:
        stop_process(uac.proc, signal.SIGINT, wait=10)
        uas.stop()
        vos.kill9()
    assert killed_at < len(calls), "the load ended before the kill"

    vos.start()
    try:
        done = [line.split()[1] for line in uac.logged("DONE")]
        assert len(done) >= 40, uac.output()
        rows = wait_until(lambda: (r := vos.cdrs()) and len(r) >= len(done) and r, 10)
        rows = rows or vos.cdrs()
        by_callee: dict[str, int] = {}
        for row in rows:
            by_callee[row["callee_e164"]] = by_callee.get(row["callee_e164"], 0) + 1
        assert [c for c, n in by_callee.items() if n > 1] == []  # no duplicates
        assert [c for c in done if c not in by_callee] == []  # nothing seen ended is lost
        fees = sum((fee_of(r) for r in rows), Decimal(0))
        assert fees > 0 and vos.balance("K") == INITIAL - fees
        # the hourly files hold each stored CDR exactly once (start-up appends what the
        # kill left out, SPEC §7 "Files")
        in_files = wait_until(lambda: len(file_lines(vos)) >= len(rows) and file_lines(vos), 10)
        callees = sorted(line.split("|")[1] for line in in_files or file_lines(vos))
        assert callees == sorted(by_callee)
    finally:
        assert vos.stop() == 0
    assert not vos.tracebacks(), vos.tracebacks()


class Receiver:
    """A loopback TCP CDR receiver that can go down and come back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.lines: list[str] = []
        self.connections = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(4)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            with self._lock:
                self.lines += [line.decode() for line in complete]

    def down(self) -> None:
        if self._listener is not None:
            # shutdown wakes the accept() thread, so close() really frees the port
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def got(self) -> list[str]:
        with self._lock:
            return list(self.lines)


def test_feed_receiver_down_and_up_loses_nothing(tmp_path):
    vos = Vos3k(tmp_path / "server")
    (tmp_path / "server").mkdir()
    provision(vos, vendor_port=None)
    receiver = Receiver()
    vos.set_params(
        EXTERNAL_SEND_CDR="1", SERVER_CDR_REAL_TIME_REPORT_SERVER=f"127.0.0.1:{receiver.port}"
    )
    receiver.up()
    vos.start()
    # no routing gateway for 7: every call is a quick CDR (6, 404; SPEC §3 step 9)
    scenario = render("uac_fail.xml", tmp_path, CODE=404)

    def calls(phase: int) -> None:
        uac = Sipp(f"uac{phase}", tmp_path, scenario, f"{NET}.10")
        batch = [(f"70{phase}{n:04d}", "5000002") for n in range(5)]
        assert uac.call(vos, batch, "-r", "20").wait(30) == 0, uac.output()

    try:
        calls(1)
        assert wait_until(lambda: len(receiver.got()) >= 5, 10), receiver.got()
        receiver.down()
        calls(2)
        assert wait_until(lambda: len(vos.cdrs()) >= 10, 10)
        assert len(receiver.got()) == 5  # nothing can arrive while it is down
        receiver.up()
        calls(3)
        assert wait_until(lambda: len(receiver.got()) >= 15, 40), receiver.got()
        # a further second: nothing more (no duplicate) arrives
        assert not wait_until(lambda: len(receiver.got()) > 15, 1)
    finally:
        receiver.down()
        assert vos.stop() == 0
    got = receiver.got()
    assert got == file_lines(vos)  # every line once, in CDR order, as in the files
    assert [line.split("|")[1] for line in got] == [r["callee_e164"] for r in vos.cdrs()]
    assert receiver.connections >= 2
    assert not vos.tracebacks(), vos.tracebacks()
