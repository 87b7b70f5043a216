"""`report asr|acd|pdd`: call quality over stored CDRs (SPEC.md §7 reports).

ASR = answered / CDRs, ACD = mean hold time of answered CDRs, PDD = mean callee PDD
(over CDRs that have one); grouped by vendor gateway, rate prefix or account.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from vos3k.admin.commands.cdr import cdr_filter
from vos3k.admin.shell import Command, Context, Table
from vos3k.store.models import Role

_GROUPS = ("gateway", "prefix", "account")


def _mean(total: int, count: int) -> int:
    if not count:
        return 0
    return int((Decimal(total) / count).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _percent(part: int, whole: int) -> Decimal:
    if not whole:
        return Decimal("0.00")
    return (Decimal(100) * part / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _row(group: dict[str, Any], by: str) -> dict[str, Any]:
    return {
        by or "group": group["group"] if by else "all",
        "cdrs": group["cdrs"],
        "answered": group["answered"] or 0,
        "asr_percent": _percent(group["answered"] or 0, group["cdrs"]),
        "acd_ms": _mean(group["hold_ms"], group["answered"] or 0),
        "pdd_ms": _mean(group["pdd_ms"], group["with_pdd"] or 0),
    }


def _report(metric: str):
    columns = {"asr": ("cdrs", "answered", "asr_percent"), "acd": ("answered", "acd_ms"),
               "pdd": ("cdrs", "pdd_ms")}[metric]  # fmt: skip

    def handler(ctx: Context) -> Table:
        by = ctx.keys.get("by", "")
        if by and by not in _GROUPS:
            raise ctx.usage_error(f"by: {by!r} is not one of {'|'.join(_GROUPS)}")
        where = cdr_filter(ctx)
        rows = [_row(g, by) for g in ctx.store.cdrs.quality(where.from_ms, where.to_ms, by)]
        if not by and not rows:
            rows = [_row({"group": "", "cdrs": 0, "answered": 0, "hold_ms": 0,
                          "with_pdd": 0, "pdd_ms": 0}, by)]  # fmt: skip
        return Table((by or "group", *columns), rows)

    return handler


COMMANDS = [
    Command("report", metric, Role.VIEWER,
            f"report {metric} [by=gateway|prefix|account] [from=TIME] [to=TIME]",
            summary, _report(metric), (), ("by", "from", "to"))
    for metric, summary in (
        ("asr", "answer-seizure ratio: answered CDRs / CDRs"),
        ("acd", "average call duration of answered calls"),
        ("pdd", "average post-dial delay towards vendors (callee PDD)"),
    )
]  # fmt: skip
