"""SPEC §7 "Query": ranges, defaults, refusals, streamed export, ASR/ACD/PDD reports."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cdr.helpers import SHANGHAI, Rig, local_ms, make_row
from vos3k.cdr.query import (
    CSV_COLUMNS,
    DAY_MS,
    QueryError,
    deny_hours,
    export_lines,
    export_total,
    make_filter,
    parse_local_time,
    query,
    query_json,
)
from vos3k.cdr.rows import row_to_pipe_line

NOW = local_ms(2026, 5, 2, 12, 0, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-05-01", (local_ms(2026, 5, 1), True), id="SPEC-7-date"),
        pytest.param(
            "2026-05-01 10:30", (local_ms(2026, 5, 1, 10, 30), False), id="SPEC-7-minutes"
        ),
        pytest.param(
            "2026-05-01 10:30:05", (local_ms(2026, 5, 1, 10, 30, 5), False), id="SPEC-7-secs"
        ),
    ],
)
def test_parse_local_time(text, expected):
    assert parse_local_time(text, SHANGHAI) == expected


@given(st.text(max_size=25))
def test_parse_local_time_gives_a_time_or_a_one_line_error(text):
    try:
        ms, date_only = parse_local_time(text, SHANGHAI)
        assert isinstance(ms, int) and isinstance(date_only, bool)
    except QueryError as exc:
        assert "\n" not in str(exc)


def snap(rig):
    return rig.params.snapshot


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(None, None, (NOW + 1 - DAY_MS, NOW + 1), id="SPEC-7-default-last-24h"),
        pytest.param("2026-05-01", None, (local_ms(2026, 5, 1), NOW + 1), id="from-to-now"),
        pytest.param(
            None,
            "2026-05-01",
            (local_ms(2026, 5, 1), local_ms(2026, 5, 2)),
            id="bare-end-date-is-the-whole-day",
        ),
        pytest.param(
            None,
            "2026-05-01 06:00",
            (local_ms(2026, 4, 30, 6), local_ms(2026, 5, 1, 6)),
            id="to-minus-24h",
        ),
    ],
)
def test_default_range(start, end, expected):
    where = make_filter(snap(Rig()), NOW, SHANGHAI, start, end)
    assert (where.from_ms, where.to_ms) == expected


@pytest.mark.parametrize(
    ("params", "start", "end", "message"),
    [
        pytest.param(
            {"SERVER_QUERY_CDR_MAX_DAYS": 2},
            "2026-04-29",
            "2026-05-02",
            "more than 2 days",
            id="SPEC-9-SERVER_QUERY_CDR_MAX_DAYS",
        ),
        pytest.param(
            {"SERVER_QUERY_CDR_DENY_TIME": "1,8-12"},
            None,
            None,
            "not allowed at 12:00",
            id="SPEC-9-SERVER_QUERY_CDR_DENY_TIME",
        ),
        pytest.param({}, "2026-05-02", "2026-05-01", "range is empty", id="reversed"),
        pytest.param({}, "2026-13-01", None, "2026-13-01", id="bad-month"),
    ],
)
def test_refusals_are_one_line_errors(params, start, end, message):
    with pytest.raises(QueryError, match=message):
        make_filter(snap(Rig(**params)), NOW, SHANGHAI, start, end)


def test_deny_hours_outside_the_list_allow_queries():
    assert deny_hours("1,8-11") == frozenset({1, 8, 9, 10, 11})
    make_filter(snap(Rig(SERVER_QUERY_CDR_DENY_TIME="1,8-11")), NOW, SHANGHAI)


def loaded_rig(n: int = 5) -> tuple[Rig, list[dict]]:
    rig = Rig()
    rows = [make_row(i, NOW - (n - i) * 60_000, hold_ms=60_000 * (i % 2)) for i in range(n)]
    rig.commit(rows)
    return rig, rows


def test_query_is_newest_first_limited_and_filtered():
    rig, rows = loaded_rig()
    where = make_filter(snap(rig), NOW, SHANGHAI)
    assert [r["call_uuid"] for r in query(rig.store.cdrs, where, limit=2)] == ["call-4", "call-3"]
    where = make_filter(snap(rig), NOW, SHANGHAI, caller=rows[1]["caller_e164"])
    objects = query_json(rig.store.cdrs, where, SHANGHAI)
    assert [(o["id"], o["fee"], o["stop_time"]) for o in objects] == [
        (2, "0.12", "2026-05-02 11:56:00")
    ]


def test_export_streams_pipe_lines_and_csv_oldest_first():
    rig, rows = loaded_rig()
    where = make_filter(snap(rig), NOW, SHANGHAI)
    assert export_total(rig.store.cdrs, where) == 5
    pipe = list(export_lines(rig.store.cdrs, where, "pipe", SHANGHAI, chunk=2))
    assert pipe == [row_to_pipe_line(r, SHANGHAI) for r in rows]
    table = list(
        csv.reader(
            io.StringIO("".join(export_lines(rig.store.cdrs, where, "csv", SHANGHAI, chunk=2)))
        )
    )
    assert table[0] == list(CSV_COLUMNS) and len(table) == 6
    assert table[1][CSV_COLUMNS.index("fee")] == "0.12"
    with pytest.raises(QueryError, match="xml"):
        list(export_lines(rig.store.cdrs, where, "xml", SHANGHAI))
