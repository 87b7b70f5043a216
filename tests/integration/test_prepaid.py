"""Prepaid enforcement through a running vos3k (issue 7 "Done when", SPEC §6).

SPEC §6 admits a call only when one reservation chunk R0 = fee × ADVANCE_TIME minutes
(ADVANCE_TIME ≥ 1) is available, so the shortest covered time of an admitted call is one
minute of talk: a balance for "~3 s of talk" alone is refused (example P1).  The cut-off
is therefore tested at T = 60 s + a 3 s extension (example P2: balance 0.63 at 0.60/min,
1/1 → cut at 63 s, reason 24, direction 2, fee 0.63), and, in the same minute, 50
concurrent calls on one prepaid account holding exactly 10 × R0.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from tests.conftest import free_port
from tests.integration.harness import (
    SETUP,
    Sipp,
    Vos3k,
    fee_of,
    needs_sipp,
    render,
    wait_until,
)
from vos3k.store.models import Account, Gateway, Rate

pytestmark = [pytest.mark.integration, needs_sipp]

NET = "127.0.7"
FEE = Decimal("0.60")  # per minute, billed 1/1: 0.01 per second


@pytest.fixture(scope="module")
def vos(tmp_path_factory):
    server = Vos3k(tmp_path_factory.mktemp("prepaid"))
    server.init()
    server.set_params(
        SS_NOMEDIAHANGUPTIME="0",  # SIPp sends no RTP: no media timeout racing the cut
        SERVER_BILLING_PREVENT_OVERDRAFT_ADVANCE_TIME="1",
    )
    port = free_port(socket.SOCK_DGRAM, host=f"{NET}.20")
    server.vendor = Gateway("V", "routing", f"{NET}.20", port=port, prefixes=("8",))
    with server.store() as store:
        store.rates.put(Rate("T2", "8", FEE, 1, 1, "prepaid"), SETUP)
        for name, balance in (("CUT", "0.63"), ("POOL", "6.00")):
            store.accounts.add(Account(name, "prepaid", Decimal(balance), rate_table="T2"), SETUP)
        store.gateways.add(Gateway("CCUT", "mapping", f"{NET}.10", account="CUT"), SETUP)
        store.gateways.add(Gateway("CPOOL", "mapping", f"{NET}.11", account="POOL"), SETUP)
        store.gateways.add(server.vendor, SETUP)
    server.start()
    yield server
    server.stop()
    assert not server.tracebacks(), server.tracebacks()


def test_cut_at_covered_time_and_50_calls_never_overdraw(vos, tmp_path):
    procs: list[Sipp] = []
    try:
        scenario = render("uas_answer.xml", tmp_path, HOLD_MS=120000)
        uas = Sipp("vendor", tmp_path, scenario, vos.vendor.ip, vos.vendor.port)
        procs.append(uas)
        uas.serve()
        scenario = render("uac_prepaid.xml", tmp_path, WAIT_MS=90000)
        single = Sipp("single", tmp_path, scenario, f"{NET}.10")
        crowd = Sipp("crowd", tmp_path, scenario, f"{NET}.11")
        procs += [single, crowd]
        single.call(vos, [("8000001", "6000001")])
        calls = [(f"80001{n:02d}", "6000002") for n in range(50)]
        crowd.call(vos, calls, "-r", "50", "-l", "50")
        assert single.wait(100) == 0, single.output()
        assert crowd.wait(100) == 0, crowd.output()
    finally:
        for proc in procs:
            proc.stop()

    # P2: reserved 0.60 (T 60), +0.03 at talk 30 (T 63), cut at 63 s
    cut = vos.wait_cdrs("8000001")
    assert len(cut) == 1 and len(single.logged("BYE")) == 1, cut
    row = cut[0]
    assert (row["end_reason"], row["end_direction"], row["billing_mode"]) == (24, 2, 1), row
    assert 62000 <= row["hold_ms"] <= 65000 and row["billed_seconds"] == 63, row
    assert fee_of(row) == Decimal("0.63")
    assert vos.balance("CUT") == Decimal("0")

    # 50 at once on 6.00: ten reserve 0.60 each, forty refused (8, 403, direction 2)
    def all_cdrs():
        rows = vos.cdrs(account="POOL")
        return len(rows) >= 50 and rows

    rows = wait_until(all_cdrs, 10) or vos.cdrs(account="POOL")
    assert len(rows) == 50 and len({r["callee_e164"] for r in rows}) == 50
    answered = [r for r in rows if r["hold_ms"] > 0]
    refused = [r for r in rows if r["hold_ms"] == 0]
    assert len(answered) == 10 == len(crowd.logged("BYE")), rows
    assert len(refused) == 40 == len(crowd.logged("REFUSED"))
    for r in refused:
        assert (r["end_reason"], r["end_direction"], r["sip_code"], r["billing_mode"]) == (
            8, 2, 403, -1), r  # fmt: skip
    for r in answered:
        assert (r["end_reason"], r["end_direction"]) == (24, 2), r
        assert 59000 <= r["hold_ms"] <= 62000 and fee_of(r) == Decimal("0.60"), r
    fees = sum((fee_of(r) for r in rows), Decimal(0))
    assert vos.balance("POOL") == Decimal("6.00") - fees >= 0
    assert Decimal(vos.shell_json("account show POOL")["reserved"]) == 0
