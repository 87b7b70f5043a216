"""`rate import`: streamed CSV, all or nothing, rejected line numbers (INTERFACE.md §2)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.admin.rateimport import Progress, import_file, parse_row
from vos3k.params import SYSTEM
from vos3k.store.models import Rate


@pytest.mark.parametrize(
    ("cells", "expect"),
    [
        pytest.param(["44", "0.06"], Rate("T", "44", Decimal("0.06")), id="defaults-60-60"),
        pytest.param(["1", "0.1", "1", "1", "US"], Rate("T", "1", Decimal("0.1"), 1, 1, "US"),
                     id="SPEC-2-per-second"),
        pytest.param(["1", "0.1", "6", "0"], Rate("T", "1", Decimal("0.1"), 0, 6),
                     id="SPEC-2-first-period-0"),
        pytest.param(["1x", "0.1"], "prefix", id="digits"),
        pytest.param(["1", "0.00001"], "more than 4 decimals", id="SPEC-1-money"),
        pytest.param(["1", "-1"], "negative", id="negative"),
        pytest.param(["1", "1", "0"], "period", id="period-ge-1"),
        pytest.param(["1"], "columns", id="columns"),
    ],
)  # fmt: skip
def test_parse_row(cells, expect):
    result = parse_row("T", cells)
    if isinstance(expect, Rate):
        assert result == expect
    else:
        assert isinstance(result, str) and expect in result


@given(st.lists(st.text(max_size=12), max_size=7))
def test_parse_row_never_raises(cells):
    assert isinstance(parse_row("T", cells), Rate | str)


def test_import_adds_updates_and_audits(service, tmp_path):
    service.store.rates.put(Rate("T", "44", Decimal("1")), SYSTEM)
    path = tmp_path / "r.csv"
    path.write_text("prefix,fee,period,first_period,area\n44,0.2,60,60,UK\n1,0.06,6,6,US\n\n")
    summary = import_file(service.store, "T", path, SYSTEM)
    assert (summary.rows, summary.added, summary.updated, summary.ok) == (2, 1, 1, True)
    assert service.store.rates.get("T", "44").fee == Decimal("0.2")
    assert service.store.audit.recent(1)[0].action == "rate import"


def test_bad_lines_import_nothing(run, service, tmp_path):
    (tmp_path / "r.csv").write_text("1,0.1\n2,abc\n3,0.1\nx,1\n1,0.2\n")
    outcome = run("rate import T r.csv", "operator")
    assert outcome.code == 1
    assert "line 2:" in outcome.err and "line 4:" in outcome.err
    assert "line 5: prefix 1 appears twice" in outcome.err
    assert "nothing imported" in outcome.err
    assert service.store.rates.list("T") == []


def test_import_command_summary(run, service, tmp_path):
    (tmp_path / "r.csv").write_text("".join(f"{p},0.01\n" for p in range(100, 150)))
    outcome = run("rate import T r.csv", "operator")
    assert outcome.code == 0, outcome
    assert "50 rows, 50 added, 0 updated, 0 rejected" in outcome.out
    assert len(service.store.rates.list("T")) == 50
    assert run("rate import T missing.csv").code == 1
    assert run("rate import T r.csv", "viewer").code == 1


def test_progress_reports(service, tmp_path, monkeypatch):
    monkeypatch.setattr("vos3k.admin.rateimport.CHUNK", 10)
    (tmp_path / "r.csv").write_text("".join(f"{p},0.01\n" for p in range(100, 125)))
    seen: list[Progress] = []
    import_file(service.store, "T", tmp_path / "r.csv", SYSTEM, seen.append)
    assert seen == [Progress("checking", 10), Progress("checking", 20), Progress("importing", 25)]
