"""Shared builders for the CDR output tests: a store, live params, a writer, CDR rows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from twisted.internet.task import Clock

from vos3k.cdr.record import Cdr
from vos3k.cdr.rows import cdr_to_row
from vos3k.cdr.writer import CdrWriter
from vos3k.params import Actor, LiveParams
from vos3k.store.db import open_store
from vos3k.store.models import Account
from vos3k.switch.reasons import EndDirection, EndReason

OPS = Actor("ops", "test")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_ms(*args: int, tz=SHANGHAI) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp()) * 1000


def make_cdr(n: int, stop_ms: int, fee: str = "0.12", hold_ms: int = 60_000, **more) -> Cdr:
    values = dict(
        caller_e164=f"86138{n:08d}",
        callee_e164="4412345678",
        start_time=stop_ms - hold_ms - 3000,
        stop_time=stop_ms,
        hold_time=hold_ms,
        end_reason=EndReason.NORMAL_CLEARING if hold_ms else EndReason.NO_ANSWER,
        end_direction=EndDirection.CALLER,
        caller_gateway_id="CUST",
        callee_gateway_id="VF1",
        callee_pdd=1500,
        account="ACME",
        fee=Decimal(fee),
    )
    values.update(more)
    return Cdr(**values)


def make_row(n: int, stop_ms: int, **more) -> dict:
    return cdr_to_row(make_cdr(n, stop_ms, **more), call_uuid=f"call-{n}")


class Rig:
    """An in-memory store with account ACME, live params, a Clock and a CdrWriter."""

    def __init__(self, path=None, **params):
        self.store = open_store(path)
        self.params = LiveParams(self.store.params)
        for name, value in params.items():
            self.set(name, value)
        if self.store.accounts.get("ACME") is None:
            self.store.accounts.add(Account("ACME", balance=Decimal("100")), OPS)
        self.clock = Clock()
        self.writer = CdrWriter(self.store.cdrs, self.params, self.clock)

    def set(self, name: str, value) -> None:
        self.params.set(name, str(value), OPS)

    def commit(self, rows: list[dict]) -> list[int]:
        got: list[int] = []
        for row in rows:
            self.writer.submit(row).addCallback(got.append)
        self.writer.flush()
        return got
