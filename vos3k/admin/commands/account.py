"""`account add|list|show|topup|set|del`: customer accounts (SPEC.md §2, §6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Record,
    Table,
    UsageError,
    boolean,
    format_time,
    money,
    parse_time,
)
from vos3k.cdr.query import end_of_day_ms
from vos3k.store.models import ACCOUNT_TYPES, Account, Role

# INTERFACE.md §6: the keys of `account show`.
SHOW_KEYS = ("name", "type", "balance", "credit", "reserved", "rate_table", "enabled")


def reserved_of(service: Any, name: str) -> Decimal:
    """Money held by calls in progress, from billing when it provides `reservations`."""
    provider = getattr(service, "reservations", None)
    if provider is None:
        return Decimal(0)
    reserved = provider.reserved if hasattr(provider, "reserved") else provider
    return Decimal(reserved(name))


def _fields(ctx: Context, account: Account) -> dict[str, Any]:
    return {
        "name": account.name,
        "type": account.type,
        "balance": account.balance,
        "credit": account.credit,
        "reserved": reserved_of(ctx.service, account.name),
        "rate_table": account.rate_table,
        "enabled": account.enabled,
        "expiry": format_time(account.expiry_ms, ctx.tz),
    }


def _changes(ctx: Context) -> dict[str, Any]:
    """Validated model fields from key=value words (all but balance)."""
    changes: dict[str, Any] = {}
    for key, value in ctx.keys.items():
        if key == "type":
            if value not in ACCOUNT_TYPES:
                raise CommandError(f"type: {value!r} is not one of {'|'.join(ACCOUNT_TYPES)}")
            changes["type"] = value
        elif key == "credit":
            credit = money(value, "credit")
            if credit < 0:
                raise CommandError(f"credit: {value} must not be negative")
            changes["credit"] = credit
        elif key == "rate_table":
            changes["rate_table"] = value
        elif key == "enabled":
            changes["enabled"] = boolean(value, "enabled")
        elif key == "expiry":
            if value.lower() in ("", "none", "never"):
                changes["expiry_ms"] = None
            else:
                at, date_only = parse_time(value, ctx.tz, "expiry")
                changes["expiry_ms"] = end_of_day_ms(at, ctx.tz) if date_only else at
    return changes


def _add(ctx: Context) -> Message:
    changes = _changes(ctx)
    balance = money(ctx.keys.get("balance", "0"), "balance")
    account = Account(name=ctx.args[0], balance=balance, **changes)
    ctx.store.accounts.add(account, ctx.actor)
    return Message(f"account {account.name} added")


def _list(ctx: Context) -> Table:
    rows = [_fields(ctx, a) for a in ctx.store.accounts.list()]
    return Table((*SHOW_KEYS, "expiry"), rows)


def _show(ctx: Context) -> Record:
    fields = _fields(ctx, ctx.store.accounts.require(ctx.args[0]))
    if ctx.fmt == "json":
        fields.pop("expiry")
    return Record(fields)


def _topup(ctx: Context) -> Message:
    amount = money(ctx.args[1], "amount")
    account = ctx.store.accounts.topup(ctx.args[0], amount, ctx.actor, ctx.keys.get("reason", ""))
    return Message(f"account {account.name}: balance {account.balance}")


def _set(ctx: Context) -> Message:
    if "balance" in ctx.keys:
        raise UsageError(
            "account set: the balance changes only by 'account topup'", ctx.command.usage
        )
    if not ctx.keys:
        raise ctx.usage_error("account set: nothing to change")
    changes = _changes(ctx)
    try:
        account = ctx.store.accounts.update(
            ctx.args[0], ctx.actor, ctx.keys.get("reason", ""), **changes
        )
    except ValueError as exc:
        raise CommandError(f"account {ctx.args[0]}: {exc}") from None
    return Message(f"account {account.name} changed")


def _del(ctx: Context) -> Message:
    name = ctx.args[0]
    ctx.store.accounts.require(name)
    users = [f"gateway {g.name}" for g in ctx.store.gateways.list() if g.account == name]
    users += [f"phone {p.e164}" for p in ctx.store.phones.list() if p.account == name]
    if users:
        raise CommandError(f"account {name} is used by {', '.join(users[:5])}")
    ctx.store.accounts.delete(name, ctx.actor)
    return Message(f"account {name} deleted")


_KEYS = ("type", "balance", "credit", "rate_table", "enabled", "expiry")

COMMANDS = [
    Command("account", "add", Role.OPERATOR,
            "account add NAME [type=prepaid|postpaid] [balance=D] [credit=D] [rate_table=T] "
            "[enabled=yes|no] [expiry=DATE]",
            "add a customer account", _add, ("NAME",), _KEYS),
    Command("account", "list", Role.VIEWER, "account list", "all accounts", _list),
    Command("account", "show", Role.VIEWER, "account show NAME", "one account", _show,
            ("NAME",), completers=("account",)),
    Command("account", "topup", Role.OPERATOR, "account topup NAME AMOUNT [reason=TEXT]",
            "add money (a negative amount takes it away)", _topup, ("NAME", "AMOUNT"),
            ("reason",), completers=("account",)),
    Command("account", "set", Role.OPERATOR,
            "account set NAME key=value... (type credit rate_table enabled expiry reason)",
            "change an account", _set, ("NAME",),
            ("type", "balance", "credit", "rate_table", "enabled", "expiry", "reason"),
            completers=("account",)),
    Command("account", "del", Role.OPERATOR, "account del NAME", "delete an unused account",
            _del, ("NAME",), completers=("account",)),
]  # fmt: skip
