"""Typed repositories over the SQLite tables; every admin change writes its audit row.

Each mutating method takes an `Actor` and commits the change and its audit row in one
transaction, then tells the store's listeners which table changed.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from vos3k.store.models import (
    Account,
    AdminUser,
    AuditEntry,
    BlacklistEntry,
    Gateway,
    Phone,
    Rate,
    Registration,
    Role,
    from_e4,
    to_e4,
)

if TYPE_CHECKING:
    from vos3k.params import Actor
    from vos3k.store.db import Store


class NotFoundError(LookupError):
    """The named entity does not exist."""


class ExistsError(ValueError):
    """An entity with that name already exists."""


def _describe(value: Any) -> str:
    """An entity as the one-line text the audit trail keeps."""
    if value is None:
        return ""
    if attrs.has(type(value)):
        fields = attrs.asdict(value, recurse=False)
        fields.pop("password_hash", None)
        if "password" in fields:
            fields["password"] = "***"
        return " ".join(f"{k}={_text(v)}" for k, v in fields.items())
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


class _Repo:
    table = ""

    def __init__(self, store: Store):
        self._store = store

    @property
    def _db(self):
        return self._store.db

    def _audit(self, actor: Actor, action: str, obj: str, old: Any, new: Any, reason=""):
        self._db["audit"].insert(
            {
                "time_ms": self._store.now_ms(),
                "user": actor.user,
                "source": actor.source,
                "action": action,
                "object": obj,
                "old": _describe(old),
                "new": _describe(new),
                "reason": reason,
            }
        )

    def _row(self, key: Any) -> dict | None:
        try:
            return self._db[self.table].get(key)
        except Exception as exc:  # sqlite_utils.db.NotFoundError
            if type(exc).__name__ == "NotFoundError":
                return None
            raise


class _EntityRepo(_Repo, abc.ABC):
    """An entity table keyed by one column: get/require/list/add/update/delete, audited.

    Subclasses give `table`, `key` (the column), `noun` (for messages and audit
    actions), `_value(row)` and `_row_of(value)`; `update` never writes `frozen`
    columns (an account's balance moves only by top-up and CDR commits).
    """

    key = "name"
    noun = ""
    frozen: tuple[str, ...] = ()

    @staticmethod
    @abc.abstractmethod
    def _value(row: Mapping) -> Any:
        """A table row as the entity's attrs value."""

    @staticmethod
    @abc.abstractmethod
    def _row_of(value: Any) -> dict:
        """The entity's attrs value as a table row."""

    def get(self, key: str) -> Any:
        row = self._row(key)
        return None if row is None else self._value(row)

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise NotFoundError(f"no such {self.noun}: {key}")
        return value

    def _rows(self, where: str | None = None, args: list | None = None) -> list[Any]:
        rows = self._db[self.table].rows_where(where, args, order_by=self.key)
        return [self._value(r) for r in rows]

    def add(self, value: Any, actor: Actor) -> None:
        key = getattr(value, self.key)
        with self._store.atomic():
            if self.get(key) is not None:
                raise ExistsError(f"{self.noun} {key} already exists")
            self._db[self.table].insert(self._row_of(value) | {"created_ms": self._store.now_ms()})
            self._audit(actor, f"{self.noun} add", key, None, value)
        self._store.changed(self.table)

    def update(self, key: str, actor: Actor, reason: str = "", **changes: Any) -> Any:
        with self._store.atomic():
            old = self.require(key)
            new = attrs.evolve(old, **changes)
            row = self._row_of(new)
            for column in (self.key, *self.frozen):
                row.pop(column, None)
            self._db[self.table].update(key, row)
            self._audit(actor, f"{self.noun} set", key, old, new, reason)
        self._store.changed(self.table)
        return new

    def delete(self, key: str, actor: Actor) -> None:
        with self._store.atomic():
            old = self.require(key)
            self._db.execute(f"DELETE FROM {self.table} WHERE {self.key} = ?", [key])
            self._deleted(key)
            self._audit(actor, f"{self.noun} del", key, old, None)
        self._store.changed(self.table)

    def _deleted(self, key: str) -> None:
        """Rows that depend on the deleted entity (inside its transaction)."""


class ParamRepo(_Repo):
    """Stored parameter values (only those that differ from the defaults)."""

    table = "params"

    def load(self) -> dict[str, str]:
        return {row["name"]: row["value"] for row in self._db["params"].rows}

    def save(self, name: str, text: str | None, old: str, new: str, actor: Actor) -> None:
        with self._store.atomic():
            if text is None:
                self._db.execute("DELETE FROM params WHERE name = ?", [name])
                action = "param reset"
            else:
                self._db["params"].upsert(
                    {"name": name, "value": text, "changed_ms": self._store.now_ms()}, pk="name"
                )
                action = "param set"
            self._audit(actor, action, name, old, new)


class AuditRepo(_Repo):
    table = "audit"

    def record(self, actor: Actor, action: str, obj: str, old: Any, new: Any, reason=""):
        with self._store.atomic():
            self._audit(actor, action, obj, old, new, reason)

    def recent(self, limit: int = 100) -> list[AuditEntry]:
        rows = self._db.execute(
            "SELECT id, time_ms, user, source, action, object, old, new, reason "
            "FROM audit ORDER BY id DESC LIMIT ?",
            [limit],
        ).fetchall()
        return [AuditEntry(*row) for row in rows]


class UserRepo(_Repo):
    table = "admin_users"

    @staticmethod
    def _value(row: Mapping) -> AdminUser:
        keys = tuple(k for k in (row["keys"] or "").split("\n") if k)
        return AdminUser(row["name"], Role.parse(row["role"]), row["password_hash"] or "", keys)

    def get(self, name: str) -> AdminUser | None:
        row = self._row(name)
        return None if row is None else self._value(row)

    def list(self) -> list[AdminUser]:
        return [self._value(r) for r in self._db["admin_users"].rows_where(order_by="name")]

    def put(self, user: AdminUser, actor: Actor, create_only: bool = False) -> None:
        """Create or replace a user (replacing keeps the audit trail's old value)."""
        with self._store.atomic():
            old = self.get(user.name)
            if old is not None and create_only:
                raise ExistsError(f"user {user.name} already exists")
            self._db["admin_users"].upsert(
                {
                    "name": user.name,
                    "role": str(user.role),
                    "password_hash": user.password_hash,
                    "keys": "\n".join(user.keys),
                    "created_ms": self._store.now_ms(),
                },
                pk="name",
            )
            self._audit(actor, "user add" if old is None else "user set", user.name, old, user)
        self._store.changed(self.table)

    def delete(self, name: str, actor: Actor) -> None:
        with self._store.atomic():
            old = self.get(name)
            if old is None:
                raise NotFoundError(f"no such user: {name}")
            self._db.execute("DELETE FROM admin_users WHERE name = ?", [name])
            self._audit(actor, "user del", name, old, None)
        self._store.changed(self.table)


class AccountRepo(_EntityRepo):
    table = "accounts"
    noun = "account"
    frozen = ("balance_e4",)  # the balance moves only by top-up and CDR commits

    @staticmethod
    def _value(row: Mapping) -> Account:
        return Account(
            name=row["name"],
            type=row["type"],
            balance=from_e4(row["balance_e4"]),
            credit=from_e4(row["credit_e4"]),
            rate_table=row["rate_table"] or "",
            enabled=bool(row["enabled"]),
            expiry_ms=row["expiry_ms"],
        )

    @staticmethod
    def _row_of(account: Account) -> dict:
        return {
            "name": account.name,
            "type": account.type,
            "balance_e4": to_e4(account.balance),
            "credit_e4": to_e4(account.credit),
            "rate_table": account.rate_table,
            "enabled": int(account.enabled),
            "expiry_ms": account.expiry_ms,
        }

    def topup(self, name: str, amount: Decimal, actor: Actor, reason: str = "") -> Account:
        with self._store.atomic():
            old = self.require(name)
            self._db.execute(
                "UPDATE accounts SET balance_e4 = balance_e4 + ? WHERE name = ?",
                [to_e4(amount), name],
            )
            new = self.require(name)
            self._audit(actor, "account topup", name, old.balance, new.balance, reason)
        self._store.changed(self.table)
        return new

    def list(self) -> list[Account]:
        return self._rows()


class RateRepo(_Repo):
    table = "rates"

    @staticmethod
    def _value(row: Mapping) -> Rate:
        return Rate(
            rate_table=row["rate_table"],
            prefix=row["prefix"],
            fee=from_e4(row["fee_e4"]),
            first_period_s=row["first_period_s"],
            period_s=row["period_s"],
            area=row["area"] or "",
        )

    @staticmethod
    def _row_of(rate: Rate) -> dict:
        return {
            "rate_table": rate.rate_table,
            "prefix": rate.prefix,
            "fee_e4": to_e4(rate.fee),
            "first_period_s": rate.first_period_s,
            "period_s": rate.period_s,
            "area": rate.area,
        }

    def get(self, table: str, prefix: str) -> Rate | None:
        row = self._row((table, prefix))
        return None if row is None else self._value(row)

    def tables(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT rate_table FROM rates ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def list(self, table: str | None = None, prefix: str = "", limit: int | None = None):
        where, args = [], []
        if table is not None:
            where.append("rate_table = ?")
            args.append(table)
        if prefix:
            where.append("prefix LIKE ? ESCAPE '\\'")
            args.append(prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        sql = "SELECT * FROM rates"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rate_table, prefix"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cursor = self._db.execute(sql, args)
        names = [d[0] for d in cursor.description]
        return [self._value(dict(zip(names, row, strict=True))) for row in cursor]

    def iter_all(self) -> Iterator[Rate]:
        cursor = self._db.execute("SELECT * FROM rates")
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield self._value(dict(zip(names, row, strict=True)))

    def put(self, rate: Rate, actor: Actor) -> None:
        with self._store.atomic():
            old = self.get(rate.rate_table, rate.prefix)
            self._db["rates"].upsert(self._row_of(rate), pk=("rate_table", "prefix"))
            self._audit(
                actor,
                "rate add" if old is None else "rate set",
                f"{rate.rate_table}/{rate.prefix}",
                old,
                rate,
            )
        self._store.changed(self.table)

    def delete(self, table: str, prefix: str, actor: Actor) -> None:
        with self._store.atomic():
            old = self.get(table, prefix)
            if old is None:
                raise NotFoundError(f"no rate {prefix} in table {table}")
            self._db.execute(
                "DELETE FROM rates WHERE rate_table = ? AND prefix = ?", [table, prefix]
            )
            self._audit(actor, "rate del", f"{table}/{prefix}", old, None)
        self._store.changed(self.table)

    def import_rates(self, table: str, rates: Iterable[Rate], actor: Actor, source: str = ""):
        """All-or-nothing bulk upsert; returns (added, updated).  One audit row for the file."""
        added = updated = 0
        with self._store.atomic():
            before = self._db.execute(
                "SELECT COUNT(*) FROM rates WHERE rate_table = ?", [table]
            ).fetchone()[0]
            total = 0
            batch: list[tuple] = []
            sql = (
                "INSERT INTO rates (rate_table, prefix, fee_e4, first_period_s, period_s, area) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(rate_table, prefix) DO UPDATE SET "
                "fee_e4 = excluded.fee_e4, first_period_s = excluded.first_period_s, "
                "period_s = excluded.period_s, area = excluded.area"
            )
            for rate in rates:
                batch.append(
                    (
                        table,
                        rate.prefix,
                        to_e4(rate.fee),
                        rate.first_period_s,
                        rate.period_s,
                        rate.area,
                    )
                )
                total += 1
                if len(batch) >= 10000:
                    self._db.conn.executemany(sql, batch)
                    batch.clear()
            if batch:
                self._db.conn.executemany(sql, batch)
            after = self._db.execute(
                "SELECT COUNT(*) FROM rates WHERE rate_table = ?", [table]
            ).fetchone()[0]
            added = after - before
            updated = total - added
            self._audit(
                actor,
                "rate import",
                table,
                f"{before} rates",
                f"{after} rates (+{added}, {updated} updated)",
                source,
            )
        self._store.changed(self.table)
        return added, updated


_GATEWAY_LISTS = {"prefixes", "stop_codes"}
_GATEWAY_BOOLS = {"protect", "check_rate", "options_check", "dyn_blacklist", "enabled"}


class GatewayRepo(_EntityRepo):
    table = "gateways"
    noun = "gateway"

    @staticmethod
    def _value(row: Mapping) -> Gateway:
        values: dict[str, Any] = {}
        for f in attrs.fields(Gateway):
            raw = row.get(f.name)
            if raw is None:
                continue
            if f.name == "prefixes":
                raw = tuple(p for p in raw.split(",") if p)
            elif f.name == "stop_codes":
                raw = tuple(int(c) for c in raw.split(",") if c)
            elif f.name in _GATEWAY_BOOLS:
                raw = bool(raw)
            values[f.name] = raw
        return Gateway(**values)

    @staticmethod
    def _row_of(gateway: Gateway) -> dict:
        row = attrs.asdict(gateway, recurse=False)
        for name in _GATEWAY_LISTS:
            row[name] = ",".join(str(v) for v in row[name])
        for name in _GATEWAY_BOOLS:
            row[name] = int(row[name])
        return row

    def list(self, kind: str | None = None) -> list[Gateway]:
        return self._rows("kind = ?", [kind]) if kind else self._rows()


class PhoneRepo(_EntityRepo):
    table = "phones"
    key = "e164"
    noun = "phone"

    @staticmethod
    def _value(row: Mapping) -> Phone:
        return Phone(
            row["e164"],
            row["password"],
            row["account"],
            bool(row["enabled"]),
            bool(row["callee_pays"]),
        )

    @staticmethod
    def _row_of(phone: Phone) -> dict:
        return {
            "e164": phone.e164,
            "password": phone.password,
            "account": phone.account,
            "enabled": int(phone.enabled),
            "callee_pays": int(phone.callee_pays),
        }

    def list(self) -> list[Phone]:
        return self._rows()

    def _deleted(self, key: str) -> None:
        self._db.execute("DELETE FROM registrations WHERE e164 = ?", [key])


class BlacklistRepo(_Repo):
    table = "blacklist"

    def list(self, now_ms: int | None = None) -> list[BlacklistEntry]:
        rows = self._db["blacklist"].rows_where(order_by="id")
        entries = [
            BlacklistEntry(
                r["value"], r["dir"], r["kind"], r["reason"] or "", r["expires_ms"], r["id"]
            )
            for r in rows
        ]
        if now_ms is None:
            return entries
        return [e for e in entries if e.expires_ms is None or e.expires_ms > now_ms]

    def add(self, entry: BlacklistEntry, actor: Actor) -> None:
        with self._store.atomic():
            self._db.execute(
                "INSERT INTO blacklist (value, dir, kind, reason, expires_ms, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(value, dir, kind) DO UPDATE SET "
                "reason = excluded.reason, expires_ms = excluded.expires_ms",
                [
                    entry.value,
                    entry.dir,
                    entry.kind,
                    entry.reason,
                    entry.expires_ms,
                    self._store.now_ms(),
                ],
            )
            self._audit(actor, "blacklist add", entry.value, None, entry)
        self._store.changed(self.table)

    def delete(self, value: str, actor: Actor, kind: str | None = None) -> int:
        with self._store.atomic():
            sql, args = "DELETE FROM blacklist WHERE value = ?", [value]
            if kind:
                sql += " AND kind = ?"
                args.append(kind)
            count = self._db.execute(sql, args).rowcount
            if count == 0:
                raise NotFoundError(f"{value} is not blacklisted")
            self._audit(actor, "blacklist del", value, f"{count} entries", None)
        self._store.changed(self.table)
        return count


class RegistrationRepo(_Repo):
    """Phone bindings, written as they change so they survive a restart."""

    table = "registrations"

    def replace(self, e164: str, bindings: Iterable[Registration]) -> None:
        with self._store.atomic():
            self._db.execute("DELETE FROM registrations WHERE e164 = ?", [e164])
            for b in bindings:
                self._db["registrations"].insert(
                    attrs.asdict(b) | {"updated_ms": self._store.now_ms()}
                )

    def load(self, now_ms: int) -> list[Registration]:
        rows = self._db.execute(
            "SELECT e164, contact, source, expires_ms, call_id, cseq FROM registrations "
            "WHERE expires_ms > ? ORDER BY e164, expires_ms",
            [now_ms],
        ).fetchall()
        return [Registration(*row) for row in rows]


# The CDR columns in pipe order (INTERFACE.md §6), then what SQLite adds.
CDR_COLUMNS = (
    "caller_e164",
    "callee_e164",
    "start_ms",
    "stop_ms",
    "hold_ms",
    "end_reason",
    "end_direction",
    "caller_gateway_id",
    "callee_gateway_id",
    "caller_ip",
    "callee_ip",
    "caller_access_e164",
    "callee_access_e164",
    "caller_to_gateway_e164",
    "callee_to_gateway_e164",
    "callee_billing",
    "billing_mode",
    "caller_pdd_ms",
    "callee_pdd_ms",
    "call_uuid",
    "account",
    "fee_e4",
    "cost_e4",
    "clearing_account",
    "sip_code",
    "billed_seconds",
    "rate_prefix",
    "area",
    "attempts",
    "extra",
)


class CdrRepo(_Repo):
    """CDR rows and the balance changes they cause, committed together."""

    table = "cdrs"

    def commit_batch(self, rows: list[Mapping[str, Any]]) -> list[int | None]:
        """Insert CDR rows and debit `fee_e4` from `account` and `cost_e4` from
        `clearing_account`, all in ONE transaction (DESIGN.md data rules).

        A row whose `call_uuid` is already stored is skipped with its charge, so replaying
        a journal after a crash charges nothing twice.  Returns each row's id (None when
        skipped).
        """
        # Batched for throughput (issue 7: >= 20,000 CDR/s with balances): one lookup of
        # the batch's call_uuids, one executemany of the new rows, one debit per account.
        insert = (
            f"INSERT INTO cdrs ({', '.join(CDR_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in CDR_COLUMNS)})"
        )
        debit = "UPDATE accounts SET balance_e4 = balance_e4 - ? WHERE name = ?"
        conn = self._db.conn
        with self._store.atomic():
            stored = self._stored_uuids([r.get("call_uuid") for r in rows])
            fresh: list[int] = []  # indexes of the rows to insert, in order
            values: list[list[Any]] = []
            debits: dict[str, int] = {}
            for index, row in enumerate(rows):
                uuid = row.get("call_uuid")
                if uuid is not None:
                    if uuid in stored:
                        continue
                    stored.add(uuid)  # the same call twice in one batch: the first wins
                fresh.append(index)
                row_values = [row.get(c) for c in CDR_COLUMNS]
                if isinstance(row_values[-1], dict):
                    row_values[-1] = json.dumps(row_values[-1], sort_keys=True)
                values.append(row_values)
                for money, name in (("fee_e4", "account"), ("cost_e4", "clearing_account")):
                    if row.get(money) and row.get(name):
                        debits[row[name]] = debits.get(row[name], 0) + row[money]
            ids: list[int | None] = [None] * len(rows)
            if values:
                before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM cdrs").fetchone()[0]
                conn.executemany(insert, values)
                new_ids = [
                    r[0]
                    for r in conn.execute("SELECT id FROM cdrs WHERE id > ? ORDER BY id", [before])
                ]
                for index, cdr_id in zip(fresh, new_ids, strict=True):
                    ids[index] = cdr_id
            if debits:
                conn.executemany(debit, [(amount, name) for name, amount in debits.items()])
        return ids

    def _stored_uuids(self, uuids: list[str | None]) -> set[str]:
        wanted = [u for u in uuids if u is not None]
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            cursor = self._db.conn.execute(
                f"SELECT call_uuid FROM cdrs WHERE call_uuid IN ({marks})", chunk
            )
            found.update(r[0] for r in cursor)
        return found

    def get(self, cdr_id: int) -> dict | None:
        return self._row(cdr_id)

    @staticmethod
    def _filters(
        from_ms: int | None,
        to_ms: int | None,
        caller: str | None,
        callee: str | None,
        gateway: str | None,
        account: str | None,
        after_id: int | None,
        before_id: int | None = None,
    ) -> tuple[str, list[Any]]:
        where, args = [], []
        for clause, value in (
            ("stop_ms >= ?", from_ms),
            ("stop_ms < ?", to_ms),
            ("caller_e164 = ?", caller),
            ("callee_e164 = ?", callee),
            ("account = ?", account),
            ("id > ?", after_id),
            ("id < ?", before_id),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        if gateway is not None:
            where.append("(caller_gateway_id = ? OR callee_gateway_id = ?)")
            args += [gateway, gateway]
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def query(
        self,
        from_ms: int | None = None,
        to_ms: int | None = None,
        caller: str | None = None,
        callee: str | None = None,
        gateway: str | None = None,
        account: str | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
        after_id: int | None = None,
        before_id: int | None = None,
    ) -> list[dict]:
        where, args = self._filters(
            from_ms, to_ms, caller, callee, gateway, account, after_id, before_id
        )
        sql = "SELECT * FROM cdrs" + where
        sql += " ORDER BY id " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cursor = self._db.execute(sql, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def count(
        self,
        from_ms: int | None = None,
        to_ms: int | None = None,
        caller: str | None = None,
        callee: str | None = None,
        gateway: str | None = None,
        account: str | None = None,
        after_id: int | None = None,
    ) -> int:
        """How many CDRs `query` would return without a limit (export progress, feed)."""
        where, args = self._filters(from_ms, to_ms, caller, callee, gateway, account, after_id)
        return self._db.execute("SELECT COUNT(*) FROM cdrs" + where, args).fetchone()[0]

    # `report ... by=` -> the column grouped on (fixed names: never user text in SQL).
    QUALITY_GROUPS: Mapping[str, str] = {
        "": "''",
        "gateway": "callee_gateway_id",
        "prefix": "rate_prefix",
        "account": "account",
    }

    def quality(self, from_ms: int, to_ms: int, by: str = "") -> list[dict]:
        """Per group: CDRs, answered (hold > 0), their hold sum, CDRs with a callee PDD
        and its sum, over CDRs stopped in [from_ms, to_ms) (SPEC.md §7 reports)."""
        column = self.QUALITY_GROUPS[by]
        cursor = self._db.execute(
            f"SELECT COALESCE({column}, '') AS grp, COUNT(*), "
            "SUM(hold_ms > 0), COALESCE(SUM(CASE WHEN hold_ms > 0 THEN hold_ms END), 0), "
            "SUM(callee_pdd_ms > 0), COALESCE(SUM(CASE WHEN callee_pdd_ms > 0 "
            "THEN callee_pdd_ms END), 0) "
            "FROM cdrs WHERE stop_ms >= ? AND stop_ms < ? GROUP BY grp ORDER BY grp",
            [from_ms, to_ms],
        )
        names = ("group", "cdrs", "answered", "hold_ms", "with_pdd", "pdd_ms")
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def last_id(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM cdrs").fetchone()[0]

    def modify_money(self, cdr_id: int, actor: Actor, reason: str, **changes: int) -> dict:
        """Change a CDR's fee_e4/cost_e4, adjust the balances by the difference and audit,
        in one transaction (SPEC.md §7 `cdr modify`)."""
        with self._store.atomic():
            old = self.get(cdr_id)
            if old is None:
                raise NotFoundError(f"no such CDR: {cdr_id}")
            for column, account_column in (("fee_e4", "account"), ("cost_e4", "clearing_account")):
                if column not in changes:
                    continue
                delta = changes[column] - (old[column] or 0)
                self._db.execute(
                    f"UPDATE cdrs SET {column} = ? WHERE id = ?", [changes[column], cdr_id]
                )
                if delta and old[account_column]:
                    self._db.execute(
                        "UPDATE accounts SET balance_e4 = balance_e4 - ? WHERE name = ?",
                        [delta, old[account_column]],
                    )
            new = self.get(cdr_id)
            changed = sorted(changes)
            self._audit(
                actor,
                "cdr modify",
                str(cdr_id),
                " ".join(f"{c}={old[c]}" for c in changed),
                " ".join(f"{c}={new[c]}" for c in changed),
                reason,
            )
        self._store.changed("accounts")  # the pool resyncs balances from the db
        return new

    def output_position(self, name: str) -> int:
        row = self._db.execute("SELECT last_id FROM cdr_outputs WHERE name = ?", [name]).fetchone()
        return row[0] if row else 0

    def set_output_position(self, name: str, last_id: int) -> None:
        with self._store.atomic():
            self._db["cdr_outputs"].upsert({"name": name, "last_id": last_id}, pk="name")

    def output_positions(self, prefix: str) -> dict[str, int]:
        """Every stored position whose name is `prefix` or starts with `prefix.`."""
        rows = self._db.execute(
            "SELECT name, last_id FROM cdr_outputs WHERE name = ? OR name LIKE ?",
            [prefix, prefix + ".%"],
        ).fetchall()
        return {name: value for name, value in rows}

    def set_output_positions(self, positions: Mapping[str, int]) -> None:
        """Store several positions of one output in ONE transaction (a consistent checkpoint)."""
        with self._store.atomic():
            for name, value in positions.items():
                self._db.execute(
                    "INSERT INTO cdr_outputs (name, last_id) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET last_id = excluded.last_id",
                    [name, value],
                )
