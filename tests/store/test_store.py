"""The SQLite store: migrations, WAL, bad databases, repositories, audit, CDR batches."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from sqlite_utils import Database

from vos3k.params import Actor
from vos3k.store.db import StoreError, migrate, open_store
from vos3k.store.indexes import HotIndexes
from vos3k.store.models import (
    Account,
    AdminUser,
    BlacklistEntry,
    Gateway,
    MoneyError,
    Phone,
    Rate,
    Registration,
    Role,
    from_e4,
    parse_money,
    to_e4,
)
from vos3k.store.repos import ExistsError, NotFoundError
from vos3k.store.schema import LATEST, MIGRATIONS

OPS = Actor("ops", "192.0.2.7")


@pytest.fixture
def store():
    s = open_store(None, now_ms=lambda: 1_700_000_000_000)
    yield s
    s.close()


def tables(db: Database) -> set[str]:
    return set(db.table_names())


def test_new_database_gets_every_table_wal_and_full_sync(tmp_path):
    s = open_store(tmp_path / "vos3k.db")
    assert s.schema_version == LATEST
    assert {
        "accounts",
        "rates",
        "gateways",
        "phones",
        "admin_users",
        "params",
        "audit",
        "blacklist",
        "cdrs",
        "registrations",
        "cdr_outputs",
        "schema_version",
    } <= tables(s.db)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()


def test_migration_from_version_n_minus_1_keeps_data(tmp_path):
    path = tmp_path / "old.db"
    db = Database(path)
    assert migrate(db, upto=LATEST - 1) == LATEST - 1
    db["accounts"].insert(
        {"name": "ACME", "type": "prepaid", "balance_e4": 123400, "credit_e4": 0, "enabled": 1}
    )
    assert "registrations" not in tables(db)
    db.close()
    s = open_store(path)
    assert s.schema_version == LATEST
    assert "registrations" in tables(s.db)
    assert s.accounts.require("ACME").balance == Decimal("12.34")
    versions = [r[0] for r in s.db.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [m[0] for m in MIGRATIONS]
    s.close()


def test_opening_twice_applies_nothing_twice(tmp_path):
    open_store(tmp_path / "a.db").close()
    s = open_store(tmp_path / "a.db")
    assert s.db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    s.close()


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "new.db"
    s = open_store(path)
    s.db["schema_version"].insert({"version": LATEST + 1, "description": "future", "applied_ms": 0})
    s.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer than this vos3k understands"):
        open_store(path)
    assert path.read_bytes() == before


def test_corrupt_database_is_refused_and_not_overwritten(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not an sqlite database, just some text\n" * 100)
    with pytest.raises(StoreError, match=r"corrupt or not SQLite|not a database"):
        open_store(path)
    assert path.read_bytes().startswith(b"this is not an sqlite")


def test_missing_database_without_create(tmp_path):
    with pytest.raises(StoreError, match="vos3k init"):
        open_store(tmp_path / "none.db", create=False)


def test_money_is_exact_and_limited_to_four_decimals():
    assert to_e4(Decimal("999.94")) == 9999400
    assert from_e4(9999400) == Decimal("999.94")
    assert str(from_e4(10000000)) == "1000"
    assert str(from_e4(-3)) == "-0.0003"
    with pytest.raises(MoneyError):
        to_e4(Decimal("0.00001"))
    with pytest.raises(MoneyError):
        parse_money("1.23456")
    with pytest.raises(MoneyError):
        parse_money(0.1)
    with pytest.raises(MoneyError):
        parse_money("NaN")


def test_account_lifecycle_is_audited(store):
    store.accounts.add(Account("ACME", balance=Decimal("1000"), rate_table="T1"), OPS)
    with pytest.raises(ExistsError):
        store.accounts.add(Account("ACME"), OPS)
    store.accounts.topup("ACME", Decimal("0.5"), OPS, reason="payment 17")
    store.accounts.update("ACME", OPS, credit=Decimal("20"), type="postpaid")
    acme = store.accounts.require("ACME")
    assert (acme.balance, acme.credit, acme.type) == (Decimal("1000.5"), Decimal("20"), "postpaid")
    store.accounts.delete("ACME", OPS)
    with pytest.raises(NotFoundError):
        store.accounts.require("ACME")
    audit = list(reversed(store.audit.recent()))
    assert [a.action for a in audit] == [
        "account add",
        "account topup",
        "account set",
        "account del",
    ]
    assert all((a.user, a.source) == ("ops", "192.0.2.7") for a in audit)
    assert (audit[1].old, audit[1].new, audit[1].reason) == ("1000", "1000.5", "payment 17")
    assert "credit=0" in audit[2].old and "credit=20" in audit[2].new


def test_update_never_moves_the_balance(store):
    store.accounts.add(Account("A", balance=Decimal("5")), OPS)
    store.db.execute("UPDATE accounts SET balance_e4 = 70000 WHERE name = 'A'")  # a CDR commit
    store.accounts.update("A", OPS, enabled=False)
    assert store.accounts.require("A").balance == Decimal("7")


def test_gateways_round_trip_every_field(store):
    gw = Gateway(
        name="V1",
        kind="routing",
        ip="198.51.100.20",
        port=5080,
        prefixes=("44", "1"),
        priority=3,
        lines=30,
        stop_codes=(486, 404),
        until_connect="no",
        protect=True,
        media_proxy="must_on",
        account="VENDOR",
    )
    store.gateways.add(gw, OPS)
    assert store.gateways.require("V1") == gw
    changed = store.gateways.update("V1", OPS, lines=40)
    assert store.gateways.require("V1") == changed and changed.lines == 40
    assert [g.name for g in store.gateways.list("routing")] == ["V1"]
    assert store.gateways.list("mapping") == []


def test_rates_import_is_all_or_nothing(store):
    store.rates.put(Rate("T1", "1", Decimal("0.06")), OPS)
    good = [Rate("T1", "1", Decimal("0.07")), Rate("T1", "44", Decimal("0.1"), 1, 1, "UK")]
    assert store.rates.import_rates("T1", good, OPS, source="rates.csv") == (1, 1)
    assert store.rates.get("T1", "1").fee == Decimal("0.07")

    def broken():
        yield Rate("T1", "33", Decimal("0.2"))
        raise ValueError("line 2: bad fee")

    with pytest.raises(ValueError):
        store.rates.import_rates("T1", broken(), OPS)
    assert store.rates.get("T1", "33") is None
    assert [r.prefix for r in store.rates.list("T1")] == ["1", "44"]
    assert [r.prefix for r in store.rates.list("T1", prefix="4")] == ["44"]


def test_users_phones_blacklist_registrations(store):
    store.users.put(AdminUser("root", Role.SUPER, "scrypt$x", ("ssh-ed25519 AAAA k",)), OPS)
    assert store.users.get("root").keys == ("ssh-ed25519 AAAA k",)
    assert "scrypt" not in store.audit.recent(1)[0].new  # no password hash in the audit trail
    store.phones.add(Phone("1001", "secret", "ACME"), OPS)
    assert "secret" not in store.audit.recent(1)[0].new
    store.blacklist.add(BlacklistEntry("203.0.113.5", reason="scanner"), OPS)
    store.blacklist.add(BlacklistEntry("900*", dir="callee", kind="auth", expires_ms=5), OPS)
    assert [e.value for e in store.blacklist.list(now_ms=10)] == ["203.0.113.5"]
    assert store.blacklist.delete("900*", OPS) == 1
    store.registrations.replace(
        "1001", [Registration("1001", "sip:1001@192.0.2.9", "192.0.2.9", expires_ms=2000)]
    )
    assert [r.contact for r in store.registrations.load(now_ms=1000)] == ["sip:1001@192.0.2.9"]
    assert store.registrations.load(now_ms=3000) == []
    store.phones.delete("1001", OPS)
    assert store.registrations.load(now_ms=1000) == []


def cdr_row(uuid: str, fee_e4: int, account="ACME", cost_e4=0, clearing="") -> dict:
    return {
        "call_uuid": uuid,
        "caller_e164": "7100001",
        "callee_e164": "1000001",
        "start_ms": 1,
        "stop_ms": 5001,
        "hold_ms": 5000,
        "end_reason": 1,
        "end_direction": 0,
        "billing_mode": 1,
        "account": account,
        "fee_e4": fee_e4,
        "cost_e4": cost_e4,
        "clearing_account": clearing,
        "extra": {"attempts": 1},
    }


def test_cdr_batch_commits_rows_and_balances_together_exactly_once(store):
    store.accounts.add(Account("ACME", balance=Decimal("1000")), OPS)
    store.accounts.add(Account("VENDOR", balance=Decimal("50")), OPS)
    ids = store.cdrs.commit_batch(
        [cdr_row("a", 600, cost_e4=400, clearing="VENDOR"), cdr_row("b", 1200)]
    )
    assert ids == [1, 2]
    assert store.accounts.require("ACME").balance == Decimal("999.82")
    assert store.accounts.require("VENDOR").balance == Decimal("49.96")
    # A replayed journal: the known call is skipped with its charge, the new one lands.
    assert store.cdrs.commit_batch([cdr_row("b", 1200), cdr_row("c", 100)]) == [None, 3]
    assert store.accounts.require("ACME").balance == Decimal("999.81")
    assert [r["call_uuid"] for r in store.cdrs.query(newest_first=False)] == ["a", "b", "c"]


def test_cdr_batch_failure_rolls_back_everything(store):
    store.accounts.add(Account("ACME", balance=Decimal("10")), OPS)
    rows = [cdr_row("x", 600), cdr_row("y", 600) | {"end_reason": object()}]
    with pytest.raises(sqlite3.Error):
        store.cdrs.commit_batch(rows)
    assert store.cdrs.query() == []
    assert store.accounts.require("ACME").balance == Decimal("10")


def test_cdr_modify_adjusts_balance_and_audits(store):
    store.accounts.add(Account("ACME", balance=Decimal("10")), OPS)
    (cdr_id,) = store.cdrs.commit_batch([cdr_row("m", 600)])
    store.cdrs.modify_money(cdr_id, OPS, "goodwill", fee_e4=100)
    assert store.accounts.require("ACME").balance == Decimal("9.99")
    entry = store.audit.recent(1)[0]
    assert (entry.action, entry.object, entry.old, entry.new, entry.reason) == (
        "cdr modify",
        str(cdr_id),
        "fee_e4=600",
        "fee_e4=100",
        "goodwill",
    )


def test_hot_indexes_follow_admin_changes(store):
    indexes = HotIndexes(store)
    assert indexes.mapping.match("127.0.0.10", 5070) is None
    store.gateways.add(Gateway("CUST", "mapping", "127.0.0.10", account="ACME"), OPS)
    store.gateways.add(Gateway("NET", "mapping", "10.1.0.0/16", account="B"), OPS)
    store.gateways.add(Gateway("WIDE", "mapping", "10.0.0.0/8", account="B"), OPS)
    store.gateways.add(Gateway("PORT", "mapping", "127.0.0.10:5099", account="C"), OPS)
    store.rates.put(Rate("T1", "1", Decimal("0.06")), OPS)
    store.rates.put(Rate("T1", "1212", Decimal("0.5")), OPS)
    assert indexes.mapping.match("127.0.0.10", 5070).name == "CUST"
    assert indexes.mapping.match("127.0.0.10", 5099).name == "PORT"
    assert indexes.mapping.match("10.1.2.3", 5060).name == "NET"
    assert indexes.mapping.match("10.2.2.3", 5060).name == "WIDE"
    assert indexes.mapping.match("10.2.2.3", 5060, protocol="h323") is None
    assert indexes.rates.lookup("T1", "1212555").fee == Decimal("0.5")
    assert indexes.rates.lookup("T1", "1999").fee == Decimal("0.06")
    assert indexes.rates.lookup("T1", "44") is None
    store.gateways.delete("CUST", OPS)
    assert indexes.mapping.match("127.0.0.10", 5070) is None
