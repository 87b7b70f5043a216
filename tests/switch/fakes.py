"""Test doubles for the switching core: an in-memory directory, snapshots, a world."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from attrs import define, field

from vos3k.billing.accounts import AccountPool
from vos3k.params import PARAMS, Snapshot
from vos3k.store.indexes import MappingIndex, RateIndex
from vos3k.store.models import Account, Gateway, Phone, Rate
from vos3k.switch.admission import (
    Admit,
    Arrival,
    Challenge,
    DynamicCheck,
    NumberBlacklist,
    admit,
    call_settings,
)
from vos3k.switch.call import Call, PhoneTarget, Switchboard
from vos3k.switch.router import Load, Router

D = Decimal
CUSTOMER_IP = "203.0.113.10"


def snapshot(**overrides: Any) -> Snapshot:
    """Default parameters with overrides by VOS3000 name (values already typed)."""
    values = PARAMS.defaults()
    for name, value in overrides.items():
        values[PARAMS.get(name).name] = value
    return Snapshot(PARAMS, values)


def mapping(name: str = "CUST", **kw: Any) -> Gateway:
    kw.setdefault("ip", CUSTOMER_IP)
    kw.setdefault("account", "cust")
    return Gateway(name=name, kind="mapping", **kw)


def vendor(name: str, ip: str, prefixes: tuple[str, ...] = ("44",), **kw: Any) -> Gateway:
    kw.setdefault("account", "vend")
    return Gateway(name=name, kind="routing", ip=ip, prefixes=prefixes, **kw)


@define(slots=False)
class Directory:
    """The HotIndexes shape, built from plain lists."""

    gateways_list: list[Gateway]
    rates_list: list[Rate]
    phones_list: list[Phone] = field(factory=list)
    accounts_list: list[Account] = field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.mapping = MappingIndex(self.gateways_list)
        self.routing = tuple(g for g in self.gateways_list if g.kind == "routing")
        self.gateways = {g.name: g for g in self.gateways_list}
        self.rates = RateIndex(self.rates_list)
        self.phones = {p.e164: p for p in self.phones_list}
        self.accounts = {a.name: a for a in self.accounts_list}


def default_directory(*routing: Gateway, customer: Gateway | None = None, **kw: Any) -> Directory:
    """CUST (prepaid 100.00, 0.06/min 60/60) calling 44...; vendors cost 0.03/min."""
    gateways = [customer or mapping(), *routing]
    rates = kw.pop(
        "rates",
        [
            Rate("retail", "44", D("0.06"), 60, 60, "UK"),
            Rate("wholesale", "44", D("0.03"), 1, 1, "UK"),
        ],
    )
    accounts = kw.pop(
        "accounts",
        [
            Account("cust", balance=D("100"), rate_table="retail"),
            Account("vend", type="postpaid", rate_table="wholesale"),
        ],
    )
    return Directory(gateways, rates, kw.pop("phones", []), accounts)


class World:
    """Admission + calls over one directory, pool and load, driven by literal now_ms."""

    def __init__(
        self,
        directory: Directory,
        snap: Snapshot | None = None,
        blacklist: NumberBlacklist | None = None,
        bindings: dict[str, PhoneTarget] | None = None,
    ) -> None:
        self.directory = directory
        self.snap = snap or snapshot()
        self.settings = call_settings(self.snap)
        self.load = Load()
        self.pool = AccountPool()
        self.blacklist = blacklist
        self.dyn: DynamicCheck | None = None
        self.board = Switchboard(
            directory,
            self.load,
            self.pool,
            Router(directory, self.load, self.pool),
            locate=(bindings or {}).get,
        )
        self.count = 0

    def arrive(
        self, now_ms: int, callee: str = "004412345678", caller: str = "8613800138000", **kw: Any
    ) -> tuple[Call | None, list[Any]]:
        self.count += 1
        kw.setdefault("source_ip", CUSTOMER_IP)
        kw.setdefault("source_port", 5060)
        kw.setdefault("protocol", "sip")
        arrival = Arrival(f"c{self.count}", caller=caller, callee=callee, **kw)
        outcome = admit(
            arrival, self.settings, self.directory, self.load, self.pool, now_ms, self.blacklist,
            self.dyn,
        )  # fmt: skip
        if isinstance(outcome, Challenge):
            return None, [outcome]
        if isinstance(outcome, Admit):
            return Call.admitted(outcome.context, self.settings, self.board, now_ms)
        return Call.refused(outcome, self.settings, self.board, now_ms)
