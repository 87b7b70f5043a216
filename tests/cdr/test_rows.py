"""Cdr <-> store row <-> INTERFACE §6 JSON: money as e4 integers, times as *_ms."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cdr.helpers import SHANGHAI, Rig, local_ms, make_cdr
from vos3k.cdr.record import to_pipe_line
from vos3k.cdr.rows import cdr_to_row, row_to_cdr, row_to_json, row_to_pipe_line, server_tz
from vos3k.store.repos import CDR_COLUMNS

STOP = local_ms(2026, 5, 1, 10, 1, 5)


def test_row_has_exactly_the_store_columns_in_store_units():
    row = cdr_to_row(make_cdr(1, STOP, fee="0.1234", cost=Decimal("0.05")), "u1", {"mos": "4.1"})
    assert set(row) == set(CDR_COLUMNS)
    assert (row["fee_e4"], row["cost_e4"], row["stop_ms"], row["hold_ms"]) == (
        1234,
        500,
        STOP,
        60_000,
    )
    assert row["extra"] == {"mos": "4.1"} and type(row["end_reason"]) is int


@given(fee=st.decimals(min_value=0, max_value=10**6, places=4), hold=st.integers(0, 10**8))
def test_round_trip(fee, hold):
    cdr = make_cdr(1, STOP, fee=str(fee), hold_ms=hold)
    assert row_to_cdr(cdr_to_row(cdr, "u1"), cdr_id=None) == cdr


def test_stored_row_json_object_is_interface_6():
    rig = Rig()
    cdr = make_cdr(7, STOP, fee="0.12", sip_code=200, billed_seconds=61)
    rig.commit([cdr_to_row(cdr, "u7")])
    stored = rig.store.cdrs.query()[0]
    doc = row_to_json(stored, SHANGHAI)
    assert doc == attrs.evolve(cdr, id=1).to_json_dict(SHANGHAI)
    assert (doc["fee"], doc["stop_time"], doc["end_reason_name"]) == (
        "0.12",
        "2026-05-01 10:01:05",
        doc["end_reason_name"],
    )
    assert row_to_pipe_line(stored, SHANGHAI) == to_pipe_line(cdr, SHANGHAI)
    assert rig.store.accounts.require("ACME").balance == Decimal("99.88")


@pytest.mark.parametrize(
    ("name", "local"),
    [pytest.param("", True, id="server-local"), pytest.param("Asia/Shanghai", False, id="named")],
)
def test_server_tz(name, local):
    assert (server_tz(name) is None) is local
