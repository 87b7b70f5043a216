"""`report asr|acd|pdd`: ASR, ACD and PDD per gateway, rate prefix or account (SPEC §7).

ASR = answered CDRs ÷ CDRs, ACD = mean holdTime of the answered ones, PDD = mean
calleePdd over the group's CDRs (SPEC.md §7 "Reports").  A CDR is answered when its
holdTime is above 0.  Figures are Decimal, computed from integers, never float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from attrs import define, frozen

from vos3k.cdr.query import CdrFilter, iter_rows
from vos3k.store.repos import CdrRepo

# report dimension -> the stored column that names the group
GROUP_COLUMNS = {
    "gateway": "callee_gateway_id",  # the vendor (routing) gateway the call went to
    "prefix": "rate_prefix",
    "account": "account",
}
NONE_KEY = "-"  # the group of CDRs with an empty key (no gateway, unrated, ...)
_PERCENT = Decimal("0.01")
_SECONDS = Decimal("0.1")
_MS = Decimal("1")


@frozen
class ReportRow:
    key: str
    cdrs: int
    answered: int
    asr_percent: Decimal
    acd_s: Decimal
    pdd_ms: Decimal

    def to_json_dict(self) -> dict[str, Any]:
        """INTERFACE §6 style: decimal figures as strings, units in the key names."""
        return {
            "key": self.key,
            "cdrs": self.cdrs,
            "answered": self.answered,
            "asr_percent": str(self.asr_percent),
            "acd_s": str(self.acd_s),
            "pdd_ms": str(self.pdd_ms),
        }


@define
class _Sums:
    cdrs: int = 0
    answered: int = 0
    hold_ms: int = 0
    pdd_ms: int = 0


def _ratio(numerator: int, denominator: int, step: Decimal) -> Decimal:
    if denominator == 0:
        return Decimal(0).quantize(step)
    return (Decimal(numerator) / Decimal(denominator)).quantize(step, rounding=ROUND_HALF_UP)


def summarise(rows: Iterable[Mapping[str, Any]], by: str) -> list[ReportRow]:
    """Group stored CDR rows by `by` (gateway|prefix|account); rows by key, total last."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"report by {by!r}: not one of {'|'.join(GROUP_COLUMNS)}")
    column = GROUP_COLUMNS[by]
    groups: dict[str, _Sums] = {}
    total = _Sums()
    for row in rows:
        key = row.get(column) or NONE_KEY
        hold = row.get("hold_ms") or 0
        pdd = row.get("callee_pdd_ms") or 0
        for sums in (groups.setdefault(key, _Sums()), total):
            sums.cdrs += 1
            sums.pdd_ms += pdd
            if hold > 0:
                sums.answered += 1
                sums.hold_ms += hold
    result = [_row(key, groups[key]) for key in sorted(groups)]
    result.append(_row("total", total))
    return result


def _row(key: str, sums: _Sums) -> ReportRow:
    return ReportRow(
        key=key,
        cdrs=sums.cdrs,
        answered=sums.answered,
        asr_percent=_ratio(sums.answered * 100, sums.cdrs, _PERCENT),
        acd_s=_ratio(sums.hold_ms, sums.answered * 1000, _SECONDS),
        pdd_ms=_ratio(sums.pdd_ms, sums.cdrs, _MS),
    )


def report(repo: CdrRepo, where: CdrFilter, by: str) -> list[ReportRow]:
    """The report over a checked range (query.make_filter), streamed from the store."""
    return summarise(iter_rows(repo, where), by)
