"""Streamed, all-or-nothing rate CSV import: `rate import` and bench/rate_import.py share it.

CSV columns (INTERFACE.md §2): prefix,fee,period,first_period,area; a first line whose
first cell is `prefix` is a header.  The file is read twice: a check pass that finds
every bad line (so the summary can name them all) and yields between chunks so a caller
can show progress and keep its reactor turning, then, only if no line was bad, one
transaction that upserts every row (RateRepo.import_rates).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from attrs import frozen

from vos3k.params import Actor
from vos3k.store.models import MoneyError, Rate, parse_money

CHUNK = 20000  # lines per check step between progress reports
MAX_REJECTS_SHOWN = 20
_PREFIX = re.compile(r"[0-9]{1,32}")


@frozen
class Progress:
    """How far the job got: `phase` is `checking` or `importing`."""

    phase: str
    lines: int


@frozen
class Summary:
    table: str
    rows: int
    added: int
    updated: int
    rejected: tuple[tuple[int, str], ...]  # (line number, why)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def text(self) -> str:
        if self.ok:
            return (
                f"rate import {self.table}: {self.rows} rows, {self.added} added, "
                f"{self.updated} updated, 0 rejected"
            )
        shown = ", ".join(f"line {n}: {why}" for n, why in self.rejected[:MAX_REJECTS_SHOWN])
        more = len(self.rejected) - MAX_REJECTS_SHOWN
        tail = f" (and {more} more)" if more > 0 else ""
        return (
            f"rate import {self.table}: {len(self.rejected)} of {self.rows} rows rejected, "
            f"nothing imported: {shown}{tail}"
        )


def parse_row(table: str, cells: list[str]) -> Rate | str:
    """One CSV row as a Rate, or why it is refused (a value, never an exception)."""
    cells = [c.strip() for c in cells]
    if not 2 <= len(cells) <= 5:
        return f"expected 2 to 5 columns, got {len(cells)}"
    prefix, fee_text, *rest = cells
    period_text = rest[0] if len(rest) > 0 and rest[0] else "60"
    first_text = rest[1] if len(rest) > 1 and rest[1] else "60"
    area = rest[2] if len(rest) > 2 else ""
    if not _PREFIX.fullmatch(prefix):
        return f"prefix {prefix!r} is not 1-32 digits"
    try:
        fee = parse_money(fee_text, "fee")
    except MoneyError as exc:
        return str(exc)
    if fee < 0:
        return f"fee {fee_text} is negative"
    if not period_text.isdigit() or int(period_text) < 1:
        return f"period {period_text!r} is not a whole number of seconds >= 1"
    if not first_text.isdigit():
        return f"first_period {first_text!r} is not a whole number of seconds >= 0"
    return Rate(table, prefix, fee, int(first_text), int(period_text), area)


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for number, cells in enumerate(csv.reader(fh), start=1):
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if number == 1 and cells[0].strip().lower() == "prefix":
                continue
            yield number, cells


def _valid_rates(table: str, path: Path) -> Iterator[Rate]:
    for _, cells in _rows(path):
        rate = parse_row(table, cells)
        if isinstance(rate, Rate):
            yield rate


def import_steps(store, table: str, path: Path, actor: Actor) -> Iterator[Progress | Summary]:
    """The job as steps: Progress while checking, then one Summary (the last item).

    Raises OSError/UnicodeDecodeError/csv.Error when the file cannot be read.
    """
    rejected: list[tuple[int, str]] = []
    rows = 0
    seen: set[str] = set()
    for number, cells in _rows(path):
        rows += 1
        rate = parse_row(table, cells)
        if isinstance(rate, str):
            rejected.append((number, rate))
        elif rate.prefix in seen:
            rejected.append((number, f"prefix {rate.prefix} appears twice in the file"))
        else:
            seen.add(rate.prefix)
        if rows % CHUNK == 0:
            yield Progress("checking", rows)
    seen.clear()
    if rejected:
        yield Summary(table, rows, 0, 0, tuple(rejected))
        return
    yield Progress("importing", rows)
    added, updated = store.rates.import_rates(
        table, _valid_rates(table, path), actor, source=str(path)
    )
    yield Summary(table, rows, added, updated, ())


def import_file(store, table: str, path: Path, actor: Actor, progress=None) -> Summary:
    """Run every step at once (bench, tests); `progress(Progress)` sees each report."""
    summary = None
    for step in import_steps(store, table, path, actor):
        if isinstance(step, Summary):
            summary = step
        elif progress is not None:
            progress(step)
    assert summary is not None
    return summary
