"""SPEC §5: billed seconds, increments, fee rounding, rate lookup."""

import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.billing.rating import (
    BillingSettings,
    Rate,
    RateTable,
    amount,
    cost,
    fee,
    increments,
    is_money,
    rating_number,
    reservation_chunk,
    talk_seconds,
)

# SPEC §5 examples: hold ms, P ms, F s, first/period s, fee/min, prec, unit, s, billed, fee.
SPEC5 = [
    (21049, 50, 0, 1, 1, "0.60", 2, "0", 21, 21, "0.21"),
    (21050, 50, 0, 1, 1, "0.60", 2, "0", 22, 22, "0.22"),
    (21001, 0, 0, 1, 1, "0.60", 2, "0", 22, 22, "0.22"),
    (21000, 0, 0, 1, 1, "0.60", 2, "0", 21, 21, "0.21"),
    (21998, 999, 0, 1, 1, "0.60", 2, "0", 21, 21, "0.21"),
    (21999, 999, 0, 1, 1, "0.60", 2, "0", 22, 22, "0.22"),
    (0, 50, 0, 60, 60, "0.06", 2, "0", 0, 0, "0.00"),
    (400, 50, 0, 60, 60, "0.06", 2, "0", 1, 60, "0.06"),
    (400, 999, 0, 60, 60, "0.06", 2, "0", 0, 0, "0.00"),
    (5000, 50, 0, 60, 60, "0.06", 2, "0", 5, 60, "0.06"),
    (61000, 50, 0, 60, 60, "0.06", 2, "0", 61, 120, "0.12"),
    (66000, 50, 6, 6, 6, "1.00", 2, "0", 60, 60, "1.00"),
    (5000, 50, 6, 6, 6, "1.00", 2, "0", 0, 0, "0.00"),
    (7500, 50, 6, 30, 6, "0.12", 2, "0", 2, 30, "0.06"),
    (61000, 50, 0, 30, 6, "0.05", 2, "0", 61, 66, "0.06"),
    (61000, 50, 0, 30, 6, "0.05", 3, "0", 61, 66, "0.055"),
    (125300, 50, 0, 60, 30, "0.0123", 4, "0", 126, 150, "0.0308"),
    (45000, 50, 0, 0, 6, "0.10", 2, "0", 45, 48, "0.08"),
    (90000, 50, 0, 60, 60, "1.25", 0, "0", 90, 120, "3"),
    (61000, 50, 0, 1, 1, "0.33", 2, "0.05", 61, 61, "0.35"),
    (1000, 50, 0, 1, 1, "0.0001", 4, "0", 1, 1, "0.0000"),
]


@pytest.mark.parametrize("row", SPEC5, ids=[f"spec5-ex{i}" for i in range(1, len(SPEC5) + 1)])
def test_spec5_example(row):
    hold, p, free, first, period, per_min, prec, unit, s, billed, want = row
    settings = BillingSettings(
        fee_precision=prec,
        fee_unit=Decimal(unit),
        hold_time_precision_ms=p,
        free_time_s=free,
    )
    rate = Rate("44", Decimal(per_min), first_period_s=first, period_s=period)
    assert talk_seconds(hold, p, free) == s
    assert increments(s, rate) == billed
    charge = fee(hold, rate, settings)
    assert charge.billed_seconds == billed
    assert str(charge.amount) == want  # the CDR and --json show exactly this string


def test_spec7_example_cdr_fee():
    # SPEC §7: 61040 ms at 0.06/min, 60/60, P 50 bills 120 s, fee 0.12.
    charge = fee(61040, Rate("44", Decimal("0.06")), BillingSettings())
    assert (charge.billed_seconds, charge.amount) == (120, Decimal("0.12"))


def test_cost_ignores_free_time():
    settings = BillingSettings(free_time_s=6)
    rate = Rate("44", Decimal("1.00"), first_period_s=6, period_s=6)
    assert fee(66000, rate, settings) == fee(60000, rate, BillingSettings())
    assert cost(66000, rate, settings).billed_seconds == 66
    assert cost(66000, rate, settings).amount == Decimal("1.10")


def test_no_vendor_rate_costs_nothing():
    assert cost(61000, None, BillingSettings(fee_precision=3)).amount.as_tuple() == (
        Decimal("0.000").as_tuple()
    )


@pytest.mark.parametrize(
    ("callee", "prefixes", "want"),
    [
        ("774412345678", ("77",), "4412345678"),
        ("774412345678", ("7", "77"), "4412345678"),
        ("774412345678", ("77", "7"), "4412345678"),
        ("4412345678", ("77",), "4412345678"),
        ("T14412", ("T1", "T"), "4412"),
        ("4412", (), "4412"),
        ("774412", "7, 77", "4412"),
    ],
    ids=[
        "spec5-strip",
        "spec5-longest",
        "spec5-longest-order",
        "spec5-none",
        "tag",
        "empty",
        "comma-list",
    ],
)
def test_rating_number(callee, prefixes, want):
    assert rating_number(callee, BillingSettings(route_prefixes=prefixes)) == want


def test_longest_prefix_lookup():
    table = RateTable(
        [
            Rate("", Decimal("9")),
            Rate("4", Decimal("1")),
            Rate("44", Decimal("0.5")),
            Rate("447", Decimal("0.2")),
            Rate("44700", Decimal("0.1")),
        ]
    )
    assert table.lookup("4470012").fee == Decimal("0.1")
    assert table.lookup("4470112").fee == Decimal("0.2")
    assert table.lookup("4412").fee == Decimal("0.5")
    assert table.lookup("49").fee == Decimal("1")
    assert table.lookup("1").fee == Decimal("9")
    assert table.lookup("44700").fee == Decimal("0.1")
    assert len(table) == 5


def test_no_rate():
    table = RateTable([Rate("44", Decimal("0.5"))])
    assert table.lookup("4") is None
    assert table.lookup("") is None
    assert table.lookup("33") is None


def test_duplicate_prefix_refused():
    with pytest.raises(ValueError):
        RateTable([Rate("44", Decimal("1")), Rate("44", Decimal("2"))])


def test_large_table_matches_brute_force():
    rng = random.Random(5)
    prefixes = {str(rng.randrange(10 ** rng.randint(1, 8))) for _ in range(20000)}
    table = RateTable(Rate(p, Decimal(i % 100) / 100) for i, p in enumerate(sorted(prefixes)))
    for _ in range(2000):
        number = str(rng.randrange(10**12))
        best = max((p for p in prefixes if number.startswith(p)), key=len, default=None)
        got = table.lookup(number)
        assert (got.prefix if got else None) == best


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": "44", "fee": 0.5},
        {"prefix": "44", "fee": Decimal("0.12345")},
        {"prefix": "44", "fee": Decimal("-1")},
        {"prefix": "44", "fee": Decimal("NaN")},
        {"prefix": "4x", "fee": Decimal("1")},
        {"prefix": "44", "fee": Decimal("1"), "period_s": 0},
        {"prefix": "44", "fee": Decimal("1"), "first_period_s": -1},
    ],
    ids=["float", "5-decimals", "negative", "nan", "letter", "period-0", "first-negative"],
)
def test_bad_rate_refused(kwargs):
    with pytest.raises((ValueError, TypeError)):
        Rate(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fee_precision": 5},
        {"fee_unit": Decimal("1.5")},
        {"hold_time_precision_ms": 1000},
        {"free_time_s": 3601},
        {"advance_time_min": 0},
        {"advance_time_min": 16},
    ],
    ids=["prec", "unit", "hold-precision", "free", "advance-0", "advance-16"],
)
def test_settings_ranges_spec9(kwargs):
    with pytest.raises(ValueError):
        BillingSettings(**kwargs)


def test_first_period_zero_is_period():
    rate = Rate("1", Decimal("1"), first_period_s=0, period_s=6)
    assert [increments(s, rate) for s in (0, 1, 6, 7, 12, 13)] == [0, 6, 6, 12, 12, 18]


def test_reservation_chunk():
    rate = Rate("1", Decimal("0.0123"))
    assert reservation_chunk(rate, BillingSettings(advance_time_min=15)) == Decimal("0.1845")


def test_is_money():
    assert is_money(Decimal("0.0001")) and is_money(Decimal("12"))
    assert not is_money(Decimal("0.00001")) and not is_money(1) and not is_money(Decimal("Inf"))


money = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
settings_st = st.builds(
    BillingSettings,
    fee_precision=st.integers(0, 4),
    fee_unit=st.sampled_from([Decimal("0"), Decimal("0.01"), Decimal("0.05"), Decimal("1")]),
    hold_time_precision_ms=st.integers(0, 999),
    free_time_s=st.integers(0, 60),
)
rate_st = st.builds(
    Rate,
    prefix=st.just("1"),
    fee=money,
    first_period_s=st.integers(0, 120),
    period_s=st.integers(1, 120),
)


@given(settings_st, rate_st, st.integers(0, 10**7), st.integers(0, 10**6))
def test_billed_and_fee_monotonic_in_hold(settings, rate, hold, more):
    a, b = fee(hold, rate, settings), fee(hold + more, rate, settings)
    assert a.billed_seconds <= b.billed_seconds
    assert Decimal(0) <= a.amount <= b.amount


@given(settings_st, rate_st, st.integers(0, 10**7))
def test_fee_never_negative_and_billed_on_boundary(settings, rate, hold):
    charge = fee(hold, rate, settings)
    assert charge.amount >= 0
    billed = charge.billed_seconds
    assert billed == 0 or (billed >= rate.first_s and (billed - rate.first_s) % rate.period_s == 0)
    assert -int(charge.amount.as_tuple().exponent) == settings.fee_precision


@given(settings_st, money, money, st.integers(0, 10**6))
def test_fee_monotonic_in_price(settings, p1, p2, billed):
    low, high = sorted((p1, p2))
    assert amount(low, billed, settings) <= amount(high, billed, settings)
