"""Which calls get a CDR and which are billed (SPEC §7 policy, SPEC §5 billingMode)."""

from __future__ import annotations

import enum

from attrs import field, frozen
from attrs.validators import instance_of

from vos3k.cdr.record import BillingMode
from vos3k.switch.numbers import EMPTY_PATTERNS, PatternList
from vos3k.switch.reasons import EndDirection, EndReason

# SPEC §7 rule 2: the illegal calls.
ILLEGAL = frozenset({EndReason.AUTHENTICATION_FAILED, EndReason.UNAUTHORIZED_IP})


class NumberClass(enum.Enum):
    """SPEC §3 step 6: what the callee number makes of a call."""

    NORMAL = "normal"
    FREE = "free"  # SERVER_BILLING_FREE_E164S: fee 0, CDR kept
    NO_CDR = "no_cdr"  # SERVER_BILLING_NO_CDR_E164S: no CDR, fee or cost


class Rule(enum.Enum):
    """The SPEC §7 / §5 rule that decided a call."""

    NO_CDR_NUMBER = "no_cdr_number"  # §7 rule 1
    ILLEGAL = "illegal"  # §7 rule 2
    SERVER_HANG_UP = "server_hang_up"  # §7 rule 3
    ZERO_HOLD_TIME = "zero_hold_time"  # §7 rule 4
    FREE_NUMBER = "free_number"  # §5: CDR at fee 0, billingMode −1
    NO_BILLING_TO_PHONE = "no_billing_to_phone"  # §5: on-net call, billingMode −1
    BILLED = "billed"  # §7 rule 5, answered and rated


@frozen
class PolicySettings:
    """The §9 parameters the policy reads, snapshotted with the call."""

    record_zero_hold_time: bool = True  # SERVER_BILLING_RECORD_ZERO_HOLD_TIME
    record_server_hang_up: bool = True  # SERVER_BILLING_RECORD_SERVER_HANG_UP
    record_illegal_call: bool = True  # SERVER_BILLING_RECORD_ILLEGAL_CALL
    no_billing_to_phone: bool = False  # SS_NO_BILLING_TO_PHONE
    free_e164s: PatternList = field(default=EMPTY_PATTERNS, validator=instance_of(PatternList))
    no_cdr_e164s: PatternList = field(default=EMPTY_PATTERNS, validator=instance_of(PatternList))


@frozen
class CallFacts:
    """What the policy needs to know about an ended call."""

    callee_e164: str  # after the mapping rewrite
    callee_access_e164: str  # as received; SPEC §3 step 6 checks either form
    end_reason: EndReason
    end_direction: EndDirection
    answered: bool
    payer_mode: BillingMode  # 0 phone, 1 gateway, 3 card: the mode if billed
    on_net: bool = False  # the callee is a local phone


@frozen
class Decision:
    """The policy's verdict: a CDR or not, its billingMode, and whether money moves."""

    record: bool
    billing_mode: BillingMode
    charge: bool  # charge the fee (and book the cost); False leaves the balance alone
    rule: Rule

    @property
    def zero_hold(self) -> bool:
        """SPEC §7 rule 2: an illegal call's CDR carries hold time 0."""
        return self.rule is Rule.ILLEGAL


def classify_number(
    settings: PolicySettings, callee_e164: str, callee_access_e164: str
) -> NumberClass:
    """SPEC §3 step 6: a no-CDR number beats a free one; either form of the callee counts."""
    forms = (callee_e164, callee_access_e164)
    if any(settings.no_cdr_e164s.matches(n) for n in forms):
        return NumberClass.NO_CDR
    if any(settings.free_e164s.matches(n) for n in forms):
        return NumberClass.FREE
    return NumberClass.NORMAL


def skips_rating(settings: PolicySettings, number_class: NumberClass, on_net: bool) -> bool:
    """SPEC §3 steps 6-7: free and no-CDR calls, and on-net calls under
    SS_NO_BILLING_TO_PHONE, are neither rated nor reserved."""
    return number_class is not NumberClass.NORMAL or (on_net and settings.no_billing_to_phone)


_NONE = BillingMode.NONE


def decide(settings: PolicySettings, call: CallFacts) -> Decision:
    """SPEC §7 policy rules, in order; then SPEC §5's billingMode for the recorded."""
    number_class = classify_number(settings, call.callee_e164, call.callee_access_e164)
    # Rule 1: a no-CDR number leaves nothing, and beats FREE.
    if number_class is NumberClass.NO_CDR:
        return Decision(False, _NONE, False, Rule.NO_CDR_NUMBER)
    # Rule 2: RECORD_ILLEGAL_CALL alone decides illegal calls (not rules 3 or 4).
    if call.end_reason in ILLEGAL:
        return Decision(settings.record_illegal_call, _NONE, False, Rule.ILLEGAL)
    # Rule 3: any server hang-up, answered or not; no CDR = no balance change.
    if call.end_direction is EndDirection.SERVER and not settings.record_server_hang_up:
        return Decision(False, _NONE, False, Rule.SERVER_HANG_UP)
    # Rule 4: never answered, so never billed (SPEC §5: billingMode −1).
    if not call.answered:
        return Decision(settings.record_zero_hold_time, _NONE, False, Rule.ZERO_HOLD_TIME)
    # Rule 5: a CDR; SPEC §5 decides whether it is billed.
    if number_class is NumberClass.FREE:
        return Decision(True, _NONE, False, Rule.FREE_NUMBER)
    if call.on_net and settings.no_billing_to_phone:
        return Decision(True, _NONE, False, Rule.NO_BILLING_TO_PHONE)
    if call.payer_mode is _NONE:
        raise ValueError("an answered, rated call needs the payer's billing mode")
    return Decision(True, call.payer_mode, True, Rule.BILLED)
