"""SPEC §4 routing rules, one table row per rule (SPEC §12 media: tests/media/test_policy.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.switch.fakes import default_directory, vendor
from vos3k.billing.accounts import AccountPool
from vos3k.store.models import Account, Rate
from vos3k.switch.reasons import EndDirection, EndReason
from vos3k.switch.router import (
    AttemptOutcome,
    Load,
    Router,
    RoutingSettings,
    Timer,
    candidate_groups,
    failover,
    numbers_to_gateway,
)

D = Decimal
T0 = 1_777_000_000_000


def names(groups):
    return [[g.name for g in group] for group in groups]


@pytest.mark.parametrize(
    ("gateways", "expected"),
    [
        pytest.param(
            [vendor("A", "x", ("44",)), vendor("B", "x", ("4412",)), vendor("C", "x", ("33",))],
            [["B"], ["A"]],
            id="SPEC-4-longest-first-extend",
        ),
        pytest.param(
            [vendor("A", "x", ("44",)), vendor("B", "x", ("4412",), prefix_mode="stop")],
            [["B"]],
            id="SPEC-4-prefix-mode-stop",
        ),
        pytest.param(
            [vendor("A", "x", ("*",)), vendor("B", "x", ("44", "4412"))],
            [["B"], ["A"]],
            id="SPEC-4-star-is-shortest",
        ),
        pytest.param([vendor("A", "x", ("33",))], [], id="SPEC-4-no-prefix-matches"),
        pytest.param(
            [vendor("A", "x", ("441",)), vendor("B", "x", ("441",))],
            [["A", "B"]],
            id="SPEC-4-one-group",
        ),
    ],
)
def test_candidate_groups(gateways, expected):
    assert names(candidate_groups(gateways, "4412345678")) == expected


def make_router(*routing, accounts=None, rates=None, asr=None):
    kw = {}
    if accounts is not None:
        kw["accounts"] = accounts
    if rates is not None:
        kw["rates"] = rates
    directory = default_directory(*routing, **kw)
    load, pool = Load(), AccountPool()
    return Router(directory, load, pool, asr), load, pool


def order(router, settings=None, now=T0):
    settings = settings or RoutingSettings()
    plan = router.plan("4412345678", "4412345678", T0)
    passed: set[str] = set()
    result = []
    while True:
        gateway, skipped = router.next_gateway(plan, frozenset(passed), settings, now)
        passed.update(skipped)
        if gateway is None:
            return result
        passed.add(gateway.name)
        result.append(gateway.name)


def test_priority_then_name():
    router, _, _ = make_router(vendor("B", "x"), vendor("A", "x"), vendor("C", "x", priority=-1))
    assert order(router) == ["C", "A", "B"]


def test_load_ratio_with_unlimited_as_65535():
    router, load, _ = make_router(vendor("A", "x", lines=10), vendor("B", "x"))
    load.seize("A", T0)  # 1/10 > 0/65535
    assert order(router) == ["B", "A"]
    load.seize("B", T0)  # 1/65535 < 1/10
    assert order(router) == ["B", "A"]


def test_round_robin_by_attempts():
    router, load, _ = make_router(vendor("A", "x"), vendor("B", "x"))
    load.seize("A", T0)
    load.release("A")
    assert order(router) == ["B", "A"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(RoutingSettings(sort_by_rate=True), ["CHEAP", "GOOD", "NORATE"], id="rate"),
        pytest.param(RoutingSettings(sort_by_asr=True), ["GOOD", "CHEAP", "NORATE"], id="asr"),
        pytest.param(
            RoutingSettings(sort_by_rate=True, sort_by_asr=True, rate_before_asr=False),
            ["GOOD", "CHEAP", "NORATE"],
            id="SPEC-4-asr-before-rate",
        ),
        pytest.param(RoutingSettings(), ["CHEAP", "GOOD", "NORATE"], id="unsorted-by-name"),
    ],
)
def test_rate_and_asr_sorting(settings, expected):
    accounts = [
        Account("cust", rate_table="retail"),
        Account("cheap", rate_table="cheap"),
        Account("good", rate_table="good"),
        Account("none", rate_table="missing"),
    ]
    rates = [
        Rate("retail", "44", D("0.06")),
        Rate("cheap", "44", D("0.01")),
        Rate("good", "44", D("0.02")),
    ]
    router, _, _ = make_router(
        vendor("GOOD", "x", account="good"),
        vendor("CHEAP", "x", account="cheap"),
        vendor("NORATE", "x", account="none"),
        accounts=accounts,
        rates=rates,
        asr={"GOOD": D("0.6"), "CHEAP": D("0.3"), "NORATE": D("0.1")},
    )
    assert order(router, settings) == expected


@pytest.mark.parametrize(
    ("delay_s", "elapsed_ms", "expected"),
    [
        pytest.param(0, 500_000, ["A", "P"], id="SPEC-4-protect-always"),
        pytest.param(10, 9_999, ["A", "P"], id="SPEC-4-protect-in-window"),
        pytest.param(10, 10_000, ["A"], id="SPEC-4-protect-window-over"),
    ],
)
def test_protect_gateways_last(delay_s, elapsed_ms, expected):
    router, _, _ = make_router(vendor("P", "x", protect=True, priority=-5), vendor("A", "x"))
    settings = RoutingSettings(protect_delay_s=delay_s)
    assert order(router, settings, T0 + elapsed_ms) == expected


@pytest.mark.parametrize(
    ("gateway_kw", "prepare", "usable"),
    [
        pytest.param({}, None, True, id="plain"),
        pytest.param({"lock": "locked"}, None, False, id="SPEC-4-lock"),
        pytest.param({"enabled": False}, None, False, id="disabled"),
        pytest.param({"lines": 1}, lambda load: load.seize("V", T0), False, id="SPEC-4-lines"),
        pytest.param({"cps": 1}, lambda load: load.seize("V", T0 - 10), False, id="SPEC-4-cps"),
        pytest.param(
            {"cps": 1}, lambda load: load.seize("V", T0 - 1000), True, id="SPEC-4-cps-window"
        ),
        pytest.param(
            {"options_check": True},
            lambda load: load.offline.add("V"),
            False,
            id="SPEC-4-offline",
        ),
        pytest.param(
            {"options_check": False}, lambda load: load.offline.add("V"), True, id="no-probe"
        ),
        pytest.param(
            {"check_rate": True, "account": "nobody"}, None, False, id="SPEC-4-check-rate"
        ),
        pytest.param({"check_rate": True}, None, True, id="SPEC-4-check-rate-ok"),
    ],
)
def test_usability(gateway_kw, prepare, usable):
    gateway = vendor("V", "x", **gateway_kw)
    router, load, _ = make_router(gateway)
    if prepare is not None:
        prepare(load)
    plan = router.plan("4412345678", "4412345678", T0)
    assert router.usable(gateway, plan, RoutingSettings(), T0) is usable


@pytest.mark.parametrize(
    ("available", "usable"),
    [pytest.param("0.03", True, id="SPEC-4-money-covers"), pytest.param("0.02", False, id="short")],
)
def test_clearing_money_check(available, usable):
    gateway = vendor("V", "x")
    router, _, pool = make_router(gateway)
    pool.set_account("vend", D(available), D("0"))
    plan = router.plan("4412345678", "4412345678", T0)
    settings = RoutingSettings(verify_clearing_money=True)
    assert router.usable(gateway, plan, settings, T0) is usable


S = RoutingSettings()
GW = vendor("V", "x")


@pytest.mark.parametrize(
    ("outcome", "gateway", "replace", "attempts", "settings", "expected"),
    [
        pytest.param(
            AttemptOutcome(code=503), GW, "", 1, S, (5, 503, 41, 1, True), id="2a-503-failover"
        ),
        pytest.param(
            AttemptOutcome(code=486), GW, "", 1, S, (2, 486, 17, 1, False), id="2a-486-busy-stops"
        ),
        pytest.param(
            AttemptOutcome(code=486),
            GW,
            "",
            1,
            RoutingSettings(stop_after_busy=False),
            (2, 486, 17, 1, True),
            id="2a-486-busy-goes-on",
        ),
        pytest.param(
            AttemptOutcome(code=603), GW, "", 1, S, (23, 603, 21, 1, False), id="2a-603-flag-n"
        ),
        pytest.param(
            AttemptOutcome(code=302), GW, "", 1, S, (23, 302, 127, 1, True), id="2a-3xx-unlisted"
        ),
        pytest.param(
            AttemptOutcome(code=503),
            vendor("V", "x", stop_codes=(503,)),
            "",
            1,
            S,
            (5, 503, 41, 1, False),
            id="SPEC-4-stop-codes",
        ),
        pytest.param(
            AttemptOutcome(code=503), GW, "503:404", 1, S, (4, 404, 1, 1, True), id="replace"
        ),
        pytest.param(
            AttemptOutcome(code=503),
            GW,
            "480:486,503:486,503:404",
            1,
            S,
            (2, 486, 17, 1, False),
            id="SPEC-4-replace-first-rule-once",
        ),
        pytest.param(
            AttemptOutcome(cause=17), GW, "", 1, S, (2, 486, 17, 1, False), id="2b-cause-17"
        ),
        pytest.param(
            AttemptOutcome(cause=16), GW, "", 1, S, (12, 480, 16, 1, False), id="2b-cause-16"
        ),
        pytest.param(
            AttemptOutcome(cause=27), GW, "", 1, S, (21, 502, 27, 1, True), id="2b-cause-27"
        ),
        pytest.param(
            AttemptOutcome(cause=34), GW, "503:486", 1, S, (2, 486, 17, 1, False), id="2b-replaced"
        ),
        pytest.param(
            AttemptOutcome(timer=Timer.INVITE), GW, "", 1, S, (21, 408, 102, 2, True), id="invite"
        ),
        pytest.param(
            AttemptOutcome(timer=Timer.RINGING, provisional=True),
            GW,
            "",
            1,
            S,
            (3, 480, 19, 2, False),
            id="SPEC-4-ringing-no-until-connect",
        ),
        pytest.param(
            AttemptOutcome(code=480, provisional=True),
            vendor("V", "x", until_connect="yes"),
            "",
            1,
            S,
            (3, 480, 18, 1, True),
            id="SPEC-4-until-connect-yes",
        ),
        pytest.param(
            AttemptOutcome(code=480, provisional=True),
            GW,
            "",
            1,
            RoutingSettings(until_connect=True),
            (3, 480, 18, 1, True),
            id="SPEC-4-until-connect-global",
        ),
        pytest.param(
            AttemptOutcome(code=480, provisional=True),
            vendor("V", "x", until_connect="no"),
            "",
            1,
            RoutingSettings(until_connect=True),
            (3, 480, 18, 1, False),
            id="SPEC-4-until-connect-no-beats-global",
        ),
        pytest.param(
            AttemptOutcome(code=503, sent_sdp=True),
            GW,
            "",
            1,
            RoutingSettings(stop_after_sdp=True),
            (5, 503, 41, 1, False),
            id="SPEC-4-stop-after-sdp",
        ),
        pytest.param(
            AttemptOutcome(code=503, sent_sdp=True), GW, "", 1, S, (5, 503, 41, 1, True), id="sdp"
        ),
        pytest.param(
            AttemptOutcome(code=503, sent_rtp=True),
            GW,
            "",
            1,
            S,
            (5, 503, 41, 1, False),
            id="SPEC-4-stop-after-rtp",
        ),
        pytest.param(
            AttemptOutcome(code=503),
            GW,
            "",
            3,
            RoutingSettings(switch_limit=3),
            (5, 503, 41, 1, False),
            id="SPEC-4-switch-limit",
        ),
        pytest.param(
            AttemptOutcome(timer=Timer.INVITE, to_phone=True),
            None,
            "",
            1,
            RoutingSettings(ua_stop_after_timeout=True),
            (21, 408, 102, 2, False),
            id="SPEC-4-phone-invite-timeout",
        ),
        pytest.param(
            AttemptOutcome(timer=Timer.INVITE, to_phone=True),
            None,
            "",
            1,
            S,
            (21, 408, 102, 2, True),
            id="SPEC-4-phone-timeout-tries-gateways",
        ),
    ],
)
def test_failover(outcome, gateway, replace, attempts, settings, expected):
    verdict = failover(outcome, gateway, replace, attempts, settings)
    reason, code, q850, direction, goes_on = expected
    assert (verdict.reason, verdict.code, verdict.q850) == (EndReason(reason), code, q850)
    assert (verdict.direction, verdict.failover) == (EndDirection(direction), goes_on)


def test_failover_needs_an_outcome():
    with pytest.raises(ValueError, match="outcome"):
        failover(AttemptOutcome(), GW, "", 1, S)


def test_numbers_to_gateway():
    gateway = vendor("V", "x", callee_prefix_rewrite="44*:0044*", caller_prefix_rewrite="*:9*")
    assert numbers_to_gateway(gateway, "861", "4412") == ("9861", "004412")
