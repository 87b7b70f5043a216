"""`blacklist list|del` over the running server's in-memory entries: dynamic bans and
digest suspensions (SPEC §2 blacklist kinds, §10), next to the store's static ones."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from twisted.internet import task

from tests.switch.fakes import mapping, snapshot
from vos3k.sip.auth import SuspensionTracker
from vos3k.store.models import BlacklistEntry
from vos3k.switch.admission import CallContext
from vos3k.switch.guard import StaticBlacklist
from vos3k.switch.protect import DynamicScreen, Protection

from .conftest import NOW_MS

SUSPENDED_IP = "192.0.2.66"
BANNED = "8613800138000"


@pytest.fixture
def protected(service):
    clock = task.Clock()
    clock.advance(NOW_MS / 1000)
    screen = DynamicScreen()
    suspensions = SuspensionTracker()
    service.protection = Protection(
        clock=clock,
        params=SimpleNamespace(snapshot=snapshot()),
        gateways=lambda: (),
        static_blacklist=lambda: StaticBlacklist(),
        screen=screen,
        suspensions=suspensions,
    )
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="global", SS_BLACK_LIST_CPS_LIMIT=1)
    caller = CallContext(
        "c1", NOW_MS, "203.0.113.10", 5060, "sip", BANNED, "4412345", caller_gateway=mapping()
    )
    screen.started(caller, snap, NOW_MS - 2)
    screen.started(caller, snap, NOW_MS - 1)  # over 1 call/s: banned
    for n in range(6):  # SS_AUTHENTICATION_MAX_RETRY failures
        suspensions.record_failure("ip", SUSPENDED_IP, NOW_MS - 10 + n, 6, 180)
    return service


def rows(run, line="blacklist list"):
    outcome = run(line + " --json")
    assert outcome.code == 0, outcome
    return json.loads(outcome.out)


def test_list_shows_static_dynamic_and_auth_with_expiry(run, protected):
    protected.store.blacklist.add(BlacklistEntry("900*", "callee"), _actor())
    listed = {(r["value"], r["kind"]): r for r in rows(run)}
    assert set(listed) == {("900*", "static"), (BANNED, "cps"), (SUSPENDED_IP, "auth")}
    assert listed[(SUSPENDED_IP, "auth")]["expires"] == "2026-01-01 12:02:59"  # +180 s
    assert listed[(BANNED, "cps")]["expires"] == "2026-01-01 12:59:59"  # +3600 s
    assert listed[("900*", "static")]["expires"] == ""
    assert [r["kind"] for r in rows(run, f"blacklist list {SUSPENDED_IP}")] == ["auth"]


@pytest.mark.parametrize(
    ("line", "left"),
    [
        pytest.param(f"blacklist del {SUSPENDED_IP}", {(BANNED, "cps")}, id="SPEC-10-lift-auth"),
        pytest.param(f"blacklist del {BANNED}", {(SUSPENDED_IP, "auth")}, id="SPEC-10-lift-ban"),
        pytest.param(
            f"blacklist del {BANNED} kind=cps", {(SUSPENDED_IP, "auth")}, id="SPEC-2-kind"
        ),
    ],
)
def test_del_lifts_in_memory_entries_and_audits(run, protected, line, left):
    outcome = run(line)
    assert outcome.code == 0 and "1 blacklist entries removed" in outcome.out, outcome
    assert {(r["value"], r["kind"]) for r in rows(run)} == left
    assert protected.store.audit.recent(1)[0].action == "blacklist lift"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(f"blacklist del {BANNED} kind=auth", id="wrong-kind"),
        pytest.param("blacklist del 12345", id="nothing"),
        pytest.param(f"blacklist del {SUSPENDED_IP} kind=static", id="static-only"),
    ],
)
def test_del_of_nothing_is_an_error(run, protected, line):
    assert run(line).code == 1
    assert len(rows(run)) == 2


def _actor():
    from vos3k.params import Actor

    return Actor("test", "unit")
