"""SPEC §8: the end-reason table and the vendor SIP/Q.850 mappings, row by row."""

from collections import Counter

import pytest

from vos3k.switch import reasons
from vos3k.switch.reasons import (
    BILLABLE,
    EndDirection,
    EndReason,
    Failover,
    code_for_caller,
    from_vendor_cause,
    from_vendor_sip,
    reason_by_name,
    reason_name,
)

# SPEC §8 table 1, copied by hand: number, name, dirs, SIP ("BYE" = None), Q.850, bill.
TABLE_1 = [
    (1, "Normal Clearing", (0, 1), None, 16, True),
    (2, "User Busy", (1,), 486, 17, False),
    (3, "No Answer", (1, 2), 480, 19, False),
    (4, "Unallocated Number", (1, 2), 404, 1, False),
    (5, "Network Congestion", (1, 2), 503, 42, False),
    (6, "Route Not Found", (2,), 404, 3, False),
    (7, "Rate Not Found", (2,), 404, 3, False),
    (8, "Balance Insufficient", (2,), 403, 21, False),
    (9, "Account Expired", (2,), 403, 21, False),
    (10, "Account Disabled", (2,), 403, 21, False),
    (11, "Caller Hangup", (0,), 487, 16, False),
    (12, "Callee Hangup", (1,), 480, 16, False),
    (13, "Server Forced Release", (2,), 500, 41, True),
    (14, "Session Timeout", (2,), None, 102, True),
    (15, "Media Timeout", (2,), None, 41, True),
    (16, "Authentication Failed", (2,), 403, 21, False),
    (17, "Unauthorized IP", (2,), 403, 21, False),
    (18, "Concurrent Limit Exceeded", (2,), 503, 34, False),
    (19, "CPS Limit Exceeded", (2,), 503, 47, False),
    (20, "Blacklist Match", (2,), 403, 21, False),
    (21, "Gateway Unavailable", (2,), 408, 102, False),
    (22, "No Available Route", (2,), 503, 34, False),
    (23, "Call Rejected", (1,), 403, 21, False),
    (24, "Prepaid Duration Exceeded", (2,), None, 16, True),
    (25, "Service Not Subscribed", (2,), 403, 57, False),
]

# The published names as the contract smoke tests know them (lib/vj.py END_REASONS).
CONTRACT_NAMES = [
    "Normal Clearing", "User Busy", "No Answer", "Unallocated Number", "Network Congestion",
    "Route Not Found", "Rate Not Found", "Balance Insufficient", "Account Expired",
    "Account Disabled", "Caller Hangup", "Callee Hangup", "Server Forced Release",
    "Session Timeout", "Media Timeout", "Authentication Failed", "Unauthorized IP",
    "Concurrent Limit Exceeded", "CPS Limit Exceeded", "Blacklist Match",
    "Gateway Unavailable", "No Available Route", "Call Rejected",
    "Prepaid Duration Exceeded", "Service Not Subscribed",
]  # fmt: skip

Y, N, B = "y", "n", "busy"

# SPEC §8 table 2a: SIP code -> reason, failover, Q.850.
TABLE_2A = [
    (400, 23, Y, 41), (401, 23, Y, 21), (407, 23, Y, 21), (403, 23, Y, 21), (404, 4, Y, 1),
    (405, 23, Y, 63), (408, 3, Y, 102), (410, 4, Y, 22), (480, 3, Y, 18), (484, 4, Y, 28),
    (485, 4, Y, 1), (486, 2, B, 17), (487, 12, N, 127), (488, 23, Y, 127), (500, 5, Y, 41),
    (501, 23, Y, 79), (502, 5, Y, 38), (503, 5, Y, 41), (504, 5, Y, 102), (600, 2, B, 17),
    (603, 23, N, 21), (604, 4, N, 1), (606, 23, N, 58),
]  # fmt: skip

# SPEC §8 table 2a, unlisted codes by class.
TABLE_2A_UNLISTED = [
    (300, 23, Y, 127), (302, 23, Y, 127), (399, 23, Y, 127), (402, 23, Y, 127),
    (420, 23, Y, 127), (499, 23, Y, 127), (505, 5, Y, 41), (580, 5, Y, 41),
    (599, 5, Y, 41), (601, 23, N, 127), (699, 23, N, 127),
]  # fmt: skip

# SPEC §8 table 2b: Q.850 cause -> reason, failover, SIP.
TABLE_2B = [
    (1, 4, Y, 404), (3, 4, Y, 404), (16, 12, N, 480), (17, 2, B, 486), (18, 3, Y, 408),
    (19, 3, Y, 480), (20, 3, Y, 480), (21, 23, Y, 403), (22, 4, Y, 410), (27, 21, Y, 502),
    (28, 4, Y, 484), (31, 23, Y, 480), (34, 5, Y, 503), (38, 5, Y, 503), (41, 5, Y, 503),
    (42, 5, Y, 503), (44, 5, Y, 503), (47, 5, Y, 503), (57, 23, Y, 403), (102, 21, Y, 504),
    (127, 23, Y, 500),
]  # fmt: skip


def test_all_25_reasons_in_order():
    assert [r.value for r in EndReason] == list(range(1, 26))
    assert [row.reason for row in reasons.REASONS] == list(EndReason)


def test_names_match_the_contract():
    assert [reason_name(n) for n in range(1, 26)] == CONTRACT_NAMES


def test_directions():
    assert (EndDirection.CALLER, EndDirection.CALLEE, EndDirection.SERVER) == (0, 1, 2)


@pytest.mark.parametrize("row", TABLE_1, ids=[f"spec8-t1-{r[0]}" for r in TABLE_1])
def test_table_1_row(row):
    number, name, dirs, sip, q850, bill = row
    reason = EndReason(number)
    entry = reasons.BY_REASON[reason]
    assert entry.name == name
    assert tuple(int(d) for d in entry.directions) == dirs
    assert reasons.TO_SIP[reason] == sip
    assert reasons.TO_Q850[reason] == q850
    assert (reason in BILLABLE) is bill
    assert reason_by_name(name.upper()) is reason


def test_unknown_name():
    assert reason_by_name("Sunny Day") is None


@pytest.mark.parametrize("row", TABLE_2A, ids=[f"spec8-t2a-{r[0]}" for r in TABLE_2A])
def test_table_2a_row(row):
    code, reason, failover, q850 = row
    got = from_vendor_sip(code)
    assert (got.reason, got.failover.value, got.q850) == (reason, failover, q850)


@pytest.mark.parametrize(
    "row", TABLE_2A_UNLISTED, ids=[f"spec8-t2a-unlisted-{r[0]}" for r in TABLE_2A_UNLISTED]
)
def test_table_2a_unlisted(row):
    code, reason, failover, q850 = row
    got = from_vendor_sip(code)
    assert (got.reason, got.failover.value, got.q850) == (reason, failover, q850)


@pytest.mark.parametrize("code", [100, 180, 200, 299, 700, 0])
def test_table_2a_refuses_non_failures(code):
    with pytest.raises(ValueError):
        from_vendor_sip(code)


@pytest.mark.parametrize("row", TABLE_2B, ids=[f"spec8-t2b-{r[0]}" for r in TABLE_2B])
def test_table_2b_row(row):
    cause, reason, failover, sip = row
    got = from_vendor_cause(cause)
    assert (got.reason, got.failover.value, got.sip) == (reason, failover, sip)


@pytest.mark.parametrize("cause", [2, 6, 29, 50, 65, 88, 111, 126])
def test_table_2b_unlisted(cause):
    got = from_vendor_cause(cause)
    assert (got.reason, got.failover, got.sip) == (EndReason.CALL_REJECTED, Failover.YES, 500)


def test_tables_cover_exactly_the_spec_codes():
    assert sorted(reasons.FROM_VENDOR_SIP) == sorted(r[0] for r in TABLE_2A)
    assert sorted(reasons.FROM_VENDOR_CAUSE) == sorted(r[0] for r in TABLE_2B)


def test_no_inbound_code_mapped_twice():
    sip = Counter(c for row in reasons.VENDOR_SIP for c in row.codes)
    q850 = Counter(c for row in reasons.VENDOR_CAUSES for c in row.causes)
    assert [c for c, n in sip.items() if n > 1] == []
    assert [c for c, n in q850.items() if n > 1] == []


@pytest.mark.parametrize(
    ("flag", "stop_after_busy", "allowed"),
    [
        (Failover.YES, True, True),
        (Failover.YES, False, True),
        (Failover.NO, True, False),
        (Failover.NO, False, False),
        (Failover.BUSY, True, False),
        (Failover.BUSY, False, True),
    ],
    ids=["y-1", "y-0", "n-1", "n-0", "busy-1", "busy-0"],
)
def test_failover_flag(flag, stop_after_busy, allowed):
    assert flag.allows(stop_after_busy) is allowed


@pytest.mark.parametrize(
    ("vendor", "caller"),
    [(300, 480), (302, 480), (399, 480), (401, 403), (407, 403), (486, 486), (503, 503)],
    ids=["spec3-300", "spec3-302", "spec3-399", "spec3-401", "spec3-407", "486", "503"],
)
def test_code_for_caller(vendor, caller):
    assert code_for_caller(vendor) == caller
