"""SPEC §3 steps 3-8 and INTERFACE §6 "who is calling", as admission outcomes."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from attrs import frozen

from tests.switch.fakes import CUSTOMER_IP, World, default_directory, mapping, snapshot, vendor
from vos3k.billing.accounts import AccountPool
from vos3k.cdr.policy import NumberClass
from vos3k.cdr.record import BillingMode, CalleeBilling
from vos3k.store.models import Account, BlacklistEntry, Phone
from vos3k.switch.admission import (
    Admit,
    Arrival,
    Challenge,
    Reject,
    admit,
    call_settings,
)
from vos3k.switch.call import FromCallee, FromCaller, Kill, State
from vos3k.switch.guard import StaticBlacklist
from vos3k.switch.legs import Failed, HungUp
from vos3k.switch.reasons import EndReason
from vos3k.switch.router import Load

D = Decimal
T0 = 1_777_000_000_000


def run(directory, snap=None, pool=None, **kw):
    kw.setdefault("source_ip", CUSTOMER_IP)
    kw.setdefault("caller", "8613800138000")
    kw.setdefault("callee", "4412345678")
    arrival = Arrival("c1", source_port=5060, protocol="sip", **kw)
    settings = call_settings(snap or snapshot())
    return admit(arrival, settings, directory, Load(), pool or AccountPool(), T0)


def test_mapping_gateway_call_rated_and_reserved():
    pool = AccountPool()
    outcome = run(default_directory(customer=mapping(caller_prefix_rewrite="86*:0086*")), pool=pool)
    assert isinstance(outcome, Admit)
    ctx = outcome.context
    assert (ctx.caller_e164, ctx.callee_e164, ctx.payer) == (
        "008613800138000",
        "4412345678",
        "cust",
    )
    assert (ctx.billing_mode, ctx.rate.fee, ctx.reserved) == (BillingMode.GATEWAY, D("0.06"), True)
    assert pool.reservation("c1") == D("0.06")


@pytest.mark.parametrize(
    ("gateway_protocol", "arrival_protocol", "expected"),
    [
        # INTERFACE §6: not from a gateway of its protocol and not a phone: illegal
        pytest.param("h323", "sip", "reject-17", id="INTERFACE-6-sip-stranger-illegal"),
        pytest.param("sip", "h323", "reject-17", id="INTERFACE-6-h323-illegal"),
    ],
)
def test_protocol_must_match_the_mapping_gateway(gateway_protocol, arrival_protocol, expected):
    source = {"source_ip": CUSTOMER_IP, "caller": "8613800138000", "callee": "4412345678"}
    arrival = Arrival("c1", source_port=5060, protocol=arrival_protocol, **source)
    directory = default_directory(customer=mapping(protocol=gateway_protocol))
    outcome = admit(arrival, call_settings(snapshot()), directory, Load(), AccountPool(), T0)
    if expected == "challenge":
        assert outcome == Challenge("")
    else:
        assert isinstance(outcome, Reject) and outcome.reason == 17


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        pytest.param({}, ("challenge", None), id="INTERFACE-6-407"),
        pytest.param({"authenticated": "1001"}, ("admit", None), id="INTERFACE-6-digest-ok"),
        pytest.param({"auth_failed": True}, ("reject", 16), id="INTERFACE-6-digest-wrong"),
        pytest.param({"from_user": "999"}, ("reject", 17), id="INTERFACE-6-unknown-403"),
        pytest.param(
            {"from_user": "999", "auth_failed": True}, ("reject", 17), id="INTERFACE-6-illegal"
        ),
    ],
)
def test_who_is_calling_phone(kw, expected):
    kw.setdefault("from_user", "1001")
    directory = default_directory(phones=[Phone("1001", "pw", "cust")])
    outcome = run(directory, source_ip="192.0.2.5", **kw)
    kind, reason = expected
    if kind == "challenge":
        assert outcome == Challenge(kw["from_user"])
    elif kind == "admit":
        assert isinstance(outcome, Admit) and outcome.context.billing_mode is BillingMode.PHONE
    else:
        assert isinstance(outcome, Reject) and outcome.reason == reason
        assert (outcome.sip_code, outcome.direction) == (403, 2)


def test_callee_pays_phone_reserves_on_the_callee():
    accounts = [
        Account("cust", balance=D("0"), rate_table="retail"),
        Account("bob", balance=D("5"), rate_table="retail"),
    ]
    phones = [Phone("4412345678", "pw", "bob", callee_pays=True)]
    pool = AccountPool()
    outcome = run(default_directory(accounts=accounts, phones=phones), pool=pool)
    ctx = outcome.context
    assert (ctx.payer, ctx.callee_billing, ctx.billing_mode) == (
        "bob",
        CalleeBilling.CALLEE,
        BillingMode.PHONE,
    )
    assert pool.reservation("c1") == D("0.06")


def test_no_billing_to_phone_skips_rating():
    phones = [Phone("4412345678", "pw", "cust")]
    accounts = [Account("cust", balance=D("0"))]  # no rate table: would be 7
    snap = snapshot(SS_NO_BILLING_TO_PHONE=True)
    outcome = run(default_directory(accounts=accounts, phones=phones), snap=snap)
    assert isinstance(outcome, Admit) and outcome.context.rate is None


@pytest.mark.parametrize(
    ("lists", "number_class"),
    [
        pytest.param({"SERVER_BILLING_FREE_E164S": ("44*",)}, NumberClass.FREE, id="free"),
        pytest.param(
            {"SERVER_BILLING_NO_CDR_E164S": ("4412345678",), "SERVER_BILLING_FREE_E164S": ("*",)},
            NumberClass.NO_CDR,
            id="SPEC-3-step6-no-cdr-beats-free",
        ),
    ],
)
def test_free_numbers_skip_rating_and_reservation(lists, number_class):
    pool = AccountPool()
    outcome = run(default_directory(), snap=snapshot(**lists), pool=pool)
    assert outcome.context.number_class is number_class and not outcome.context.reserved
    assert "cust" not in pool


@pytest.mark.parametrize(
    ("gateway_kw", "admitted"),
    [
        pytest.param({"callee_allow": "44*"}, True, id="allow-match"),
        pytest.param({"callee_allow": "33*"}, False, id="SPEC-3-step5-allow-miss"),
        pytest.param({"caller_deny": "86*"}, False, id="SPEC-3-step5-caller-deny"),
        pytest.param(
            {"callee_prefix_rewrite": "44*:33*", "callee_deny": "44*"},
            True,
            id="SPEC-3-step5-lists-after-rewrite",
        ),
    ],
)
def test_allow_deny(gateway_kw, admitted):
    directory = default_directory(customer=mapping(**gateway_kw))
    outcome = run(directory)
    if admitted:
        assert not isinstance(outcome, Reject) or outcome.reason != 25
    else:
        assert isinstance(outcome, Reject) and (outcome.reason, outcome.sip_code) == (25, 403)


def _static(*entries):
    return StaticBlacklist.compile(entries, T0)


@pytest.mark.parametrize(
    ("blacklist", "blacklisted"),
    [
        pytest.param(_static(BlacklistEntry("4412*", "callee")), True, id="SPEC-3-4-callee"),
        pytest.param(_static(BlacklistEntry("86138*", "caller")), True, id="SPEC-3-4-caller"),
        pytest.param(_static(BlacklistEntry("4412*", "caller")), False, id="SPEC-2-dir"),
        pytest.param(
            _static(BlacklistEntry("4412*", "callee", expires_ms=T0)), False, id="SPEC-2-expired"
        ),
        pytest.param(_static(BlacklistEntry("203.0.113.0/24")), False, id="SPEC-3-1-ip-not-here"),
        pytest.param(
            _static(BlacklistEntry("8613800138000", kind="auth")), False, id="SPEC-10-auth-not-here"
        ),
    ],
)
def test_static_number_blacklist_is_reason_20(blacklist, blacklisted):
    arrival = Arrival("c1", CUSTOMER_IP, 5060, "sip", "8613800138000", "4412345678")
    outcome = admit(
        arrival, call_settings(snapshot()), default_directory(), Load(), AccountPool(), T0,
        blacklist,
    )  # fmt: skip
    if blacklisted:
        assert isinstance(outcome, Reject) and (outcome.reason, outcome.sip_code) == (20, 403)
    else:
        assert isinstance(outcome, Admit)


@frozen
class FakeDyn:
    """A DynamicCheck that bans one (caller, callee) pair and records what it was asked."""

    banned_pair: tuple[str, str]
    asked: list = attrs.field(factory=list)

    def banned(self, ctx, snap, now_ms):
        self.asked.append((ctx.caller_e164, ctx.callee_e164, now_ms))
        return "ban" if (ctx.caller_e164, ctx.callee_e164) == self.banned_pair else None


@pytest.mark.parametrize(
    ("pair", "banned"),
    [
        pytest.param(("8613800138000", "004412345678"), True, id="SPEC-10-dynamic-ban-20"),
        pytest.param(("8613800138000", "1"), False, id="SPEC-10-not-banned"),
    ],
)
def test_dynamic_blacklist_is_asked_at_step_4_with_unrewritten_numbers(pair, banned):
    dyn = FakeDyn(pair)
    arrival = Arrival("c1", CUSTOMER_IP, 5060, "sip", "8613800138000", "004412345678")
    directory = default_directory(customer=mapping(callee_prefix_rewrite="00*:*"))
    outcome = admit(
        arrival, call_settings(snapshot()), directory, Load(), AccountPool(), T0, None, dyn
    )
    # Step 4 sees the cleaned access numbers; the 00 strip is step 5's.
    assert dyn.asked == [("8613800138000", "004412345678", T0)]
    if banned:
        assert isinstance(outcome, Reject) and (outcome.reason, outcome.sip_code) == (20, 403)
    else:
        assert isinstance(outcome, Admit)


def _load(number: str, calls: int) -> Load:
    load = Load()
    for _ in range(calls):
        load.seize_caller(number)
    return load


@pytest.mark.parametrize(
    ("limit", "load", "gateway_kw", "admitted"),
    [
        pytest.param(0, _load("8613800138000", 5), {}, True, id="SPEC-9-caller-limit-0-off"),
        pytest.param(2, _load("8613800138000", 1), {}, True, id="SPEC-9-caller-under-limit"),
        pytest.param(2, _load("8613800138000", 2), {}, False, id="SPEC-3-4-caller-at-limit-18"),
        pytest.param(1, _load("8613800138001", 3), {}, True, id="SPEC-9-per-caller-not-global"),
        pytest.param(
            1, _load("8613800138000", 1), {"caller_prefix_rewrite": "86*:0086*"}, False,
            id="SPEC-3-4-counted-before-rewrite",
        ),
        pytest.param(
            1, _load("008613800138000", 1), {"caller_prefix_rewrite": "86*:0086*"}, True,
            id="SPEC-3-5-rewritten-number-not-the-key",
        ),
    ],
)  # fmt: skip
def test_caller_concurrent_limit_is_reason_18(limit, load, gateway_kw, admitted):
    arrival = Arrival("c1", CUSTOMER_IP, 5060, "sip", "8613800138000", "4412345678")
    snap = snapshot(SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT=limit)
    directory = default_directory(customer=mapping(**gateway_kw))
    outcome = admit(arrival, call_settings(snap), directory, load, AccountPool(), T0)
    if admitted:
        assert isinstance(outcome, Admit)
    else:
        assert isinstance(outcome, Reject)
        assert (outcome.reason, outcome.sip_code, outcome.q850) == (18, 503, 34)
        assert outcome.direction == 2


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(FromCaller(HungUp()), id="SPEC-3-caller-cancel-releases"),
        pytest.param(FromCallee(1, Failed(code=486)), id="SPEC-4-vendor-failure-releases"),
        pytest.param(Kill(), id="SPEC-3-kill-releases"),
    ],
)
def test_caller_count_held_from_admission_to_every_end(end):
    """SPEC §3 step 4: the call counts from admission to its end, whatever ends it."""
    directory = default_directory(
        vendor("VF1", "198.51.100.20"), customer=mapping(caller_prefix_rewrite="86*:0086*")
    )
    w = World(directory, snapshot(SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT=1))
    first, _ = w.arrive(T0, callee="4412345678")
    assert first.state is not State.ENDED
    assert w.load.caller_calls("8613800138000") == 1
    refused, _ = w.arrive(T0 + 10, callee="4412345678")
    assert refused.end_reason == EndReason.CONCURRENT_LIMIT_EXCEEDED
    other, _ = w.arrive(T0 + 20, callee="4412345678", caller="8613800138001")
    assert other.state is not State.ENDED  # another caller number is not limited
    first.handle(end, T0 + 30)
    assert first.state is State.ENDED
    assert w.load.caller_calls("8613800138000") == 0
    again, _ = w.arrive(T0 + 40, callee="4412345678")
    assert again.state is not State.ENDED
