"""CDR queries and exports: time ranges, SPEC §7/§9 refusals, streamed pipe/CSV output.

Times are server local `YYYY-MM-DD[ HH:MM[:SS]]`, the range is by stopTime, the default
is the last 24 h, `limit` defaults to 100, newest first (SPEC.md §7 "Query").  A range
longer than SERVER_QUERY_CDR_MAX_DAYS days, or any query during an hour listed in
SERVER_QUERY_CDR_DENY_TIME, is refused with a QueryError whose message is one line
(the shell prints it and exits 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from typing import Any

from attrs import frozen

from vos3k.cdr.record import PIPE_FIELDS
from vos3k.cdr.rows import row_to_json, row_to_pipe_line
from vos3k.store.repos import CdrRepo

DAY_MS = 86_400_000
DEFAULT_LIMIT = 100
EXPORT_CHUNK = 2000
EXPORT_FORMATS = ("pipe", "csv")
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")
# CSV: the 19 pipe fields, then the SQLite extras (INTERFACE §6 key names).
CSV_COLUMNS = (
    *PIPE_FIELDS,
    "id",
    "end_reason_name",
    "sip_code",
    "account",
    "fee",
    "cost",
    "billed_seconds",
)


class QueryError(ValueError):
    """A refused or malformed query; the message is one line for the operator."""


@frozen
class CdrFilter:
    """Which CDRs: stopTime in [from_ms, to_ms) and the optional equality filters."""

    from_ms: int
    to_ms: int
    caller: str | None = None
    callee: str | None = None
    gateway: str | None = None
    account: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "caller": self.caller,
            "callee": self.callee,
            "gateway": self.gateway,
            "account": self.account,
        }


def parse_local_time(text: str, tz: tzinfo | None) -> tuple[int, bool]:
    """`YYYY-MM-DD[ HH:MM[:SS]]` in server local time -> (UTC epoch ms, date only).

    The one parser of operator times (the shell wraps it): a bare date is its midnight,
    and the caller decides whether it means the whole day (`end_of_day_ms`).
    """
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise QueryError(f"{text!r} is not a time YYYY-MM-DD[ HH:MM[:SS]]")
    parts = [int(p) if p is not None else 0 for p in match.groups()]
    try:
        local = datetime(*parts)  # type: ignore[arg-type]
    except ValueError as exc:
        raise QueryError(f"{text!r}: {exc}") from None
    return int(local.replace(tzinfo=tz).timestamp() * 1000), match.group(4) is None


def end_of_day_ms(epoch_ms: int, tz: tzinfo | None) -> int:
    """The start of the next local day: a bare date lasts its whole day (SPEC.md §2)."""
    day = datetime.fromtimestamp(epoch_ms / 1000, tz) + timedelta(days=1)
    return int(day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def deny_hours(text: str) -> frozenset[int]:
    """SERVER_QUERY_CDR_DENY_TIME `1,8-11` as a set of hours (the registry validated it)."""
    hours: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        hours.update(range(int(first), int(last or first) + 1))
    return frozenset(hours)


def check_allowed(snap: Any, now_ms: int, tz: tzinfo | None) -> None:
    """SPEC §7: no query, export or report during a SERVER_QUERY_CDR_DENY_TIME hour."""
    hour = datetime.fromtimestamp(now_ms / 1000, tz).hour
    if hour in deny_hours(snap.cdr_query_deny_hours):
        raise QueryError(
            f"CDR queries are not allowed at {hour:02d}:00-{hour:02d}:59 "
            f"(SERVER_QUERY_CDR_DENY_TIME={snap.cdr_query_deny_hours})"
        )


def make_filter(
    snap: Any,
    now_ms: int,
    tz: tzinfo | None,
    start: str | None = None,
    end: str | None = None,
    **equal: str | None,
) -> CdrFilter:
    """The checked filter for `cdr query|export` and `report` (raises QueryError)."""
    check_allowed(snap, now_ms, tz)
    to_ms = from_ms = None
    if end:
        to_ms, date_only = parse_local_time(end, tz)
        if date_only:  # `to=2026-05-01` includes that whole day
            to_ms = end_of_day_ms(to_ms, tz)
    if start:
        from_ms, _ = parse_local_time(start, tz)
    if to_ms is None:
        to_ms = now_ms + 1 if from_ms is None else max(now_ms + 1, from_ms)
    if from_ms is None:
        from_ms = to_ms - DAY_MS
    if from_ms >= to_ms:
        raise QueryError("the range is empty: 'from' must be before 'to'")
    max_days = snap.cdr_query_max_days
    if to_ms - from_ms > max_days * DAY_MS:
        raise QueryError(f"the range spans more than {max_days} days (SERVER_QUERY_CDR_MAX_DAYS)")
    return CdrFilter(from_ms, to_ms, **equal)


def query(repo: CdrRepo, where: CdrFilter, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """Stored rows, newest first."""
    if limit < 1:
        raise QueryError(f"limit {limit} must be at least 1")
    return repo.query(**where.as_kwargs(), limit=limit, newest_first=True)


def query_json(
    repo: CdrRepo, where: CdrFilter, tz: tzinfo | None, limit: int = DEFAULT_LIMIT
) -> list[dict]:
    """`cdr query --json`: INTERFACE §6 CDR objects, newest first."""
    return [row_to_json(row, tz) for row in query(repo, where, limit)]


def iter_rows(repo: CdrRepo, where: CdrFilter, chunk: int = EXPORT_CHUNK) -> Iterator[dict]:
    """Every matching row, oldest first, read a chunk at a time (no whole-range list)."""
    after = None
    while True:
        rows = repo.query(**where.as_kwargs(), limit=chunk, newest_first=False, after_id=after)
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1]["id"]


def export_lines(
    repo: CdrRepo, where: CdrFilter, fmt: str, tz: tzinfo | None, chunk: int = EXPORT_CHUNK
) -> Iterator[str]:
    """`cdr export`: pipe lines, or CSV with a header row, each `\\n`-ended, oldest first."""
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "pipe":
        for row in iter_rows(repo, where, chunk):
            yield row_to_pipe_line(row, tz)
        return
    yield _csv_line(CSV_COLUMNS)
    for row in iter_rows(repo, where, chunk):
        doc = row_to_json(row, tz)
        yield _csv_line([doc[c] for c in CSV_COLUMNS])


def export_total(repo: CdrRepo, where: CdrFilter) -> int:
    """How many CDRs an export will write (for the progress display)."""
    return repo.count(**where.as_kwargs())


def _csv_line(values: Any) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
