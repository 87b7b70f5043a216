"""A real twistd: phone 2001 registers over RAS with an H.235 password token (SPEC §11)."""

from __future__ import annotations

import subprocess
import time
from decimal import Decimal

import pytest

from tests.conftest import REPO, free_port, venv_command
from tests.h323.h323_captures import TSHARK, tshark_fields, write_pcap
from tests.integration.h323peer import PeerLog, RasClient, RtpEnd, VendorGateway, place_call
from vos3k.h323 import q931
from vos3k.h323.h225 import Alias, AliasKind
from vos3k.h323.ras import RasKind
from vos3k.params import SYSTEM
from vos3k.store.db import open_store
from vos3k.store.models import Account, Gateway, Phone, Rate

PHONE, PASSWORD = "2001", "s3cret-2001"
PHONE_IP, VENDOR_IP, STRANGER_IP = "127.0.0.5", "127.0.0.6", "127.0.0.7"
CALLEE = "4930123456"
CAUSE_ILLEGAL = 21  # Q.850 call rejected: a phone call that nothing authenticated


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("h323-phone")
    data = tmp / "data"
    subprocess.run([venv_command("vos3k"), "init", "--data-dir", str(data)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    vendor_port = free_port(host=VENDOR_IP)
    store = open_store(data / "vos3k.db", create=False)
    store.accounts.add(Account("acme", type="postpaid", credit=Decimal("100"),
                               rate_table="retail"), SYSTEM)  # fmt: skip
    store.rates.import_rates("retail", [Rate("retail", "49", Decimal("0.0100"))], SYSTEM)
    store.phones.add(Phone(PHONE, PASSWORD, "acme"), SYSTEM)
    # No mapping gateway: the phone's address alone would register nothing (SPEC §11).
    store.gateways.add(
        Gateway(name="vendor", kind="routing", ip=VENDOR_IP, port=vendor_port,
                prefixes=("49",), protocol="h323"), SYSTEM,
    )  # fmt: skip
    store.close()
    ports = {"sip": free_port(), "h323": free_port(), "ras": free_port()}
    log = tmp / "twistd.log"
    command = [
        venv_command("twistd"), "-n", "--pidfile=", "--logfile", str(log), "vos3k",
        "--data-dir", str(data), "--sip-listen", f"127.0.0.1:{ports['sip']}",
        "--ssh-listen", "off", "--h323-listen", f"127.0.0.1:{ports['h323']}",
        "--ras-listen", f"127.0.0.1:{ports['ras']}", "--rtp-ports", "31200-31299",
        "--media-ip", "127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and "vos3k started" in log.read_text():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("vos3k did not start within 30 s")
        yield ports, vendor_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_phone_registers_only_with_its_password(server, tmp_path):
    ports, _vendor_port, log = server
    peer_log = PeerLog()
    wrong = RasClient(STRANGER_IP, ("127.0.0.1", ports["ras"]), peer_log)
    right = RasClient(PHONE_IP, ("127.0.0.1", ports["ras"]), peer_log)
    try:
        rrj = wrong.register_phone(PHONE, "not-the-password")
        assert (rrj.kind, rrj.reason) == (RasKind.RRJ, "securityDenial")
        unknown = wrong.register_phone("2999", PASSWORD)  # no enumeration: the same RRJ
        assert (unknown.kind, unknown.reason) == (RasKind.RRJ, "securityDenial")
        rcf = right.register_phone(PHONE, PASSWORD)
        assert rcf.kind is RasKind.RCF and rcf.endpoint_identifier
        assert rcf.time_to_live == 60  # SS_ENDPOINTTIMETOLIVE
        # ARQ from the registered phone: admitted as that phone, routed via vos3k.
        acf = right.request(
            RasKind.ARQ, endpoint_identifier=rcf.endpoint_identifier,
            aliases=(Alias(AliasKind.DIALED_DIGITS, PHONE),),
            destination_aliases=(Alias(AliasKind.DIALED_DIGITS, CALLEE),),
            call_identifier=b"P" * 16,
        )  # fmt: skip
        assert acf.kind is RasKind.ACF and acf.destination_call_signal_address.port == ports["h323"]
        sent = wrong.sent + right.sent
    finally:
        wrong.close()
        right.close()
    text = log.read_text()
    assert "RRQ for 2001 from 127.0.0.7 refused: bad token" in text
    assert "Traceback" not in text
    if TSHARK is not None:  # what the test peer built decodes cleanly (SPEC §11 pitfall)
        path = tmp_path / "phone-rrq.pcap"
        write_pcap(path, sent, port=1719, udp=True)
        fields = ["_ws.malformed", "_ws.expert.severity", "h235.algorithmOID", "h235.hash"]
        rows = tshark_fields(path, fields)
        assert [row[:2] for row in rows] == [["", ""]] * len(sent)
        assert [row[2] for row in rows[:3]] == ["1.2.840.113549.2.5"] * 3
        assert all(len(row[3]) == 32 for row in rows[:3])


def test_registered_phone_calls_as_itself(server):
    ports, vendor_port, _log = server
    peer_log = PeerLog()
    ras_client = RasClient(PHONE_IP, ("127.0.0.1", ports["ras"]), peer_log)
    vendor = VendorGateway(VENDOR_IP, vendor_port, peer_log)
    rtp = RtpEnd(PHONE_IP)
    try:
        rcf = ras_client.register_phone(PHONE, PASSWORD, timestamp=int(time.time()) + 1)
        assert rcf.kind is RasKind.RCF
        # SPEC §3 step 3 "RAS phones by address": the Setup from the phone's host is the
        # phone's call, so it is offered to the vendor and not refused as illegal.
        call = place_call(("127.0.0.1", ports["h323"]), PHONE_IP, PHONE, CALLEE, rtp, peer_log)
        offered = vendor.accept()
        assert offered.callee == CALLEE
        vendor.refuse(offered, 17)
        releases = call.wait_for(q931.MessageType.RELEASE_COMPLETE)
        assert releases
        call.close()
        # From an unregistered host the same Setup is an illegal call (SPEC §3 step 3).
        stranger = place_call(
            ("127.0.0.1", ports["h323"]), STRANGER_IP, PHONE, CALLEE, rtp, peer_log
        )
        (release,) = stranger.wait_for(q931.MessageType.RELEASE_COMPLETE)[-1:]
        assert release.find(q931.Cause).value == CAUSE_ILLEGAL
        stranger.close()
    finally:
        vendor.close()
        ras_client.close()
        rtp.close()
