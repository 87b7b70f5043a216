"""`blacklist add|del|list`: static entries, and the dynamic ones other parts add (SPEC §10)."""

from __future__ import annotations

import ipaddress

from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Table,
    format_time,
    parse_time,
)
from vos3k.cdr.query import end_of_day_ms
from vos3k.store.models import BlacklistEntry, Role
from vos3k.switch.numbers import Malformed, parse_patterns

COLUMNS = ("value", "dir", "kind", "reason", "expires")
DIRS = ("caller", "callee", "both")


def _value(text: str) -> str:
    """A number pattern (`P*`, exact, `*`), an IP or a CIDR (SPEC.md §2)."""
    try:
        return (
            str(ipaddress.ip_network(text, strict=False))
            if "/" in text
            else str(ipaddress.ip_address(text))
        )
    except ValueError:
        pass
    if "," in text or isinstance(parse_patterns(text), Malformed):
        raise CommandError(f"blacklist: {text!r} is not a number pattern, IP or CIDR")
    return text


def _add(ctx: Context) -> Message:
    value = _value(ctx.args[0])
    direction = ctx.keys.get("dir", "both")
    if direction not in DIRS:
        raise CommandError(f"dir: {direction!r} is not one of {'|'.join(DIRS)}")
    expires = None
    if ctx.keys.get("expires"):
        expires, date_only = parse_time(ctx.keys["expires"], ctx.tz, "expires")
        expires = end_of_day_ms(expires, ctx.tz) if date_only else expires
    entry = BlacklistEntry(value, direction, "static", ctx.keys.get("reason", ""), expires)
    ctx.store.blacklist.add(entry, ctx.actor)
    return Message(f"{value} blacklisted ({direction})")


def _del(ctx: Context) -> Message:
    count = ctx.store.blacklist.delete(ctx.args[0], ctx.actor, ctx.keys.get("kind"))
    return Message(f"{ctx.args[0]}: {count} blacklist entries removed")


def _list(ctx: Context) -> Table:
    rows = [
        {
            "value": e.value,
            "dir": e.dir,
            "kind": e.kind,
            "reason": e.reason,
            "expires": format_time(e.expires_ms, ctx.tz),
        }
        for e in ctx.store.blacklist.list(ctx.now_ms())
        if not ctx.args or e.value == ctx.args[0]
    ]
    return Table(COLUMNS, rows)


COMMANDS = [
    Command("blacklist", "add", Role.OPERATOR,
            "blacklist add E164|PATTERN|IP|CIDR [dir=caller|callee|both] [reason=TEXT] "
            "[expires=TIME]",
            "add a static blacklist entry", _add, ("VALUE",), ("dir", "reason", "expires")),
    Command("blacklist", "del", Role.OPERATOR, "blacklist del VALUE [kind=KIND]",
            "remove entries for a value (static or dynamic)", _del, ("VALUE",), ("kind",)),
    Command("blacklist", "list", Role.VIEWER, "blacklist list [VALUE]",
            "entries in force, static and dynamic", _list, ("[VALUE]",)),
]  # fmt: skip
