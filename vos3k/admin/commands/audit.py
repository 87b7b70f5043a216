"""`audit list`: who changed what, when, from where, old and new (DESIGN.md data rules)."""

from __future__ import annotations

from vos3k.admin.shell import Command, Context, Table, format_time, integer
from vos3k.store.models import Role

# INTERFACE.md §6: the keys of each `audit list` row.
COLUMNS = ("time", "user", "source", "action", "object", "old", "new", "reason")


def _list(ctx: Context) -> Table:
    limit = integer(ctx.keys.get("limit", "50"), "limit", 1, 1_000_000)
    rows = [
        {
            "time": format_time(e.time_ms, ctx.tz),
            "user": e.user,
            "source": e.source,
            "action": e.action,
            "object": e.object,
            "old": e.old,
            "new": e.new,
            "reason": e.reason,
        }
        for e in ctx.store.audit.recent(limit)
    ]
    return Table(COLUMNS, rows)


COMMANDS = [
    Command("audit", "list", Role.VIEWER, "audit list [limit=N]",
            "changes, newest first (default 50)", _list, (), ("limit",)),
]  # fmt: skip
