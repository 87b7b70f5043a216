"""Whole calls through the pure core with literal now_ms (SPEC §3 step table, §4, §6, §7)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.switch.fakes import World, default_directory, mapping, snapshot, vendor
from vos3k.cdr.record import BillingMode
from vos3k.store.models import Account, BlacklistEntry, Phone, Rate
from vos3k.switch.call import (
    Answer,
    Cancel,
    CommitCdr,
    Dropped,
    FromCallee,
    FromCaller,
    HangUp,
    Kill,
    PhoneTarget,
    Progress183,
    Ring,
    StartAttempt,
    State,
    TimerFired,
    ToCallee,
    ToCaller,
)
from vos3k.switch.guard import StaticBlacklist
from vos3k.switch.legs import (
    Answered,
    Ending,
    Failed,
    HungUp,
    Media,
    MediaStarted,
    Proceeding,
    Progress,
    Ringing,
)
from vos3k.switch.reasons import EndDirection, EndReason

D = Decimal
T0 = 1_777_000_000_000
SDP = Media(b"v=0\r\n", address="198.51.100.20", port=4000)
VF1 = vendor("VF1", "198.51.100.20", callee_prefix_rewrite="*:77*")
VF2 = vendor("VF2", "198.51.100.30", priority=1)
CUST = mapping(callee_prefix_rewrite="00*:*")


def world(*routing, customer=CUST, snap=None, **kw):
    return World(default_directory(*routing, customer=customer, **kw), snap)


def only(effects, kind):
    found = [e for e in effects if isinstance(e, kind)]
    assert len(found) == 1, effects
    return found[0]


def ended(effects):
    """The CDR and the ending messages released after its commit."""
    commit = only(effects, CommitCdr)
    return commit.cdr, commit.then


def caller_ending(then) -> Ending:
    return only(then, ToCaller).command.ending


def run_until(call, end_ms):
    """Fire the call's timer at each deadline up to `end_ms`, as the engine does."""
    effects = []
    while call.next_deadline_ms() is not None and call.next_deadline_ms() <= end_ms:
        effects += call.handle(TimerFired(), call.next_deadline_ms())
    return effects


def test_basic_call_cdr_fields_and_billing():
    w = world(VF1)
    call, effects = w.arrive(T0)
    setup = only(effects, StartAttempt).setup
    assert (setup.gateway, setup.target_ip, setup.target_port) == ("VF1", VF1.ip, 5060)
    assert (setup.caller, setup.callee) == ("8613800138000", "774412345678")  # SPEC §7
    assert call.handle(FromCallee(1, Proceeding()), T0 + 100) == []
    assert call.handle(FromCallee(1, Ringing()), T0 + 1500) == [ToCaller(Ring(None))]
    assert call.state is State.RINGING
    assert call.handle(FromCallee(1, Answered(SDP)), T0 + 3200) == [ToCaller(Answer(SDP))]
    assert w.load.calls("VF1") == 1 and w.load.total == 1
    assert run_until(call, T0 + 3200 + 61040) == []  # SPEC §6 extensions, no cut
    cdr, then = ended(call.handle(FromCaller(HungUp()), T0 + 3200 + 61040))
    bye = Ending(EndReason.NORMAL_CLEARING, None, 16)
    assert then == (ToCaller(HangUp(bye)), ToCallee(1, HangUp(bye)))
    assert (cdr.caller_e164, cdr.callee_e164) == ("8613800138000", "4412345678")
    assert (cdr.caller_access_e164, cdr.callee_access_e164) == ("8613800138000", "004412345678")
    assert (cdr.caller_to_gateway_e164, cdr.callee_to_gateway_e164) == (
        "8613800138000",
        "774412345678",
    )
    assert (cdr.start_time, cdr.stop_time, cdr.hold_time) == (T0, T0 + 64240, 61040)
    assert (cdr.end_reason, cdr.end_direction) == (EndReason.NORMAL_CLEARING, EndDirection.CALLER)
    assert (cdr.caller_gateway_id, cdr.callee_gateway_id) == ("CUST", "VF1")
    assert (cdr.caller_ip, cdr.callee_ip) == ("203.0.113.10", "198.51.100.20")
    assert (cdr.caller_pdd, cdr.callee_pdd) == (1500, 1500)
    assert cdr.billing_mode is BillingMode.GATEWAY
    # SPEC §7 example: 120 s at 0.06/min (60/60) = 0.12; vendor 61 s at 0.03/min 1/1.
    assert (cdr.billed_seconds, cdr.fee, cdr.cost) == (120, D("0.12"), D("0.03"))
    assert (cdr.account, cdr.clearing_account, cdr.sip_code, cdr.attempts) == (
        "cust",
        "vend",
        200,
        1,
    )
    row = only(call.handle(FromCaller(HungUp()), T0 + 70000), Dropped)
    assert row.input.value == "caller_hung_up"
    assert w.pool.view("cust").balance == D("99.88") and w.pool.view("cust").reserved == 0
    assert (w.load.total, w.load.calls("VF1"), w.load.calls("CUST")) == (0, 0, 0)


def test_cdr_row_uses_store_columns():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(SDP)), T0 + 1000)
    commit = only(call.handle(FromCallee(1, HungUp()), T0 + 31000), CommitCdr)
    row = commit.row
    assert (row["fee_e4"], row["cost_e4"], row["hold_ms"], row["end_direction"]) == (
        600,
        200,  # 30 s at 0.03/min = 0.015, half-up to 0.02 (SPEC §5)
        30000,
        1,
    )
    assert row["call_uuid"] == call.id and row["extra"]["attempts"][0]["gateway"] == "VF1"


def test_cancel_while_ringing():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Ringing()), T0 + 800)
    cdr, then = ended(call.handle(FromCaller(HungUp()), T0 + 5000))
    assert then == (
        ToCaller(HangUp(Ending(EndReason.CALLER_HANGUP, 487, 16))),
        ToCallee(1, Cancel()),
    )
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code, cdr.hold_time) == (11, 0, 487, 0)
    assert cdr.billing_mode is BillingMode.NONE and cdr.fee == 0
    assert w.pool.view("cust").reserved == 0 and w.pool.view("cust").balance == 100


def test_late_200_after_cancel_is_hung_up():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCaller(HungUp()), T0 + 100)
    effects = call.handle(FromCallee(1, Answered(SDP)), T0 + 120)
    assert effects == [ToCallee(1, HangUp(Ending(EndReason.NORMAL_CLEARING, None, 16)))]


@pytest.mark.parametrize(
    ("stop_codes", "expected"),
    [
        pytest.param((), (EndReason.USER_BUSY, 1, 486, 1), id="SPEC-4-step5-busy-stops"),
        pytest.param((486,), (EndReason.USER_BUSY, 1, 486, 1), id="SPEC-4-step5-stop-code"),
    ],
)
def test_486_ends_the_hunt(stop_codes, expected):
    vf1 = vendor("VF1", "198.51.100.20", stop_codes=stop_codes)
    w = world(vf1, VF2)
    call, _ = w.arrive(T0)
    cdr, then = ended(call.handle(FromCallee(1, Failed(code=486)), T0 + 900))
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code, cdr.attempts) == expected
    assert caller_ending(then) == Ending(EndReason.USER_BUSY, 486, 17)
    assert cdr.callee_pdd == 900


def test_486_fails_over_when_busy_does_not_stop_the_hunt():
    w = world(VF1, VF2, snap=snapshot(SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY=False))
    call, _ = w.arrive(T0)
    effects = call.handle(FromCallee(1, Failed(code=486)), T0 + 900)
    assert only(effects, StartAttempt).setup.gateway == "VF2"


def test_stop_code_ends_hunt_on_503():
    vf1 = vendor("VF1", "198.51.100.20", stop_codes=(503,))
    w = world(vf1, VF2)
    call, _ = w.arrive(T0)
    cdr, _ = ended(call.handle(FromCallee(1, Failed(code=503)), T0 + 900))
    assert (cdr.end_reason, cdr.sip_code, cdr.callee_gateway_id) == (5, 503, "VF1")


def test_503_fails_over_to_the_second_gateway():
    w = world(VF1, VF2)
    call, _ = w.arrive(T0)
    effects = call.handle(FromCallee(1, Failed(code=503)), T0 + 400)
    setup = only(effects, StartAttempt).setup
    assert (setup.gateway, setup.attempt, setup.callee) == ("VF2", 2, "4412345678")
    assert w.load.calls("VF1") == 0 and w.load.calls("VF2") == 1
    # A late event of attempt 1 is stale.
    assert isinstance(only(call.handle(FromCallee(1, Ringing()), T0 + 450), Dropped), Dropped)
    call.handle(FromCallee(2, Answered(SDP)), T0 + 1400)
    cdr, _ = ended(call.handle(FromCaller(HungUp()), T0 + 11400))
    assert (cdr.callee_gateway_id, cdr.callee_ip, cdr.callee_pdd, cdr.attempts) == (
        "VF2",
        VF2.ip,
        1000,
        2,
    )
    assert cdr.callee_to_gateway_e164 == "4412345678"


def test_503_on_the_last_gateway_relays_503():
    w = world(VF1, VF2)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Failed(code=503)), T0 + 400)
    cdr, then = ended(call.handle(FromCallee(2, Failed(code=503)), T0 + 800))
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (5, 1, 503)
    assert caller_ending(then).q850 == 41


def test_invite_timeout_fails_over():
    w = world(VF1, VF2, snap=snapshot(SS_SIP_TIMEOUT_INVITE=5))
    call, _ = w.arrive(T0)
    assert call.next_deadline_ms() == T0 + 5000
    assert call.handle(TimerFired(), T0 + 4999) == []
    effects = call.handle(TimerFired(), T0 + 5000)
    assert effects[0] == ToCallee(1, Cancel())
    assert only(effects, StartAttempt).setup.gateway == "VF2"
    assert call.next_deadline_ms() == T0 + 10000
    cdr, then = ended(call.handle(TimerFired(), T0 + 10000))
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (21, 2, 408)
    assert then == (ToCaller(HangUp(Ending(EndReason.GATEWAY_UNAVAILABLE, 408, 102))),)


def test_session_progress_and_ringing_timers():
    snap = snapshot(SS_SIP_TIMEOUT_SESSION_PROGRESS=3, SS_SIP_TIMEOUT_RINGING=7)
    w = world(VF1, snap=snap)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Proceeding()), T0 + 200)
    assert call.next_deadline_ms() == T0 + 3200
    call.handle(FromCallee(1, Ringing()), T0 + 1000)
    assert call.next_deadline_ms() == T0 + 8000
    effects = call.handle(TimerFired(), T0 + 8000)
    assert effects[0] == ToCallee(1, Cancel())  # the timed-out attempt is abandoned at once
    cdr, then = ended(effects)
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (3, 2, 480)
    assert then == (ToCaller(HangUp(Ending(EndReason.NO_ANSWER, 480, 19))),)


def test_early_media_timer_and_relay():
    w = world(VF1, VF2, snap=snapshot(SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP=9))
    call, _ = w.arrive(T0)
    assert call.handle(FromCallee(1, Progress(SDP)), T0 + 700) == [ToCaller(Progress183(SDP))]
    assert call.state is State.EARLY and call.next_deadline_ms() == T0 + 9700
    # The attempt got 183 and until_connect is off: no failover (SPEC §4 step 5).
    cdr, _ = ended(call.handle(TimerFired(), T0 + 9700))
    assert (cdr.end_reason, cdr.attempts, cdr.caller_pdd) == (3, 1, 700)


def test_until_connect_fails_over_after_ringing():
    vf1 = vendor("VF1", "198.51.100.20", until_connect="yes")
    w = world(vf1, VF2)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Ringing()), T0 + 700)
    effects = call.handle(FromCallee(1, Failed(code=480)), T0 + 2000)
    assert only(effects, StartAttempt).setup.gateway == "VF2"


def test_rtp_started_stops_the_hunt():
    vf1 = vendor("VF1", "198.51.100.20", until_connect="yes")
    w = world(vf1, VF2)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, MediaStarted()), T0 + 500)
    cdr, _ = ended(call.handle(FromCallee(1, Failed(code=503)), T0 + 2000))
    assert (cdr.end_reason, cdr.attempts) == (5, 1)


def test_h323_vendor_cause_before_connect():
    w = world(vendor("VH", "198.51.100.40", protocol="h323"), VF2)
    call, effects = w.arrive(T0)
    assert only(effects, StartAttempt).setup.target_port == 1720
    effects = call.handle(FromCallee(1, Failed(cause=34)), T0 + 300)  # 2b: 5, y
    assert only(effects, StartAttempt).setup.gateway == "VF2"


def test_unreachable_is_like_a_timer():
    w = world(VF1)
    call, _ = w.arrive(T0)
    cdr, _ = ended(call.handle(FromCallee(1, Failed()), T0 + 50))
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (21, 2, 408)


def test_replace_codes_of_the_mapping_gateway():
    customer = mapping(callee_prefix_rewrite="00*:*", replace_codes="503:486")
    w = world(VF1, VF2, customer=customer)
    call, _ = w.arrive(T0)
    cdr, _ = ended(call.handle(FromCallee(1, Failed(code=503)), T0 + 400))
    assert (cdr.end_reason, cdr.sip_code) == (2, 486)  # replaced, then busy stops


def test_no_route():
    w = world(vendor("VF1", "198.51.100.20", prefixes=("33",)))
    _, effects = w.arrive(T0)
    cdr, then = ended(effects)
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code, cdr.callee_gateway_id) == (
        6,
        2,
        404,
        "",
    )
    assert then == (ToCaller(HangUp(Ending(EndReason.ROUTE_NOT_FOUND, 404, 3))),)
    assert w.pool.view("cust").reserved == 0 and w.load.total == 0


def test_no_usable_gateway():
    w = world(vendor("VF1", "198.51.100.20", lock="locked"))
    _, effects = w.arrive(T0)
    cdr, _ = ended(effects)
    assert (cdr.end_reason, cdr.sip_code) == (22, 503)


def test_line_limit_of_the_mapping_gateway():
    w = world(VF1, customer=mapping(callee_prefix_rewrite="00*:*", lines=1))
    first, _ = w.arrive(T0)
    assert first.state is State.CALLING
    _, effects = w.arrive(T0 + 10)
    cdr, then = ended(effects)
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (18, 2, 503)
    assert caller_ending(then) == Ending(EndReason.CONCURRENT_LIMIT_EXCEEDED, 503, 34)


def test_global_concurrency_limit():
    w = world(VF1, snap=snapshot(SS_MAX_CONCURRENT_CALLS=1))
    w.arrive(T0)
    _, effects = w.arrive(T0 + 10)
    assert ended(effects)[0].end_reason == 18


def test_vendor_line_limit_skips_to_the_next():
    w = world(vendor("VF1", "198.51.100.20", lines=1), VF2)
    w.arrive(T0)
    _, effects = w.arrive(T0 + 10)
    assert only(effects, StartAttempt).setup.gateway == "VF2"


@pytest.mark.parametrize(
    ("record", "expect_cdr"),
    [pytest.param(True, True, id="SPEC-7-rule2-on"), pytest.param(False, False, id="rule2-off")],
)
def test_unknown_source_is_illegal(record, expect_cdr):
    w = world(VF1, snap=snapshot(SERVER_BILLING_RECORD_ILLEGAL_CALL=record))
    # SPEC §10: a stranger without credentials is challenged first; one whose digest
    # failed (an unknown user's always does) is the illegal call
    _, effects = w.arrive(T0, source_ip="192.0.2.99", auth_failed=True)
    ending = Ending(EndReason.UNAUTHORIZED_IP, 403, 21)
    if expect_cdr:
        cdr, then = ended(effects)
        assert (cdr.end_reason, cdr.end_direction, cdr.billing_mode, cdr.hold_time) == (
            17,
            2,
            -1,
            0,
        )
        assert (cdr.caller_gateway_id, cdr.caller_ip, cdr.sip_code) == ("", "192.0.2.99", 403)
    else:
        then = effects
    assert list(then) == [ToCaller(HangUp(ending))]


def test_prepaid_refused():
    accounts = [
        Account("cust", balance=D("0.05"), rate_table="retail"),
        Account("vend", rate_table="wholesale"),
    ]
    w = world(VF1, accounts=accounts)
    _, effects = w.arrive(T0)
    cdr, then = ended(effects)
    assert (cdr.end_reason, cdr.sip_code, cdr.attempts) == (8, 403, 0)
    assert not [e for e in then if isinstance(e, StartAttempt)]


def test_prepaid_cut_off_with_exact_fee():
    """SPEC §6 P2: balance 62, 60/min 1/1: +2 at talk 30, cut at 62 s, fee 62.00."""
    rates = [Rate("retail", "44", D("60"), 1, 1), Rate("wholesale", "44", D("0.03"), 1, 1)]
    accounts = [
        Account("cust", balance=D("62"), rate_table="retail"),
        Account("vend", rate_table="wholesale"),
    ]
    w = world(VF1, rates=rates, accounts=accounts)
    call, _ = w.arrive(T0)
    connect = T0 + 2000
    call.handle(FromCallee(1, Answered(SDP)), connect)
    assert call.next_deadline_ms() == connect + 30_000
    assert call.handle(TimerFired(), connect + 30_000) == []
    assert w.pool.reservation(call.id) == D("62")
    ticks = 0
    while call.state is State.TALKING:
        deadline = call.next_deadline_ms()
        effects = call.handle(TimerFired(), deadline)
        ticks += 1
        assert ticks < 100
    assert deadline == connect + 62_000
    cdr, then = ended(effects)
    assert (cdr.end_reason, cdr.end_direction, cdr.hold_time) == (24, 2, 62_000)
    assert (cdr.fee, cdr.billed_seconds) == (D("62.00"), 62)
    bye = Ending(EndReason.PREPAID_DURATION_EXCEEDED, None, 16)
    assert then == (ToCaller(HangUp(bye)), ToCallee(1, HangUp(bye)))
    assert w.pool.view("cust").balance == D("0.00")


@pytest.mark.parametrize("answered", [False, True], ids=["SPEC-3-kill-ringing", "kill-talking"])
def test_call_kill(answered):
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Ringing()), T0 + 500)
    if answered:
        call.handle(FromCallee(1, Answered(SDP)), T0 + 1000)
    cdr, then = ended(call.handle(Kill(), T0 + 20_000))
    assert (cdr.end_reason, cdr.end_direction) == (13, 2)
    if answered:
        bye = Ending(EndReason.SERVER_FORCED_RELEASE, None, 41)
        assert then == (ToCaller(HangUp(bye)), ToCallee(1, HangUp(bye)))
        assert (cdr.hold_time, cdr.sip_code, cdr.fee) == (19_000, 200, D("0.06"))
    else:
        ending = Ending(EndReason.SERVER_FORCED_RELEASE, 500, 41)
        assert then == (ToCaller(HangUp(ending)), ToCallee(1, Cancel()))
        assert (cdr.hold_time, cdr.sip_code, cdr.fee) == (0, 500, 0)


def test_server_hang_up_not_recorded_sends_at_once():
    w = world(VF1, snap=snapshot(SERVER_BILLING_RECORD_SERVER_HANG_UP=False))
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(SDP)), T0 + 1000)
    effects = call.handle(Kill(), T0 + 5000)
    assert not [e for e in effects if isinstance(e, CommitCdr)]
    assert len(effects) == 2
    assert w.pool.view("cust").balance == 100  # no CDR, no balance change (SPEC §7)


@pytest.mark.parametrize(
    ("kw", "directory_kw", "reason", "code"),
    [
        pytest.param({}, {"customer": mapping(enabled=False)}, 10, 403, id="SPEC-3-step4-disabled"),
        pytest.param(
            {},
            {"accounts": [Account("cust", rate_table="retail", expiry_ms=T0 - 1)]},
            9,
            403,
            id="SPEC-3-step4-expired",
        ),
        pytest.param({"callee": "44-12x"}, {}, 4, 484, id="SPEC-3-step5-malformed"),
        pytest.param(
            {},
            {"customer": mapping(callee_deny="0044*")},
            25,
            403,
            id="SPEC-3-step5-deny",
        ),
        pytest.param(
            {"callee": "0033123"},
            {"customer": mapping(callee_prefix_rewrite="00*:*")},
            7,
            404,
            id="SPEC-3-step7-no-rate",
        ),
    ],
)
def test_admission_rejections(kw, directory_kw, reason, code):
    customer = directory_kw.pop("customer", CUST)
    w = world(vendor("VF1", "198.51.100.20", prefixes=("*",)), customer=customer, **directory_kw)
    _, effects = w.arrive(T0, **kw)
    cdr, _ = ended(effects)
    assert (cdr.end_reason, cdr.end_direction, cdr.sip_code) == (reason, 2, code)


def test_blacklisted_caller():
    w = World(default_directory(VF1, customer=CUST), blacklist=_blacklist("861380*"))
    _, effects = w.arrive(T0)
    assert ended(effects)[0].end_reason == 20


def _blacklist(value):
    return StaticBlacklist.compile([BlacklistEntry(value, "caller")], T0)


def test_cps_limit():
    w = world(VF1, customer=mapping(callee_prefix_rewrite="00*:*", cps=1))
    w.arrive(T0)
    _, effects = w.arrive(T0 + 500)
    assert ended(effects)[0].end_reason == 19
    call, _ = w.arrive(T0 + 1000)
    assert call.state is State.CALLING


def test_phone_is_challenged_then_admitted():
    phones = [Phone("1001", "pw", "cust")]
    w = world(VF1, phones=phones)
    call, effects = w.arrive(T0, source_ip="192.0.2.5", from_user="1001", callee="4412345678")
    assert call is None and effects[0].phone == "1001"
    call, effects = w.arrive(
        T0, source_ip="192.0.2.5", from_user="1001", callee="4412345678", authenticated="1001"
    )
    assert call.ctx.caller_e164 == "1001" and call.ctx.billing_mode is BillingMode.PHONE
    cdr, _ = ended(
        w.arrive(T0, source_ip="192.0.2.5", from_user="1001", callee="44", auth_failed=True)[1]
    )
    assert cdr.end_reason == 16


def test_registered_phone_callee_is_tried_first_then_gateways():
    phones = [Phone("4412345678", "pw", "cust")]
    target = PhoneTarget("192.0.2.7", 5062, "sip:4412345678@192.0.2.7:5062")
    w = World(
        default_directory(VF1, customer=CUST, phones=phones),
        bindings={"4412345678": target},
    )
    call, effects = w.arrive(T0)
    setup = only(effects, StartAttempt).setup
    assert (setup.gateway, setup.target_ip, setup.contact) == ("", "192.0.2.7", target.contact)
    effects = call.handle(FromCallee(1, Failed(code=480)), T0 + 500)
    assert only(effects, StartAttempt).setup.gateway == "VF1"


def test_free_number_keeps_cdr_at_fee_zero():
    snap = snapshot(SERVER_BILLING_FREE_E164S=("4412*",))
    w = world(VF1, snap=snap)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(SDP)), T0 + 1000)
    cdr, _ = ended(call.handle(FromCaller(HungUp()), T0 + 61000))
    assert (cdr.fee, cdr.billing_mode, cdr.hold_time) == (0, BillingMode.NONE, 60000)


def test_no_cdr_number_sends_at_once():
    snap = snapshot(SERVER_BILLING_NO_CDR_E164S=("4412*",))
    w = world(VF1, snap=snap)
    call, _ = w.arrive(T0)
    effects = call.handle(FromCaller(HungUp()), T0 + 1000)
    assert effects == [
        ToCaller(HangUp(Ending(EndReason.CALLER_HANGUP, 487, 16))),
        ToCallee(1, Cancel()),
    ]


def test_switch_limit():
    vf3 = vendor("VF3", "198.51.100.50", priority=2)
    w = world(VF1, VF2, vf3, snap=snapshot(SS_GATEWAY_SWITCH_LIMIT=2))
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Failed(code=503)), T0 + 100)
    cdr, _ = ended(call.handle(FromCallee(2, Failed(code=503)), T0 + 200))
    assert (cdr.attempts, cdr.callee_gateway_id) == (2, "VF2")


def test_callee_bye_after_answer_is_direction_1():
    w = world(VF1)
    call, _ = w.arrive(T0)
    call.handle(FromCallee(1, Answered(SDP)), T0 + 1000)
    cdr, then = ended(call.handle(FromCallee(1, HungUp()), T0 + 2000))
    assert (cdr.end_reason, cdr.end_direction) == (1, 1)
    assert then[0] == ToCaller(HangUp(Ending(EndReason.NORMAL_CLEARING, None, 16)))
