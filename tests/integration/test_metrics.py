"""Scrape a real `twistd -n vos3k --metrics-listen`: typed families, and a CDR counted."""

from __future__ import annotations

import re
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
from vos3k.store.models import Account, Gateway

SETUP = Actor("test", "integration")


def _scrape(port: int) -> tuple[str, str]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.headers["content-type"], reply.read().decode()


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def _invite(sip_port: int, call_id: str) -> bytes:
    """An INVITE from the mapped customer for a number no routing gateway serves."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        here = sock.getsockname()[1]
        sock.settimeout(5)
        sock.sendto(
            (
                f"INVITE sip:4930123456@127.0.0.1:{sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK{call_id}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:8613800001@127.0.0.1>;tag=m\r\n"
                f"To: <sip:4930123456@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                f"CSeq: 1 INVITE\r\nContact: <sip:8613800001@127.0.0.1:{here}>\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", sip_port),
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = sock.recv(65535)
            if not data.startswith(b"SIP/2.0 1"):
                return data
    return b""


@pytest.fixture
def server(tmp_path: Path):
    data_dir = tmp_path / "data"
    subprocess.run(
        [venv_command("vos3k"), "init", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    store = open_store(data_dir / "vos3k.db", create=False)
    try:
        # A customer on 127.0.0.1 and no vendor: each call ends "no route" with a CDR.
        store.accounts.add(Account("acme", balance=Decimal("10")), SETUP)
        store.gateways.add(Gateway("cust", "mapping", "127.0.0.1", account="acme"), SETUP)
        params = LiveParams(store.params)
        params.set("SS_CDR_WRITE_INTERVAL", "100", SETUP)
    finally:
        store.close()
    log = tmp_path / "vos3k.log"
    sip_port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            venv_command("twistd"), "-n", "--pidfile=", "--logfile", str(log), "vos3k",
            "--data-dir", str(data_dir),
            "--sip-listen", f"127.0.0.1:{sip_port}",
            "--ssh-listen", f"127.0.0.1:{free_port()}",
            "--h323-listen", f"127.0.0.1:{free_port()}",
            "--ras-listen", f"127.0.0.1:{free_port()}",
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--rtp-ports", "32000-32099",
        ],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "vos3k started" in log.read_text()):
            if proc.poll() is not None:
                pytest.fail(f"vos3k exited: {proc.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("vos3k did not start within 30 s")
            time.sleep(0.1)
        yield sip_port, metrics_port, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_scrape_shows_typed_families_and_counts_committed_cdrs(server):
    sip_port, metrics_port, log = server
    content_type, text = _scrape(metrics_port)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    expected = {
        "vos3k_calls_current": "gauge",
        "vos3k_calls_per_second": "gauge",
        "vos3k_calls_total": "counter",
        "vos3k_calls_ended_total": "counter",
        "vos3k_pdd_seconds": "histogram",
        "vos3k_cdr_pending": "gauge",
        "vos3k_cdr_feed_pending": "gauge",
        "vos3k_rtp_ports_in_use": "gauge",
        "vos3k_sip_received_total": "counter",
        "vos3k_signalling_dropped_total": "counter",
        "vos3k_sip_auth_failures_total": "counter",
    }
    assert {name: types.get(name) for name in expected} == expected
    assert all(not name.endswith("_total") or kind == "counter" for name, kind in types.items())

    reply = _invite(sip_port, "metrics-1")
    assert reply.startswith(b"SIP/2.0 4"), reply
    deadline = time.monotonic() + 10
    ended: dict[str, float] = {}
    while time.monotonic() < deadline and not ended:
        samples = _samples(_scrape(metrics_port)[1])
        ended = {k: v for k, v in samples.items() if k.startswith("vos3k_calls_ended_total{")}
        time.sleep(0.2)
    assert sum(ended.values()) == 1, ended
    assert samples["vos3k_sip_received_total"] >= 1
    assert samples["vos3k_cdr_committed_total"] == 1
    assert "Traceback" not in log.read_text()
