"""SPEC §7 CDR policy (rules in order) and SPEC §5 billingMode, table-driven."""

import pytest

from vos3k.cdr.policy import (
    CallFacts,
    Decision,
    NumberClass,
    PolicySettings,
    Rule,
    classify_number,
    decide,
    skips_rating,
)
from vos3k.cdr.record import BillingMode
from vos3k.switch.numbers import parse_patterns
from vos3k.switch.reasons import EndDirection, EndReason

R, D, M = EndReason, EndDirection, BillingMode

FREE = parse_patterns("800*,112")
NO_CDR = parse_patterns("999*,112")


def settings(zero=1, server=1, illegal=1, no_phone=0):
    return PolicySettings(
        record_zero_hold_time=bool(zero),
        record_server_hang_up=bool(server),
        record_illegal_call=bool(illegal),
        no_billing_to_phone=bool(no_phone),
        free_e164s=FREE,
        no_cdr_e164s=NO_CDR,
    )


def call(callee="4412", reason=R.NORMAL_CLEARING, direction=D.CALLER, answered=True, **kw):
    return CallFacts(
        callee_e164=callee,
        callee_access_e164=kw.pop("access", callee),
        end_reason=reason,
        end_direction=direction,
        answered=answered,
        payer_mode=kw.pop("payer", M.GATEWAY),
        on_net=kw.pop("on_net", False),
    )


# (id, settings, call, record, billingMode, charge, rule)
CASES = [
    ("answered-gateway", settings(), call(), True, M.GATEWAY, True, Rule.BILLED),
    ("answered-phone", settings(), call(payer=M.PHONE), True, M.PHONE, True, Rule.BILLED),
    ("answered-card", settings(), call(payer=M.CARD), True, M.CARD, True, Rule.BILLED),
    ("rule1-no-cdr", settings(), call("9991"), False, M.NONE, False, Rule.NO_CDR_NUMBER),
    ("rule1-access-form", settings(), call("4412", access="9994412"), False, M.NONE, False,
     Rule.NO_CDR_NUMBER),
    ("rule1-beats-free", settings(), call("112"), False, M.NONE, False, Rule.NO_CDR_NUMBER),
    ("rule1-beats-illegal", settings(), call("9991", R.UNAUTHORIZED_IP, D.SERVER, False),
     False, M.NONE, False, Rule.NO_CDR_NUMBER),
    ("rule2-16-on", settings(), call(reason=R.AUTHENTICATION_FAILED, direction=D.SERVER,
     answered=False), True, M.NONE, False, Rule.ILLEGAL),
    ("rule2-17-on", settings(), call(reason=R.UNAUTHORIZED_IP, direction=D.SERVER,
     answered=False), True, M.NONE, False, Rule.ILLEGAL),
    ("rule2-17-off", settings(illegal=0), call(reason=R.UNAUTHORIZED_IP, direction=D.SERVER,
     answered=False), False, M.NONE, False, Rule.ILLEGAL),
    ("rule2-alone-server-off", settings(server=0, zero=0), call(reason=R.UNAUTHORIZED_IP,
     direction=D.SERVER, answered=False), True, M.NONE, False, Rule.ILLEGAL),
    ("rule2-free-number", settings(), call("8001", R.AUTHENTICATION_FAILED, D.SERVER, False),
     True, M.NONE, False, Rule.ILLEGAL),
    ("rule3-cut-on", settings(), call(reason=R.PREPAID_DURATION_EXCEEDED,
     direction=D.SERVER), True, M.GATEWAY, True, Rule.BILLED),
    ("rule3-cut-off", settings(server=0), call(reason=R.PREPAID_DURATION_EXCEEDED,
     direction=D.SERVER), False, M.NONE, False, Rule.SERVER_HANG_UP),
    ("rule3-unanswered-off", settings(server=0), call(reason=R.GATEWAY_UNAVAILABLE,
     direction=D.SERVER, answered=False), False, M.NONE, False, Rule.SERVER_HANG_UP),
    ("rule3-then-rule4", settings(zero=0), call(reason=R.NO_AVAILABLE_ROUTE,
     direction=D.SERVER, answered=False), False, M.NONE, False, Rule.ZERO_HOLD_TIME),
    ("rule3-caller-unaffected", settings(server=0), call(), True, M.GATEWAY, True,
     Rule.BILLED),
    ("rule4-busy-on", settings(), call(reason=R.USER_BUSY, direction=D.CALLEE,
     answered=False), True, M.NONE, False, Rule.ZERO_HOLD_TIME),
    ("rule4-busy-off", settings(zero=0), call(reason=R.USER_BUSY, direction=D.CALLEE,
     answered=False), False, M.NONE, False, Rule.ZERO_HOLD_TIME),
    ("rule4-cancel-off", settings(zero=0), call(reason=R.CALLER_HANGUP, direction=D.CALLER,
     answered=False), False, M.NONE, False, Rule.ZERO_HOLD_TIME),
    ("rule4-free-unanswered", settings(), call("8001", R.NO_ANSWER, D.CALLEE, False), True,
     M.NONE, False, Rule.ZERO_HOLD_TIME),
    ("spec5-free", settings(), call("8001"), True, M.NONE, False, Rule.FREE_NUMBER),
    ("spec5-free-access", settings(), call("4412", access="8004412"), True, M.NONE, False,
     Rule.FREE_NUMBER),
    ("spec5-on-net-free", settings(no_phone=1), call(on_net=True, payer=M.PHONE), True,
     M.NONE, False, Rule.NO_BILLING_TO_PHONE),
    ("spec5-on-net-billed", settings(), call(on_net=True, payer=M.PHONE), True, M.PHONE,
     True, Rule.BILLED),
    ("spec5-off-net-billed", settings(no_phone=1), call(payer=M.PHONE), True, M.PHONE, True,
     Rule.BILLED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "facts", "record", "mode", "charge", "rule"),
    [c[1:] for c in CASES],
    ids=[f"spec7-{c[0]}" for c in CASES],
)
def test_policy(policy, facts, record, mode, charge, rule):
    assert decide(policy, facts) == Decision(record, mode, charge, rule)


def test_illegal_cdr_has_zero_hold():
    got = decide(settings(), call(reason=R.UNAUTHORIZED_IP, direction=D.SERVER, answered=False))
    assert got.zero_hold is True
    assert decide(settings(), call()).zero_hold is False


def test_answered_call_needs_a_payer_mode():
    with pytest.raises(ValueError):
        decide(settings(), call(payer=M.NONE))


@pytest.mark.parametrize(
    ("callee", "access", "want"),
    [
        ("4412", "004412", NumberClass.NORMAL),
        ("8001", "008001", NumberClass.FREE),
        ("4412", "800", NumberClass.FREE),
        ("9991", "4412", NumberClass.NO_CDR),
        ("112", "112", NumberClass.NO_CDR),
    ],
    ids=["spec3-normal", "spec3-free", "spec3-free-access", "spec3-no-cdr", "spec3-both"],
)
def test_classify_number(callee, access, want):
    assert classify_number(settings(), callee, access) is want


@pytest.mark.parametrize(
    ("number_class", "on_net", "no_phone", "skip"),
    [
        (NumberClass.NORMAL, False, 1, False),
        (NumberClass.NORMAL, True, 0, False),
        (NumberClass.NORMAL, True, 1, True),
        (NumberClass.FREE, False, 0, True),
        (NumberClass.NO_CDR, False, 0, True),
    ],
    ids=["off-net", "on-net-billed", "on-net-free", "free", "no-cdr"],
)
def test_skips_rating(number_class, on_net, no_phone, skip):
    assert skips_rating(settings(no_phone=no_phone), number_class, on_net) is skip


def test_defaults_record_everything():
    policy = PolicySettings()
    facts = call(reason=R.GATEWAY_UNAVAILABLE, direction=D.SERVER, answered=False)
    assert decide(policy, facts).record is True
    assert decide(policy, call("112")).rule is Rule.BILLED  # empty lists match nothing
