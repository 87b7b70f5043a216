"""`cdr query|export|modify`: CDRs from the store (SPEC.md §7 Query, INTERFACE.md §6)."""

from __future__ import annotations

import os

from vos3k.admin.commands.rate import server_path
from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Table,
    integer,
    money,
    parse_time,
)
from vos3k.cdr.query import (
    EXPORT_FORMATS,
    CdrFilter,
    QueryError,
    export_lines,
    make_filter,
    query_json,
)
from vos3k.store.models import Role, to_e4

TEXT_COLUMNS = ("id", "stop_time", "caller_e164", "callee_e164", "hold_time", "end_reason",
                "caller_gateway_id", "callee_gateway_id", "account", "fee")  # fmt: skip


def cdr_filter(ctx: Context) -> CdrFilter:
    """from=/to= (server local time) and the equality filters, checked per SPEC.md §7."""
    for key in ("from", "to"):
        if key in ctx.keys:
            parse_time(ctx.keys[key], ctx.tz, key)  # a malformed time is a usage error
    try:
        return make_filter(
            ctx.service.params.snapshot, ctx.now_ms(), ctx.tz,
            ctx.keys.get("from"), ctx.keys.get("to"),
            caller=ctx.keys.get("caller"), callee=ctx.keys.get("callee"),
            gateway=ctx.keys.get("gateway"), account=ctx.keys.get("account"),
        )  # fmt: skip
    except QueryError as exc:
        raise CommandError(str(exc)) from None


def _query(ctx: Context) -> Table:
    where = cdr_filter(ctx)
    limit = integer(ctx.keys.get("limit", "100"), "limit", 1, 1_000_000)
    documents = query_json(ctx.store.cdrs, where, ctx.tz, limit)
    columns = TEXT_COLUMNS if ctx.fmt == "text" else (tuple(documents[0]) if documents else ())
    return Table(columns, documents)


def _export(ctx: Context) -> Message:
    fmt = ctx.keys.get("format", "pipe")
    if fmt not in EXPORT_FORMATS:
        raise ctx.usage_error(f"format: {fmt!r} is not pipe or csv")
    where = cdr_filter(ctx)
    path = server_path(ctx, ctx.args[0])
    tmp = path.with_name(path.name + ".part")
    count = 0
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            for line in export_lines(ctx.store.cdrs, where, fmt, ctx.tz):
                fh.write(line)
                count += 1
        os.replace(tmp, path)
    except OSError as exc:
        raise CommandError(f"cdr export: cannot write {path}: {exc.strerror}") from None
    if fmt == "csv":
        count -= 1  # the header row
    return Message(f"exported {count} CDRs to {path}")


def _modify(ctx: Context) -> Message:
    if not ctx.args[0].isdigit():
        raise ctx.usage_error(f"cdr modify: {ctx.args[0]!r} is not a CDR id")
    changes = {}
    for key in ("fee", "cost"):
        if key in ctx.keys:
            amount = money(ctx.keys[key], key)
            if amount < 0:
                raise CommandError(f"{key}: {amount} must not be negative")
            changes[f"{key}_e4"] = to_e4(amount)
    if not changes:
        raise ctx.usage_error("cdr modify: fee= or cost= is needed")
    reason = ctx.keys["reason"].strip()
    if not reason:
        raise ctx.usage_error("cdr modify: reason= must not be empty")
    ctx.store.cdrs.modify_money(int(ctx.args[0]), ctx.actor, reason, **changes)
    return Message(f"CDR {ctx.args[0]} modified")


COMMANDS = [
    Command("cdr", "query", Role.VIEWER,
            "cdr query [from=TIME] [to=TIME] [caller=E164] [callee=E164] [gateway=NAME] "
            "[account=NAME] [limit=N]",
            "CDRs by stop time, newest first (default: last 24 h, 100 rows)", _query, (),
            ("from", "to", "caller", "callee", "gateway", "account", "limit")),
    Command("cdr", "export", Role.OPERATOR,
            "cdr export from=TIME to=TIME [format=pipe|csv] FILE",
            "write CDRs to a file on the server (relative to the data dir)", _export,
            ("FILE",), ("from", "to", "format"), ("from", "to")),
    Command("cdr", "modify", Role.ADMIN, "cdr modify ID [fee=D] [cost=D] reason=TEXT",
            "change a CDR's money; balances follow; audited", _modify, ("ID",),
            ("fee", "cost", "reason"), ("reason",)),
]  # fmt: skip
