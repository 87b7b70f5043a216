"""The parameter registry: every SPEC.md §9 parameter, validation, persistence, audit."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tests.conftest import SHARED
from vos3k.params import PARAMS, Actor, Kind, Live, LiveParams, ParamError, UnknownParamError
from vos3k.store.db import open_store

ADMIN = Actor("admin", "127.0.0.1")


def spec_rows() -> list[tuple[str, ...]]:
    """SPEC.md §9's table rows: (name, type, default, range, unit, live)."""
    lines = (SHARED / "SPEC.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## 9. Server parameters"))
    rows = []
    for line in lines[start:]:
        if line.startswith("## 10"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0].startswith("**") or cells[0] in ("name", ""):
            continue
        if set(cells[0]) <= set("-"):
            continue
        rows.append(tuple(cells))
    return rows


SPEC_ROWS = spec_rows() if (SHARED / "SPEC.md").exists() else []


def _names(cell: str) -> tuple[str, list[str]]:
    match = re.match(r"(\S+)(?: vos3k)?(?: \(alias (\S+)\))?", cell)
    return match.group(1), [match.group(2)] if match.group(2) else []


@pytest.mark.skipif(not SPEC_ROWS, reason="../shared/SPEC.md not found")
def test_every_spec_parameter_is_registered():
    assert len(SPEC_ROWS) >= 100
    for cells in SPEC_ROWS:
        name, aliases = _names(cells[0])
        assert name in PARAMS, name
        for alias in aliases:
            assert PARAMS.get(alias) is PARAMS.get(name)


@pytest.mark.skipif(not SPEC_ROWS, reason="../shared/SPEC.md not found")
@pytest.mark.parametrize("cells", SPEC_ROWS, ids=lambda c: c[0].split()[0])
def test_spec_type_default_range_and_live(cells):
    name, typ, default, rng, _unit, live = cells[:6]
    name, _ = _names(name)
    param = PARAMS.get(name)
    if typ == "alias":  # SS_CDR_RECORD_NONCONNECT / SS_CDR_RECORD_ILLEGAL share a value
        assert param.name != name
        return
    assert param.kind is Kind(typ)
    assert param.live is Live(live)
    spec_default = re.sub(r" \(.*\)$", "", default)
    spec_default = "" if spec_default in ("empty",) else spec_default
    assert param.default == spec_default
    bounds = re.fullmatch(r"(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)", rng)
    if bounds and typ in ("int", "decimal"):
        low, high = (Decimal(b) for b in bounds.groups())
        assert (param.min, param.max) == (low, high)
        below = str(low - 1)
        with pytest.raises(ParamError, match="out of range"):
            param.parse(below)
        with pytest.raises(ParamError, match="out of range"):
            param.parse(str(high + 1))
        assert param.parse(str(low)) == low
        assert param.parse(str(high)) == high
    if typ == "enum":
        assert param.choices == tuple(c.strip() for c in rng.split(","))


@pytest.mark.parametrize("param", list(PARAMS), ids=lambda p: p.name)
def test_every_parameter_round_trips_through_the_store_and_audit(param, tmp_path):
    """set -> persisted -> reloaded after a restart -> audit row (issue 3, done when)."""
    path = tmp_path / "vos3k.db"
    store = open_store(path)
    live = LiveParams(store.params)
    text = _another_value(param)
    _, old, new = live.set(param.name, text, ADMIN)
    assert new != old
    assert live.snapshot[param.name] == new
    audit = store.audit.recent(1)[0]
    assert (audit.user, audit.source, audit.action, audit.object) == (
        "admin",
        "127.0.0.1",
        "param set",
        param.name,
    )
    assert (audit.old, audit.new) == (param.render(old), param.render(new))
    store.close()
    reopened = open_store(path)
    assert LiveParams(reopened.params).snapshot[param.name] == new
    reopened.close()


def _another_value(param) -> str:
    """A valid value different from the default."""
    samples = {
        Kind.BOOL: lambda p: "0" if p.default == "1" else "1",
        Kind.INT: lambda p: str(p.max if int(p.default) != p.max else p.min),
        Kind.DECIMAL: lambda p: str(p.max if Decimal(p.default) != p.max else p.min),
        Kind.ENUM: lambda p: next(c for c in p.choices if c != p.default),
    }
    if param.kind in samples:
        return samples[param.kind](param)
    special = {
        "SS_SIP_RESEND_INTERVAL": "400,800",
        "SERVER_CDR_REAL_TIME_REPORT_SERVER": "127.0.0.1:9000",
        "SS_LRN_SERVER_IP": "127.0.0.2",
        "SERVER_QUERY_CDR_DENY_TIME": "1,8-11",
        "SS_ACL_ALLOW": "10.0.0.0/8,192.0.2.1",
        "SS_ACL_DENY": "198.51.100.0/24",
        "SS_GEOFENCE_COUNTRIES": "us,GB",
        "SS_H323_GATEKEEPER_ID": "gk1",
    }
    if param.name in special:
        return special[param.name]
    return "100*,200" if param.kind is Kind.LIST else "something"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("SERVER_BILLING_FEE_PRECISTION", "7", "out of range 0..4"),
        ("SERVER_BILLING_FEE_PRECISTION", "two", "not an integer"),
        ("SERVER_BILLING_FEE_UNIT", "0.00001", "more than 4 decimals"),
        ("SERVER_BILLING_FEE_UNIT", "1.5", "out of range"),
        ("SS_CDR_RECORD_TO_FILE", "maybe", "not a boolean"),
        ("SS_MEDIAPROXYMODE", "sometimes", "not one of off, on, auto, must_on"),
        ("SS_SIP_RESEND_INTERVAL", "50,100", "outside 100..30000"),
        ("SS_SIP_RESEND_INTERVAL", "1,2,3,4,5,6,7,8,9,10,11", "1 to 10"),
        ("SERVER_CDR_REAL_TIME_REPORT_SERVER", "example.org:80", "not IP:PORT"),
        ("SERVER_QUERY_CDR_DENY_TIME", "25", "outside 0-23"),
        ("SS_ACL_DENY", "10.0.0.300/8", "not an IP address or CIDR"),
        ("SS_GEOFENCE_COUNTRIES", "USA", "ISO 3166"),
        ("SERVER_BILLING_FREE_E164S", "12*3", "not a number pattern"),
        ("SS_H323_GATEKEEPER_ID", "", "1 to 64 characters"),
    ],
)
def test_bad_values_are_refused_and_the_old_value_kept(name, text, message):
    store = open_store(None)
    live = LiveParams(store.params)
    before = live.snapshot[name]
    with pytest.raises(ParamError, match=re.escape(message)):
        live.set(name, text, ADMIN)
    assert live.snapshot[name] == before
    assert store.audit.recent() == []


def test_unknown_name():
    live = LiveParams(open_store(None).params)
    with pytest.raises(UnknownParamError):
        live.set("NO_SUCH_PARAM", "1", ADMIN)


def test_booleans_accept_on_off_yes_no():
    param = PARAMS.get("SS_CDR_RECORD_TO_FILE")
    assert [param.parse(t) for t in ("on", "OFF", "yes", "no", "1", "0")] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]


def test_alias_shares_the_value_and_names_the_canonical_parameter():
    store = open_store(None)
    live = LiveParams(store.params)
    param, _, _ = live.set("SS_CDR_RECORD_NONCONNECT", "0", ADMIN)
    assert param.name == "SERVER_BILLING_RECORD_ZERO_HOLD_TIME"
    assert live.snapshot["SERVER_BILLING_RECORD_ZERO_HOLD_TIME"] is False
    assert live.snapshot.billing_record_zero_hold_time is False
    assert store.audit.recent(1)[0].object == "SERVER_BILLING_RECORD_ZERO_HOLD_TIME"


def test_snapshot_taken_by_a_call_is_unaffected_by_a_later_change():
    live = LiveParams(open_store(None).params)
    call_snapshot = live.snapshot
    live.set("SS_SIP_TIMEOUT_INVITE", "30", ADMIN)
    assert call_snapshot.sip_timeout_invite_s == 10
    assert live.snapshot.sip_timeout_invite_s == 30
    with pytest.raises(AttributeError):
        call_snapshot.sip_timeout_invite_s = 5


def test_observers_see_each_change_and_reset_restores_the_default():
    store = open_store(None)
    live = LiveParams(store.params)
    seen = []
    unsubscribe = live.subscribe(lambda p, old, new: seen.append((p.name, old, new)))
    live.set("SS_CDR_BUFFER_SIZE", "50", ADMIN)
    live.reset("SS_CDR_BUFFER_SIZE", ADMIN)
    unsubscribe()
    live.set("SS_CDR_BUFFER_SIZE", "60", ADMIN)
    assert seen == [("SS_CDR_BUFFER_SIZE", 1000, 50), ("SS_CDR_BUFFER_SIZE", 50, 1000)]
    assert store.params.load() == {"SS_CDR_BUFFER_SIZE": "60"}
    actions = [a.action for a in store.audit.recent()]
    assert actions == ["param set", "param reset", "param set"]


def test_an_invalid_value_in_the_database_is_a_clear_error():
    store = open_store(None)
    store.db["params"].insert({"name": "SERVER_BILLING_FEE_PRECISTION", "value": "9"})
    with pytest.raises(ParamError, match=r"invalid value in the database.*out of range"):
        LiveParams(store.params)


def test_unknown_names_in_the_database_are_left_alone():
    store = open_store(None)
    store.db["params"].insert({"name": "SS_FROM_A_NEWER_VOS3K", "value": "x"})
    live = LiveParams(store.params)
    assert "SS_FROM_A_NEWER_VOS3K" not in live.snapshot
    assert store.params.load()["SS_FROM_A_NEWER_VOS3K"] == "x"


def test_money_parameter_is_decimal():
    value = PARAMS.get("SERVER_BILLING_FEE_UNIT").parse("0.05")
    assert value == Decimal("0.05") and isinstance(value, Decimal)
