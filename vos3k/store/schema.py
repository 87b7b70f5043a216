"""The SQLite schema as numbered migrations; start-up applies the ones a database lacks.

Money columns end in `_e4` and hold integer ten-thousandths (SPEC.md §1: at most four
decimals), so SQL sums stay exact.  Times end in `_ms` (UTC epoch milliseconds).
A migration is only ever appended: a released one is never edited.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

Migration = tuple[int, str, Callable[[Database], None]]


def _v1_core(db: Database) -> None:
    db["params"].create({"name": str, "value": str, "changed_ms": int}, pk="name")
    db["audit"].create(
        {
            "id": int,
            "time_ms": int,
            "user": str,
            "source": str,
            "action": str,
            "object": str,
            "old": str,
            "new": str,
            "reason": str,
        },
        pk="id",
    )
    db["audit"].create_index(["time_ms"])
    db["admin_users"].create(
        {"name": str, "password_hash": str, "role": str, "keys": str, "created_ms": int},
        pk="name",
        not_null={"role"},
    )
    db["accounts"].create(
        {
            "name": str,
            "type": str,
            "balance_e4": int,
            "credit_e4": int,
            "rate_table": str,
            "enabled": int,
            "expiry_ms": int,
            "created_ms": int,
        },
        pk="name",
        not_null={"type", "balance_e4", "credit_e4", "enabled"},
        defaults={"balance_e4": 0, "credit_e4": 0, "enabled": 1, "type": "prepaid"},
    )
    db["rates"].create(
        {
            "rate_table": str,
            "prefix": str,
            "fee_e4": int,
            "first_period_s": int,
            "period_s": int,
            "area": str,
        },
        pk=("rate_table", "prefix"),
        not_null={"fee_e4", "first_period_s", "period_s"},
    )
    db["gateways"].create(
        {
            "name": str,
            "kind": str,
            "ip": str,
            "port": int,
            "account": str,
            "protocol": str,
            "prefixes": str,
            "priority": int,
            "lines": int,
            "cps": int,
            "caller_prefix_rewrite": str,
            "callee_prefix_rewrite": str,
            "caller_allow": str,
            "caller_deny": str,
            "callee_allow": str,
            "callee_deny": str,
            "replace_codes": str,
            "stop_codes": str,
            "until_connect": str,
            "lock": str,
            "prefix_mode": str,
            "protect": int,
            "check_rate": int,
            "options_check": int,
            "media_proxy": str,
            "media_check": str,
            "dyn_blacklist": int,
            "enabled": int,
            "created_ms": int,
        },
        pk="name",
        not_null={"kind", "ip", "protocol"},
    )
    db["phones"].create(
        {
            "e164": str,
            "password": str,
            "account": str,
            "enabled": int,
            "callee_pays": int,
            "created_ms": int,
        },
        pk="e164",
        not_null={"password", "account"},
    )
    db["blacklist"].create(
        {
            "id": int,
            "value": str,
            "dir": str,
            "kind": str,
            "reason": str,
            "expires_ms": int,
            "created_ms": int,
        },
        pk="id",
    )
    db["blacklist"].create_index(["value", "dir", "kind"], unique=True)
    db["cdrs"].create(
        {
            "id": int,
            "call_uuid": str,
            "caller_e164": str,
            "callee_e164": str,
            "start_ms": int,
            "stop_ms": int,
            "hold_ms": int,
            "end_reason": int,
            "end_direction": int,
            "caller_gateway_id": str,
            "callee_gateway_id": str,
            "caller_ip": str,
            "callee_ip": str,
            "caller_access_e164": str,
            "callee_access_e164": str,
            "caller_to_gateway_e164": str,
            "callee_to_gateway_e164": str,
            "callee_billing": int,
            "billing_mode": int,
            "caller_pdd_ms": int,
            "callee_pdd_ms": int,
            "account": str,
            "fee_e4": int,
            "cost_e4": int,
            "clearing_account": str,
            "sip_code": int,
            "billed_seconds": int,
            "rate_prefix": str,
            "area": str,
            "attempts": int,
            "extra": str,
        },
        pk="id",
    )
    db["cdrs"].create_index(["call_uuid"], unique=True)
    db["cdrs"].create_index(["stop_ms"])
    db["cdrs"].create_index(["callee_e164"])
    db["cdrs"].create_index(["caller_e164"])


def _v2_registrations_and_outputs(db: Database) -> None:
    # Phone bindings survive a restart (SPEC.md §2); CDR outputs remember how far they got.
    db["registrations"].create(
        {
            "e164": str,
            "contact": str,
            "source": str,
            "expires_ms": int,
            "call_id": str,
            "cseq": int,
            "updated_ms": int,
        },
        pk=("e164", "contact"),
    )
    db["cdr_outputs"].create({"name": str, "last_id": int}, pk="name")


MIGRATIONS: tuple[Migration, ...] = (
    (1, "accounts, rates, gateways, phones, users, params, audit, blacklist, cdrs", _v1_core),
    (2, "phone registrations and CDR output positions", _v2_registrations_and_outputs),
)

LATEST = MIGRATIONS[-1][0]
