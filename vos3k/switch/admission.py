"""Who is calling and may the call go on: SPEC §3 steps 3-8, pure.

`admit()` takes an arrival (what the protocol layer read from the INVITE/Setup) and
returns one of:
- `Challenge(phone)`: the From user is a provisioned phone and no digest came; the SIP
  layer answers 407 (INTERFACE §6) and no call exists yet;
- `Reject(reason, sip_code, q850, direction=2, context)`: SPEC §3's table, the context
  holding what is known so far for the CDR;
- `Admit(context)`: everything a call needs for routing and billing; when the payer
  was reserved for (SPEC §6) the AccountPool holds a reservation under the call id.
The only state it touches is the AccountPool reservation of step 8 (in memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from attrs import field, frozen

from vos3k.billing.accounts import AccountPool, Refused
from vos3k.billing.rating import BillingSettings, Rate, rating_number
from vos3k.cdr.policy import NumberClass, PolicySettings, classify_number, skips_rating
from vos3k.cdr.record import BillingMode, CalleeBilling
from vos3k.store.models import Account, Gateway, Phone
from vos3k.switch.legs import Media
from vos3k.switch.numbers import Malformed, clean_number, normalise_callee
from vos3k.switch.reasons import TO_Q850, TO_SIP, EndDirection, EndReason
from vos3k.switch.router import Load, compiled_patterns, compiled_rewrites

# ---------------------------------------------------------------- inputs


class Directory(Protocol):
    """The hot indexes admission and routing read (`store.indexes.HotIndexes` is one)."""

    mapping: Any  # .match(ip, port, protocol) -> Gateway | None
    routing: tuple[Gateway, ...]
    gateways: Mapping[str, Gateway]
    rates: Any  # .lookup(table, number) -> rating.Rate | None
    phones: Mapping[str, Phone]
    accounts: Mapping[str, Account]


@frozen
class Arrival:
    """A new call as the protocol layer read it (SPEC §1 numbers, §3 step 3 source)."""

    call_id: str
    source_ip: str
    source_port: int
    protocol: str  # "sip" | "h323"
    caller: str  # P-Asserted-Identity user, else From user (H.323: sourceAddress ...)
    callee: str  # Request-URI user (H.323: dialledDigits ...)
    from_user: str = ""  # the From user: a phone's identity (INTERFACE §6)
    authenticated: str | None = None  # the phone whose digest the SIP layer verified
    auth_failed: bool = False  # a wrong digest, or a suspended phone or IP (reason 16)
    media: Media | None = None


class NumberBlacklist(Protocol):
    """The static number blacklist (SPEC §2, step 4): `guard.StaticBlacklist` is one."""

    callers: Any  # .matches(number) -> bool
    callees: Any


class DynamicCheck(Protocol):
    """The dynamic blacklist at step 4 (SPEC §10): `protect.DynamicScreen` is one."""

    def banned(self, ctx: CallContext, snap: Any, now_ms: int) -> Any | None:
        """The ban the call (numbers of `ctx` as step 4 sees them) falls under, or None."""
        ...


@frozen
class CallSettings:
    """The parameters a call snapshots on arrival, in the shapes the cores want."""

    snap: Any  # params.Snapshot: every other value, by attribute
    billing: BillingSettings
    policy: PolicySettings


_last_settings: list[CallSettings] = []


def call_settings(snap: Any) -> CallSettings:
    """CallSettings of a params Snapshot, cached by identity: `param set` makes a new one."""
    if _last_settings and _last_settings[0].snap is snap:
        return _last_settings[0]
    billing = BillingSettings(
        fee_precision=snap.billing_fee_precision,
        fee_unit=snap.billing_fee_unit,
        hold_time_precision_ms=snap.billing_hold_time_precision_ms,
        free_time_s=snap.billing_free_time_s,
        advance_time_min=snap.billing_advance_time_min,
        route_prefixes=tuple(snap.billing_gateway_route_prefix),
    )
    policy = PolicySettings(
        record_zero_hold_time=snap.billing_record_zero_hold_time,
        record_server_hang_up=snap.billing_record_server_hang_up,
        record_illegal_call=snap.billing_record_illegal_call,
        no_billing_to_phone=snap.billing_no_billing_to_phone,
        free_e164s=compiled_patterns(",".join(snap.billing_free_e164s)),
        no_cdr_e164s=compiled_patterns(",".join(snap.billing_no_cdr_e164s)),
    )
    settings = CallSettings(snap, billing, policy)
    _last_settings[:] = [settings]
    return settings


# ---------------------------------------------------------------- outputs


@frozen
class CallContext:
    """What admission learnt about a call; the CDR's caller-side fields come from here."""

    call_id: str
    start_ms: int
    source_ip: str
    source_port: int
    protocol: str
    caller_access: str  # SPEC §7 field 12
    callee_access: str  # field 13
    caller_e164: str = ""  # field 1 (after the mapping rewrite; a phone's own E.164)
    callee_e164: str = ""  # field 2
    caller_gateway: Gateway | None = None  # field 8
    caller_phone: Phone | None = None
    callee_phone: Phone | None = None  # the callee is a provisioned phone (on-net)
    payer: str = ""  # the account that pays
    billing_mode: BillingMode = BillingMode.NONE  # the payer's mode if billed
    callee_billing: CalleeBilling = CalleeBilling.CALLER
    number_class: NumberClass = NumberClass.NORMAL
    rating_number: str = ""
    rate: Rate | None = None  # the payer's rate; None when not rated
    reserved: bool = False  # the AccountPool holds money for this call
    media: Media | None = None

    @property
    def on_net(self) -> bool:
        return self.callee_phone is not None

    @property
    def replace_codes(self) -> str:
        """The mapping gateway's `replace_codes` (SPEC §4 failover step 3)."""
        return "" if self.caller_gateway is None else self.caller_gateway.replace_codes


@frozen
class Challenge:
    """INTERFACE §6: the From user is a provisioned phone; answer 407 and wait."""

    phone: str


@frozen
class Reject:
    """SPEC §3: the call ends before any vendor attempt."""

    reason: EndReason = field(converter=EndReason)
    context: CallContext
    direction: EndDirection = EndDirection.SERVER
    code: int | None = None  # a status other than table 1's, where SPEC §3 names one

    @property
    def sip_code(self) -> int:
        code = self.code if self.code is not None else TO_SIP[self.reason]
        assert code is not None  # every admission reason has a failure status
        return code

    @property
    def q850(self) -> int:
        return TO_Q850[self.reason]


@frozen
class Admit:
    """The call may be routed."""

    context: CallContext


Outcome = Admit | Reject | Challenge


# ---------------------------------------------------------------- the checks


def admit(
    arrival: Arrival,
    settings: CallSettings,
    directory: Directory,
    load: Load,
    pool: AccountPool,
    now_ms: int,
    blacklist: NumberBlacklist | None = None,
    dyn: DynamicCheck | None = None,
) -> Outcome:
    """SPEC §3 steps 3-8 in order; the first failing check decides (INTERFACE §6)."""
    # What is known so far, as CallContext keywords; one CallContext is built per
    # outcome (attrs.evolve per step was a tenth of the switching core's time per call).
    known: dict[str, Any] = {
        "caller_e164": clean_number(arrival.caller),
        "callee_e164": clean_number(arrival.callee),
    }

    def context() -> CallContext:
        return CallContext(
            arrival.call_id,
            now_ms,
            arrival.source_ip,
            arrival.source_port,
            arrival.protocol,
            arrival.caller,
            arrival.callee,
            media=arrival.media,
            **known,
        )

    snap = settings.snap

    # Step 3: who is calling.
    gateway = directory.mapping.match(arrival.source_ip, arrival.source_port, arrival.protocol)
    phone: Phone | None = None
    if gateway is not None:
        known["caller_gateway"] = gateway
        known["payer"] = gateway.account
        known["billing_mode"] = BillingMode.GATEWAY
    else:
        phone = directory.phones.get(arrival.from_user)
        if phone is None:
            # INTERFACE.md §6: a From user that is not a phone is an illegal call (403,
            # 17) at once; SPEC.md §14 keeps "407/403 reveals phones" and relies on the
            # signalling rate limit and digest suspension against scanners.
            return Reject(EndReason.UNAUTHORIZED_IP, context())
        if arrival.auth_failed:
            return Reject(EndReason.AUTHENTICATION_FAILED, context())
        if arrival.authenticated != phone.e164:
            return Challenge(phone.e164)
        # SPEC §7 field 1: a phone calls as its own E.164.
        known["caller_phone"] = phone
        known["caller_e164"] = phone.e164
        known["payer"] = phone.account
        known["billing_mode"] = BillingMode.PHONE

    # Step 4: enabled/locked, expiry, concurrency, CPS, number blacklist.
    account = directory.accounts.get(known["payer"])
    if (gateway is not None and not gateway.enabled) or (phone is not None and not phone.enabled):
        return Reject(EndReason.ACCOUNT_DISABLED, context())
    if account is not None and not account.enabled:
        return Reject(EndReason.ACCOUNT_DISABLED, context())
    if account is not None and account.expiry_ms is not None and now_ms >= account.expiry_ms:
        return Reject(EndReason.ACCOUNT_EXPIRED, context())
    limit = snap.max_concurrent_calls
    if limit and load.total >= limit:
        return Reject(EndReason.CONCURRENT_LIMIT_EXCEEDED, context())
    if gateway is not None and gateway.lines and load.calls(gateway.name) >= gateway.lines:
        return Reject(EndReason.CONCURRENT_LIMIT_EXCEEDED, context())
    # SPEC §9 SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT: per caller number as step 4 sees it
    # (the blacklist's number, not step 5's rewrite); 0 = off.
    per_caller = snap.blacklist_caller_concurrent_limit
    if per_caller and load.caller_calls(known["caller_e164"]) >= per_caller:
        return Reject(EndReason.CONCURRENT_LIMIT_EXCEEDED, context())
    if gateway is not None and gateway.cps and load.cps(gateway.name, now_ms) >= gateway.cps:
        return Reject(EndReason.CPS_LIMIT_EXCEEDED, context())
    if blacklist is not None and (
        blacklist.callers.matches(known["caller_e164"])
        or blacklist.callees.matches(known["callee_e164"])
    ):
        return Reject(EndReason.BLACKLIST_MATCH, context())
    if dyn is not None and dyn.banned(context(), snap, now_ms) is not None:
        return Reject(EndReason.BLACKLIST_MATCH, context())

    # Step 5: SPEC §1 callee validity, then the mapping rewrite, then allow/deny.
    callee = normalise_callee(arrival.callee)
    if isinstance(callee, Malformed):
        # SPEC §3 step table: a malformed callee gets 484 (table 1's 404 is for vendors).
        return Reject(EndReason.UNALLOCATED_NUMBER, context(), code=484)
    caller = known["caller_e164"]
    if gateway is not None:
        caller = compiled_rewrites(gateway.caller_prefix_rewrite).apply(caller)
        callee = compiled_rewrites(gateway.callee_prefix_rewrite).apply(callee)
    known["caller_e164"] = caller
    known["callee_e164"] = callee
    if gateway is not None and not _allowed(gateway, caller, callee):
        return Reject(EndReason.SERVICE_NOT_SUBSCRIBED, context())

    # Who pays: a callee phone with callee_pays=yes (SPEC §5), else the caller.
    callee_phone = directory.phones.get(callee)
    verify = True
    if callee_phone is not None:
        known["callee_phone"] = callee_phone
        if callee_phone.callee_pays:
            known["payer"] = callee_phone.account
            known["billing_mode"] = BillingMode.PHONE
            known["callee_billing"] = CalleeBilling.CALLEE
            account = directory.accounts.get(callee_phone.account)
            verify = bool(snap.billing_phone_as_callee_money_verify)

    # Step 6: free and no-CDR numbers skip rating and reservation.
    number_class = classify_number(settings.policy, callee, arrival.callee)
    known["number_class"] = number_class
    if skips_rating(settings.policy, number_class, callee_phone is not None):
        return Admit(context())

    # Step 7: the rate in the payer's table.
    number = rating_number(callee, settings.billing)
    known["rating_number"] = number
    if account is None or not account.rate_table:
        return Reject(EndReason.RATE_NOT_FOUND, context())
    rate = directory.rates.lookup(account.rate_table, number)
    if rate is None:
        return Reject(EndReason.RATE_NOT_FOUND, context())
    known["rate"] = rate

    # Step 8: reserve R0 or refuse before any vendor attempt (SPEC §6).
    if account.name not in pool:
        pool.set_account(account.name, account.balance, account.credit)
    granted = pool.admit(arrival.call_id, account.name, rate, settings.billing, verify=verify)
    if isinstance(granted, Refused):
        return Reject(EndReason.BALANCE_INSUFFICIENT, context())
    known["reserved"] = True
    return Admit(context())


def step4_caller(ctx: CallContext) -> str:
    """The caller number SPEC §3 step 4 checked, recomputed from the context alone.

    A phone calls as its own E.164, anyone else as the cleaned access number (field 12):
    a call's end releases the count its admission was checked against, whatever step 5
    rewrote `caller_e164` to.
    """
    phone = ctx.caller_phone
    return phone.e164 if phone is not None else clean_number(ctx.caller_access)


def _allowed(gateway: Gateway, caller: str, callee: str) -> bool:
    """SPEC §2 mapping gateway allow/deny lists; an empty allow list allows all."""
    for number, allow, deny in (
        (caller, gateway.caller_allow, gateway.caller_deny),
        (callee, gateway.callee_allow, gateway.callee_deny),
    ):
        allowed = compiled_patterns(allow)
        if allowed and not allowed.matches(number):
            return False
        if compiled_patterns(deny).matches(number):
            return False
    return True
