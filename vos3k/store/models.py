"""Typed values the repositories return: frozen attrs classes, money as Decimal."""

from __future__ import annotations

import enum
from decimal import Decimal

from attrs import field, frozen
from attrs.validators import ge, in_, instance_of

MONEY_STEP = Decimal("0.0001")  # SPEC.md §1: at most 4 decimals


class MoneyError(ValueError):
    """An amount with more than four decimals, or not a number."""


def parse_money(text: str | Decimal, what: str = "amount") -> Decimal:
    """A decimal string (at most 4 decimals) as Decimal; floats are refused."""
    if isinstance(text, float):
        raise MoneyError(f"{what}: money must not be a float")
    try:
        value = Decimal(str(text).strip())
    except ArithmeticError:
        raise MoneyError(f"{what}: {text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError(f"{what}: {text!r} is not a decimal amount")
    if value.as_tuple().exponent < -4:
        raise MoneyError(f"{what}: {text!r} has more than 4 decimals")
    return value


def to_e4(amount: Decimal) -> int:
    """Decimal money to the stored integer ten-thousandths (exact or an error)."""
    scaled = amount.scaleb(4)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more than 4 decimals")
    return int(scaled)


def from_e4(value: int | None) -> Decimal:
    """Stored ten-thousandths back to Decimal, without trailing zeros past the point."""
    amount = Decimal(value or 0) / 10000
    return amount if amount != amount.to_integral_value() else amount.quantize(Decimal(1))


class Role(enum.IntEnum):
    """Admin roles, each allowed what the ones below it are (INTERFACE.md §2)."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3
    SUPER = 4

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = "|".join(r.name.lower() for r in cls)
            raise ValueError(f"role {text!r} is not one of {names}") from None

    def __str__(self) -> str:
        return self.name.lower()


ACCOUNT_TYPES = ("prepaid", "postpaid")


@frozen
class Account:
    name: str
    type: str = field(default="prepaid", validator=in_(ACCOUNT_TYPES))
    balance: Decimal = field(default=Decimal(0), validator=instance_of(Decimal))
    credit: Decimal = field(default=Decimal(0), validator=[instance_of(Decimal), ge(0)])
    rate_table: str = ""
    enabled: bool = True
    expiry_ms: int | None = None


@frozen
class Rate:
    """A rate row: `fee` is money per minute, billed in first_period then period (SPEC §2)."""

    rate_table: str
    prefix: str
    fee: Decimal = field(validator=instance_of(Decimal))
    first_period_s: int = field(default=60, validator=ge(0))
    period_s: int = field(default=60, validator=ge(1))
    area: str = ""


GATEWAY_KINDS = ("mapping", "routing")
PROTOCOLS = ("sip", "h323")
MEDIA_PROXY = ("off", "on", "auto", "must_on", "default")
MEDIA_CHECK = ("none", "rx", "tx", "both")


@frozen
class Gateway:
    """A mapping (customer) or routing (vendor) gateway; SPEC.md §2 lists the fields."""

    name: str
    kind: str = field(validator=in_(GATEWAY_KINDS))
    ip: str
    port: int | None = None
    account: str = ""
    protocol: str = field(default="sip", validator=in_(PROTOCOLS))
    prefixes: tuple[str, ...] = ()
    priority: int = 0
    lines: int = 0
    cps: int = 0
    caller_prefix_rewrite: str = ""
    callee_prefix_rewrite: str = ""
    caller_allow: str = ""
    caller_deny: str = ""
    callee_allow: str = ""
    callee_deny: str = ""
    replace_codes: str = ""
    stop_codes: tuple[int, ...] = ()
    until_connect: str = field(default="unset", validator=in_(("yes", "no", "unset")))
    lock: str = field(default="none", validator=in_(("none", "locked")))
    prefix_mode: str = field(default="extend", validator=in_(("extend", "stop")))
    protect: bool = False
    check_rate: bool = False
    options_check: bool = False
    media_proxy: str = field(default="default", validator=in_(MEDIA_PROXY))
    media_check: str = field(default="none", validator=in_(MEDIA_CHECK))
    dyn_blacklist: bool = False
    enabled: bool = True


@frozen
class Phone:
    e164: str
    password: str
    account: str
    enabled: bool = True
    callee_pays: bool = False


@frozen
class AdminUser:
    name: str
    role: Role
    password_hash: str = ""
    keys: tuple[str, ...] = ()


@frozen
class BlacklistEntry:
    value: str
    dir: str = "both"
    kind: str = "static"
    reason: str = ""
    expires_ms: int | None = None
    id: int | None = None


@frozen
class AuditEntry:
    id: int
    time_ms: int
    user: str
    source: str
    action: str
    object: str
    old: str
    new: str
    reason: str


@frozen
class Registration:
    e164: str
    contact: str
    source: str
    expires_ms: int
    call_id: str = ""
    cseq: int = 0
