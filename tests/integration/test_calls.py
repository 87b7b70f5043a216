"""Calls through a running vos3k: SIPp customer (UAC) and vendors (UAS) on loopback.

Issue 6 "Done when": basic call, CANCEL while ringing, 486 with and without stop code,
503 failover, INVITE timeout failover, no route, line limits, unknown source IP and
`call kill`; each checks the caller's final SIP status and the CDR's end reason,
direction and billing mode (SPEC §3 step table, §4 failover, §7 CDR, §8 reasons).
"""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from tests.conftest import free_port
from tests.integration.harness import (
    SETUP,
    Blackhole,
    Sipp,
    Vos3k,
    fee_of,
    needs_sipp,
    render,
    wait_until,
)
from vos3k.store.models import Account, Gateway, Rate

pytestmark = [pytest.mark.integration, needs_sipp]

NET = "127.0.6"  # this module's loopback addresses (other modules use other /24s)
CUSTOMER = f"{NET}.10"  # mapping gateway CUST
LIMITED = f"{NET}.11"  # mapping gateway CUST1 (lines=1)
STRANGER = f"{NET}.99"  # no gateway: illegal calls
CALLER = "7100001"


def _vendor(name: str, last: int, prefixes: tuple[str, ...], **extra) -> Gateway:
    ip = f"{NET}.{last}"
    return Gateway(
        name, "routing", ip, port=free_port(socket.SOCK_DGRAM, host=ip), prefixes=prefixes,
        **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    server = Vos3k(tmp_path_factory.mktemp("calls"))
    server.init()
    server.set_params(
        SS_SIP_TIMEOUT_INVITE="2",  # SPEC §4 timer table: the silent-vendor test waits 2 s
        SS_CDR_RECORD_TO_FILE="1",
    )
    server.vendors = {
        # single-vendor prefixes: basic (9100), callee hangs up (9101), cancel (9102),
        # kill (9107)
        "GA": _vendor("GA", 20, ("9100", "9101", "9102", "9107"), lines=100),
        # a hunt over two vendors: busy (9103), 503 (9105), INVITE timeout (9106)
        "GB1": _vendor("GB1", 21, ("9103", "9105", "9106"), priority=1),
        "GB2": _vendor("GB2", 22, ("9103", "9105", "9106"), priority=2),
        # the same with 486 as a stop code on the first (9104)
        "GS1": _vendor("GS1", 23, ("9104",), priority=1, stop_codes=(486,)),
        "GS2": _vendor("GS2", 24, ("9104",), priority=2),
        # one line only (9108); a locked gateway (9300)
        "GL": _vendor("GL", 25, ("9108",), lines=1),
        "GX": _vendor("GX", 26, ("9300",), lock="locked"),
    }
    with server.store() as store:
        store.rates.put(Rate("T1", "9", Decimal("0.06"), 60, 60, "it"), SETUP)
        store.accounts.add(Account("ACME", "prepaid", Decimal("1000"), rate_table="T1"), SETUP)
        store.gateways.add(Gateway("CUST", "mapping", CUSTOMER, account="ACME"), SETUP)
        store.gateways.add(Gateway("CUST1", "mapping", LIMITED, account="ACME", lines=1), SETUP)
        for gateway in server.vendors.values():
            store.gateways.add(gateway, SETUP)
    server.start()
    yield server

    # nothing leaks: every call ended, every line and RTP port given back (SPEC §3, §12)
    def idle():
        stats = server.shell_json("stats")
        return stats["current_calls"] == 0 and stats["rtp_ports_in_use"] == 0 and stats

    assert wait_until(idle, 10, 0.5), server.shell_json("stats")
    assert server.stop() == 0
    assert not server.tracebacks(), server.tracebacks()


@pytest.fixture
def procs():
    """SIPp processes and sockets of one test, stopped whatever happens."""
    started: list = []
    yield started
    for proc in started:
        if isinstance(proc, Blackhole):
            proc.close()
        else:
            proc.stop()


def vendor(vos, procs, tmp_path, name: str, scenario: str, **values) -> Sipp:
    gw = vos.vendors[name]
    uas = Sipp(name, tmp_path, render(scenario, tmp_path, **values), gw.ip, gw.port)
    procs.append(uas)
    return uas.serve()


def customer(procs, tmp_path, name: str, scenario: str, ip: str = CUSTOMER, **values) -> Sipp:
    uac = Sipp(name, tmp_path, render(scenario, tmp_path, **values), ip)
    procs.append(uac)
    return uac


def one_cdr(vos, callee: str) -> dict:
    rows = vos.wait_cdrs(callee)
    assert len(rows) == 1, rows
    return rows[0]


def expect(row: dict, reason: int, direction: int, billing_mode: int, sip_code: int) -> None:
    got = {k: row[k] for k in ("end_reason", "end_direction", "billing_mode", "sip_code")}
    want = {"end_reason": reason, "end_direction": direction, "billing_mode": billing_mode,
            "sip_code": sip_code}  # fmt: skip
    assert got == want, row


# --------------------------------------------------------------------- answered calls


def test_basic_call_caller_hangs_up(vos, procs, tmp_path):
    """SPEC §3 steps 10-13: answered, the caller's BYE → 1, direction 0, billed 0.06."""
    callee = "9100001"
    before = vos.balance("ACME")
    uas = vendor(vos, procs, tmp_path, "GA", "uas_answer.xml", HOLD_MS=30000)
    uac = customer(procs, tmp_path, "uac", "uac_call.xml")
    assert uac.call(vos, [(callee, CALLER)], "-d", "1500").wait(30) == 0, uac.output()
    row = one_cdr(vos, callee)
    expect(row, reason=1, direction=0, billing_mode=1, sip_code=200)
    assert row["callee_gateway_id"] == "GA" and row["caller_gateway_id"] == "CUST"
    assert 1000 <= row["hold_ms"] <= 4000, row
    assert fee_of(row) == Decimal("0.06") and row["billed_seconds"] == 60
    assert wait_until(lambda: vos.balance("ACME") == before - Decimal("0.06"), 5), (
        before, vos.balance("ACME"))  # fmt: skip
    assert len(uas.logged("BYE")) == 1  # the caller's BYE reached the vendor
    # INTERFACE §6: the same CDR as one 19-field line in DATA/cdr/YYYYMMDDHH.txt
    lines = [
        line.split("|")
        for path in sorted((vos.data_dir / "cdr").glob("*.txt"))
        for line in path.read_text().splitlines()
        if line.split("|")[1] == callee
    ]
    assert len(lines) == 1 and len(lines[0]) == 19, lines
    fields = lines[0]
    assert fields[:2] == [CALLER, callee] and fields[4] == str(row["hold_ms"])
    assert fields[5:9] == ["1", "0", "CUST", "GA"] and fields[16] == "1"


def test_basic_call_callee_hangs_up(vos, procs, tmp_path):
    """The vendor's BYE ends the call: reason 1, direction 1 (SPEC §7 field 7)."""
    callee = "9101001"
    uas = vendor(vos, procs, tmp_path, "GA", "uas_answer.xml", HOLD_MS=1000)
    uac = customer(procs, tmp_path, "uac", "uac_wait_bye.xml", WAIT_MS=10000)
    assert uac.call(vos, [(callee, CALLER)]).wait(30) == 0, uac.output()
    assert len(uas.logged("VENDOR_BYE")) == 1 and len(uac.logged("BYE")) == 1
    row = one_cdr(vos, callee)
    expect(row, reason=1, direction=1, billing_mode=1, sip_code=200)
    assert fee_of(row) == Decimal("0.06")


def test_call_kill_from_the_shell(vos, procs, tmp_path):
    """`call kill ID` (SPEC §3 last row): 13, direction 2, BYE to both legs, CDR written."""
    callee = "9107001"
    uas = vendor(vos, procs, tmp_path, "GA", "uas_answer.xml", HOLD_MS=30000)
    uac = customer(procs, tmp_path, "uac", "uac_wait_bye.xml", WAIT_MS=20000)
    uac.call(vos, [(callee, CALLER)])

    def talking():
        rows = vos.shell_json("call list")
        return [r for r in rows if r["callee"] == callee and r["state"] == "talking"]

    rows = wait_until(talking, 10, 0.3)
    assert rows, vos.shell_json("call list")
    vos.shell(f"call kill {rows[0]['id']}")
    assert uac.wait(20) == 0, uac.output()
    assert len(uac.logged("BYE")) == 1
    assert wait_until(lambda: uas.logged("BYE"), 5), uas.output()
    row = one_cdr(vos, callee)
    expect(row, reason=13, direction=2, billing_mode=1, sip_code=200)
    assert not [r for r in vos.shell_json("call list") if r["callee"] == callee]


def test_call_kill_while_ringing(vos, procs, tmp_path):
    """`call kill` before the answer: the caller gets 500 (SPEC §8 row 13), the vendor a
    CANCEL; 13, direction 2, not billed."""
    callee = "9107002"
    uas = vendor(vos, procs, tmp_path, "GA", "uas_ring.xml")
    uac = customer(procs, tmp_path, "uac", "uac_fail.xml", CODE=500)
    uac.call(vos, [(callee, CALLER)])

    def ringing():
        rows = vos.shell_json("call list")
        return [r for r in rows if r["callee"] == callee and r["state"] == "ringing"]

    rows = wait_until(ringing, 10, 0.3)
    assert rows, vos.shell_json("call list")
    vos.shell(f"call kill {rows[0]['id']}")
    assert uac.wait(20) == 0, uac.output()
    assert uac.final_statuses()[:1] == [500]
    assert wait_until(lambda: uas.logged("CANCEL"), 5), uas.output()
    expect(one_cdr(vos, callee), reason=13, direction=2, billing_mode=-1, sip_code=500)


# --------------------------------------------------------------------- set-up failures


def test_cancel_while_ringing(vos, procs, tmp_path):
    """The caller's CANCEL: 487 to the caller, 11, direction 0, vendor CANCELled (§3)."""
    callee = "9102001"
    uas = vendor(vos, procs, tmp_path, "GA", "uas_ring.xml")
    uac = customer(procs, tmp_path, "uac", "uac_cancel.xml")
    assert uac.call(vos, [(callee, CALLER)], "-d", "500").wait(30) == 0, uac.output()
    assert uac.final_statuses()[:1] == [487]
    assert wait_until(lambda: uas.logged("CANCEL"), 5), uas.output()
    row = one_cdr(vos, callee)
    expect(row, reason=11, direction=0, billing_mode=-1, sip_code=487)
    assert fee_of(row) == 0


@pytest.mark.parametrize(
    ("busy_stops", "prefix", "first", "second", "failover"),
    [
        pytest.param("1", "9103", "GB1", "GB2", False, id="SPEC4-busy-stops-by-default"),
        pytest.param("0", "9103", "GB1", "GB2", True, id="SPEC4-busy-fails-over-when-0"),
        pytest.param("0", "9104", "GS1", "GS2", False, id="SPEC4-stop_codes-486"),
    ],
)
def test_vendor_busy(vos, procs, tmp_path, busy_stops, prefix, first, second, failover):
    """486 from the first vendor (SPEC §4 step 5, table 2a: 2, failover "busy")."""
    callee = f"{prefix}{busy_stops}01"
    vos.shell(f"param set SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY {busy_stops}")
    try:
        busy = vendor(vos, procs, tmp_path, first, "uas_reject.xml", CODE=486)
        other = vendor(vos, procs, tmp_path, second, "uas_answer.xml", HOLD_MS=30000)
        if failover:
            uac = customer(procs, tmp_path, "uac", "uac_call.xml")
            assert uac.call(vos, [(callee, CALLER)], "-d", "500").wait(30) == 0, uac.output()
        else:
            uac = customer(procs, tmp_path, "uac", "uac_fail.xml", CODE=486)
            assert uac.call(vos, [(callee, CALLER)]).wait(30) == 0, uac.output()
            assert uac.final_statuses()[:1] == [486]
        row = one_cdr(vos, callee)
    finally:
        vos.shell("param reset SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY")
    assert len(busy.logged("INVITE")) == 1
    if failover:
        assert len(other.logged("INVITE")) == 1
        expect(row, reason=1, direction=0, billing_mode=1, sip_code=200)
        assert row["callee_gateway_id"] == second and row["attempts"] == 2
    else:
        assert other.logged("INVITE") == []
        expect(row, reason=2, direction=1, billing_mode=-1, sip_code=486)
        assert row["callee_gateway_id"] == first and row["attempts"] == 1


def test_503_fails_over_to_the_second_vendor(vos, procs, tmp_path):
    """503 (table 2a: 5, failover y) → the next gateway answers; one CDR naming it."""
    callee = "9105001"
    refuse = vendor(vos, procs, tmp_path, "GB1", "uas_reject.xml", CODE=503)
    answer = vendor(vos, procs, tmp_path, "GB2", "uas_answer.xml", HOLD_MS=30000)
    uac = customer(procs, tmp_path, "uac", "uac_call.xml")
    assert uac.call(vos, [(callee, CALLER)], "-d", "500").wait(30) == 0, uac.output()
    assert len(refuse.logged("INVITE")) == 1 and len(answer.logged("INVITE")) == 1
    row = one_cdr(vos, callee)
    expect(row, reason=1, direction=0, billing_mode=1, sip_code=200)
    assert row["callee_gateway_id"] == "GB2" and row["attempts"] == 2
    assert row["callee_ip"] == vos.vendors["GB2"].ip


def test_invite_timeout_fails_over(vos, procs, tmp_path):
    """A silent vendor: SS_SIP_TIMEOUT_INVITE (2 s) fails the attempt (21, 408), the
    next gateway answers (SPEC §4 timer table)."""
    callee = "9106001"
    gw = vos.vendors["GB1"]
    silent = Blackhole(gw.ip, gw.port)
    procs.append(silent)
    answer = vendor(vos, procs, tmp_path, "GB2", "uas_answer.xml", HOLD_MS=30000)
    uac = customer(procs, tmp_path, "uac", "uac_call.xml")
    assert uac.call(vos, [(callee, CALLER)], "-d", "500").wait(30) == 0, uac.output()
    assert any(b.startswith(b"INVITE ") for b in silent.drain())
    assert len(answer.logged("INVITE")) == 1
    row = one_cdr(vos, callee)
    expect(row, reason=1, direction=0, billing_mode=1, sip_code=200)
    assert row["callee_gateway_id"] == "GB2" and row["attempts"] == 2
    assert 1800 <= row["caller_pdd_ms"] <= 5000, row  # the 2 s wait, then GB2's 180


def test_unreachable_vendor_fails_over(vos, procs, tmp_path):
    """Nothing listens at the first vendor (ICMP port unreachable): the attempt fails
    (SPEC §3 step 10 "unreachable") and the next gateway answers, within the INVITE
    timer at the latest."""
    callee = "9106002"
    answer = vendor(vos, procs, tmp_path, "GB2", "uas_answer.xml", HOLD_MS=30000)
    uac = customer(procs, tmp_path, "uac", "uac_call.xml")
    assert uac.call(vos, [(callee, CALLER)], "-d", "500").wait(30) == 0, uac.output()
    assert len(answer.logged("INVITE")) == 1
    row = one_cdr(vos, callee)
    expect(row, reason=1, direction=0, billing_mode=1, sip_code=200)
    assert row["callee_gateway_id"] == "GB2" and row["attempts"] == 2
    assert row["caller_pdd_ms"] <= 3000, row


def test_every_vendor_fails(vos, procs, tmp_path):
    """503 then 502 (both failover y): the hunt ends with the last attempt's reason (5,
    direction 1) and the caller gets the last vendor's code (SPEC §4 failover step 6)."""
    callee = "9105002"
    first = vendor(vos, procs, tmp_path, "GB1", "uas_reject.xml", CODE=503)
    last = vendor(vos, procs, tmp_path, "GB2", "uas_reject.xml", CODE=502)
    uac = customer(procs, tmp_path, "uac", "uac_fail.xml", CODE=502)
    assert uac.call(vos, [(callee, CALLER)]).wait(30) == 0, uac.output()
    assert len(first.logged("INVITE")) == 1 and len(last.logged("INVITE")) == 1
    row = one_cdr(vos, callee)
    expect(row, reason=5, direction=1, billing_mode=-1, sip_code=502)
    assert row["callee_gateway_id"] == "GB2" and row["attempts"] == 2


@pytest.mark.parametrize(
    ("callee", "reason", "code"),
    [
        pytest.param("9200001", 6, 404, id="SPEC3-step9-no-prefix-matches-6-404"),
        pytest.param("9300001", 22, 503, id="SPEC3-step9-none-usable-22-503"),
    ],
)
def test_no_route(vos, procs, tmp_path, callee, reason, code):
    uac = customer(procs, tmp_path, "uac", "uac_fail.xml", CODE=code)
    assert uac.call(vos, [(callee, CALLER)]).wait(20) == 0, uac.output()
    assert uac.final_statuses()[:1] == [code]
    row = one_cdr(vos, callee)
    expect(row, reason=reason, direction=2, billing_mode=-1, sip_code=code)
    assert row["callee_gateway_id"] == "" and row["attempts"] == 0


@pytest.mark.parametrize(
    ("caller_ip", "callee", "reason"),
    [
        pytest.param(LIMITED, "9100201", 18, id="SPEC3-step4-mapping-lines-18-503"),
        pytest.param(CUSTOMER, "9108001", 22, id="SPEC4-routing-lines-none-usable-22-503"),
    ],
)
def test_line_limit(vos, procs, tmp_path, caller_ip, callee, reason):
    """lines=1 with one call up: the second call gets 503 (SPEC §3 step 4 for the
    mapping gateway, §4 usability for the routing gateway); the first is untouched."""
    name = "GL" if reason == 22 else "GA"
    uas = vendor(vos, procs, tmp_path, name, "uas_answer.xml", HOLD_MS=30000)
    first = customer(procs, tmp_path, "first", "uac_call.xml", ip=caller_ip)
    first.call(vos, [(callee, CALLER)], "-d", "4000")
    assert wait_until(lambda: uas.logged("INVITE"), 5), uas.output()
    second_callee = callee[:-1] + "2"
    second = customer(procs, tmp_path, "second", "uac_fail.xml", ip=caller_ip, CODE=503)
    assert second.call(vos, [(second_callee, CALLER)]).wait(20) == 0, second.output()
    assert first.wait(20) == 0, first.output()
    assert len(uas.logged("INVITE")) == 1
    expect(one_cdr(vos, second_callee), reason=reason, direction=2, billing_mode=-1,
           sip_code=503)  # fmt: skip
    expect(one_cdr(vos, callee), reason=1, direction=0, billing_mode=1, sip_code=200)


def test_unknown_source_ip_is_illegal(vos, procs, tmp_path):
    """INTERFACE §6 "Who is calling": 403, 17, billing mode -1, hold 0; a CDR because
    SERVER_BILLING_RECORD_ILLEGAL_CALL=1 by default (SPEC §7 policy rule 2)."""
    callee = "9100301"
    uac = customer(procs, tmp_path, "uac", "uac_fail.xml", ip=STRANGER, CODE=403)
    status = uac.call(vos, [(callee, "5550001")]).wait(20)
    got = uac.final_statuses()
    assert got[:1] == [403], (
        f"INTERFACE §6: an unknown source whose From is no phone gets 403, got {got}"
    )
    assert status == 0, uac.output()
    row = one_cdr(vos, callee)
    expect(row, reason=17, direction=2, billing_mode=-1, sip_code=403)
    assert row["hold_ms"] == 0 and row["caller_gateway_id"] == "" and fee_of(row) == 0
    assert row["caller_ip"] == STRANGER
