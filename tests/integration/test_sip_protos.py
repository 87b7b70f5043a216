"""PROTOS c07-sip replayed at a running vos3k: it stays up, answers OPTIONS, logs no traceback."""

from __future__ import annotations

import socket
import tarfile
import time

import pytest

from tests.conftest import TESTDATA
from tests.integration.test_sip_sipp import SipServer

ARCHIVE = TESTDATA / "sip" / "protos-c07-sip" / "protos-c07-sip-cases.tar.gz"
CASES = 4527
MAX_DATAGRAM = 65507
RATE = 200  # datagrams per second: 2 x 4527 in about 45 s


def protos_messages(raw: bytes, case: int, here: int) -> list[bytes]:
    """A stored case's INVITE and teardown, placeholders filled (as tests/sip/test_torture.py)
    but with our own address in Via, so replies come back to the replaying socket."""
    fill = {
        b"<To>": b"user@127.0.0.1",
        b"<From>": b"caller@127.0.0.1",
        b"<From-Address>": b"127.0.0.1",
        b"<From-IP>": b"127.0.0.1",
        b"<Local-Port>": str(here).encode(),
        b"<Teardown-Method>": b"CANCEL",
        b"<Branch-ID>": str(case).encode(),
        b"<Call-ID>": b"protos%d" % case,
        b"<CSeq>": str(case + 1).encode(),
    }
    out = []
    for _ in range(2):
        space = raw.index(b" ")
        size = int(raw[:space])
        template, raw = raw[space + 1 : space + 1 + size], raw[space + 1 + size :]
        for key, value in fill.items():
            template = template.replace(key, value)
        body = template.partition(b"\r\n\r\n")[2]
        out.append(template.replace(b"<Content-Length>", str(len(body)).encode()))
    return out


def stream_reply(port: int, message: bytes) -> tuple[bytes, bool]:
    """Send one message over a new TCP connection: what came back, and whether the
    server closed the connection (rather than our 10 s timeout ending the wait)."""
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(message)
        except OSError:
            pass  # the server hung up on the oversized message first
        try:
            while chunk := conn.recv(65535):
                reply += chunk
        except TimeoutError:
            return reply, False
        except OSError:
            pass  # reset: the server closed with our bytes unread
    return reply, True


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    if not ARCHIVE.exists():
        pytest.skip(f"PROTOS c07-sip cases not found at {ARCHIVE}")
    target = tmp_path_factory.mktemp("protos")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(target, filter="data")
    files = sorted((p for p in target.rglob("*") if p.is_file()), key=lambda p: int(p.name))
    assert len(files) == CASES
    return files


@pytest.mark.integration
def test_protos_replay_leaves_the_server_answering(cases, tmp_path):
    server = SipServer(tmp_path)
    server.provision()
    server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            here = sock.getsockname()[1]
            sent = 0
            over_tcp: list[tuple[bytes, bool]] = []
            started = time.monotonic()
            for path in cases:
                for message in protos_messages(path.read_bytes(), int(path.name), here):
                    if len(message) > MAX_DATAGRAM:
                        over_tcp.append(stream_reply(server.port, message))
                    else:
                        sock.sendto(message, ("127.0.0.1", server.port))
                    sent += 1
                # bounded rate: wait until this many datagrams are due
                ahead = sent / RATE - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
                try:
                    while sock.recv(65535):
                        pass  # replies (400s, 100/503s) are not the point: keep the queue empty
                except BlockingIOError:
                    pass
        assert server.alive()
        # too big for a datagram: over TCP, where the framer answers 513 and hangs up
        # (a reset may swallow the 513, so some replies are empty; none may hang)
        assert all(closed for _reply, closed in over_tcp)
        assert {r[:11] for r, _closed in over_tcp} <= {b"SIP/2.0 513", b""}
        assert any(r.startswith(b"SIP/2.0 513") for r, _closed in over_tcp)
        answer = server.options()
        assert answer.startswith(b"SIP/2.0 200 OK"), answer[:200]
        figures = server.metrics()
        # the server saw the replay (loopback may lose a few datagrams under load) and
        # refused the broken cases as malformed instead of passing them on
        assert figures["vos3k_sip_received_total"] >= 0.9 * sent
        assert figures["vos3k_sip_malformed_total"] >= 500
        assert figures["vos3k_sip_errors_total"] == 0
        assert "Traceback" not in server.log.read_text()
    finally:
        server.stop()
