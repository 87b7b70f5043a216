"""Rates, longest-prefix rate tables, billed seconds and fees (SPEC §5), pure Decimal."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from fractions import Fraction

from attrs import field, frozen
from attrs.validators import ge, instance_of, le

# SPEC §1: money has at most 4 decimals.
MAX_MONEY_DECIMALS = 4
_PREFIX = re.compile(r"[0-9*#]*")


def is_money(value: object) -> bool:
    """Whether `value` is a finite Decimal with at most 4 decimals (SPEC §1)."""
    return (
        isinstance(value, Decimal)
        and value.is_finite()
        and int(value.as_tuple().exponent) >= -MAX_MONEY_DECIMALS
    )


def _money(_instance: object, attribute: object, value: object) -> None:
    if not is_money(value) or value < 0:  # type: ignore[operator]
        raise ValueError(f"{getattr(attribute, 'name', '?')}: {value!r} is not money ≥ 0")


def _prefix(_instance: object, _attribute: object, value: str) -> None:
    if _PREFIX.fullmatch(value) is None:
        raise ValueError(f"rate prefix {value!r} may hold only 0-9, * and #")


def _route_prefixes(values: str | Iterable[str]) -> tuple[str, ...]:
    # A string is the parameter's comma list. Longest first, so the first that
    # matches is the longest (SPEC §5).
    items = values.split(",") if isinstance(values, str) else values
    return tuple(sorted({v.strip() for v in items if v.strip()}, key=lambda p: (-len(p), p)))


@frozen
class BillingSettings:
    """The §9 billing parameters a call snapshots on arrival."""

    fee_precision: int = field(default=2, validator=[ge(0), le(4)])  # ..._FEE_PRECISTION
    fee_unit: Decimal = field(default=Decimal("0"), validator=[_money, le(Decimal("1"))])
    hold_time_precision_ms: int = field(default=50, validator=[ge(0), le(999)])
    free_time_s: int = field(default=0, validator=[ge(0), le(3600)])
    advance_time_min: int = field(default=1, validator=[ge(1), le(15)])  # ..._ADVANCE_TIME
    route_prefixes: tuple[str, ...] = field(default=(), converter=_route_prefixes)


@frozen
class Rate:
    """One rate row: fee per minute, charged in a first period then in periods."""

    prefix: str = field(validator=[instance_of(str), _prefix])
    fee: Decimal = field(validator=_money)  # per minute
    first_period_s: int = field(default=60, validator=ge(0))  # 0 = period
    period_s: int = field(default=60, validator=ge(1))
    area: str = ""

    @property
    def first_s(self) -> int:
        """SPEC §2: a first period of 0 means one period."""
        return self.first_period_s or self.period_s


@frozen
class Charge:
    """What a call costs: the billed seconds and the rounded amount."""

    billed_seconds: int
    amount: Decimal


class RateTable:
    """Rates of one table, looked up by the longest prefix of a number.

    One dict of all prefixes, probed from the longest prefix length present down to
    the shortest: a lookup costs at most one slice and one hash probe per distinct
    prefix length (bench/rating_lookup.py measures it).
    """

    __slots__ = ("_lengths", "_rates")

    def __init__(self, rates: Iterable[Rate] = ()) -> None:
        table: dict[str, Rate] = {}
        for rate in rates:
            if rate.prefix in table:
                raise ValueError(f"duplicate rate prefix {rate.prefix!r}")
            table[rate.prefix] = rate
        self._rates = table
        self._lengths = tuple(sorted({len(p) for p in table}, reverse=True))

    def __len__(self) -> int:
        return len(self._rates)

    def __iter__(self) -> Iterator[Rate]:
        return iter(self._rates.values())

    def lookup(self, number: str) -> Rate | None:
        """The rate with the longest prefix of `number`, or None."""
        get = self._rates.get
        size = len(number)
        for length in self._lengths:
            if length <= size:
                rate = get(number[:length])
                if rate is not None:
                    return rate
        return None


def rating_number(callee_e164: str, settings: BillingSettings) -> str:
    """SPEC §5: calleeE164 without the longest SERVER_GATEWAY_ROUTE_PREFIX it starts with."""
    for prefix in settings.route_prefixes:
        if callee_e164.startswith(prefix):
            return callee_e164[len(prefix) :]
    return callee_e164


def talk_seconds(hold_ms: int, precision_ms: int, free_time_s: int = 0) -> int:
    """SPEC §5 steps 1-2: whole seconds after free time, the fraction by precision P.

    A fraction r > 0 rounds up when r ≥ P: P = 0 rounds any fraction up (but not whole
    seconds), P = 999 only 999 ms.
    """
    rest = max(0, hold_ms - 1000 * free_time_s)
    whole, fraction = divmod(rest, 1000)
    return whole + (1 if fraction > 0 and fraction >= precision_ms else 0)


def increments(seconds: int, rate: Rate) -> int:
    """SPEC §5 step 3: seconds rounded up to the first period, then to whole periods."""
    if seconds <= 0:
        return 0
    first = rate.first_s
    if seconds <= first:
        return first
    periods = -(-(seconds - first) // rate.period_s)
    return first + periods * rate.period_s


def _half_up(value: Fraction, step: Fraction) -> Fraction:
    # Exact half-up to a multiple of `step` for value ≥ 0 (SPEC §1: rounding is half-up).
    return Fraction(int(value / step + Fraction(1, 2))) * step


def amount(fee_per_min: Decimal, billed_seconds: int, settings: BillingSettings) -> Decimal:
    """SPEC §5: fee × billed / 60, half-up to FEE_UNIT when > 0, then to FEE_PRECISTION.

    Computed on exact fractions, so the one rounding (two with a unit) is the only one.
    """
    exact = Fraction(fee_per_min) * billed_seconds / 60
    if settings.fee_unit > 0:
        exact = _half_up(exact, Fraction(settings.fee_unit))
    scale = 10**settings.fee_precision
    units = _half_up(exact, Fraction(1, scale)) * scale  # a whole number of 10^-prec
    return Decimal(int(units)).scaleb(-settings.fee_precision)


def fee(hold_ms: int, rate: Rate, settings: BillingSettings) -> Charge:
    """SPEC §5: what the payer is charged for `hold_ms` of talk (free time applies)."""
    seconds = talk_seconds(hold_ms, settings.hold_time_precision_ms, settings.free_time_s)
    billed = increments(seconds, rate)
    return Charge(billed, amount(rate.fee, billed, settings))


def cost(hold_ms: int, rate: Rate | None, settings: BillingSettings) -> Charge:
    """SPEC §5: the vendor cost, as the fee but without free time; no rate → cost 0."""
    if rate is None:
        return Charge(0, amount(Decimal("0"), 0, settings))
    seconds = talk_seconds(hold_ms, settings.hold_time_precision_ms)
    billed = increments(seconds, rate)
    return Charge(billed, amount(rate.fee, billed, settings))


def reservation_chunk(rate: Rate, settings: BillingSettings) -> Decimal:
    """SPEC §6: R0 = per-minute fee × ADVANCE_TIME minutes, exact."""
    return rate.fee * settings.advance_time_min
