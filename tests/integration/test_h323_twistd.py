"""A real twistd with H.323 on loopback: a captured Setup, RAS GRQ/RRQ, garbage on 1720."""

from __future__ import annotations

import socket
import subprocess
import time
from decimal import Decimal

import pytest

from tests.conftest import REPO, free_port, venv_command
from tests.h323.replay import OOH_FAST, tpkt_payloads
from vos3k.h323 import h225, q931, ras, tpkt
from vos3k.h323.h225 import Alias, AliasKind, TransportAddress
from vos3k.h323.ras import RasKind, RasMessage
from vos3k.params import SYSTEM
from vos3k.store.db import open_store
from vos3k.store.models import Account, Gateway, Rate


@pytest.fixture(scope="module")
def vos3k(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("h323")
    data = tmp / "data"
    subprocess.run([venv_command("vos3k"), "init", "--data-dir", str(data)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    store = open_store(data / "vos3k.db", create=False)
    store.accounts.add(Account("acme", type="postpaid", credit=Decimal("100"),
                               rate_table="retail"), SYSTEM)  # fmt: skip
    store.rates.import_rates("retail", [Rate("retail", "49", Decimal("0.0100"))], SYSTEM)
    store.gateways.add(
        Gateway(name="acme-h323", kind="mapping", ip="127.0.0.1", account="acme",
                protocol="h323"), SYSTEM,
    )  # fmt: skip
    store.close()
    ports = {"sip": free_port(), "h323": free_port(), "ras": free_port()}
    log = tmp / "twistd.log"
    command = [
        venv_command("twistd"),
        "-n",
        "--pidfile=",
        "--logfile",
        str(log),
        "vos3k",
        "--data-dir",
        str(data),
        "--sip-listen",
        f"127.0.0.1:{ports['sip']}",
        "--ssh-listen",
        "off",
        "--h323-listen",
        f"127.0.0.1:{ports['h323']}",
        "--ras-listen",
        f"127.0.0.1:{ports['ras']}",
        "--rtp-ports",
        "31000-31099",
        "--media-ip",
        "127.0.0.1",
    ]
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and "vos3k started" in log.read_text():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("vos3k did not start within 30 s")
        yield ports, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_messages(sock: socket.socket, count: int) -> list[q931.Message]:
    reassembler = tpkt.TpktReassembler()
    out: list[q931.Message] = []
    deadline = time.monotonic() + 10
    while len(out) < count and time.monotonic() < deadline:
        data = sock.recv(4096)
        if not data:
            break
        out += [q931.parse(p) for p in reassembler.feed(data) if isinstance(p, bytes)]
    return out


RTP = TransportAddress("127.0.0.1", 31900)


def _setup_to(callee: str) -> bytes:
    info = h225.UserInformation(
        h225.Body.SETUP, call_identifier=b"I" * 16, conference_id=b"C" * 16,
        source_aliases=(Alias(AliasKind.DIALED_DIGITS, "8613800138000"),),
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, callee),),
        fast_start=h225.fast_start_offer((h225.Codec.G711_ALAW,), RTP),
        h245_tunnelling=True,
    )  # fmt: skip
    message = q931.Message(
        q931.MessageType.SETUP, 555, False,
        (q931.BearerCapability(), q931.CalledPartyNumber(callee),
         q931.UserUser(h225.encode_user_information(info))),
    )  # fmt: skip
    return tpkt.encode(q931.encode(message))


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (_setup_to("4930123456"), 3),  # SPEC §3 step 9 / §8 reason 6: no route -> cause 3
        (tpkt.encode(tpkt_payloads(OOH_FAST, 1720)[4]), 1),  # no callee: reason 4 -> cause 1
    ],
    ids=["built-setup-no-route", "ooh323c-setup-no-callee"],
)
def test_setup_gets_call_proceeding_then_release_complete(vos3k, setup, cause):
    ports, _log = vos3k
    with socket.create_connection(("127.0.0.1", ports["h323"]), timeout=10) as sock:
        sock.sendall(setup)
        proceeding, release = _read_messages(sock, 2)
        assert proceeding.message_type == q931.MessageType.CALL_PROCEEDING
        assert release.message_type == q931.MessageType.RELEASE_COMPLETE
        assert release.find(q931.Cause).value == cause
        assert sock.recv(4096) == b""  # vos3k closed the connection after it


def _ras(port: int, message: RasMessage) -> RasMessage:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(ras.encode(message), ("127.0.0.1", port))
        data, _ = sock.recvfrom(4096)
    reply = ras.parse(data)
    assert not isinstance(reply, ras.Malformed), reply
    return reply


def test_ras_grq_and_rrq_are_confirmed(vos3k):
    ports, _log = vos3k
    me = TransportAddress("127.0.0.1", 1719)
    gcf = _ras(ports["ras"], RasMessage(RasKind.GRQ, 1, ras_addresses=(me,)))
    assert (gcf.kind, gcf.gatekeeper_identifier) == (RasKind.GCF, "vos3k")
    rrq = RasMessage(
        RasKind.RRQ, 2, aliases=(Alias(AliasKind.H323_ID, "acme-h323"),),
        ras_addresses=(me,), call_signal_addresses=(TransportAddress("127.0.0.1", 1720),),
    )  # fmt: skip
    rcf = _ras(ports["ras"], rrq)
    assert rcf.kind is RasKind.RCF and rcf.time_to_live == 60
    assert rcf.endpoint_identifier


def test_garbage_closes_only_that_connection(vos3k):
    ports, log = vos3k
    with socket.create_connection(("127.0.0.1", ports["h323"]), timeout=10) as bystander:
        with socket.create_connection(("127.0.0.1", ports["h323"]), timeout=10) as bad:
            bad.sendall(b"\x03\x00\x00\x0b\x09garbage")  # TPKT around a non-Q.931 payload
            (release,) = _read_messages(bad, 1)
            assert release.message_type == q931.MessageType.RELEASE_COMPLETE
            assert release.find(q931.Cause).value == 111
            assert bad.recv(4096) == b""
        with socket.create_connection(("127.0.0.1", ports["h323"]), timeout=10) as oversize:
            oversize.sendall(b"\x03\x00\xff\xff" + b"\x00" * 64)  # over the TPKT limit
            (release,) = _read_messages(oversize, 1)
            assert release.find(q931.Cause).value == 111
        # The connection opened before is still served.
        bystander.sendall(_setup_to("4930123456"))
        proceeding, release = _read_messages(bystander, 2)
        assert proceeding.message_type == q931.MessageType.CALL_PROCEEDING
    assert "Traceback" not in log.read_text()
