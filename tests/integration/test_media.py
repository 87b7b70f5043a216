"""The RTP proxy end to end (issue 8, SPEC §12): SIPp customer with RTP through a real vos3k
to a SIPp vendor that echoes it.

- the vendor's INVITE carries vos3k's --media-ip and a port of --rtp-ports;
- RTP flows both ways via the proxy: `call show --json` counts packets in both
  directions while the call is up, and the CDR's `extra` keeps them after;
- a call whose RTP stops is ended after SS_NOMEDIAHANGUPTIME with reason 15 (Media
  Timeout), direction 2, BYE to both sides;
- no port leaks: `stats --json` shows rtp_ports_in_use 0 once the calls are over.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import free_udp_block
from tests.integration.harness import SETUP, Sipp, Vos3k, needs_sipp, render, wait_until
from vos3k.store.models import Account, Gateway, Rate

PCAP = Path("/usr/share/sip-tester/g711a.pcap")  # SIPp's bundled 7 s of G.711 A-law
needs_pcap = pytest.mark.skipif(not PCAP.exists(), reason="sip-tester's g711a.pcap is missing")
pytestmark = [pytest.mark.integration, needs_sipp, needs_pcap]

NET = "127.0.9"  # this module's loopback addresses (other modules use other /24s)
CUSTOMER = f"{NET}.10"  # mapping gateway CUST
VENDOR, VENDOR_PORT = f"{NET}.20", 5080  # routing gateway VEND
EARLY, SPARE = f"{NET}.21", f"{NET}.22"  # routing gateways EARLY then SPARE for 92...
MEDIA_IP = "127.0.0.1"  # the harness's --media-ip
NO_MEDIA_S = 3  # SS_NOMEDIAHANGUPTIME for this module
CALLER = "7100001"


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    server = Vos3k(tmp_path_factory.mktemp("media"))
    server.init()
    server.set_params(SS_NOMEDIAHANGUPTIME=str(NO_MEDIA_S), SS_MEDIAPROXYMODE="on")
    with server.store() as store:
        store.rates.put(Rate("T1", "9", Decimal("0.06"), 60, 60, "it"), SETUP)
        store.accounts.add(Account("ACME", "prepaid", Decimal("100"), rate_table="T1"), SETUP)
        # SPEC §12: media_check rx on the customer = the RTP vos3k receives from it is timed
        store.gateways.add(
            Gateway("CUST", "mapping", CUSTOMER, account="ACME", media_check="rx"), SETUP
        )
        store.gateways.add(
            Gateway("VEND", "routing", VENDOR, port=VENDOR_PORT, prefixes=("9",)), SETUP
        )
        # until_connect=yes: a 183 alone does not stop the hunt (SPEC §4 step 5), RTP does
        for name, ip, priority in (("EARLY", EARLY, 1), ("SPARE", SPARE, 2)):
            store.gateways.add(
                Gateway(name, "routing", ip, port=VENDOR_PORT, prefixes=("92",),
                        priority=priority, until_connect="yes"),
                SETUP,
            )  # fmt: skip
    server.start()
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


@pytest.fixture
def vendor(vos, tmp_path):
    """A vendor UAS that echoes every RTP packet to its sender (-rtp_echo)."""
    uas = Sipp("vendor", tmp_path, render("uas_media.xml", tmp_path, HOLD_MS=30000), VENDOR,
               VENDOR_PORT)  # fmt: skip
    uas.serve("-rtp_echo", "-mp", str(free_udp_block(4, VENDOR)))
    yield uas
    uas.stop()


def customer(tmp_path, scenario: str, **values) -> Sipp:
    return Sipp("customer", tmp_path, render(scenario, tmp_path, **values), CUSTOMER)


def rtp_range(vos: Vos3k) -> range:
    low, high = (int(p) for p in vos.rtp_ports.split("-"))
    return range(low, high + 1)


def talking_call(vos: Vos3k) -> str | None:
    calls = vos.shell_json("call list")
    return next((c["id"] for c in calls if c["state"] == "talking"), None)


def one_cdr(vos: Vos3k, callee: str) -> dict:
    rows = vos.wait_cdrs(callee)
    assert len(rows) == 1, rows
    return rows[0]


def test_media_flows_both_ways_through_the_proxy(vos, vendor, tmp_path):
    shutil.copy(PCAP, tmp_path / PCAP.name)  # SIPp runs in tmp_path: a relative name
    uac = customer(tmp_path, "uac_media.xml", PCAP=PCAP.name, HOLD_MS=4000)
    uac.call(vos, [("9100", CALLER)], "-mp", str(free_udp_block(4, CUSTOMER)))
    try:
        call_id = wait_until(lambda: talking_call(vos), 10)
        assert call_id, uac.output()

        def flowing():
            shown = vos.shell_json(f"call show {call_id}")
            both = shown.get("media_a_packets", 0) > 0 and shown.get("media_b_packets", 0) > 0
            return shown if both else None

        # SPEC §12 Statistics in `call show`: a_* came from the caller, b_* the vendor's echo
        shown = wait_until(flowing, 3, 0.3)
        assert shown, vos.shell_json(f"call show {call_id}")
        assert shown["media_a_local"].split(":")[0] == MEDIA_IP
        assert int(shown["media_b_local"].split(":")[1]) in rtp_range(vos)
        assert uac.wait(30) == 0, uac.output()
    finally:
        uac.stop()

    # The vendor was offered the proxy (SPEC §12 Ports): --media-ip and an --rtp-ports port.
    [sdp] = vendor.logged("SDP")
    _, address, port = sdp.split()
    assert address == MEDIA_IP and int(port) in rtp_range(vos), sdp
    assert int(port) == int(shown["media_b_local"].split(":")[1])

    row = one_cdr(vos, "9100")
    assert (row["end_reason"], row["end_direction"]) == (1, 0)
    media = json.loads(row["extra"])["media"]
    assert media["a_packets"] >= shown["media_a_packets"] > 0
    assert media["b_packets"] >= shown["media_b_packets"] > 0
    # everything the vendor echoed came from what the caller sent
    assert media["b_packets"] <= media["a_packets"]
    assert media["a_bytes"] > 0 and media["b_bytes"] > 0


def test_silent_call_is_ended_by_the_media_timeout(vos, vendor, tmp_path):
    uac = customer(tmp_path, "uac_wait_bye.xml", WAIT_MS=15000)
    uac.call(vos, [("9101", CALLER)])
    try:
        assert uac.wait(30) == 0, uac.output()  # vos3k's BYE reached the caller
    finally:
        uac.stop()
    assert wait_until(lambda: vendor.logged("BYE"), 5), vendor.output()  # and the vendor

    row = one_cdr(vos, "9101")
    # SPEC §8 row 15 / §12: Media Timeout, direction 2 (vos3k), after SS_NOMEDIAHANGUPTIME
    assert (row["end_reason"], row["end_direction"], row["sip_code"]) == (15, 2, 200)
    assert NO_MEDIA_S * 1000 <= row["hold_ms"] <= (NO_MEDIA_S + 2) * 1000, row["hold_ms"]
    media = json.loads(row["extra"])["media"]
    assert media["a_packets"] == 0


def test_vendor_rtp_stops_the_hunt(vos, tmp_path):
    """SPEC §4 step 5: the first vendor sent RTP (early media) before its 503, so with
    SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START=1 (default) the hunt stops there: reason 5
    (table 2a 503), one attempt, and the second vendor never gets an INVITE."""
    shutil.copy(PCAP, tmp_path / PCAP.name)
    scenario = render("uas_early_rtp_fail.xml", tmp_path, PCAP=PCAP.name, DELAY_MS=1500, CODE=503)
    early = Sipp("early", tmp_path, scenario, EARLY, VENDOR_PORT)
    spare = Sipp("spare", tmp_path, render("uas_media.xml", tmp_path, HOLD_MS=30000), SPARE,
                 VENDOR_PORT)  # fmt: skip
    uac = customer(tmp_path, "uac_fail.xml", CODE=503)
    try:
        early.serve("-mp", str(free_udp_block(4, EARLY)))
        spare.serve("-rtp_echo", "-mp", str(free_udp_block(4, SPARE)))
        assert uac.call(vos, [("9200", CALLER)]).wait(30) == 0, uac.output()
    finally:
        for proc in (uac, early, spare):
            proc.stop()
    row = one_cdr(vos, "9200")
    assert (row["end_reason"], row["attempts"], row["callee_gateway_id"]) == (5, 1, "EARLY")
    assert spare.logged("INVITE") == []
    assert json.loads(row["extra"])["media"]["b_packets"] > 0  # the early RTP was relayed


def test_no_rtp_port_leaks_after_the_calls(vos):
    def settled():
        stats = vos.shell_json("stats")
        return stats if stats["current_calls"] == 0 else None

    stats = wait_until(settled, 10)
    assert stats, vos.shell_json("stats")
    assert stats["rtp_ports_in_use"] == 0
    assert stats["rtp_sessions"] == 0
    assert stats["rtp_sessions_total"] >= 3
    assert stats["rtp_media_timeouts_total"] >= 1
    assert stats["rtp_packets_total"] > 0
