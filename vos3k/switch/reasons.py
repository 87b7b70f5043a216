"""The 25 end reasons and their SIP/Q.850 mappings, in one table (SPEC §8)."""

from __future__ import annotations

import enum

from attrs import frozen


class EndReason(enum.IntEnum):
    """SPEC §8 table 1: the published 25-code list (numbers are on the wire and in CDRs)."""

    NORMAL_CLEARING = 1
    USER_BUSY = 2
    NO_ANSWER = 3
    UNALLOCATED_NUMBER = 4
    NETWORK_CONGESTION = 5
    ROUTE_NOT_FOUND = 6
    RATE_NOT_FOUND = 7
    BALANCE_INSUFFICIENT = 8
    ACCOUNT_EXPIRED = 9
    ACCOUNT_DISABLED = 10
    CALLER_HANGUP = 11
    CALLEE_HANGUP = 12
    SERVER_FORCED_RELEASE = 13
    SESSION_TIMEOUT = 14
    MEDIA_TIMEOUT = 15
    AUTHENTICATION_FAILED = 16
    UNAUTHORIZED_IP = 17
    CONCURRENT_LIMIT_EXCEEDED = 18
    CPS_LIMIT_EXCEEDED = 19
    BLACKLIST_MATCH = 20
    GATEWAY_UNAVAILABLE = 21
    NO_AVAILABLE_ROUTE = 22
    CALL_REJECTED = 23
    PREPAID_DURATION_EXCEEDED = 24
    SERVICE_NOT_SUBSCRIBED = 25


class EndDirection(enum.IntEnum):
    """CDR field 7: who ended the call."""

    CALLER = 0
    CALLEE = 1
    SERVER = 2


class Failover(enum.Enum):
    """SPEC §8 tables 2a/2b: may the hunt go on to the next gateway after this outcome."""

    YES = "y"
    NO = "n"
    # "busy": no while SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY=1, else yes (SPEC §4 step 5)
    BUSY = "busy"

    def allows(self, stop_after_user_busy: bool) -> bool:
        """Whether this flag lets the hunt continue under the given busy setting."""
        if self is Failover.BUSY:
            return not stop_after_user_busy
        return self is Failover.YES


# What vos3k sends when the call was answered: a BYE, not a final status code.
BYE = None

_C, _E, _S = EndDirection.CALLER, EndDirection.CALLEE, EndDirection.SERVER


@frozen
class Reason:
    """One row of SPEC §8 table 1."""

    reason: EndReason
    name: str
    directions: tuple[EndDirection, ...]
    sip: int | None  # final status vos3k sends on a failed set-up; None = BYE
    q850: int  # cause vos3k sends when it releases an H.323 leg
    bill: bool  # can end an answered, charged call


# SPEC §8 table 1, row for row.
REASONS: tuple[Reason, ...] = (
    Reason(EndReason.NORMAL_CLEARING, "Normal Clearing", (_C, _E), BYE, 16, True),
    Reason(EndReason.USER_BUSY, "User Busy", (_E,), 486, 17, False),
    Reason(EndReason.NO_ANSWER, "No Answer", (_E, _S), 480, 19, False),
    Reason(EndReason.UNALLOCATED_NUMBER, "Unallocated Number", (_E, _S), 404, 1, False),
    Reason(EndReason.NETWORK_CONGESTION, "Network Congestion", (_E, _S), 503, 42, False),
    Reason(EndReason.ROUTE_NOT_FOUND, "Route Not Found", (_S,), 404, 3, False),
    Reason(EndReason.RATE_NOT_FOUND, "Rate Not Found", (_S,), 404, 3, False),
    Reason(EndReason.BALANCE_INSUFFICIENT, "Balance Insufficient", (_S,), 403, 21, False),
    Reason(EndReason.ACCOUNT_EXPIRED, "Account Expired", (_S,), 403, 21, False),
    Reason(EndReason.ACCOUNT_DISABLED, "Account Disabled", (_S,), 403, 21, False),
    Reason(EndReason.CALLER_HANGUP, "Caller Hangup", (_C,), 487, 16, False),
    Reason(EndReason.CALLEE_HANGUP, "Callee Hangup", (_E,), 480, 16, False),
    Reason(EndReason.SERVER_FORCED_RELEASE, "Server Forced Release", (_S,), 500, 41, True),
    Reason(EndReason.SESSION_TIMEOUT, "Session Timeout", (_S,), BYE, 102, True),
    Reason(EndReason.MEDIA_TIMEOUT, "Media Timeout", (_S,), BYE, 41, True),
    Reason(EndReason.AUTHENTICATION_FAILED, "Authentication Failed", (_S,), 403, 21, False),
    Reason(EndReason.UNAUTHORIZED_IP, "Unauthorized IP", (_S,), 403, 21, False),
    Reason(EndReason.CONCURRENT_LIMIT_EXCEEDED, "Concurrent Limit Exceeded", (_S,), 503, 34, False),
    Reason(EndReason.CPS_LIMIT_EXCEEDED, "CPS Limit Exceeded", (_S,), 503, 47, False),
    Reason(EndReason.BLACKLIST_MATCH, "Blacklist Match", (_S,), 403, 21, False),
    Reason(EndReason.GATEWAY_UNAVAILABLE, "Gateway Unavailable", (_S,), 408, 102, False),
    Reason(EndReason.NO_AVAILABLE_ROUTE, "No Available Route", (_S,), 503, 34, False),
    Reason(EndReason.CALL_REJECTED, "Call Rejected", (_E,), 403, 21, False),
    Reason(EndReason.PREPAID_DURATION_EXCEEDED, "Prepaid Duration Exceeded", (_S,), BYE, 16, True),
    Reason(EndReason.SERVICE_NOT_SUBSCRIBED, "Service Not Subscribed", (_S,), 403, 57, False),
)

BY_REASON: dict[EndReason, Reason] = {row.reason: row for row in REASONS}
TO_SIP: dict[EndReason, int | None] = {row.reason: row.sip for row in REASONS}
TO_Q850: dict[EndReason, int] = {row.reason: row.q850 for row in REASONS}
NAMES: dict[EndReason, str] = {row.reason: row.name for row in REASONS}
BY_NAME: dict[str, EndReason] = {row.name.lower(): row.reason for row in REASONS}
BILLABLE: frozenset[EndReason] = frozenset(row.reason for row in REASONS if row.bill)


def reason_name(reason: int) -> str:
    """The published name of end reason `reason` (CDR `end_reason_name`)."""
    return NAMES[EndReason(reason)]


def reason_by_name(name: str) -> EndReason | None:
    """End reason by its published name, case-insensitive (`cdr modify reason=`)."""
    return BY_NAME.get(name.strip().lower())


@frozen
class VendorSip:
    """One column of SPEC §8 table 2a: a vendor's SIP failure and what it means."""

    codes: tuple[int, ...]
    reason: EndReason
    failover: Failover
    q850: int  # cause for an H.323 caller


@frozen
class VendorCause:
    """One column of SPEC §8 table 2b: an H.323 vendor's cause before Connect."""

    causes: tuple[int, ...]
    reason: EndReason
    failover: Failover
    sip: int  # the outcome as SIP code E (SPEC §4 failover step 2)


_Y, _N, _B = Failover.YES, Failover.NO, Failover.BUSY
_R = EndReason

# SPEC §8 table 2a, column for column.
VENDOR_SIP: tuple[VendorSip, ...] = (
    VendorSip((400,), _R.CALL_REJECTED, _Y, 41),
    VendorSip((401, 407), _R.CALL_REJECTED, _Y, 21),
    VendorSip((403,), _R.CALL_REJECTED, _Y, 21),
    VendorSip((404,), _R.UNALLOCATED_NUMBER, _Y, 1),
    VendorSip((405,), _R.CALL_REJECTED, _Y, 63),
    VendorSip((408,), _R.NO_ANSWER, _Y, 102),
    VendorSip((410,), _R.UNALLOCATED_NUMBER, _Y, 22),
    VendorSip((480,), _R.NO_ANSWER, _Y, 18),
    VendorSip((484,), _R.UNALLOCATED_NUMBER, _Y, 28),
    VendorSip((485,), _R.UNALLOCATED_NUMBER, _Y, 1),
    VendorSip((486,), _R.USER_BUSY, _B, 17),
    VendorSip((487,), _R.CALLEE_HANGUP, _N, 127),
    VendorSip((488,), _R.CALL_REJECTED, _Y, 127),
    VendorSip((500,), _R.NETWORK_CONGESTION, _Y, 41),
    VendorSip((501,), _R.CALL_REJECTED, _Y, 79),
    VendorSip((502,), _R.NETWORK_CONGESTION, _Y, 38),
    VendorSip((503,), _R.NETWORK_CONGESTION, _Y, 41),
    VendorSip((504,), _R.NETWORK_CONGESTION, _Y, 102),
    VendorSip((600,), _R.USER_BUSY, _B, 17),
    VendorSip((603,), _R.CALL_REJECTED, _N, 21),
    VendorSip((604,), _R.UNALLOCATED_NUMBER, _N, 1),
    VendorSip((606,), _R.CALL_REJECTED, _N, 58),
)

# SPEC §8 table 2a, "unlisted" rules by status class.
VENDOR_SIP_UNLISTED: dict[int, VendorSip] = {
    3: VendorSip((), _R.CALL_REJECTED, _Y, 127),
    4: VendorSip((), _R.CALL_REJECTED, _Y, 127),
    5: VendorSip((), _R.NETWORK_CONGESTION, _Y, 41),
    6: VendorSip((), _R.CALL_REJECTED, _N, 127),
}

# SPEC §8 table 2b, column for column.
VENDOR_CAUSES: tuple[VendorCause, ...] = (
    VendorCause((1,), _R.UNALLOCATED_NUMBER, _Y, 404),
    VendorCause((3,), _R.UNALLOCATED_NUMBER, _Y, 404),
    VendorCause((16,), _R.CALLEE_HANGUP, _N, 480),
    VendorCause((17,), _R.USER_BUSY, _B, 486),
    VendorCause((18,), _R.NO_ANSWER, _Y, 408),
    VendorCause((19,), _R.NO_ANSWER, _Y, 480),
    VendorCause((20,), _R.NO_ANSWER, _Y, 480),
    VendorCause((21,), _R.CALL_REJECTED, _Y, 403),
    VendorCause((22,), _R.UNALLOCATED_NUMBER, _Y, 410),
    VendorCause((27,), _R.GATEWAY_UNAVAILABLE, _Y, 502),
    VendorCause((28,), _R.UNALLOCATED_NUMBER, _Y, 484),
    VendorCause((31,), _R.CALL_REJECTED, _Y, 480),
    VendorCause((34, 38, 41, 42, 44, 47), _R.NETWORK_CONGESTION, _Y, 503),
    VendorCause((57,), _R.CALL_REJECTED, _Y, 403),
    VendorCause((102,), _R.GATEWAY_UNAVAILABLE, _Y, 504),
    VendorCause((127,), _R.CALL_REJECTED, _Y, 500),
)

# SPEC §8 table 2b, "unlisted" rule.
VENDOR_CAUSE_UNLISTED = VendorCause((), _R.CALL_REJECTED, _Y, 500)

FROM_VENDOR_SIP: dict[int, VendorSip] = {c: row for row in VENDOR_SIP for c in row.codes}
FROM_VENDOR_CAUSE: dict[int, VendorCause] = {c: row for row in VENDOR_CAUSES for c in row.causes}


def from_vendor_sip(code: int) -> VendorSip:
    """SPEC §8 table 2a for a vendor's final failure status 300–699.

    Raises ValueError for other codes: a provisional, a 2xx or a code outside the
    SIP range is not a failed attempt, and passing one is our own code's mistake.
    """
    row = FROM_VENDOR_SIP.get(code)
    if row is not None:
        return row
    if not 300 <= code <= 699:
        raise ValueError(f"not a SIP failure status: {code}")
    return VENDOR_SIP_UNLISTED[code // 100]


def from_vendor_cause(cause: int) -> VendorCause:
    """SPEC §8 table 2b for an H.323 vendor's Q.850 cause before Connect."""
    return FROM_VENDOR_CAUSE.get(cause, VENDOR_CAUSE_UNLISTED)


def code_for_caller(code: int) -> int:
    """SPEC §3: a relayed vendor status as the caller sees it (3xx → 480, 401/407 → 403)."""
    if 300 <= code <= 399:
        return 480
    if code in (401, 407):
        return 403
    return code
