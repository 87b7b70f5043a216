"""`phone add|list|del`: SIP users registering with digest auth (SPEC.md §2)."""

from __future__ import annotations

import re

from vos3k.admin.shell import Command, CommandError, Context, Message, Table, boolean
from vos3k.store.models import Phone, Role

_E164 = re.compile(r"[0-9]{1,32}")


def _add(ctx: Context) -> Message:
    e164 = ctx.args[0]
    if not _E164.fullmatch(e164):
        raise CommandError(f"phone {e164!r}: an E.164 number is 1-32 digits")
    password = ctx.keys["password"]
    if not password:
        raise CommandError("password: must not be empty")
    account = ctx.keys["account"]
    if ctx.store.accounts.get(account) is None:
        raise CommandError(f"account: no such account: {account}")
    phone = Phone(
        e164,
        password,
        account,
        enabled=boolean(ctx.keys.get("enabled", "yes"), "enabled"),
        callee_pays=boolean(ctx.keys.get("callee_pays", "no"), "callee_pays"),
    )
    ctx.store.phones.add(phone, ctx.actor)
    return Message(f"phone {e164} added")


def _list(ctx: Context) -> Table:
    rows = [
        {"e164": p.e164, "account": p.account, "enabled": p.enabled, "callee_pays": p.callee_pays}
        for p in ctx.store.phones.list()
    ]
    return Table(("e164", "account", "enabled", "callee_pays"), rows)


def _del(ctx: Context) -> Message:
    ctx.store.phones.delete(ctx.args[0], ctx.actor)
    return Message(f"phone {ctx.args[0]} deleted")


COMMANDS = [
    Command("phone", "add", Role.OPERATOR,
            "phone add E164 password=PW account=ACCT [enabled=yes|no] [callee_pays=yes|no]",
            "add a SIP phone (digest user)", _add, ("E164",),
            ("password", "account", "enabled", "callee_pays"), ("password", "account")),
    Command("phone", "list", Role.VIEWER, "phone list", "all phones (passwords hidden)", _list),
    Command("phone", "del", Role.OPERATOR, "phone del E164", "delete a phone", _del,
            ("E164",), completers=("phone",)),
]  # fmt: skip
