"""SIPp against a real `twistd -n vos3k` on loopback: OPTIONS and REGISTER with digest.

`SipServer` (a vos3k process with a provisioned phone) is shared with test_sip_protos.py.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, venv_command
from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store
from vos3k.store.models import Account, Phone

PHONE = "1001"
PASSWORD = "s3cret"
SETUP = Actor("test", "integration")


class SipServer:
    """One vos3k process: its SIP port, its log and its metrics."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.log = tmp / "vos3k.log"
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen | None = None

    def provision(self) -> None:
        """`vos3k init`, then a phone and its account through the store API."""
        subprocess.run(
            [venv_command("vos3k"), "init", "--data-dir", str(self.data_dir)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        store = open_store(self.data_dir / "vos3k.db", create=False)
        try:
            store.accounts.add(Account("acme", balance=Decimal("10")), SETUP)
            store.phones.add(Phone(PHONE, PASSWORD, "acme"), SETUP)
            # the replay sends thousands of packets from one IP: no rate limit here
            LiveParams(store.params).set("SS_SIGNAL_RATE_LIMIT", "0", SETUP)
        finally:
            store.close()

    def start(self) -> None:
        command = [
            venv_command("twistd"),
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.log),
            "vos3k",
            "--data-dir",
            str(self.data_dir),
            "--sip-listen",
            f"127.0.0.1:{self.port}",
            "--ssh-listen",
            f"127.0.0.1:{free_port()}",
            "--h323-listen",
            f"127.0.0.1:{free_port()}",
            "--ras-listen",
            f"127.0.0.1:{free_port()}",
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            "--rtp-ports",
            "31000-31099",
        ]
        self.proc = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.log.exists() and "vos3k started" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"vos3k exited: {self.proc.stderr.read()}")
            time.sleep(0.1)
        pytest.fail("vos3k did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def options(self, timeout: float = 5.0) -> bytes:
        """One OPTIONS over UDP from a fresh socket; the raw answer (b'' if none)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            here = sock.getsockname()[1]
            sock.settimeout(timeout)
            branch = f"z9hG4bKprobe{time.monotonic_ns()}"
            sock.sendto(
                (
                    f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch={branch}\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\n"
                    "To: <sip:127.0.0.1>\r\nCall-ID: probe@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                ("127.0.0.1", self.port),
            )
            try:
                return sock.recvfrom(65535)[0]
            except TimeoutError:
                return b""


SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")
needs_sipp = pytest.mark.skipif(SIPP is None, reason="sipp is not installed (Debian sip-tester)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    vos = SipServer(tmp_path_factory.mktemp("sip"))
    vos.provision()
    vos.start()
    yield vos
    vos.stop()


def run_sipp(server: SipServer, scenario: str, *extra: str) -> subprocess.CompletedProcess:
    """One call of a scenario; SIPp exits 0 when it succeeded, 1 when it failed."""
    errors = server.tmp / f"{scenario}.errors"
    command = [
        SIPP,
        f"127.0.0.1:{server.port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port(socket.SOCK_DGRAM)),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-trace_err",
        "-error_file",
        str(errors),
        *extra,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=server.tmp)
    result.errors = errors.read_text() if errors.exists() else ""  # type: ignore[attr-defined]
    return result


@pytest.mark.integration
@needs_sipp
def test_sipp_options(server):
    result = run_sipp(server, "options.xml")
    assert result.returncode == 0, result.errors + result.stdout[-2000:]


@pytest.mark.integration
@needs_sipp
def test_sipp_register_with_digest(server):
    result = run_sipp(server, "register_auth.xml", "-s", PHONE, "-au", PHONE, "-ap", PASSWORD)
    assert result.returncode == 0, result.errors + result.stdout[-2000:]
    # SPEC §2: the binding is in the store (so it survives a restart)
    store = open_store(server.data_dir / "vos3k.db", create=False)
    try:
        rows = store.registrations.load(int(time.time() * 1000))
    finally:
        store.close()
    assert [(r.e164, r.source.split(":")[0]) for r in rows] == [(PHONE, "udp")]


@pytest.mark.integration
@needs_sipp
def test_sipp_register_wrong_password_gets_403(server):
    result = run_sipp(
        server, "register_wrong_password.xml", "-s", PHONE, "-au", PHONE, "-ap", "not-the-password"
    )
    assert result.returncode == 0, result.errors + result.stdout[-2000:]


@pytest.mark.integration
def test_no_traceback_in_the_log(server):
    assert server.options().startswith(b"SIP/2.0 200 OK")
    assert server.alive()
    assert "Traceback" not in server.log.read_text()
