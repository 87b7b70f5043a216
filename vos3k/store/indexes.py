"""In-memory hot-path indexes over the store, rebuilt after an admin change.

Signalling never queries SQLite: "who is this source", "which routing gateways",
"which rate" and "which phone" are answered from these dictionaries.  A change made
through a repository calls `Store.changed(table)`; the matching index is rebuilt and
swapped in whole, so a lookup never sees a half-built index.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from vos3k.billing import rating
from vos3k.store.db import Store
from vos3k.store.models import Account, Gateway, Phone, Rate


class MappingIndex:
    """Mapping gateways by source: IP:port, then IP, then the longest CIDR (SPEC.md §2)."""

    def __init__(self, gateways: list[Gateway]):
        self._by_ip_port: dict[tuple[str, int], list[Gateway]] = {}
        self._by_ip: dict[str, list[Gateway]] = {}
        self._cidrs: list[tuple[ipaddress._BaseNetwork, Gateway]] = []
        for gw in gateways:
            if gw.kind != "mapping":
                continue
            for entry in (e.strip() for e in gw.ip.split(",") if e.strip()):
                self._add(entry, gw)
        # Longest CIDR first; then priority, then name (SPEC.md §2 match order).
        self._cidrs.sort(key=lambda item: (-item[0].prefixlen, item[1].priority, item[1].name))
        for table in (self._by_ip_port, self._by_ip):
            for bucket in table.values():
                bucket.sort(key=lambda g: (g.priority, g.name))

    def _add(self, entry: str, gw: Gateway) -> None:
        if "/" in entry:
            self._cidrs.append((ipaddress.ip_network(entry, strict=False), gw))
            return
        host, sep, port = entry.rpartition(":")
        if sep and port.isdigit() and "." in host:  # IPv4:port (bare IPv6 has many colons)
            self._by_ip_port.setdefault((host, int(port)), []).append(gw)
        elif gw.port:
            self._by_ip_port.setdefault((entry, gw.port), []).append(gw)
        else:
            self._by_ip.setdefault(entry, []).append(gw)

    def match(self, ip: str, port: int, protocol: str = "sip") -> Gateway | None:
        for bucket in (self._by_ip_port.get((ip, port)), self._by_ip.get(ip)):
            for gw in bucket or ():
                if gw.protocol == protocol:
                    return gw
        if self._cidrs:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return None
            for network, gw in self._cidrs:
                if gw.protocol == protocol and address in network:
                    return gw
        return None


class RateIndex:
    """Rate tables by name, each a billing RateTable (longest prefix match)."""

    def __init__(self, rates: list[Rate]):
        grouped: dict[str, list[rating.Rate]] = {}
        for r in rates:
            grouped.setdefault(r.rate_table, []).append(
                rating.Rate(r.prefix, r.fee, r.first_period_s, r.period_s, r.area)
            )
        self._tables = {name: rating.RateTable(rows) for name, rows in grouped.items()}

    def table(self, name: str) -> rating.RateTable | None:
        return self._tables.get(name)

    def lookup(self, table: str, number: str) -> rating.Rate | None:
        rates = self._tables.get(table)
        return None if rates is None else rates.lookup(number)


class HotIndexes:
    """All hot-path indexes of one store, kept current through `Store.subscribe`."""

    def __init__(self, store: Store):
        self._store = store
        self._builders: dict[str, Callable[[], None]] = {
            "gateways": self._build_gateways,
            "rates": self._build_rates,
            "phones": self._build_phones,
            "accounts": self._build_accounts,
        }
        for build in self._builders.values():
            build()
        store.subscribe(self._changed)

    def _changed(self, table: str) -> None:
        build = self._builders.get(table)
        if build is not None:
            build()

    def _build_gateways(self) -> None:
        gateways = self._store.gateways.list()
        self.mapping = MappingIndex(gateways)
        self.routing: tuple[Gateway, ...] = tuple(g for g in gateways if g.kind == "routing")
        self.gateways: dict[str, Gateway] = {g.name: g for g in gateways}

    def _build_rates(self) -> None:
        self.rates = RateIndex(list(self._store.rates.iter_all()))

    def _build_phones(self) -> None:
        self.phones: dict[str, Phone] = {p.e164: p for p in self._store.phones.list()}

    def _build_accounts(self) -> None:
        self.accounts: dict[str, Account] = {a.name: a for a in self._store.accounts.list()}
