"""Each noun's commands against an in-memory store (INTERFACE.md §2, §6; SPEC.md §2, §7)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from vos3k.admin.passwords import verify_password
from vos3k.switch.calls import CallInfo

from .conftest import NOW_MS

ACCOUNT_KEYS = ["name", "type", "balance", "credit", "reserved", "rate_table", "enabled"]
PARAM_KEYS = ["name", "value", "default", "min", "max", "choices", "unit", "live", "description"]
CALL_KEYS = ["id", "caller", "callee", "caller_gateway", "callee_gateway", "state", "duration_ms"]
AUDIT_KEYS = ["time", "user", "source", "action", "object", "old", "new", "reason"]
CDR_KEYS = [
    "caller_e164", "callee_e164", "start_time", "stop_time", "hold_time", "end_reason",
    "end_direction", "caller_gateway_id", "callee_gateway_id", "caller_ip", "callee_ip",
    "caller_access_e164", "callee_access_e164", "caller_to_gateway_e164",
    "callee_to_gateway_e164", "callee_billing", "billing_mode", "caller_pdd", "callee_pdd",
    "id", "end_reason_name", "sip_code", "account", "fee", "cost", "billed_seconds",
]  # fmt: skip
P = "SERVER_BILLING_HOLD_TIME_PRECISION"


def ok(run, line, user="admin"):
    outcome = run(line, user=user)
    assert outcome.code == 0, (line, outcome)
    return outcome.out


def js(run, line, user="admin"):
    return json.loads(ok(run, line + " --json", user))


# ---------------------------------------------------------------- param


def test_param_list_json_has_section6_keys(run):
    rows = js(run, "param list")
    assert len(rows) >= 60
    assert all(list(r) == PARAM_KEYS for r in rows)


def test_param_show_json(run):
    shown = js(run, "param show SS_SIP_TIMEOUT_INVITE")
    assert list(shown) == PARAM_KEYS
    assert (shown["value"], shown["default"], shown["min"], shown["max"]) == ("10", "10", 1, 120)


def test_param_set_is_live_audited_and_reset(run, service):
    old_snapshot = service.params.snapshot
    ok(run, f"param set {P} 321")
    assert service.params.snapshot[P] == 321  # the next call sees it
    assert old_snapshot[P] == 50  # a call holding the old snapshot keeps it
    entry = js(run, "audit list limit=1")[0]
    assert list(entry) == AUDIT_KEYS
    assert (entry["user"], entry["source"], entry["object"]) == ("admin", "192.0.2.1", P)
    assert (entry["old"], entry["new"]) == ("50", "321")
    ok(run, f"param reset {P}")
    assert service.params.snapshot[P] == 50


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        pytest.param("SS_SIP_TIMEOUT_*", "SS_SIP_TIMEOUT_RINGING", id="glob"),
        pytest.param("fee_precis", "SERVER_BILLING_FEE_PRECISTION", id="substring-sic"),
    ],
)
def test_param_list_pattern(run, pattern, name):
    names = [r["name"] for r in js(run, f"param list {pattern}")]
    assert name in names
    assert "SS_H323_FASTSTART" not in names


# ---------------------------------------------------------------- account


def test_account_lifecycle(run, service):
    ok(run, "account add ACME type=prepaid balance=1000 credit=5 rate_table=T1", "operator")
    shown = js(run, "account show ACME", "viewer")
    assert list(shown) == ACCOUNT_KEYS
    assert shown == {
        "name": "ACME", "type": "prepaid", "balance": "1000", "credit": "5",
        "reserved": "0", "rate_table": "T1", "enabled": True,
    }  # fmt: skip
    ok(run, "account topup ACME -0.06", "operator")
    assert js(run, "account show ACME")["balance"] == "999.94"
    ok(run, "account set ACME type=postpaid enabled=no expiry=2026-02-01", "operator")
    account = service.store.accounts.get("ACME")
    assert (account.type, account.enabled) == ("postpaid", False)
    assert account.expiry_ms == 1769990400000  # the end of 2026-02-01 UTC (SPEC §2)
    ok(run, "account del ACME", "operator")
    assert run("account show ACME").code == 1


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param("account add A type=gold", 1, id="SPEC-2-type"),
        pytest.param("account add A credit=-1", 1, id="SPEC-2-credit-nonnegative"),
        pytest.param("account add A balance=1.12345", 1, id="SPEC-1-four-decimals"),
        pytest.param("account add A enabled=maybe", 1, id="bool"),
        pytest.param("account add A colour=red", 2, id="unknown-key"),
        pytest.param("account set A", 2, id="nothing-to-set"),
        pytest.param("account topup NOPE 1", 1, id="not-found"),
    ],
)
def test_account_bad_input(run, service, line, code):
    assert run(line).code == code
    assert service.store.accounts.get("A") is None


def test_account_reserved_comes_from_billing(run, service):
    class Reservations:
        def reserved(self, name):
            return Decimal("1.5") if name == "ACME" else Decimal(0)

    service.reservations = Reservations()
    ok(run, "account add ACME")
    assert js(run, "account show ACME")["reserved"] == "1.5"


def test_account_in_use_is_not_deleted(run):
    ok(run, "account add ACME")
    ok(run, "gateway add mapping CUST ip=127.0.0.10 account=ACME")
    outcome = run("account del ACME")
    assert (outcome.code, "gateway CUST" in outcome.err) == (1, True)


# ---------------------------------------------------------------- rate


def test_rate_add_list_del(run):
    ok(run, "rate add T1 1 fee=0.06 period=60 first_period=60 area=acceptance", "operator")
    ok(run, "rate add T1 44 fee=0.1 period=1 first_period=30")
    rows = js(run, "rate list T1 4")
    assert rows == [
        {"rate_table": "T1", "prefix": "44", "fee": "0.1", "period": 1, "first_period": 30,
         "area": ""},
    ]  # fmt: skip
    assert "0.06" in ok(run, "rate list T1 1")
    ok(run, "rate del T1 44")
    assert run("rate del T1 44").code == 1


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("rate add T1 12a fee=1", id="SPEC-2-prefix-digits"),
        pytest.param("rate add T1 1 fee=-1", id="negative-fee"),
        pytest.param("rate add T1 1 fee=0.00001", id="SPEC-1-four-decimals"),
        pytest.param("rate add T1 1 fee=1 period=0", id="SPEC-2-period-ge-1"),
    ],
)
def test_rate_bad_input(run, service, line):
    assert run(line).code == 1
    assert service.store.rates.list("T1") == []


def test_rate_list_limit_note(run):
    for prefix in range(10, 15):
        ok(run, f"rate add T {prefix} fee=1")
    outcome = run("rate list T limit=2")
    assert len(outcome.out.splitlines()) == 3
    assert "first 2 rates" in outcome.err
    assert len(js(run, "rate list T limit=0")) == 5


# ---------------------------------------------------------------- gateway


def test_gateway_mapping_and_routing(run, service):
    ok(run, "account add ACME")
    ok(run, "gateway add mapping CUST ip=127.0.0.10 account=ACME lines=2000", "operator")
    ok(
        run,
        "gateway add routing V ip=127.0.0.20 port=5080 prefix=100,44 priority=1 lines=100 "
        "stop_codes=486,404 until_connect=yes",
    )
    vendor = service.store.gateways.get("V")
    assert (vendor.port, vendor.prefixes, vendor.stop_codes) == (5080, ("100", "44"), (486, 404))
    assert vendor.until_connect == "yes"
    ok(run, "gateway set V lock=locked media_proxy=must_on callee_prefix_rewrite=00*:*")
    shown = js(run, "gateway show V")
    assert (shown["lock"], shown["media_proxy"], shown["prefixes"]) == (
        "locked",
        "must_on",
        ["100", "44"],
    )
    assert [g["name"] for g in js(run, "gateway list")] == ["CUST", "V"]
    ok(run, "gateway del V")
    assert service.store.gateways.get("V") is None


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param("gateway add mapping G ip=1.2.3.4", 2, id="mapping-needs-account"),
        pytest.param("gateway add routing G ip=1.2.3.4", 2, id="routing-needs-prefix"),
        pytest.param("gateway add trunk G ip=1.2.3.4", 2, id="kind"),
        pytest.param("gateway add mapping G ip=1.2.3 account=ACME", 1, id="SPEC-2-ip"),
        pytest.param("gateway add mapping G ip=1.2.3.4 account=NOPE", 1, id="account-exists"),
        pytest.param("gateway add routing G ip=1.2.3.4 prefix=1 port=70000", 1, id="port"),
        pytest.param("gateway add routing G ip=1.2.3.4 prefix=1 stop_codes=99", 1, id="codes"),
        pytest.param("gateway add routing G ip=1.2.3.4 prefix=1 lock=maybe", 1, id="lock"),
        pytest.param("gateway add routing G ip=1.2.3.4 prefix=1 lines=-1", 1, id="lines"),
        pytest.param(
            "gateway add mapping G ip=1.2.3.4 account=ACME caller_prefix_rewrite=::", 1,
            id="SPEC-1-rewrite",
        ),
        pytest.param("gateway add mapping G ip=1.2.3.4 account=ACME stop_codes=486", 2,
                     id="routing-key-on-mapping"),
    ],
)  # fmt: skip
def test_gateway_bad_input(run, service, line, code):
    ok(run, "account add ACME")
    assert run(line).code == code
    assert service.store.gateways.get("G") is None


def test_gateway_accepts_cidr_and_ip_port(run, service):
    ok(run, "account add ACME")
    ok(run, "gateway add mapping G ip=10.0.0.0/24,192.0.2.7:5062 account=ACME")
    assert service.store.gateways.get("G").ip == "10.0.0.0/24,192.0.2.7:5062"


# ---------------------------------------------------------------- phone


def test_phone_add_list_del(run):
    ok(run, "account add ACME")
    ok(run, "phone add 8613800138000 password=s3cret account=ACME", "operator")
    rows = js(run, "phone list")
    assert rows == [
        {"e164": "8613800138000", "account": "ACME", "enabled": True, "callee_pays": False}
    ]
    assert "s3cret" not in ok(run, "phone list")
    assert run("phone add 8613800138001 password=x account=NOPE").code == 1
    ok(run, "phone del 8613800138000")
    assert run("phone del 8613800138000").code == 1


# ---------------------------------------------------------------- call


def test_call_list_show_kill(run, service):
    killed = []
    info = CallInfo("c1", "7100001", "1000001", "CUST", "VBASIC", state="talking",
                    start_ms=NOW_MS - 9000, connect_ms=NOW_MS - 5000)  # fmt: skip
    service.calls.add(info, lambda: killed.append("c1"))
    rows = js(run, "call list", "viewer")
    assert rows == [
        {"id": "c1", "caller": "7100001", "callee": "1000001", "caller_gateway": "CUST",
         "callee_gateway": "VBASIC", "state": "talking", "duration_ms": 5000},
    ]  # fmt: skip
    assert js(run, "call show c1")["duration_ms"] == 5000
    assert run("call kill c1", "viewer").code == 1
    ok(run, "call kill c1", "operator")
    assert killed == ["c1"]
    assert run("call kill nope", "operator").code == 1


# ---------------------------------------------------------------- cdr and report


def _cdr(uuid, callee, stop_ms, hold_ms, fee_e4=600, gateway="VBASIC", pdd=1500, prefix="1"):
    return {
        "call_uuid": uuid, "caller_e164": "7100001", "callee_e164": callee,
        "start_ms": stop_ms - hold_ms - 3000, "stop_ms": stop_ms, "hold_ms": hold_ms,
        "end_reason": 1 if hold_ms else 2, "end_direction": 0, "caller_gateway_id": "CUST",
        "callee_gateway_id": gateway, "caller_ip": "127.0.0.10", "callee_ip": "127.0.0.20",
        "caller_access_e164": callee, "callee_access_e164": callee,
        "caller_to_gateway_e164": "7100001", "callee_to_gateway_e164": callee,
        "callee_billing": 0, "billing_mode": 1 if hold_ms else -1, "caller_pdd_ms": 3200,
        "callee_pdd_ms": pdd, "account": "ACME", "fee_e4": fee_e4 if hold_ms else 0,
        "cost_e4": 0, "sip_code": 200 if hold_ms else 486, "billed_seconds": 60 if hold_ms else 0,
        "rate_prefix": prefix,
    }  # fmt: skip


@pytest.fixture
def cdrs(run, service):
    ok(run, "account add ACME balance=10")
    service.store.cdrs.commit_batch(
        [
            _cdr("u1", "1000001", NOW_MS - 60_000, 5040),
            _cdr("u2", "1000002", NOW_MS - 30_000, 0, gateway="V2", pdd=500, prefix="2"),
            _cdr("u3", "1000003", NOW_MS - 3 * 86_400_000, 1000),
        ]
    )


def test_cdr_query_json(run, cdrs):
    rows = js(run, "cdr query", "viewer")
    assert [r["callee_e164"] for r in rows] == ["1000002", "1000001"]  # 24 h, newest first
    first = rows[1]
    assert sorted(first) == sorted(CDR_KEYS)
    assert first["start_time"] == "2026-01-01 11:58:51"
    assert first["stop_time"] == "2026-01-01 11:59:00"
    assert (first["hold_time"], first["end_reason"], first["end_reason_name"]) == (
        5040,
        1,
        "Normal Clearing",
    )
    assert (first["fee"], first["cost"], first["caller_pdd"]) == ("0.06", "0", 3200)
    assert js(run, "cdr query callee=1000001 limit=100")[0]["id"] == first["id"]
    assert js(run, "cdr query from='2025-12-28' to='2025-12-30'")[0]["callee_e164"] == "1000003"


@pytest.mark.parametrize(
    ("line", "code", "why"),
    [
        pytest.param("cdr query from=2025-01-01", 1, "more than 31 days", id="SPEC-7-max-days"),
        pytest.param("cdr query from=2026/01/01", 2, "YYYY-MM-DD", id="time-format"),
        pytest.param("cdr query limit=0", 1, "out of range", id="limit"),
    ],
)
def test_cdr_query_refusals(run, cdrs, line, code, why):
    outcome = run(line)
    assert (outcome.code, why in outcome.err) == (code, True)


def test_cdr_query_deny_hours(run, service, cdrs):
    ok(run, "param set SERVER_QUERY_CDR_DENY_TIME 12")  # NOW_MS is 12:00 UTC
    for line in ("cdr query", "report asr", "cdr export from=2026-01-01 to=2026-01-02 x.txt"):
        outcome = run(line)
        assert (outcome.code, "SERVER_QUERY_CDR_DENY_TIME" in outcome.err) == (1, True)


def test_cdr_export_pipe_and_csv(run, service, cdrs, tmp_path):
    ok(run, "cdr export from=2026-01-01 to=2026-01-01 out.txt", "operator")
    lines = (tmp_path / "out.txt").read_text().splitlines()
    assert len(lines) == 2
    assert all(len(line.split("|")) == 19 for line in lines)
    assert lines[0].startswith("7100001|1000001|2026-01-01 11:58:51|2026-01-01 11:59:00|5040|1|0|")
    ok(run, f"cdr export from=2026-01-01 to=2026-01-01 format=csv {tmp_path}/out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("caller_e164,callee_e164,")


def test_cdr_modify_adjusts_balance_and_audits(run, service, cdrs):
    cdr_id = js(run, "cdr query callee=1000001")[0]["id"]
    assert js(run, "account show ACME")["balance"] == "9.88"  # two answered CDRs
    assert run(f"cdr modify {cdr_id} fee=0.01").code == 2  # SPEC §7: no reason -> 2
    assert run(f"cdr modify {cdr_id} fee=0.01 reason=goodwill", "operator").code == 1
    ok(run, f"cdr modify {cdr_id} fee=0.01 reason=goodwill")
    assert js(run, "account show ACME")["balance"] == "9.93"
    entry = js(run, "audit list limit=1")[0]
    assert (entry["action"], entry["reason"]) == ("cdr modify", "goodwill")


@pytest.mark.parametrize(
    ("line", "rows"),
    [
        pytest.param(
            "report asr", [{"group": "all", "cdrs": 2, "answered": 1, "asr_percent": "50.00"}],
            id="SPEC-7-asr",
        ),
        pytest.param("report acd", [{"group": "all", "answered": 1, "acd_ms": 5040}],
                     id="SPEC-7-acd"),
        pytest.param("report pdd", [{"group": "all", "cdrs": 2, "pdd_ms": 1000}], id="SPEC-7-pdd"),
        pytest.param(
            "report asr by=gateway",
            [{"gateway": "V2", "cdrs": 1, "answered": 0, "asr_percent": "0.00"},
             {"gateway": "VBASIC", "cdrs": 1, "answered": 1, "asr_percent": "100.00"}],
            id="SPEC-7-by-gateway",
        ),
        pytest.param(
            "report pdd by=prefix",
            [{"prefix": "1", "cdrs": 1, "pdd_ms": 1500}, {"prefix": "2", "cdrs": 1, "pdd_ms": 500}],
            id="SPEC-7-by-prefix",
        ),
    ],
)  # fmt: skip
def test_reports(run, cdrs, line, rows):
    assert js(run, line, "viewer") == rows


def test_report_bad_group_is_usage_error(run):
    assert run("report asr by=colour").code == 2


# ---------------------------------------------------------------- blacklist, audit, user, stats


def test_blacklist(run, service):
    ok(run, "blacklist add 10.0.0.0/8 reason='bad net'", "operator")
    ok(run, "blacklist add 900* dir=callee")
    rows = js(run, "blacklist list")
    assert [(r["value"], r["dir"], r["kind"]) for r in rows] == [
        ("10.0.0.0/8", "both", "static"),
        ("900*", "callee", "static"),
    ]
    assert run("blacklist add 12,34").code == 1
    assert run("blacklist add 1 dir=up").code == 1
    ok(run, "blacklist del 900*")
    assert run("blacklist del 900*").code == 1
    assert [r["value"] for r in js(run, "blacklist list", "viewer")] == ["10.0.0.0/8"]


def test_audit_limit(run):
    for n in range(5):
        ok(run, f"param set {P} {n}")
    rows = js(run, "audit list limit=2", "viewer")
    assert [r["new"] for r in rows] == ["4", "3"]


def test_user_add_passwd_del(run, service):
    out = ok(run, "user add ops role=operator password=hunter22")
    assert "hunter22" not in out
    assert verify_password("hunter22", service.store.users.get("ops").password_hash)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFsbg4dFcr3lcRHZ5tZLmX6e0jnXpThtNgqqHRHhX6Mj a@b"
    ok(run, f"user add v role=viewer key='{key}'")
    assert service.store.users.get("v").keys == (key,)
    assert run("user add w role=viewer key='ssh-ed25519 nonsense'").code == 1
    assert run("user add w role=emperor").code == 1
    assert [u["name"] for u in js(run, "user list")] == [
        "admin", "operator", "ops", "super", "v", "viewer"]  # fmt: skip
    generated = ok(run, "user passwd ops")
    assert "new password" in generated
    ok(run, "user passwd viewer password=mine", "viewer")  # one's own password
    assert run("user passwd ops password=x", "viewer").code == 1
    assert run("user del admin").code == 1  # not oneself
    ok(run, "user del ops")
    assert service.store.users.get("ops") is None


def test_user_added_in_shell_can_log_in_next_command(run):
    ok(run, "user add fresh role=viewer password=pw")
    assert run("param list", user="fresh").code == 0
    ok(run, "user del fresh")
    assert run("param list", user="fresh").code == 1


def test_stats(run):
    stats = js(run, "stats", "viewer")
    for key in ("current_calls", "cps", "cdr_pending", "feed_pending", "rtp_ports_in_use",
                "uptime_s"):  # fmt: skip
        assert key in stats
