"""Conversion between the Cdr value, its store row (CDR_COLUMNS) and its output forms."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from vos3k.cdr.record import Cdr, to_pipe_line
from vos3k.store.models import from_e4, to_e4

# Cdr attribute -> store column, where the names differ (times and durations are *_ms;
# money is integer ten-thousandths, SPEC.md §1 / STYLE.md §4).
_RENAMED = {
    "start_time": "start_ms",
    "stop_time": "stop_ms",
    "hold_time": "hold_ms",
    "caller_pdd": "caller_pdd_ms",
    "callee_pdd": "callee_pdd_ms",
}
_MONEY = {"fee": "fee_e4", "cost": "cost_e4"}
_SAME = (
    "caller_e164",
    "callee_e164",
    "end_reason",
    "end_direction",
    "caller_gateway_id",
    "callee_gateway_id",
    "caller_ip",
    "callee_ip",
    "caller_access_e164",
    "callee_access_e164",
    "caller_to_gateway_e164",
    "callee_to_gateway_e164",
    "callee_billing",
    "billing_mode",
    "account",
    "sip_code",
    "billed_seconds",
    "rate_prefix",
    "area",
    "clearing_account",
    "attempts",
)
_TEXT = frozenset(
    {
        "caller_e164",
        "callee_e164",
        "caller_gateway_id",
        "callee_gateway_id",
        "caller_ip",
        "callee_ip",
        "caller_access_e164",
        "callee_access_e164",
        "caller_to_gateway_e164",
        "callee_to_gateway_e164",
        "account",
        "rate_prefix",
        "area",
        "clearing_account",
    }
)


def cdr_to_row(cdr: Cdr, call_uuid: str, extra: Mapping[str, Any] | None = None) -> dict:
    """The row CdrWriter.submit() takes: `call_uuid` makes a journal replay idempotent."""
    row: dict[str, Any] = {"call_uuid": call_uuid}
    for name in _SAME:
        value = getattr(cdr, name)
        row[name] = int(value) if isinstance(value, enum.IntEnum) else value
    for name, column in _RENAMED.items():
        row[column] = getattr(cdr, name)
    for name, column in _MONEY.items():
        row[column] = to_e4(getattr(cdr, name))
    row["extra"] = dict(extra) if extra else None
    return row


def row_to_cdr(row: Mapping[str, Any], cdr_id: int | None = None) -> Cdr:
    """A stored (or submitted) row as a Cdr; NULL columns take the Cdr defaults.

    Raises ValueError/TypeError for a row that is not a CDR (a bug upstream, not input).
    """
    values: dict[str, Any] = {}
    for name in _SAME:
        value = row.get(name)
        if value is not None:
            values[name] = value
        elif name in _TEXT:
            values[name] = ""
    for name, column in _RENAMED.items():
        value = row.get(column)
        values[name] = 0 if value is None else value
    for name, column in _MONEY.items():
        values[name] = from_e4(row.get(column))
    values["id"] = cdr_id if cdr_id is not None else row.get("id")
    return Cdr(**values)


def row_to_pipe_line(row: Mapping[str, Any], tz: tzinfo | None) -> str:
    """The row's 19-field pipe line (INTERFACE §6), `\\n`-ended."""
    return to_pipe_line(row_to_cdr(row), tz)  # type: ignore[arg-type]


def row_to_json(row: Mapping[str, Any], tz: tzinfo | None) -> dict[str, Any]:
    """The INTERFACE §6 `--json` CDR object of a stored row (`cdr query --json`)."""
    return row_to_cdr(row).to_json_dict(tz)  # type: ignore[arg-type]


def server_tz(name: str) -> tzinfo | None:
    """settings.timezone as a tzinfo; "" is the server's own local time (None)."""
    return ZoneInfo(name) if name else None
