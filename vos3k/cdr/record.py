"""The CDR value and its 19-field pipe line and JSON forms (SPEC §7, INTERFACE §6)."""

from __future__ import annotations

import enum
import re
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from attrs import field, fields, frozen
from attrs.validators import ge, instance_of

from vos3k.switch.reasons import EndDirection, EndReason, reason_name


class BillingMode(enum.IntEnum):
    """CDR field 17: who was billed how (SPEC §5)."""

    NONE = -1
    PHONE = 0
    GATEWAY = 1
    CARD = 3


class CalleeBilling(enum.IntEnum):
    """CDR field 16: who pays (SPEC §5)."""

    CALLER = 0
    CALLEE = 1


TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_UNSAFE = str.maketrans({"|": "_", "\r": "_", "\n": "_"})
_ZERO = Decimal("0")
_TIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


@frozen
class Malformed:
    """A pipe line that is not a CDR, and why."""

    detail: str


@frozen
class Cdr:
    """One call's record. The first 19 fields are the pipe line, in INTERFACE §6 order."""

    caller_e164: str
    callee_e164: str
    start_time: int = field(validator=ge(0))  # UTC epoch ms
    stop_time: int = field(validator=ge(0))  # UTC epoch ms; picks the hour file
    hold_time: int = field(validator=ge(0))  # ms, measured, unrounded
    end_reason: EndReason = field(converter=EndReason)
    end_direction: EndDirection = field(converter=EndDirection)
    caller_gateway_id: str = ""
    callee_gateway_id: str = ""
    caller_ip: str = ""
    callee_ip: str = ""
    caller_access_e164: str = ""
    callee_access_e164: str = ""
    caller_to_gateway_e164: str = ""
    callee_to_gateway_e164: str = ""
    callee_billing: CalleeBilling = field(default=CalleeBilling.CALLER, converter=CalleeBilling)
    billing_mode: BillingMode = field(default=BillingMode.NONE, converter=BillingMode)
    caller_pdd: int = field(default=0, validator=ge(0))  # ms
    callee_pdd: int = field(default=0, validator=ge(0))  # ms
    # SQLite extras (SPEC §7): not on the pipe line.
    id: int | None = None
    account: str = ""
    fee: Decimal = field(default=_ZERO, validator=instance_of(Decimal))
    cost: Decimal = field(default=_ZERO, validator=instance_of(Decimal))
    sip_code: int = 0  # the final status the caller got (200 if answered)
    billed_seconds: int = field(default=0, validator=ge(0))
    rate_prefix: str = ""
    area: str = ""
    clearing_account: str = ""
    attempts: int = field(default=0, validator=ge(0))

    @property
    def end_reason_name(self) -> str:
        """The published name of the end reason (SPEC §8)."""
        return reason_name(self.end_reason)

    def to_json_dict(self, tz: tzinfo) -> dict[str, Any]:
        """INTERFACE §6 `--json` CDR object: snake_case keys, money as decimal strings."""
        doc: dict[str, Any] = {}
        for name in PIPE_FIELDS:
            value = getattr(self, name)
            if name in _TIME_FIELDS:
                value = format_time(value, tz)
            elif isinstance(value, enum.IntEnum):
                value = int(value)
            doc[name] = value
        doc.update(
            id=self.id,
            end_reason_name=self.end_reason_name,
            sip_code=self.sip_code,
            account=self.account,
            fee=str(self.fee),
            cost=str(self.cost),
            billed_seconds=self.billed_seconds,
        )
        return doc


# INTERFACE §6: the 19 pipe fields in order (the attrs order of Cdr's first 19 fields).
PIPE_FIELDS: tuple[str, ...] = tuple(a.name for a in fields(Cdr))[:19]
_TIME_FIELDS = frozenset({"start_time", "stop_time"})
# Integer fields and the values each may take (None: any whole number ≥ 0).
_INT_FIELDS: dict[str, frozenset[int] | None] = {
    "hold_time": None,
    "end_reason": frozenset(EndReason),
    "end_direction": frozenset(EndDirection),
    "callee_billing": frozenset(CalleeBilling),
    "billing_mode": frozenset(BillingMode),
    "caller_pdd": None,
    "callee_pdd": None,
}


def format_time(epoch_ms: int, tz: tzinfo) -> str:
    """UTC epoch ms as server local `YYYY-MM-DD HH:MM:SS` (seconds truncated)."""
    return datetime.fromtimestamp(epoch_ms // 1000, tz).strftime(TIME_FORMAT)


def parse_time(text: str, tz: tzinfo) -> int | None:
    """Server local `YYYY-MM-DD HH:MM:SS` as UTC epoch ms (the earlier of a DST fold)."""
    if _TIME_TEXT.fullmatch(text) is None:
        return None
    try:
        local = datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        return None
    return int(local.replace(tzinfo=tz).timestamp()) * 1000


def sanitise(value: str) -> str:
    """INTERFACE §6: `|`, CR and LF inside a value become `_`."""
    return value.translate(_UNSAFE)


def to_pipe_line(cdr: Cdr, tz: tzinfo) -> str:
    """The 19-field pipe line, `\\n`-ended, times in `tz` (INTERFACE §6)."""
    parts = []
    for name in PIPE_FIELDS:
        value = getattr(cdr, name)
        if name in _TIME_FIELDS:
            parts.append(format_time(value, tz))
        elif isinstance(value, int):
            parts.append(str(int(value)))
        else:
            parts.append(sanitise(value))
    return "|".join(parts) + "\n"


def from_pipe_line(line: str, tz: tzinfo) -> Cdr | Malformed:
    """Parse one pipe line (with or without its `\\n`); extras take their defaults."""
    parts = line.removesuffix("\n").split("|")
    if len(parts) != len(PIPE_FIELDS):
        return Malformed(f"{len(parts)} fields, not {len(PIPE_FIELDS)}")
    values: dict[str, Any] = {}
    for name, text in zip(PIPE_FIELDS, parts, strict=True):
        if name in _TIME_FIELDS:
            parsed = parse_time(text, tz)
            if parsed is None or parsed < 0:
                return Malformed(f"{name}: {text!r} is not YYYY-MM-DD HH:MM:SS")
            values[name] = parsed
        elif name in _INT_FIELDS:
            number = _integer(text)
            allowed = _INT_FIELDS[name]
            if number is None or (allowed is None and number < 0):
                return Malformed(f"{name}: {text!r} is not a whole number ≥ 0")
            if allowed is not None and number not in allowed:
                return Malformed(f"{name}: {text!r} is not one of the allowed values")
            values[name] = number
        elif "\r" in text or "\n" in text:
            return Malformed(f"{name}: line break inside a value")
        else:
            values[name] = text
    return Cdr(**values)


def _integer(text: str) -> int | None:
    # Plain ASCII decimal only: int() would also take "+1", " 1", "1_0" and other digits.
    body = text[1:] if text.startswith("-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(text)


def hour_file_name(stop_time_ms: int, tz: tzinfo) -> str:
    """SPEC §7: the hour file a CDR goes to, by stopTime's local hour (YYYYMMDDHH.txt)."""
    return datetime.fromtimestamp(stop_time_ms // 1000, tz).strftime("%Y%m%d%H") + ".txt"
