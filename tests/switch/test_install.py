"""The engine wired into a service: pool balances follow admin changes exactly once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from vos3k.cli import main as cli
from vos3k.config import load_settings
from vos3k.params import Actor
from vos3k.service import VosService
from vos3k.store.models import Account
from vos3k.switch.install import install_switch

OPS = Actor("ops", "test")


@pytest.fixture
def service(tmp_path, capsys):
    assert cli(["init", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    settings = load_settings({"data-dir": str(tmp_path), "ssh-listen": "off"})
    svc = VosService(settings, Clock())
    svc.store.accounts.add(Account("ACME", balance=Decimal("10"), credit=Decimal("5")), OPS)
    svc.store.accounts.add(Account("VEND", balance=Decimal("3")), OPS)
    install_switch(svc)
    yield svc
    svc.store.close()


def test_topup_during_an_uncommitted_charge_keeps_both(service):
    pool, tracker = service.pool, service.engine._writer
    pool.set_account("ACME", Decimal("10"), Decimal("5"))
    pool.adjust_balance("ACME", Decimal("-0.06"))  # a call ended; its CDR is pending
    done = tracker.submit(
        {
            "call_uuid": "u1",
            "account": "ACME",
            "fee_e4": 600,
            "clearing_account": "VEND",
            "cost_e4": 100,
            "stop_ms": 1,
        }
    )
    assert tracker.uncommitted == {"ACME": Decimal("0.06"), "VEND": Decimal("0.01")}
    service.store.accounts.topup("ACME", Decimal("1"), OPS)
    assert pool.view("ACME").balance == Decimal("10.94")  # 10 + 1 in the db, 0.06 pending
    service.cdr_writer.flush()
    assert done.called and tracker.uncommitted == {}
    assert service.store.accounts.require("ACME").balance == Decimal("10.94")
    service.store.accounts.update("ACME", OPS, credit=Decimal("7"))
    view = pool.view("ACME")
    assert (view.balance, view.credit) == (Decimal("10.94"), Decimal("7"))


def test_deleted_account_leaves_the_pool_and_reservations_read_zero(service):
    service.pool.set_account("VEND", Decimal("3"), Decimal("0"))
    assert service.reservations("VEND") == Decimal(0)
    service.store.accounts.delete("VEND", OPS)
    assert "VEND" not in service.pool
    assert service.reservations("VEND") == Decimal(0)


def test_engine_stops_before_the_writer(service):
    children = list(service)
    assert children.index(service.cdr_writer) < [type(c).__name__ for c in children].index(
        "EngineService"
    )
