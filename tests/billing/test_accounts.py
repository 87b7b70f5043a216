"""SPEC §6: reservations, covered time, extension, cut-off; examples P1-P8 as timelines."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.billing.accounts import (
    AccountPool,
    Admitted,
    Refused,
    covered_seconds,
)
from vos3k.billing.rating import BillingSettings, Rate
from vos3k.switch.reasons import EndReason

D = Decimal


def simulate(
    balance,
    per_min,
    calls,
    *,
    credit="0",
    first=1,
    period=1,
    advance=1,
    until=400,
    every_second=True,
):
    """Run SPEC §6 on a timeline: `calls` = [(name, start s, hang-up talk s or None)].

    Calls are answered at once. Each second: hang-ups, then ticks of live calls (every
    second, or only at the `next_tick_s` the pool asked for), then arrivals.
    """
    pool = AccountPool()
    pool.set_account("acct", D(balance), D(credit))
    rate = Rate("1", D(per_min), first_period_s=first, period_s=period)
    billing = BillingSettings(fee_precision=2, advance_time_min=advance)
    live, next_tick, covered = {}, {}, {}
    refused, ends, extensions = [], {}, []

    def finish(name, t, talk_ms, cut):
        settlement = pool.end(name, talk_ms)
        assert settlement.fee <= settlement.released  # SPEC §6: each fee ≤ its reservation
        ends[name] = (t, cut, str(settlement.fee))
        del live[name]

    for t in range(until + 1):
        for name, (start, hang_up) in list(live.items()):
            if hang_up is not None and start + hang_up == t:
                finish(name, t, hang_up * 1000, False)
        for name, (start, _) in list(live.items()):
            talk = t - start
            if talk < 1 or not (every_second or next_tick[name] == talk):
                continue
            before = pool.reservation(name)
            coverage = pool.tick(name, talk)
            next_tick[name] = coverage.next_tick_s
            if coverage.reserved != before:
                extensions.append((t, name, str(coverage.reserved), coverage.covered_s))
            covered[name] = coverage.covered_s
            if coverage.cut:
                finish(name, t, talk * 1000, True)
        for name, start, hang_up in calls:
            if start != t:
                continue
            admitted = pool.admit(name, "acct", rate, billing)
            if isinstance(admitted, Refused):
                assert admitted.reason is EndReason.BALANCE_INSUFFICIENT
                refused.append(name)
                continue
            live[name] = (start, hang_up)
            coverage = pool.answer(name)
            next_tick[name] = coverage.next_tick_s
            covered[name] = coverage.covered_s
        view = pool.view("acct")
        assert view.available >= 0 and view.balance >= -view.credit
    return {
        "refused": refused,
        "ends": ends,
        "extensions": extensions,
        "balance": str(pool.view("acct").balance),
        "live": sorted(live),
    }


# SPEC §6 examples. ends: name -> (t, cut, fee); extensions: (t, name, reserved, T).
EXAMPLES = {
    "P1": (
        {"balance": "3", "per_min": "60", "calls": [("A", 0, None)]},
        {"refused": ["A"], "ends": {}, "extensions": [], "balance": "3"},
    ),
    "P2": (
        {"balance": "62", "per_min": "60", "calls": [("A", 0, None)]},
        {
            "refused": [],
            "ends": {"A": (62, True, "62.00")},
            "extensions": [(30, "A", "62", 62)],
            "balance": "0.00",
        },
    ),
    "P3": (
        {"balance": "62", "per_min": "60", "calls": [("A", 0, None)], "first": 60, "period": 60},
        {
            "refused": [],
            "ends": {"A": (60, True, "60.00")},
            "extensions": [(30, "A", "62", 60)],
            "balance": "2.00",
        },
    ),
    "P4": (
        {
            "balance": "150",
            "per_min": "60",
            "calls": [("A", 0, None), ("B", 10, None), ("C", 20, None)],
        },
        {
            "refused": ["C"],
            "ends": {"B": (70, True, "60.00"), "A": (90, True, "90.00")},
            "extensions": [(30, "A", "90", 90)],
            "balance": "0.00",
        },
    ),
    "P5": (
        {"balance": "150", "per_min": "60", "calls": [("A", 0, None), ("B", 10, 15)]},
        {
            "refused": [],
            "ends": {"B": (25, False, "15.00"), "A": (135, True, "135.00")},
            "extensions": [(30, "A", "120", 120), (90, "A", "135.00", 135)],
            "balance": "0.00",
        },
    ),
    "P6": (
        {
            "balance": "0.20",
            "per_min": "0.06",
            "calls": [("A", 0, None)],
            "first": 60,
            "period": 60,
            "advance": 2,
        },
        {
            "refused": [],
            "ends": {"A": (180, True, "0.18")},
            "extensions": [(60, "A", "0.20", 180)],
            "balance": "0.02",
        },
    ),
    "P7": (
        {"balance": "-499.97", "credit": "500", "per_min": "0.06", "calls": [("A", 0, None)]},
        {"refused": ["A"], "ends": {}, "extensions": [], "balance": "-499.97"},
    ),
    "P8": (
        {
            "balance": "0",
            "credit": "500",
            "per_min": "0.06",
            "calls": [("A", 0, 300)],
            "first": 60,
            "period": 60,
        },
        {
            "refused": [],
            "ends": {"A": (300, False, "0.30")},
            "extensions": [
                (30, "A", "0.12", 120),
                (90, "A", "0.18", 180),
                (150, "A", "0.24", 240),
                (210, "A", "0.30", 300),
                (270, "A", "0.36", 360),
            ],
            "balance": "-0.30",
        },
    ),
}


@pytest.mark.parametrize("every_second", [True, False], ids=["tick-each-second", "next-tick"])
@pytest.mark.parametrize("name", list(EXAMPLES), ids=[f"spec6-{n}" for n in EXAMPLES])
def test_spec6_example(name, every_second):
    scenario, want = EXAMPLES[name]
    got = simulate(**scenario, every_second=every_second)
    assert got["live"] == []
    for key, value in want.items():
        assert got[key] == value, key


def test_p1_admission_reports_what_is_missing():
    pool = AccountPool()
    pool.set_account("a", D("3"), D("0"))
    got = pool.admit("c1", "a", Rate("1", D("60"), 1, 1), BillingSettings())
    assert got == Refused(available=D("3"), needed=D("60"))
    assert pool.view("a").reserved == 0 and pool.live_calls("a") == frozenset()


def test_admission_reserves_r0_and_ringing_keeps_it():
    pool = AccountPool()
    pool.set_account("a", D("100"), D("0"))
    rate = Rate("1", D("0.06"), 60, 60)
    got = pool.admit("c1", "a", rate, BillingSettings(advance_time_min=15))
    assert got == Admitted(reserved=D("0.90"), covered_s=900)
    view = pool.view("a")
    assert (view.reserved, view.available, view.live_calls) == (D("0.90"), D("99.10"), 1)
    settlement = pool.end("c1", 0)  # never answered
    assert (str(settlement.fee), str(settlement.balance_delta), settlement.released) == (
        "0.00",
        "0.00",
        D("0.90"),
    )
    assert pool.view("a").balance == D("100") and pool.view("a").reserved == 0


def test_free_rate_has_no_limit():
    pool = AccountPool()
    pool.set_account("a", D("0"), D("0"))
    rate = Rate("1", D("0"))
    assert pool.admit("c1", "a", rate, BillingSettings()) == Admitted(D("0"), None)
    coverage = pool.answer("c1")
    assert (coverage.covered_s, coverage.cut, coverage.next_tick_s) == (None, False, None)
    assert pool.end("c1", 3_600_000).fee == D("0.00")


def test_callee_pays_without_verify_is_never_cut():
    pool = AccountPool()
    pool.set_account("callee", D("0"), D("0"))
    rate = Rate("1", D("0.60"), 1, 1)
    assert pool.admit("c1", "callee", rate, BillingSettings(), verify=False) == Admitted(
        D("0"), None
    )
    pool.answer("c1")
    assert pool.tick("c1", 500).cut is False
    settlement = pool.end("c1", 600_000)
    assert (settlement.fee, pool.view("callee").balance) == (D("6.00"), D("-6.00"))


def test_hold_past_cut_is_capped():
    # SPEC §6: billed seconds are capped at T, so it pays exactly what it was covered for.
    pool = AccountPool()
    pool.set_account("a", D("1"), D("0"))
    pool.admit("c1", "a", Rate("1", D("1"), 1, 1), BillingSettings())
    pool.answer("c1")
    assert pool.tick("c1", 60).cut is True
    settlement = pool.end("c1", 60_700)
    assert (settlement.billed_seconds, settlement.fee, settlement.capped) == (60, D("1.00"), True)


def test_no_charge_releases_only():
    # SPEC §7: no CDR = no balance change.
    pool = AccountPool()
    pool.set_account("a", D("10"), D("0"))
    pool.admit("c1", "a", Rate("1", D("1"), 1, 1), BillingSettings())
    pool.answer("c1")
    settlement = pool.end("c1", 30_000, charge=False)
    assert (settlement.fee, settlement.balance_delta) == (D("0.00"), 0)
    assert pool.view("a").balance == D("10") and pool.view("a").reserved == 0


def test_misuse_raises():
    pool = AccountPool()
    pool.set_account("a", D("10"), D("0"))
    rate = Rate("1", D("1"))
    pool.admit("c1", "a", rate, BillingSettings())
    with pytest.raises(ValueError):
        pool.admit("c1", "a", rate, BillingSettings())
    with pytest.raises(ValueError):
        pool.tick("c1", 1)  # not answered
    with pytest.raises(KeyError):
        pool.admit("c2", "nobody", rate, BillingSettings())
    with pytest.raises(ValueError):
        pool.set_account("b", D("1"), D("-1"))
    assert pool.remove_account("a") is False
    pool.end("c1", 0)
    assert pool.remove_account("a") is True and "a" not in pool


def test_adjust_balance_keeps_reservations():
    pool = AccountPool()
    pool.set_account("a", D("1"), D("0"))
    pool.admit("c1", "a", Rate("1", D("1"), 1, 1), BillingSettings())
    assert pool.adjust_balance("a", D("5")) == D("6")
    pool.set_account("a", D("7"), D("1"))
    assert pool.view("a").available == D("7")


COVERED = [
    ("60", 1, 1, 0, "2", "60", 60),
    ("60", 1, 1, 0, "2", "62", 62),
    ("60", 60, 60, 0, "2", "62", 60),
    ("60", 120, 60, 0, "2", "60", 0),
    ("60", 60, 60, 10, "2", "60", 70),
    ("0.06", 60, 60, 0, "2", "0.20", 180),
    # rounding: 0.0001/min at 2 decimals costs 0.00 below 0.005, i.e. up to 2999 s
    ("0.0001", 1, 1, 0, "2", "0.0001", 2999),
    ("0.0001", 1, 1, 0, "0", "0", 299999),
]


@pytest.mark.parametrize(
    ("per_min", "first", "period", "free", "prec", "reserved", "want"),
    COVERED,
    ids=["1-1", "extended", "boundary", "first-too-dear", "free-time", "p6", "rounds", "prec0"],
)
def test_covered_seconds(per_min, first, period, free, prec, reserved, want):
    rate = Rate("1", D(per_min), first, period)
    billing = BillingSettings(fee_precision=int(prec), free_time_s=free)
    assert covered_seconds(D(reserved), rate, billing) == want


# -- property: concurrent calls on one account never overdraw --------------------------

rates_st = st.builds(
    Rate,
    prefix=st.just("1"),
    fee=st.decimals(min_value="0", max_value="5", places=2, allow_nan=False),
    first_period_s=st.sampled_from([0, 1, 6, 30, 60]),
    period_s=st.sampled_from([1, 6, 30, 60]),
)
billing_st = st.builds(
    BillingSettings,
    fee_precision=st.integers(0, 4),
    fee_unit=st.sampled_from([D("0"), D("0.05")]),
    hold_time_precision_ms=st.sampled_from([0, 50, 999]),
    free_time_s=st.sampled_from([0, 6]),
    advance_time_min=st.integers(1, 3),
)
ops_st = st.lists(
    st.one_of(
        st.tuples(st.just("start"), rates_st, billing_st),
        st.tuples(st.just("wait"), st.integers(1, 90)),
        st.tuples(st.just("hang_up"), st.integers(0, 20), st.integers(0, 999)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(
    balance=st.decimals(min_value="-5", max_value="20", places=2, allow_nan=False),
    credit=st.decimals(min_value="0", max_value="10", places=2, allow_nan=False),
    ops=ops_st,
)
def test_never_below_minus_credit(balance, credit, ops):
    if balance < -credit:
        balance = -credit
    pool = AccountPool()
    pool.set_account("a", balance, credit)
    talk: dict[str, int] = {}
    serial = 0

    def end(call_id, hold_ms):
        settlement = pool.end(call_id, hold_ms)
        assert settlement.fee <= settlement.released
        del talk[call_id]

    for op in ops:
        if op[0] == "start":
            serial += 1
            call_id = f"c{serial}"
            if isinstance(pool.admit(call_id, "a", op[1], op[2]), Admitted):
                talk[call_id] = 0
                if pool.answer(call_id).cut:
                    end(call_id, 0)
        elif op[0] == "wait":
            for _ in range(op[1]):
                for call_id in list(talk):
                    talk[call_id] += 1
                    if pool.tick(call_id, talk[call_id]).cut:
                        end(call_id, talk[call_id] * 1000 + 400)
        elif talk:
            call_id = sorted(talk)[op[1] % len(talk)]
            end(call_id, talk[call_id] * 1000 + op[2])
        view = pool.view("a")
        assert view.available >= 0
        assert view.balance >= -credit
    for call_id in list(talk):
        end(call_id, talk[call_id] * 1000 + 999)
    view = pool.view("a")
    assert view.balance >= -credit and view.reserved == 0
