"""A running `twistd -n vos3k` plus SIPp customers and vendors on loopback, for call tests.

`Vos3k` owns one server: data dir (`vos3k init`, an admin SSH key), provisioning through
the store API before start, the SSH shell after, CDRs and balances read from SQLite
read-only, start/stop/kill -9 by PID.  `Sipp` is one SIPp process (UAC or UAS) on a
127.0.x.y address with a scenario from tests/integration/sipp/ (`@@KEY@@` templates
filled in).  Every wait is bounded; every process is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, free_port, venv_command
from vos3k.params import Actor, LiveParams
from vos3k.store.db import Store, open_store

SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")
SSH = shutil.which("ssh")
needs_sipp = pytest.mark.skipif(
    SIPP is None or SSH is None, reason="sipp or ssh is not installed (Debian sip-tester)"
)
SETUP = Actor("test", "integration")


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (returned) or `timeout` s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


STOP_WAIT_S = 60  # Vos3k.stop(): SIGTERM to exit


def stop_process(
    proc: subprocess.Popen | None,
    sig: int = signal.SIGTERM,
    wait: float = 10,
    lingering: Callable[[], None] | None = None,
) -> None:
    """Signal one process we started (by PID), then KILL it if it lingers (after
    `lingering()`, which may look at it first)."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        if lingering is not None:
            lingering()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


class Vos3k:
    """One vos3k server on free 127.0.0.1 ports with its own data dir."""

    servers = 0

    def __init__(self, tmp: Path, rtp_ports: str = ""):
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.db_path = self.data_dir / "vos3k.db"
        self.log = tmp / "vos3k.log"
        self.key = tmp / "admin_key"
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.ssh_port = free_port()
        if not rtp_ports:
            # below the kernel's ephemeral ports (32768-), where SIPp and free_port()
            # sockets would collide; a different block per server of this process
            Vos3k.servers += 1
            block = (os.getpid() * 7 + Vos3k.servers) % 45
            rtp_ports = f"{20000 + block * 200}-{20000 + block * 200 + 199}"
        self.rtp_ports = rtp_ports
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.stderr: Path | None = None
        self.stuck = ""  # what a server that ignored SIGTERM showed (stop())

    # -- data dir ---------------------------------------------------------------------

    def init(self) -> None:
        """`vos3k init`, an admin user with an SSH key, no signalling rate limit."""
        subprocess.run(
            [venv_command("vos3k"), "init", "--data-dir", str(self.data_dir)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
            check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run(
            [venv_command("vos3k"), "user", "add", "admin", "--role", "admin", "--key",
             f"{self.key}.pub", "--data-dir", str(self.data_dir)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        # SIPp sends bursts from one address: no per-source signalling limit (SPEC §10)
        self.set_params(SS_SIGNAL_RATE_LIMIT="0")

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """The store API, only while the server is stopped (provisioning, SPEC §2)."""
        assert not self.alive(), "provision through the shell while vos3k runs"
        store = open_store(self.db_path, create=False)
        try:
            yield store
        finally:
            store.close()

    def set_params(self, **values: str) -> None:
        with self.store() as store:
            params = LiveParams(store.params)
            for name, value in values.items():
                params.set(name, value, SETUP)

    # -- process ----------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        self.starts += 1
        mark = "vos3k started"
        seen = self.log.read_text().count(mark) if self.log.exists() else 0
        command = [
            venv_command("twistd"), "-n", "--pidfile=", "--logfile", str(self.log), "vos3k",
            "--data-dir", str(self.data_dir),
            "--sip-listen", f"127.0.0.1:{self.sip_port}",
            "--ssh-listen", f"127.0.0.1:{self.ssh_port}",
            "--h323-listen", f"127.0.0.1:{free_port()}",
            "--ras-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
            "--rtp-ports", self.rtp_ports, "--media-ip", "127.0.0.1",
        ]  # fmt: skip
        self.stderr = self.tmp / f"twistd.{self.starts}.stderr"
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(
                command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

        def started() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                pytest.fail(f"vos3k exited at start: {self.stderr.read_text()[-2000:]}")
            return self.log.exists() and self.log.read_text().count(mark) > seen

        if not wait_until(started, timeout):
            pytest.fail(f"vos3k did not start within {timeout} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM (INTERFACE §1: flush CDRs, exit 0); the exit status.  A server that
        does not stop is asked for its thread stacks (SIGUSR1, vos3k.8) before the KILL;
        they and the log's tail are in `self.stuck` and on stderr (pytest shows them).
        The wait is long: a shared CI disk can stall an fsync for many seconds."""
        stop_process(self.proc, signal.SIGTERM, wait=STOP_WAIT_S, lingering=self._dump_stacks)
        return None if self.proc is None else self.proc.returncode

    def _dump_stacks(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        stacks = self.stderr.read_text(errors="replace")[-6000:] if self.stderr else ""
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        self.stuck = (
            f"vos3k ignored SIGTERM for {STOP_WAIT_S} s\n--- stacks:\n{stacks}\n--- log:\n{log}"
        )
        print(self.stuck, file=sys.stderr)

    def kill9(self) -> None:
        stop_process(self.proc, signal.SIGKILL, wait=10)

    def tracebacks(self) -> list[str]:
        text = self.log.read_text() if self.log.exists() else ""
        return [chunk[:1500] for chunk in text.split("Traceback")[1:]]

    # -- shell --------------------------------------------------------------------------

    def shell(self, command: str, check: bool = True, timeout: float = 30) -> str:
        """One non-interactive shell command over SSH (INTERFACE §2); its stdout."""
        argv = [
            SSH or "ssh", "-F", "/dev/null", "-n", "-p", str(self.ssh_port), "-i", str(self.key),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
            "admin@127.0.0.1", command,
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"shell {command!r} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def shell_json(self, command: str) -> Any:
        return json.loads(self.shell(command + " --json"))

    # -- what the store says (read-only, safe while the server writes: WAL) -------------

    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            cursor = conn.execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        finally:
            conn.close()

    def cdrs(self, callee: str | None = None, account: str | None = None) -> list[dict]:
        """CDR rows in id order (store columns: end_reason, fee_e4, ...)."""
        where, args = [], []
        if callee is not None:
            where.append("callee_e164 = ?")
            args.append(callee)
        if account is not None:
            where.append("account = ?")
            args.append(account)
        sql = "SELECT * FROM cdrs" + (" WHERE " + " AND ".join(where) if where else "")
        return self._query(sql + " ORDER BY id", tuple(args))

    def wait_cdrs(self, callee: str, count: int = 1, timeout: float = 10) -> list[dict]:
        """At least `count` CDRs for `callee` (waits for the writer's batch); the rows."""
        rows = wait_until(lambda: (r := self.cdrs(callee)) and len(r) >= count and r, timeout)
        return rows or self.cdrs(callee)

    def balance(self, account: str) -> Decimal:
        rows = self._query("SELECT balance_e4 FROM accounts WHERE name = ?", (account,))
        return Decimal(rows[0]["balance_e4"]) / 10000

    def current_calls(self) -> int:
        return int(self.shell_json("stats")["current_calls"])


def fee_of(row: dict) -> Decimal:
    return Decimal(row["fee_e4"] or 0) / 10000


# ------------------------------------------------------------------------------ SIPp


def render(scenario: str, into: Path, **values: Any) -> Path:
    """tests/integration/sipp/SCENARIO with each @@KEY@@ replaced; the rendered copy."""
    text = (SCENARIOS / scenario).read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    left = re.findall(r"@@[A-Z_]+@@", text)
    assert not left, f"{scenario}: unfilled {left}"
    suffix = "-".join(f"{v}" for v in values.values())
    path = into / f"{Path(scenario).stem}{'-' + suffix if suffix else ''}.xml"
    path.write_text(text)
    return path


class Sipp:
    """One SIPp process: a customer UAC towards vos3k or a vendor UAS on ip:port."""

    def __init__(self, name: str, tmp: Path, scenario: Path, ip: str, port: int | None = None):
        self.name = name
        self.tmp = tmp
        self.scenario = scenario
        self.ip = ip
        self.port = port or free_port(socket.SOCK_DGRAM, host=ip)
        self.proc: subprocess.Popen | None = None
        self.files = {k: tmp / f"{name}.{k}" for k in ("out", "msg", "logs", "err")}

    def _command(self, extra: list[str]) -> list[str]:
        return [
            SIPP or "sipp", "-sf", str(self.scenario), "-i", self.ip, "-p", str(self.port),
            "-mi", self.ip, "-nostdin", "-buff_size", "1048576",
            "-trace_msg", "-message_file", str(self.files["msg"]),
            "-trace_logs", "-log_file", str(self.files["logs"]),
            "-trace_err", "-error_file", str(self.files["err"]),
            *extra,
        ]  # fmt: skip

    def start(self, *extra: str, target: str | None = None) -> Sipp:
        command = self._command(list(extra))
        if target is not None:
            command.insert(1, target)
        with open(self.files["out"], "w") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.tmp, start_new_session=True,
            )  # fmt: skip
        return self

    def serve(self, *extra: str) -> Sipp:
        """Start as a UAS and wait until it listens."""
        self.start("-default_behaviors", "all,-abortunexp", *extra)
        bound = wait_until(lambda: self._listening() or self.proc.poll() is not None, 5, 0.05)
        assert bound and self.proc.poll() is None, f"{self.name}: {self.output()}"
        return self

    def _listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((self.ip, self.port))
            except OSError:
                return True
            return False

    def call(self, vos: Vos3k, calls: list[tuple[str, str]], *extra: str) -> Sipp:
        """Start as the customer UAC: one call per (callee, caller), to vos3k's SIP port."""
        inf = self.tmp / f"{self.name}.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{a};{b};\n" for a, b in calls))
        return self.start(
            "-inf", str(inf), "-m", str(len(calls)), *extra, target=f"127.0.0.1:{vos.sip_port}"
        )

    def wait(self, timeout: float) -> int:
        """SIPp's exit status (0 all calls succeeded); killed after `timeout` s."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, signal.SIGTERM, wait=5)
            return -1

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, wait=5)

    def output(self) -> str:
        parts = []
        for key in ("err", "out"):
            if self.files[key].exists():
                parts.append(self.files[key].read_text(errors="replace")[-1500:])
        return "\n".join(parts)

    def logged(self, word: str) -> list[str]:
        """Lines of the -trace_logs file starting with `word` (the scenarios' <log>)."""
        if not self.files["logs"].exists():
            return []
        return [
            line for line in self.files["logs"].read_text(errors="replace").splitlines()
            if line.startswith(word + " ")
        ]  # fmt: skip

    def received(self) -> list[str]:
        """First lines of every message this SIPp received, in order."""
        if not self.files["msg"].exists():
            return []
        text = self.files["msg"].read_text(errors="replace")
        firsts = re.findall(r"message received \[\d+\] bytes :\s*\n\s*\n?([^\r\n]+)", text)
        return [f.strip() for f in firsts]

    def final_statuses(self) -> list[int]:
        """Final (>= 200) INVITE response codes received, in order (retransmissions kept)."""
        if not self.files["msg"].exists():
            return []
        text = self.files["msg"].read_text(errors="replace")
        codes = []
        for chunk in re.split(r"\n-{10,}[^\n]*\n", text):
            if "message received" not in chunk:
                continue
            status = re.search(r"^SIP/2\.0 (\d{3})", chunk, re.M)
            cseq = re.search(r"^CSeq:\s*\d+\s+(\w+)", chunk, re.M | re.I)
            if status and cseq and cseq.group(1) == "INVITE" and int(status.group(1)) >= 200:
                codes.append(int(status.group(1)))
        return codes

    def requests(self, method: str) -> int:
        return sum(1 for line in self.received() if line.startswith(method + " "))


class Blackhole:
    """A UDP socket that takes every datagram and answers nothing (a silent vendor)."""

    def __init__(self, ip: str, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.setblocking(False)
        self.ip, self.port = self.sock.getsockname()

    def drain(self) -> list[bytes]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(65535))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sock.close()
