"""SIP<->H.323 through a real `twistd -n vos3k` on loopback (SPEC §11 Interworking).

SIPp plays the SIP customer (127.0.0.10) and vendor (127.0.0.20:5080, both echo RTP);
tests/integration/h323peer.py plays the H.323 customer (127.0.0.11) and vendor
(127.0.0.30). Each test checks signalling, RTP through the proxy both ways, the CDR's
end reason and direction (SPEC §7, §8), and that tshark decodes what vos3k sent.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, free_udp_block, venv_command
from tests.h323.h323_captures import TSHARK, tshark_fields, write_pcap
from tests.integration.h323peer import (
    PeerLog,
    RasClient,
    RtpEnd,
    VendorGateway,
    answer_address,
    cause_of,
    place_call,
)
from vos3k.h323 import tpkt
from vos3k.h323.h225 import Alias, AliasKind, TransportAddress
from vos3k.h323.q931 import MessageType
from vos3k.h323.ras import RasKind
from vos3k.params import SYSTEM
from vos3k.store.db import open_store
from vos3k.store.models import Account, Gateway, Rate

SIPP = shutil.which("sipp")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp is not installed (Debian sip-tester)"),
]

SIP_CUSTOMER, H323_CUSTOMER = "127.0.0.10", "127.0.0.11"
SIP_VENDOR, H323_VENDOR = "127.0.0.20", "127.0.0.30"
SIP_VENDOR_PORT = 5080
TO_SIP, TO_H323, TO_RAS = "5511", "6611", "7711"  # callee prefixes per routing gateway
TO_DYNAMIC = "8811"  # to the routing gateway with ip=dynamic (a RAS registration)
CALLER = "8613800138000"
MEDIA_PORTS = (31100, 31199)

# ---------------------------------------------------------------- SIPp scenarios

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
_SDP = """
      v=0
      o=it 1 1 IN IP4 [media_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
"""
_UAC_INVITE = f"""
  <send retrans="500"><![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{CALLER}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]
{_SDP}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" timeout="20000"/>
  <send><![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
"""
_OK_TO_LAST = """
  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
"""
SCENARIOS = {
    # The SIP customer calls, talks for -d ms, sends a DTMF INFO, hangs up.
    "uac_hangs_up.xml": f"""{_HEAD}<scenario name="uac hangs up">{_UAC_INVITE}
  <pause/>
  <send retrans="500"><![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal=7
      Duration=160
  ]]></send>
  <recv response="200" timeout="5000"/>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: <sip:{CALLER}@[local_ip]:[local_port]>;tag=[pid]c[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" timeout="5000"/>
</scenario>
""",
    # The SIP customer calls and waits for vos3k's BYE (the far side released).
    "uac_waits_bye.xml": f"""{_HEAD}<scenario name="uac waits for bye">{_UAC_INVITE}
  <recv request="BYE" timeout="20000"/>
{_OK_TO_LAST}
</scenario>
""",
    # The SIP vendor answers; it records an INFO's body, and either gets vos3k's BYE or,
    # after -d ms of silence, hangs up itself.
    "uas_answers.xml": f"""{_HEAD}<scenario name="uas answers">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="from_hdr"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="to_hdr"/>
    </action>
  </recv>
  <send><![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]v[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]v[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]
{_SDP}
  ]]></send>
  <recv request="ACK" timeout="10000"/>
  <recv request="INFO" optional="true" timeout="@@WAIT_MS@@" ontimeout="hangup">
    <action>
      <ereg regexp="Signal= *[0-9*#A-D]" search_in="body" assign_to="digit"/>
      <log message="INFO [$digit]"/>
    </action>
  </recv>
  <recv request="BYE" next="bye_ok" timeout="@@WAIT_MS@@" ontimeout="hangup"/>
  <recv request="BYE" timeout="@@WAIT_MS@@" ontimeout="hangup">
    <action><log message="BYE"/></action>
  </recv>
  <label id="bye_ok"/>
{_OK_TO_LAST}
  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500"><![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: [$to_hdr];tag=[pid]v[call_number]
      To: [$from_hdr]
      Call-ID: [call_id]
      CSeq: 101 BYE
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200" timeout="5000"/>
  <label id="end"/>
</scenario>
""",
    # The SIP vendor is busy.
    "uas_busy.xml": f"""{_HEAD}<scenario name="uas busy">
  <recv request="INVITE"/>
  <send><![CDATA[

      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]v[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK" timeout="5000"/>
</scenario>
""",
}


# ---------------------------------------------------------------- the server


class Vos3k:
    """One twistd process with SIP, H.323 and RAS on loopback, and its store."""

    def __init__(self, tmp: Path, vendor_h323_port: int) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.log = tmp / "twistd.log"
        self.sip = free_port()
        self.h323 = free_port()
        self.ras = free_port()
        self.vendor_h323_port = vendor_h323_port
        self.proc: subprocess.Popen | None = None

    def provision(self) -> None:
        subprocess.run([venv_command("vos3k"), "init", "--data-dir", str(self.data)],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        store = open_store(self.data / "vos3k.db", create=False)
        try:
            store.accounts.add(Account("acme", type="postpaid", credit=Decimal("100"),
                                       rate_table="retail"), SYSTEM)  # fmt: skip
            prefixes = (TO_SIP, TO_H323, TO_RAS, TO_DYNAMIC)
            rates = [Rate("retail", p, Decimal("0.0100")) for p in prefixes]
            store.rates.import_rates("retail", rates, SYSTEM)
            for gateway in (
                Gateway(name="sip-in", kind="mapping", ip=SIP_CUSTOMER, account="acme"),
                Gateway(name="h323-in", kind="mapping", ip=H323_CUSTOMER, account="acme",
                        protocol="h323"),
                Gateway(name="sip-out", kind="routing", ip=SIP_VENDOR, port=SIP_VENDOR_PORT,
                        prefixes=(TO_SIP, TO_RAS), media_proxy="must_on"),
                Gateway(name="h323-out", kind="routing", ip=H323_VENDOR,
                        port=self.vendor_h323_port, prefixes=(TO_H323,), protocol="h323",
                        media_proxy="must_on"),
                Gateway(name="h323-dyn", kind="routing", ip="dynamic", prefixes=(TO_DYNAMIC,),
                        protocol="h323", media_proxy="must_on"),
            ):  # fmt: skip
                store.gateways.add(gateway, SYSTEM)
        finally:
            store.close()

    def start(self) -> None:
        command = [
            venv_command("twistd"), "-n", "--pidfile=", "--logfile", str(self.log), "vos3k",
            "--data-dir", str(self.data), "--sip-listen", f"127.0.0.1:{self.sip}",
            "--ssh-listen", "off", "--h323-listen", f"127.0.0.1:{self.h323}",
            "--ras-listen", f"127.0.0.1:{self.ras}",
            "--rtp-ports", f"{MEDIA_PORTS[0]}-{MEDIA_PORTS[1]}", "--media-ip", "127.0.0.1",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.log.exists() and "vos3k started" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"vos3k exited: {self.proc.stderr.read()}")
            time.sleep(0.1)
        pytest.fail("vos3k did not start within 30 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cdrs(self, callee: str) -> list[dict]:
        with sqlite3.connect(self.data / "vos3k.db") as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM cdrs WHERE callee_e164 = ? ORDER BY id", (callee,))
            return [dict(row) for row in rows]

    def next_cdr(self, callee: str, seen: int, seconds: float = 10.0) -> dict:
        """The first CDR of calls to `callee` after the `seen` ones, once committed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rows = self.cdrs(callee)
            if len(rows) > seen:
                assert len(rows) == seen + 1, rows
                return rows[seen]
            time.sleep(0.1)
        pytest.fail(f"no new CDR for {callee} within {seconds} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interworking")
    for name, text in SCENARIOS.items():
        (tmp / name).write_text(text)
    vos = Vos3k(tmp, free_port(host=H323_VENDOR))
    vos.provision()
    vos.start()
    yield vos
    vos.stop()


@pytest.fixture
def peer_log():
    return PeerLog()


def sipp(server: Vos3k, scenario: str, *extra: str, wait_ms: int = 8000) -> subprocess.Popen:
    """Start one SIPp call in the background (RTP echo on); `finish()` collects it."""
    text = (server.tmp / scenario).read_text().replace("@@WAIT_MS@@", str(wait_ms))
    path = server.tmp / f"{wait_ms}-{scenario}"
    path.write_text(text)
    command = [SIPP, "-sf", str(path), "-m", "1", "-nostdin", "-rtp_echo", "-timeout", "30s",
               "-timeout_error", "-trace_err", "-trace_logs", *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=server.tmp, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def sipp_uac(server: Vos3k, scenario: str, callee: str, hold_ms: int = 0) -> subprocess.Popen:
    signalling = free_port(socket.SOCK_DGRAM, SIP_CUSTOMER)
    media_port = free_udp_block(4, SIP_CUSTOMER)
    return sipp(server, scenario, f"127.0.0.1:{server.sip}", "-s", callee, "-i", SIP_CUSTOMER,
                "-p", str(signalling), "-mi", SIP_CUSTOMER, "-mp", str(media_port),
                "-d", str(hold_ms))  # fmt: skip


def sipp_uas(server: Vos3k, scenario: str, wait_ms: int = 8000) -> subprocess.Popen:
    proc = sipp(server, scenario, "-i", SIP_VENDOR, "-p", str(SIP_VENDOR_PORT), "-mi",
                SIP_VENDOR, "-mp", str(free_udp_block(4, SIP_VENDOR)),
                wait_ms=wait_ms)  # fmt: skip
    deadline = time.monotonic() + 10
    # Listening once the kernel lists the socket (probing with bind() would race SIPp).
    wanted = f"{socket.inet_aton(SIP_VENDOR)[::-1].hex().upper()}:{SIP_VENDOR_PORT:04X}"
    while time.monotonic() < deadline and proc.poll() is None:
        if wanted in Path("/proc/net/udp").read_text():
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"SIPp UAS did not bind: {proc.communicate()[0][-2000:]}")


def finish(proc: subprocess.Popen, server: Vos3k) -> str:
    """Wait for SIPp; assert it succeeded; return its log (the <log> lines)."""
    try:
        out, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    logs = "".join(p.read_text() for p in server.tmp.glob("*_logs.log"))
    for stale in server.tmp.glob("*_logs.log"):
        stale.unlink()
    errors = "".join(p.read_text() for p in server.tmp.glob("*_errors.log"))
    assert proc.returncode == 0, f"SIPp failed ({proc.returncode}): {errors}\n{out[-3000:]}"
    return logs


def in_proxy(address: TransportAddress | None) -> bool:
    return (
        address is not None
        and address.host == "127.0.0.1"
        and MEDIA_PORTS[0] <= address.port <= MEDIA_PORTS[1]
    )


def rtp_round_trip(rtp: RtpEnd, to: TransportAddress, count: int = 10) -> int:
    """Send `count` packets to vos3k's proxy; how many came back echoed (via the proxy)."""
    rtp.send(to, count)
    echoed = rtp.receive(1.0)
    assert all(source[0] == "127.0.0.1" for _data, source in echoed)  # from the proxy
    return sum(1 for data, _ in echoed if data[12:17] == b"vos3k")


def assert_tshark_clean(tmp: Path, log: PeerLog, server: Vos3k) -> None:
    """Every Q.931 and RAS message vos3k sent the peer decodes in tshark (SPEC §11)."""
    if TSHARK is None:
        pytest.skip("tshark is not installed")
    for name, payloads, port, udp in (
        ("q931", [tpkt.encode(p) for p in log.q931], 1720, False),
        ("ras", log.ras, 1719, True),
    ):
        if not payloads:
            continue
        path = tmp / f"{name}.pcap"
        write_pcap(path, payloads, port=port, udp=udp)
        fields = ["_ws.malformed", "q931.message_type", "h225.RasMessage"]
        rows = tshark_fields(path, fields)
        assert len(rows) == len(payloads)
        for row in rows:
            assert row[0] == "", row
            assert row[1 if not udp else 2] != "", row


# ---------------------------------------------------------------- H.323 caller -> SIP vendor


@pytest.mark.parametrize("who", ["h323-caller-releases", "sip-vendor-hangs-up"])
def test_h323_caller_to_sip_vendor(server, peer_log, tmp_path, who):
    seen = len(server.cdrs(TO_SIP))
    releases = who == "h323-caller-releases"
    vendor = sipp_uas(server, "uas_answers.xml", wait_ms=15000 if releases else 3000)
    rtp = RtpEnd(H323_CUSTOMER)
    call = place_call(("127.0.0.1", server.h323), H323_CUSTOMER, CALLER, TO_SIP, rtp, peer_log)
    try:
        got = call.wait_for(MessageType.CONNECT)
        types = [m.message_type for m in got]
        assert types[0] == MessageType.CALL_PROCEEDING and MessageType.ALERTING in types
        proxy = answer_address(got)
        assert in_proxy(proxy), proxy
        assert rtp_round_trip(rtp, proxy) >= 5  # A -> B -> SIPp echo -> B -> A
        if releases:
            call.send_digit("5")
            time.sleep(0.3)
            call.release(16)
            assert call.closed()
        else:
            release = call.wait_for(MessageType.RELEASE_COMPLETE, seconds=15)[-1]
            assert cause_of(release) == 16
    finally:
        call.close()
        rtp.close()
    logs = finish(vendor, server)
    cdr = server.next_cdr(TO_SIP, seen)
    assert (cdr["end_reason"], cdr["end_direction"]) == (1, 0 if releases else 1)
    if releases:
        assert "INFO Signal=5" in logs
    assert_tshark_clean(tmp_path, peer_log, server)


def test_h323_caller_gets_cause_17_when_the_sip_vendor_is_busy(server, peer_log, tmp_path):
    seen = len(server.cdrs(TO_SIP))
    vendor = sipp_uas(server, "uas_busy.xml")
    rtp = RtpEnd(H323_CUSTOMER)
    call = place_call(("127.0.0.1", server.h323), H323_CUSTOMER, CALLER, TO_SIP, rtp, peer_log)
    try:
        release = call.wait_for(MessageType.RELEASE_COMPLETE)[-1]
        assert cause_of(release) == 17  # SPEC §8 table 2a: 486 -> cause 17
        assert call.closed()
    finally:
        call.close()
        rtp.close()
    finish(vendor, server)
    cdr = server.next_cdr(TO_SIP, seen)
    assert (cdr["end_reason"], cdr["end_direction"]) == (2, 1)  # User Busy, the vendor
    assert_tshark_clean(tmp_path, peer_log, server)


# ---------------------------------------------------------------- SIP caller -> H.323 vendor


@pytest.fixture
def h323_vendor(server, peer_log):
    vendor = VendorGateway(H323_VENDOR, server.vendor_h323_port, peer_log)
    yield vendor
    vendor.close()


@pytest.mark.parametrize("who", ["sip-caller-hangs-up", "h323-vendor-releases"])
def test_sip_caller_to_h323_vendor(server, peer_log, h323_vendor, tmp_path, who):
    seen = len(server.cdrs(TO_H323))
    hangs_up = who == "sip-caller-hangs-up"
    scenario = "uac_hangs_up.xml" if hangs_up else "uac_waits_bye.xml"
    customer = sipp_uac(server, scenario, TO_H323, hold_ms=2500)
    rtp = RtpEnd(H323_VENDOR)
    offered = h323_vendor.accept()
    try:
        assert offered.callee == TO_H323 and offered.info.fast_start
        assert in_proxy(offered.rtp), offered.rtp  # vos3k offered the proxy, not SIPp
        h323_vendor.answer(offered, rtp)
        time.sleep(0.3)  # the 200 OK reaches SIPp, which starts echoing
        assert rtp_round_trip(rtp, offered.rtp) >= 5  # B -> A -> SIPp echo -> A -> B
        if hangs_up:
            got = offered.connection.wait_for(MessageType.RELEASE_COMPLETE, seconds=15)
            assert cause_of(got[-1]) == 16
            digits = [m for m in offered.connection.h245_seen if hasattr(m, "signal")]
            assert [(d.signal, d.duration_ms) for d in digits] == [("7", 160)]  # SIP INFO
        else:
            offered.connection.release(16)
    finally:
        offered.connection.close()
        rtp.close()
    finish(customer, server)
    cdr = server.next_cdr(TO_H323, seen)
    assert (cdr["end_reason"], cdr["end_direction"]) == (1, 0 if hangs_up else 1)
    assert cdr["callee_gateway_id"] == "h323-out"
    assert_tshark_clean(tmp_path, peer_log, server)


# ---------------------------------------------------------------- RAS


def test_ras_registered_endpoint_calls_through_its_acf(server, peer_log, tmp_path):
    seen = len(server.cdrs(TO_RAS))
    gatekeeper = RasClient(H323_CUSTOMER, ("127.0.0.1", server.ras), peer_log)
    vendor = sipp_uas(server, "uas_answers.xml", wait_ms=15000)
    rtp = RtpEnd(H323_CUSTOMER)
    call = None
    try:
        me = (Alias(AliasKind.H323_ID, "h323-in"),)
        rcf = gatekeeper.request(
            RasKind.RRQ, aliases=me, ras_addresses=(gatekeeper.address,),
            call_signal_addresses=(TransportAddress(H323_CUSTOMER, 1720),),
        )  # fmt: skip
        assert rcf.kind is RasKind.RCF and rcf.endpoint_identifier
        acf = gatekeeper.request(
            RasKind.ARQ, endpoint_identifier=rcf.endpoint_identifier, aliases=me,
            destination_aliases=(Alias(AliasKind.DIALED_DIGITS, TO_RAS),),
            call_identifier=b"R" * 16, conference_id=b"S" * 16, bandwidth=1280,
        )  # fmt: skip
        assert acf.kind is RasKind.ACF, acf
        target = acf.destination_call_signal_address
        assert target == TransportAddress("127.0.0.1", server.h323)  # routed via vos3k
        call = place_call((target.host, target.port), H323_CUSTOMER, CALLER, TO_RAS, rtp,
                          peer_log)  # fmt: skip
        proxy = answer_address(call.wait_for(MessageType.CONNECT))
        assert rtp_round_trip(rtp, proxy) >= 5
        call.release(16)
        assert call.closed()
        dcf = gatekeeper.request(
            RasKind.DRQ, endpoint_identifier=rcf.endpoint_identifier,
            call_identifier=b"R" * 16, conference_id=b"S" * 16, reason="normalDrop",
        )  # fmt: skip
        assert dcf.kind is RasKind.DCF
    finally:
        if call is not None:
            call.close()
        rtp.close()
        gatekeeper.close()
    finish(vendor, server)
    cdr = server.next_cdr(TO_RAS, seen)
    assert (cdr["end_reason"], cdr["end_direction"]) == (1, 0)
    assert_tshark_clean(tmp_path, peer_log, server)


def test_dynamic_routing_gateway_reaches_its_registration(server, peer_log, tmp_path):
    """SPEC §2 ip=dynamic: the call goes where the endpoint named like the gateway
    registered its call signalling address; before that the attempt fails (21)."""
    seen = len(server.cdrs(TO_DYNAMIC))
    customer = sipp_uac(server, "uac_waits_bye.xml", TO_DYNAMIC)
    try:
        with pytest.raises(AssertionError, match="SIPp failed"):
            finish(customer, server)  # nobody registered as h323-dyn yet
    finally:
        for stale in server.tmp.glob("*_errors.log"):
            stale.unlink()
    assert server.next_cdr(TO_DYNAMIC, seen)["end_reason"] == 21  # Gateway Unavailable
    vendor = VendorGateway(H323_CUSTOMER, 0, peer_log)  # registered from a mapping gateway IP
    gatekeeper = RasClient(H323_CUSTOMER, ("127.0.0.1", server.ras), peer_log)
    rtp = RtpEnd(H323_CUSTOMER)
    try:
        rcf = gatekeeper.request(
            RasKind.RRQ, aliases=(Alias(AliasKind.H323_ID, "h323-dyn"),),
            ras_addresses=(gatekeeper.address,), call_signal_addresses=(vendor.address,),
        )  # fmt: skip
        assert rcf.kind is RasKind.RCF
        customer = sipp_uac(server, "uac_waits_bye.xml", TO_DYNAMIC)
        offered = vendor.accept()
        assert offered.callee == TO_DYNAMIC and in_proxy(offered.rtp)
        vendor.answer(offered, rtp)
        time.sleep(0.3)
        assert rtp_round_trip(rtp, offered.rtp) >= 5
        offered.connection.release(16)
        offered.connection.close()
        finish(customer, server)
    finally:
        rtp.close()
        gatekeeper.close()
        vendor.close()
    cdr = server.next_cdr(TO_DYNAMIC, seen + 1)
    assert (cdr["end_reason"], cdr["end_direction"], cdr["callee_gateway_id"]) == (
        1, 1, "h323-dyn",
    )  # fmt: skip
    assert_tshark_clean(tmp_path, peer_log, server)


def test_no_traceback_in_the_log(server):
    assert server.proc is not None and server.proc.poll() is None
    assert "Traceback" not in server.log.read_text()
