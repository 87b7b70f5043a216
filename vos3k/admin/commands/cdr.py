"""`cdr query|export|modify`: CDRs from the store (SPEC.md §7 Query, INTERFACE.md §6)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vos3k.admin.commands.rate import server_path
from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Table,
    end_of_day_ms,
    format_time,
    integer,
    money,
    parse_time,
)
from vos3k.store.models import Role, from_e4, to_e4
from vos3k.switch.reasons import EndReason, reason_name

DAY_MS = 86_400_000

# INTERFACE.md §6: the 19 pipe fields in order, as JSON keys, then what SQLite adds.
PIPE_KEYS = (
    "caller_e164", "callee_e164", "start_time", "stop_time", "hold_time", "end_reason",
    "end_direction", "caller_gateway_id", "callee_gateway_id", "caller_ip", "callee_ip",
    "caller_access_e164", "callee_access_e164", "caller_to_gateway_e164",
    "callee_to_gateway_e164", "callee_billing", "billing_mode", "caller_pdd", "callee_pdd",
)  # fmt: skip
EXTRA_KEYS = ("id", "end_reason_name", "sip_code", "account", "fee", "cost", "billed_seconds")
JSON_KEYS = ("id", *PIPE_KEYS, *EXTRA_KEYS[1:])
TEXT_COLUMNS = ("id", "stop_time", "caller_e164", "callee_e164", "hold_time", "end_reason",
                "caller_gateway_id", "callee_gateway_id", "account", "fee")  # fmt: skip
# store column -> JSON key where they differ (times and ms durations).
_RENAMED = {"hold_ms": "hold_time", "caller_pdd_ms": "caller_pdd", "callee_pdd_ms": "callee_pdd"}
_UNSAFE = str.maketrans({"|": "_", "\r": "_", "\n": "_"})


def cdr_fields(row: Mapping[str, Any], tz) -> dict[str, Any]:
    """A stored CDR row as INTERFACE.md §6 names it (the one place rows are converted)."""
    fields: dict[str, Any] = {}
    for key in PIPE_KEYS:
        fields[key] = row.get(key, "") or ""
    for column, key in _RENAMED.items():
        fields[key] = row.get(column) or 0
    fields["start_time"] = format_time(row.get("start_ms"), tz)
    fields["stop_time"] = format_time(row.get("stop_ms"), tz)
    for key in ("end_reason", "end_direction", "callee_billing", "billing_mode"):
        fields[key] = row.get(key) if row.get(key) is not None else 0
    reason = fields["end_reason"]
    fields["id"] = row.get("id")
    fields["end_reason_name"] = (
        reason_name(reason) if reason in EndReason._value2member_map_ else ""
    )
    fields["sip_code"] = row.get("sip_code") or 0
    fields["account"] = row.get("account") or ""
    fields["fee"] = from_e4(row.get("fee_e4"))
    fields["cost"] = from_e4(row.get("cost_e4"))
    fields["billed_seconds"] = row.get("billed_seconds") or 0
    return {k: fields[k] for k in JSON_KEYS}


def pipe_line(fields: Mapping[str, Any]) -> str:
    """INTERFACE.md §6: 19 fields joined by `|`, no `|` or newline inside a field."""
    return "|".join(str(fields[k]).translate(_UNSAFE) for k in PIPE_KEYS)


def _deny_hours(text: str) -> set[int]:
    hours: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        hours.update(range(int(first), int(last or first) + 1))
    return hours


def query_window(ctx: Context, default_days: int = 1) -> tuple[int, int]:
    """from=/to= (server local time) -> [from_ms, to_ms); refused per SPEC.md §7 Query."""
    now = ctx.now_ms()
    snapshot = ctx.service.params.snapshot
    hour = datetime.fromtimestamp(now / 1000, ctx.tz).hour
    if hour in _deny_hours(str(snapshot["SERVER_QUERY_CDR_DENY_TIME"])):
        raise CommandError(
            f"CDR queries are refused at this hour ({hour}:00, SERVER_QUERY_CDR_DENY_TIME)"
        )
    to_ms = now
    if "to" in ctx.keys:
        to_ms, date_only = parse_time(ctx.keys["to"], ctx.tz, "to")
        if date_only:  # a bare date includes its whole day
            to_ms = end_of_day_ms(to_ms, ctx.tz)
    from_ms = to_ms - default_days * DAY_MS
    if "from" in ctx.keys:
        from_ms, _ = parse_time(ctx.keys["from"], ctx.tz, "from")
    if from_ms >= to_ms:
        raise CommandError("from= must be before to=")
    max_days = int(snapshot["SERVER_QUERY_CDR_MAX_DAYS"])
    if to_ms - from_ms > max_days * DAY_MS:
        raise CommandError(f"the range is longer than {max_days} days (SERVER_QUERY_CDR_MAX_DAYS)")
    return from_ms, to_ms


def _query(ctx: Context) -> Table:
    from_ms, to_ms = query_window(ctx)
    limit = integer(ctx.keys.get("limit", "100"), "limit", 1, 1_000_000)
    rows = ctx.store.cdrs.query(
        from_ms=from_ms,
        to_ms=to_ms,
        caller=ctx.keys.get("caller"),
        callee=ctx.keys.get("callee"),
        gateway=ctx.keys.get("gateway"),
        account=ctx.keys.get("account"),
        limit=limit,
    )
    columns = TEXT_COLUMNS if ctx.fmt == "text" else JSON_KEYS
    return Table(columns, [cdr_fields(r, ctx.tz) for r in rows])


def _export(ctx: Context) -> Message:
    fmt = ctx.keys.get("format", "pipe")
    if fmt not in ("pipe", "csv"):
        raise ctx.usage_error(f"format: {fmt!r} is not pipe or csv")
    from_ms, to_ms = query_window(ctx)
    path = server_path(ctx, ctx.args[0])
    rows = ctx.store.cdrs.query(from_ms=from_ms, to_ms=to_ms, limit=None, newest_first=False)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            if fmt == "csv":
                writer = csv.writer(fh, lineterminator="\n")
                writer.writerow(JSON_KEYS)
                for row in rows:
                    fields = cdr_fields(row, ctx.tz)
                    writer.writerow([fields[k] for k in JSON_KEYS])
            else:
                for row in rows:
                    fh.write(pipe_line(cdr_fields(row, ctx.tz)) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise CommandError(f"cdr export: cannot write {path}: {exc.strerror}") from None
    return Message(f"exported {len(rows)} CDRs to {path}")


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
