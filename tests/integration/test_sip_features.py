"""SIP features through a running vos3k: OPTIONS gateway health, session timers.

- SPEC §4 "usable": a vendor that never answers OPTIONS goes offline (two probes of
  SS_SIP_OPTIONS_CHECK_PERIOD unanswered), `gateway show` says so, and calls go to the
  next gateway without trying it.
- RFC 4028 / SPEC §9 SS_SIP_SESSION_TTL, SS_SIP_SESSION_UPDATE_SEGMENT: a customer that
  asks vos3k to refresh gets UPDATEs, a vendor that does gets re-INVITEs; a vendor that
  answers the refresh 481 has its call ended with reason 14, direction 2, BYE to both
  legs (SPEC §3 step 12, §8).
- RFC 3262 (SPEC §13 "100rel"): a vendor's reliable 183 is PRACKed by vos3k, and a
  customer that requires 100rel gets its 183 reliably and PRACKs it before the 200.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from tests.conftest import free_port
from tests.integration.harness import SETUP, Sipp, Vos3k, needs_sipp, render, wait_until
from vos3k.store.models import Account, Gateway, Rate

pytestmark = [pytest.mark.integration, needs_sipp]

NET = "127.0.12"  # this module's loopback addresses (other modules use other /24s)
CUSTOMER = f"{NET}.10"
CALLER = "7200001"
TTL_S, SEGMENT = 90, 10  # a refresh every 9 s (SPEC §9 minimum TTL, maximum segment)


def _vendor(name: str, last: int, prefixes: tuple[str, ...], **extra) -> Gateway:
    ip = f"{NET}.{last}"
    return Gateway(
        name, "routing", ip, port=free_port(socket.SOCK_DGRAM, host=ip), prefixes=prefixes,
        **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    server = Vos3k(tmp_path_factory.mktemp("features"))
    server.init()
    server.set_params(
        SS_SIP_SESSION_TTL=str(TTL_S),
        SS_SIP_SESSION_UPDATE_SEGMENT=str(SEGMENT),
        SS_SIP_NO_TIMER_REINVITE_INTERVAL="0",
        SS_SIP_OPTIONS_CHECK_PERIOD="5",  # SPEC §9 minimum
        SS_SIP_TIMEOUT="4",  # Timer F: an unanswered OPTIONS counts after 4 s
    )
    server.vendors = {
        # SPEC §4: the same prefix on two gateways, the first probed and silent to OPTIONS
        "GP1": _vendor("GP1", 20, ("9300",), priority=1, options_check=True),
        "GP2": _vendor("GP2", 21, ("9300",), priority=2),
        "GT": _vendor("GT", 22, ("9301",)),  # session timer refreshed by re-INVITE
        "GX": _vendor("GX", 23, ("9302",)),  # answers the refresh 481
        "GR": _vendor("GR", 24, ("9303",)),  # reliable early media (100rel)
    }
    with server.store() as store:
        store.rates.put(Rate("T1", "9", Decimal("0.06"), 60, 60, "it"), SETUP)
        store.accounts.add(Account("ACME", "prepaid", Decimal("1000"), rate_table="T1"), SETUP)
        store.gateways.add(Gateway("CUST", "mapping", CUSTOMER, account="ACME"), SETUP)
        for gateway in server.vendors.values():
            store.gateways.add(gateway, SETUP)
    server.start()
    yield server
    assert server.stop() == 0
    assert server.tracebacks() == []


@pytest.fixture
def procs():
    started: list[Sipp] = []
    yield started
    for proc in started:
        proc.stop()


def vendor(vos, procs, tmp_path, name: str, scenario: str, **values) -> Sipp:
    gw = vos.vendors[name]
    uas = Sipp(name, tmp_path, render(scenario, tmp_path, **values), gw.ip, gw.port)
    procs.append(uas)
    return uas.serve()


def customer(procs, tmp_path, scenario: str, **values) -> Sipp:
    uac = Sipp("uac", tmp_path, render(scenario, tmp_path, **values), CUSTOMER)
    procs.append(uac)
    return uac


def one_cdr(vos, callee: str) -> dict:
    rows = vos.wait_cdrs(callee)
    assert len(rows) == 1, rows
    return rows[0]


def test_silent_vendor_goes_offline_and_calls_fail_over(vos, procs, tmp_path):
    """SPEC §4: two unanswered OPTIONS → offline → skipped; the call goes to GP2."""
    silent = vendor(vos, procs, tmp_path, "GP1", "feature_uas_answer.xml")
    other = vendor(vos, procs, tmp_path, "GP2", "feature_uas_answer.xml")

    def state(name: str) -> str:
        return vos.shell_json(f"gateway show {name}")["state"]

    assert wait_until(lambda: state("GP1") == "offline", 30, 0.5), state("GP1")
    assert len(silent.logged("OPTIONS")) >= 2, silent.output()
    assert state("GP2") == "unchecked"  # options_check off: never probed
    listed = {g["name"]: g["state"] for g in vos.shell_json("gateway list")}
    assert (listed["GP1"], listed["CUST"]) == ("offline", "")
    callee = "9300001"
    uac = customer(procs, tmp_path, "feature_uac_call.xml")
    assert uac.call(vos, [(callee, CALLER)]).wait(30) == 0, uac.output()
    row = one_cdr(vos, callee)
    assert (row["end_reason"], row["callee_gateway_id"]) == (1, "GP2"), row
    assert silent.logged("INVITE") == []  # offline: not even tried
    assert len(other.logged("INVITE")) == 1
    assert other.logged("OPTIONS") == []  # options_check off: never probed


def test_session_refreshed_on_both_legs(vos, procs, tmp_path):
    """RFC 4028: the customer asked vos3k to refresh (UPDATE, it allows it), the vendor
    left refreshing to vos3k (re-INVITE, no UPDATE in its Allow); every TTL ÷ segment."""
    callee = "9301001"
    uas = vendor(vos, procs, tmp_path, "GT", "feature_uas_refresh.xml")
    uac = customer(procs, tmp_path, "feature_uac_refresh.xml", WAIT_MS=20000)
    assert uac.call(vos, [(callee, CALLER)]).wait(40) == 0, uac.output()
    assert len(uac.logged("REFRESH")) == 2
    assert wait_until(lambda: uas.logged("BYE"), 5), uas.output()
    assert len(uas.logged("REFRESH")) >= 1
    assert uas.logged("INVITE")[0].endswith(f" {TTL_S}")  # RFC 4028 §7.1: offered
    row = one_cdr(vos, callee)
    assert (row["end_reason"], row["end_direction"]) == (1, 0), row
    assert row["hold_ms"] >= 2 * TTL_S * 1000 // SEGMENT, row


def test_refresh_answered_481_ends_the_call_with_reason_14(vos, procs, tmp_path):
    """SPEC §8 reason 14: the vendor lost the dialog; BYE to both legs, direction 2."""
    callee = "9302001"
    uas = vendor(vos, procs, tmp_path, "GX", "feature_uas_refresh_481.xml", WAIT_MS=20000)
    uac = customer(procs, tmp_path, "feature_uac_wait_bye.xml", WAIT_MS=25000)
    assert uac.call(vos, [(callee, CALLER)]).wait(40) == 0, uac.output()
    assert len(uas.logged("REFRESH")) == 1
    (bye,) = uac.logged("BYE")
    assert bye.endswith("Q.850;cause=102"), bye  # SPEC §8: 14 is Q.850 102
    row = one_cdr(vos, callee)
    assert (row["end_reason"], row["end_direction"], row["sip_code"]) == (14, 2, 200), row
    assert wait_until(lambda: uas.logged("BYE"), 5), uas.output()


def test_reliable_early_media_is_pracked_on_both_legs(vos, procs, tmp_path):
    """RFC 3262 hop by hop: the vendor's reliable 183 gets vos3k's PRACK (RAck 1 1
    INVITE); the customer, which requires 100rel, gets a reliable 183 and its 200 only
    after its own PRACK (both SIPp scenarios fail on any other order)."""
    callee = "9303001"
    uas = vendor(vos, procs, tmp_path, "GR", "feature_uas_100rel.xml")
    uac = customer(procs, tmp_path, "feature_uac_100rel.xml")
    assert uac.call(vos, [(callee, CALLER)]).wait(30) == 0, uac.output()
    (reliable,) = uac.logged("RELIABLE")
    assert reliable.split()[1:] == [reliable.split()[1], "100rel"] and reliable.split()[1].isdigit()
    assert len(uac.logged("PRACKED")) == 1
    assert len(uac.logged("ANSWERED")) == 1
    assert wait_until(lambda: uas.logged("BYE"), 5), uas.output()
    (prack,) = uas.logged("PRACK")
    assert prack.endswith("1 1 INVITE"), prack
    row = one_cdr(vos, callee)
    assert (row["end_reason"], row["end_direction"], row["callee_gateway_id"]) == (1, 0, "GR")
