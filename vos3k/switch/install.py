"""Wires the switching engine into the running service: indexes, money, CDRs, shutdown.

The protocol layers (SIP, H.323) install after this and register their leg factories
with `service.engine.add_leg_factory(...)` and, for SIP, a phone locator.  It also
publishes `service.static_blacklist()` (the blacklist entity compiled, SPEC §2; used
at step 4 here and at step 1 by `switch/protect.py`) and `service.dyn_screen` (the
dynamic blacklist's hooks the engine calls, SPEC §10).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from vos3k.billing.accounts import AccountPool
from vos3k.cdr.writer import CdrWriter
from vos3k.store.indexes import HotIndexes
from vos3k.store.models import Account, from_e4
from vos3k.switch.call import PhoneTarget
from vos3k.switch.engine import Engine
from vos3k.switch.guard import StaticBlacklist
from vos3k.switch.protect import DynamicScreen

ZERO = Decimal(0)


class ChargeTracker:
    """The CDR writer as the engine sees it, remembering charges not yet committed.

    The account pool's balances run ahead of the database by exactly these amounts,
    so after an admin change (top-up, `cdr modify`, credit) an account is resynced as
    `database balance − uncommitted charges` and no charge is lost or counted twice.
    """

    def __init__(self, writer: CdrWriter):
        self._writer = writer
        self.uncommitted: dict[str, Decimal] = {}

    @property
    def full(self) -> bool:
        return self._writer.full

    def submit(self, row: Mapping[str, Any]) -> defer.Deferred:
        charges = [
            (row.get(name), from_e4(row.get(money)))
            for money, name in (("fee_e4", "account"), ("cost_e4", "clearing_account"))
            if row.get(money) and row.get(name)
        ]
        for account, amount in charges:
            self.uncommitted[account] = self.uncommitted.get(account, ZERO) + amount

        def settled(result: object) -> object:
            for account, amount in charges:
                left = self.uncommitted[account] - amount
                if left:
                    self.uncommitted[account] = left
                else:
                    del self.uncommitted[account]
            return result

        return self._writer.submit(row).addBoth(settled)


class EngineService(Service):
    """Stops before the CDR writer (a later child stops first): SIGTERM ends every call
    as 13 and their CDRs reach the writer before it flushes (SPEC.md §14)."""

    log = Logger()

    def __init__(self, engine: Engine):
        self.engine = engine

    def stopService(self) -> defer.Deferred:
        super().stopService()
        live = len(self.engine)
        if live:
            self.log.info("shutdown: ending {n} calls", n=live)
        return self.engine.shutdown()


def install_switch(service) -> Engine:
    """Create the engine on `service.engine` (with `service.indexes`, `.pool`)."""
    store = service.store
    indexes = getattr(service, "indexes", None) or HotIndexes(store)
    pool = AccountPool()
    tracker = ChargeTracker(service.cdr_writer)
    blacklist: dict[str, StaticBlacklist | None] = {"compiled": None}

    def static_blacklist() -> StaticBlacklist:
        """The store's entries compiled; recompiled after a change or an entry's expiry."""
        compiled = blacklist["compiled"]
        now = service.now_ms()
        if compiled is None or (
            compiled.valid_until_ms is not None and now >= compiled.valid_until_ms
        ):
            compiled = StaticBlacklist.compile(store.blacklist.list(now_ms=now), now)
            for problem in compiled.problems:
                EngineService.log.warn("blacklist entry skipped: {problem}", problem=problem)
            blacklist["compiled"] = compiled
        return compiled

    def locate(e164: str) -> PhoneTarget | None:
        locator = getattr(service, "phone_locator", None)
        return None if locator is None else locator(e164)

    def changed(table: str) -> None:
        if table == "blacklist":
            blacklist["compiled"] = None
        elif table == "accounts":
            # After the batch in flight (if any) settled: its debits are then both in
            # the database and gone from `tracker.uncommitted`, never in both or neither.
            # The balances are read then, not from the index rebuilt a moment ago.
            service.cdr_writer.when_settled(
                lambda: resync_accounts({a.name: a for a in store.accounts.list()}, pool, tracker)
            )

    store.subscribe(changed)
    screen = DynamicScreen()
    engine = Engine(
        clock=service.reactor,
        params=service.params,
        directory=indexes,
        pool=pool,
        writer=tracker,
        calls=service.calls,
        leg_factories={},
        locate=locate,
        blacklist=static_blacklist,
        dyn=screen,
    )
    service.indexes = indexes
    service.pool = pool
    service.engine = engine
    service.static_blacklist = static_blacklist
    service.dyn_screen = screen
    service.reservations = lambda name: pool.view(name).reserved if name in pool else ZERO
    EngineService(engine).setServiceParent(service)
    return engine


def resync_accounts(
    accounts: Mapping[str, Account], pool: AccountPool, tracker: ChargeTracker
) -> None:
    """Bring the pool's committed balances and credits in line with the database
    (`accounts`: the stored accounts by name, read with no CDR batch in flight)."""
    for name, account in accounts.items():
        if name in pool:
            pending = tracker.uncommitted.get(name, ZERO)
            pool.set_account(name, account.balance - pending, account.credit)
    for name in [n for n in pool.names() if n not in accounts]:
        pool.remove_account(name)
