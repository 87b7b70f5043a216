"""`rate add|import|list|del`: rate tables, fee per minute (SPEC.md §2, §5)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from vos3k.admin.rateimport import Summary, import_steps
from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Table,
    integer,
    money,
)
from vos3k.store.models import Rate, Role

COLUMNS = ("rate_table", "prefix", "fee", "period", "first_period", "area")
LIST_LIMIT = 1000
_PREFIX = re.compile(r"[0-9]{1,32}")


def _prefix(text: str) -> str:
    if not _PREFIX.fullmatch(text):
        raise CommandError(f"prefix {text!r} is not 1-32 digits")
    return text


def _add(ctx: Context) -> Message:
    fee = money(ctx.keys["fee"], "fee")
    if fee < 0:
        raise CommandError(f"fee: {fee} must not be negative")
    rate = Rate(
        rate_table=ctx.args[0],
        prefix=_prefix(ctx.args[1]),
        fee=fee,
        first_period_s=integer(ctx.keys.get("first_period", "60"), "first_period", 0, 86400),
        period_s=integer(ctx.keys.get("period", "60"), "period", 1, 86400),
        area=ctx.keys.get("area", ""),
    )
    ctx.store.rates.put(rate, ctx.actor)
    return Message(f"rate {rate.rate_table}/{rate.prefix}: {rate.fee} per minute")


def _list(ctx: Context) -> Table:
    limit = integer(ctx.keys.get("limit", str(LIST_LIMIT)), "limit", 0)
    prefix = ctx.arg(1, "")
    rates = ctx.store.rates.list(ctx.args[0], prefix, limit + 1 if limit else None)
    note = ""
    if limit and len(rates) > limit:
        rates = rates[:limit]
        note = f"(first {limit} rates; limit=N shows more, limit=0 all)"
    rows = [
        {
            "rate_table": r.rate_table,
            "prefix": r.prefix,
            "fee": r.fee,
            "period": r.period_s,
            "first_period": r.first_period_s,
            "area": r.area,
        }
        for r in rates
    ]
    return Table(COLUMNS, rows, note)


def _del(ctx: Context) -> Message:
    ctx.store.rates.delete(ctx.args[0], ctx.args[1], ctx.actor)
    return Message(f"rate {ctx.args[0]}/{ctx.args[1]} deleted")


def server_path(ctx: Context, text: str) -> Path:
    """A file on the server; relative paths are relative to the data directory."""
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(ctx.service.settings.data_dir) / path
    return path


async def _import(ctx: Context) -> Message:
    table, path = ctx.args[0], server_path(ctx, ctx.args[1])
    if not path.is_file():
        raise CommandError(f"rate import: no such file {path}")
    session = ctx.session
    summaries: list[Summary] = []

    def steps():
        for step in import_steps(ctx.store, table, path, ctx.actor):
            if isinstance(step, Summary):
                summaries.append(step)
            elif session.interactive and session.progress is not None:
                session.progress(f"{step.phase}: {step.lines} lines")
            yield None

    try:
        await session.run_steps(steps())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"rate import: cannot read {path}: {exc}") from None
    summary = summaries[-1]
    if not summary.ok:
        raise CommandError(summary.text())
    return Message(summary.text())


COMMANDS = [
    Command("rate", "add", Role.OPERATOR,
            "rate add TABLE PREFIX fee=D [period=S] [first_period=S] [area=TEXT]",
            "add or replace a rate (fee per minute)", _add, ("TABLE", "PREFIX"),
            ("fee", "period", "first_period", "area"), ("fee",), ("rate_table",)),
    Command("rate", "import", Role.OPERATOR, "rate import TABLE FILE.csv",
            "import prefix,fee,period,first_period,area rows; all or nothing", _import,
            ("TABLE", "FILE"), completers=("rate_table",)),
    Command("rate", "list", Role.VIEWER, "rate list TABLE [PREFIX] [limit=N]",
            "rates of a table (whose prefix starts with PREFIX)", _list,
            ("TABLE", "[PREFIX]"), ("limit",), completers=("rate_table",)),
    Command("rate", "del", Role.OPERATOR, "rate del TABLE PREFIX", "delete a rate", _del,
            ("TABLE", "PREFIX"), completers=("rate_table",)),
]  # fmt: skip
