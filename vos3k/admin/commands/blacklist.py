"""`blacklist add|del|list`: static entries, and the dynamic ones other parts add (SPEC §10).

Static entries live in the store.  Dynamic bans (kinds callee_freq, caller_freq,
short_calls, failed_calls, cps) and digest suspensions (kind auth) live in memory in the
running server and are reached through `service.protection` (`switch/protect.py`):
`listing(now_ms)` and `lift(value, kind)`; absent (e.g. offline), only the store's show.
"""

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
from vos3k.store.repos import NotFoundError
from vos3k.switch.numbers import Malformed, parse_patterns
from vos3k.switch.protect import IN_MEMORY_KINDS

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
    value, kind = ctx.args[0], ctx.keys.get("kind")
    lifted = 0
    protection = getattr(ctx.service, "protection", None)
    if protection is not None and kind != "static":
        lifted = protection.lift(value, kind)
        if lifted:
            # SPEC §2: every change audited, in-memory entries included.
            ctx.store.audit.record(ctx.actor, "blacklist lift", value, f"{lifted} entries", None)
    count = 0
    if kind not in IN_MEMORY_KINDS:
        try:
            count = ctx.store.blacklist.delete(value, ctx.actor, kind)
        except NotFoundError:
            if not lifted:
                raise
    elif not lifted:
        raise NotFoundError(f"{value} is not blacklisted")
    return Message(f"{value}: {count + lifted} blacklist entries removed")


def _list(ctx: Context) -> Table:
    now = ctx.now_ms()
    entries = list(ctx.store.blacklist.list(now))
    protection = getattr(ctx.service, "protection", None)
    if protection is not None:
        entries.extend(protection.listing(now))
    rows = [
        {
            "value": e.value,
            "dir": e.dir,
            "kind": e.kind,
            "reason": e.reason,
            "expires": format_time(e.expires_ms, ctx.tz),
        }
        for e in entries
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
