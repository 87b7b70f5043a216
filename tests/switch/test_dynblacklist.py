"""SPEC §10 dynamic malicious-call blacklist: rules, sliding windows, expiry, run modes."""

import pytest
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.params import PARAMS, Snapshot
from vos3k.store.models import BlacklistEntry, Gateway
from vos3k.switch.dynblacklist import (
    Ban,
    BanKind,
    CallEnded,
    DynamicBlacklist,
    DynSettings,
    scope_for,
)

S = 1000  # ms per second, for readable literal times

GLOBAL = DynSettings(
    mode="global",
    callee_window_s=600,
    callee_limit=3,
    callee_expire_s=3600,
    caller_window_s=60,
    caller_limit=4,
    caller_expire_s=1800,
    short_call_s=6,
    short_call_ratio=80,
    failed_call_ratio=95,
    min_calls=5,
    cps_limit=0,
)


def ended(caller="100", callee="200", answered=False, hold_s=0):
    return CallEnded(caller, callee, answered, hold_s * S)


def run(calls, config=GLOBAL):
    """Feed (time_ms, CallEnded) in order; the bans each call caused, by kind name."""
    dyn = DynamicBlacklist()
    fired = []
    for now, call in calls:
        fired.append([b.kind.value for b in dyn.call_ended(call, "", config, now)])
    return dyn, fired


# ---------------------------------------------------------------- callee_freq

CALLEE_CASES = [
    # SPEC §10: a callee reached MALICIOUS_CALL_LIMIT (3) times in the interval (600 s).
    ("three-in-window", [0, 10 * S, 599 * S], [[], [], ["callee_freq"]]),
    ("first-slid-out", [0, 10 * S, 600 * S], [[], [], []]),
    ("slides-again", [0, 10 * S, 600 * S, 601 * S], [[], [], [], ["callee_freq"]]),
    ("two-only", [0, 1], [[], []]),
]


@pytest.mark.parametrize(
    ("name", "times", "want"), CALLEE_CASES, ids=[f"spec10-callee-{c[0]}" for c in CALLEE_CASES]
)
def test_callee_freq(name, times, want):
    # Different answered callers, so no caller rule fires.
    calls = [(t, ended(f"c{i}", "555", answered=True, hold_s=60)) for i, t in enumerate(times)]
    assert run(calls)[1] == want


def test_callee_ban_blocks_and_expires():
    calls = [(t, ended(f"c{t}", "555", True, 60)) for t in (0, S, 2 * S)]
    dyn, _ = run(calls)
    ban = dyn.banned("anyone", "555", "", 2 * S)
    assert ban is not None and (ban.dir, ban.kind) == ("callee", BanKind.CALLEE_FREQ)
    assert ban.expires_ms == 2 * S + 3600 * S  # MALICIOUS_CALL_EXPIRE after the last call
    assert dyn.banned("anyone", "555", "", 3602 * S - 1) == ban
    assert dyn.banned("anyone", "555", "", 3602 * S) is None
    assert dyn.banned("555", "other", "", 2 * S) is None  # banned as callee only


# ---------------------------------------------------------------- caller_freq

CALLER_CASES = [
    # SPEC §10: a caller over CALLER_MALICIOUS_CALL_LIMIT (4) in its interval (60 s).
    ("five-in-window", [0, S, 2 * S, 3 * S, 59 * S], "caller_freq"),
    ("four-is-not-over", [0, S, 2 * S, 59 * S], None),
    ("first-slid-out", [0, S, 2 * S, 3 * S, 60 * S], None),
]


@pytest.mark.parametrize(
    ("name", "times", "want"), CALLER_CASES, ids=[f"spec10-caller-{c[0]}" for c in CALLER_CASES]
)
def test_caller_freq(name, times, want):
    # Answered long calls to different callees: only the count rule can fire.
    calls = [(t, ended("100", f"d{i}", True, 60)) for i, t in enumerate(times)]
    last = run(calls)[1][-1]
    assert last == ([want] if want else [])


# ---------------------------------------------------------------- ratios

# MIN_CALLS 5; outcomes: F = unanswered, s = answered under 6 s, L = answered ≥ 6 s.
RATIO_CASES = [
    ("all-failed", "FFFFF", "failed_calls"),
    ("four-only", "FFFF", None),  # fewer than MIN_CALLS
    ("failed-95-not-reached", "FFFFL", None),  # 80 % < 95 %
    ("short-100", "sssss", "short_calls"),
    ("short-80", "ssssL", "short_calls"),  # 4 of 5 answered = 80 % ≥ 80 %
    ("short-75", "FsssL", None),  # 3 of 4 answered = 75 %
    ("short-with-failed", "FFFss", "short_calls"),  # 2 of 2 answered short
    ("long-calls", "LLLLL", None),
    ("latest-sample", "FFFFLLLLL", None),  # the last 5 calls are long
    ("latest-sample-bad", "LLLLLFFFFF", "failed_calls"),
]


def _outcome_call(letter):
    return {
        "F": ended("100", "d", False),
        "s": ended("100", "d", True, 5),
        "L": ended("100", "d", True, 6),  # SHORT_CALL_TIME itself is not "under"
    }[letter]


@pytest.mark.parametrize(
    ("name", "outcomes", "want"), RATIO_CASES, ids=[f"spec10-ratio-{c[0]}" for c in RATIO_CASES]
)
def test_ratio_rules(name, outcomes, want):
    config = evolve(GLOBAL, caller_limit=100, callee_limit=100)
    calls = [(i * S, _outcome_call(letter)) for i, letter in enumerate(outcomes)]
    assert run(calls, config)[1][-1] == ([want] if want else [])


def test_failed_ratio_is_at_least():
    # SPEC §10 "FAILED_CALL_RATIO % unanswered": reaching the ratio is enough.
    config = evolve(GLOBAL, caller_limit=100, callee_limit=100, failed_call_ratio=80)
    calls = [(i * S, _outcome_call(letter)) for i, letter in enumerate("FFFFL")]
    assert run(calls, config)[1][-1] == ["failed_calls"]
    calls = [(i * S, _outcome_call(letter)) for i, letter in enumerate("FFFLL")]
    assert run(calls, config)[1][-1] == []


def test_ratio_sample_must_fit_in_the_window():
    # MIN_CALLS unanswered calls, but spread wider than MALICIOUS_CALL_CHECK_INTERVAL.
    config = evolve(GLOBAL, caller_limit=100, callee_limit=100)
    calls = [(i * 200 * S, ended("100", "d", False)) for i in range(5)]
    assert run(calls, config)[1][-1] == []


# ---------------------------------------------------------------- cps

CPS = evolve(GLOBAL, cps_limit=2)

CPS_CASES = [
    ("three-in-a-second", [0, 400, 999], [None, None, "cps"]),
    ("second-boundary", [0, 400, 1000], [None, None, None]),
    ("two-is-not-over", [0, 999], [None, None]),
]


@pytest.mark.parametrize(
    ("name", "times", "want"), CPS_CASES, ids=[f"spec10-cps-{c[0]}" for c in CPS_CASES]
)
def test_cps(name, times, want):
    dyn = DynamicBlacklist()
    got = []
    for t in times:
        ban = dyn.call_started("100", "", CPS, t)
        got.append(None if ban is None else ban.kind.value)
    assert got == want


def test_cps_off_by_default():
    dyn = DynamicBlacklist()
    assert all(dyn.call_started("100", "", GLOBAL, t) is None for t in range(100))


# ---------------------------------------------------------------- expiry, modes, listing


def test_offending_again_extends_the_ban():
    dyn = DynamicBlacklist()
    for t in (0, 100, 200):
        dyn.call_started("100", "", CPS, t)
    first = dyn.banned("100", "x", "", 200)
    assert first is not None and first.expires_ms == 200 + 1800 * S
    for t in (5000, 5100, 5200):
        dyn.call_started("100", "", CPS, t)
    again = dyn.banned("100", "x", "", 5200)
    assert again.expires_ms == 5200 + 1800 * S
    assert again.since_ms == 200  # the same ban, extended


MODES = [
    ("off", None, None),
    ("off", Gateway("g", "mapping", "1.1.1.1", dyn_blacklist=True), None),
    ("global", None, ""),
    ("global", Gateway("g", "mapping", "1.1.1.1"), ""),
    ("standalone", None, None),  # a phone's call
    ("standalone", Gateway("g", "mapping", "1.1.1.1"), None),
    ("standalone", Gateway("g", "mapping", "1.1.1.1", dyn_blacklist=True), "g"),
]


@pytest.mark.parametrize(
    ("mode", "gateway", "scope"),
    MODES,
    ids=[f"spec10-{m}-{g.name if g else 'phone'}-{s}" for m, g, s in MODES],
)
def test_scope_for(mode, gateway, scope):
    assert scope_for(DynSettings(mode=mode), gateway) == scope


def test_standalone_bans_stay_with_their_gateway():
    dyn = DynamicBlacklist()
    for t in (0, 1, 2):
        dyn.call_ended(ended(f"c{t}", "555", True, 60), "gw-a", GLOBAL, t)
    assert dyn.banned("x", "555", "gw-a", 3) is not None
    assert dyn.banned("x", "555", "gw-b", 3) is None
    assert dyn.banned("x", "555", "", 3) is None
    assert dyn.banned("x", "555", None, 3) is None  # untracked call: never banned


def test_untracked_calls_count_nothing():
    dyn = DynamicBlacklist()
    for t in range(50):
        assert dyn.call_ended(ended("100", "555"), None, GLOBAL, t) == []
        assert dyn.call_started("100", None, CPS, t) is None
    assert dyn.tracked == (0, 0)


def test_listing_remove_and_entries():
    dyn = DynamicBlacklist()
    for t in (0, 1, 2):
        dyn.call_ended(ended(f"c{t}", "555", True, 60), "gw-a", GLOBAL, t * S)
    for t in (0, 10, 20):
        dyn.call_started("777", "", CPS, 10 * S + t)
    listed = dyn.listing(20 * S)
    assert [(b.value, b.dir, b.kind.value, b.scope) for b in listed] == [
        ("777", "caller", "cps", ""),  # caller bans are 1800 s here, callee 3600 s
        ("555", "callee", "callee_freq", "gw-a"),
    ]
    assert listed[1].entry() == BlacklistEntry(
        value="555",
        dir="callee",
        kind="callee_freq",
        reason="gateway gw-a: called 3 times in 600 s",
        expires_ms=2 * S + 3600 * S,
    )
    assert dyn.listing(10 * S + 20 + 1800 * S) == [listed[1]]  # the cps ban lapsed
    assert dyn.remove("555") == 1
    assert dyn.listing(20 * S) == []


def test_settings_from_snapshot():
    values = PARAMS.defaults()
    values["SS_BLACK_LIST_DYNAMIC_RUN_MODE"] = "standalone"
    values["SS_BLACK_LIST_CPS_LIMIT"] = 7
    got = DynSettings.from_snapshot(Snapshot(PARAMS, values))
    assert got == DynSettings(mode="standalone", cps_limit=7)  # SPEC §9 defaults otherwise


# ---------------------------------------------------------------- bounded memory


def test_tracked_numbers_are_bounded():
    dyn = DynamicBlacklist(max_keys=50, max_bans=10)
    config = evolve(GLOBAL, callee_limit=1, cps_limit=1)
    for i in range(1_000):
        dyn.call_started(f"a{i}", "", config, i)
        dyn.call_ended(ended(f"a{i}", f"b{i}"), "", config, i)
    assert dyn.tracked == (50, 50)
    assert len(dyn.listing(1_000)) == 10
    # The most recent ones are the ones kept.
    assert dyn.banned("x", "b999", "", 1_000) is not None


@settings(max_examples=100, deadline=None)
@given(
    max_keys=st.integers(1, 5),
    max_bans=st.integers(1, 5),
    events=st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 30), st.booleans(), st.integers(0, 300)),
        max_size=100,
    ),
)
def test_memory_stays_bounded(max_keys, max_bans, events):
    dyn = DynamicBlacklist(max_keys=max_keys, max_bans=max_bans)
    config = evolve(GLOBAL, callee_limit=1, caller_limit=2, min_calls=2, cps_limit=1)
    now = 0
    for caller, callee, answered, step in events:
        now += step
        dyn.call_started(f"a{caller}", "", config, now)
        bans = dyn.call_ended(ended(f"a{caller}", f"b{callee}", answered, 1), "", config, now)
        callers, callees = dyn.tracked
        assert callers <= max_keys and callees <= max_keys
        assert dyn.ban_count <= max_bans
        # callee_limit 1: every call bans its callee; the newest ban is never the one evicted.
        assert bans and bans[-1] in dyn.listing(now)


# ---------------------------------------------------------------- against a model


def _model(events, config):
    """A straightforward re-statement of SPEC §10 over full call histories."""
    ends: dict[str, list[tuple[int, int, bool, int]]] = {}
    by_callee: dict[str, list[int]] = {}
    last_fire: dict[tuple[str, str], tuple[int, int]] = {}
    fired = []
    for now, caller, callee, answered, hold_ms in events:
        got = []
        by_callee.setdefault(callee, []).append(now)
        recent = [t for t in by_callee[callee] if t > now - config.callee_window_s * S]
        if len(recent) >= config.callee_limit:
            got.append("callee_freq")
            last_fire["callee", callee] = (now, config.callee_expire_s)
        ends.setdefault(caller, []).append((now, answered, hold_ms))
        history = ends[caller]
        count = sum(1 for t, *_ in history if t > now - config.caller_window_s * S)
        sample = [c for c in history if c[0] > now - config.callee_window_s * S]
        sample = sample[-config.min_calls :]
        failed = sum(1 for _, a, _ in sample if not a)
        answered_n = len(sample) - failed
        short = sum(1 for _, a, h in sample if a and h < config.short_call_s * S)
        kind = None
        if count > config.caller_limit:
            kind = "caller_freq"
        elif len(sample) >= config.min_calls:
            if failed * 100 >= config.failed_call_ratio * len(sample):
                kind = "failed_calls"
            elif answered_n and short * 100 >= config.short_call_ratio * answered_n:
                kind = "short_calls"
        if kind:
            got.append(kind)
            last_fire["caller", caller] = (now, config.caller_expire_s)
        fired.append((got, dict(last_fire)))
    return fired


@settings(max_examples=150, deadline=None)
@given(
    config=st.builds(
        DynSettings,
        mode=st.just("global"),
        callee_window_s=st.integers(1, 5),
        callee_limit=st.integers(1, 4),
        callee_expire_s=st.integers(1, 5),
        caller_window_s=st.integers(1, 5),
        caller_limit=st.integers(1, 6),
        caller_expire_s=st.integers(1, 5),
        short_call_s=st.integers(1, 3),
        short_call_ratio=st.integers(1, 100),
        failed_call_ratio=st.integers(1, 100),
        min_calls=st.integers(1, 5),
    ),
    steps=st.lists(
        st.tuples(
            st.integers(0, 1500),
            st.sampled_from("abc"),
            st.sampled_from("xyz"),
            st.booleans(),
            st.integers(0, 4000),
        ),
        max_size=60,
    ),
)
def test_agrees_with_a_model_of_spec10(config, steps):
    dyn = DynamicBlacklist()
    events, now = [], 0
    for step, caller, callee, answered, hold in steps:
        now += step
        events.append((now, caller, callee, answered, hold if answered else 0))
    for (now, caller, callee, answered, hold), (want, fires) in zip(
        events, _model(events, config), strict=True
    ):
        bans = dyn.call_ended(CallEnded(caller, callee, answered, hold), "", config, now)
        assert [b.kind.value for b in bans] == want
        for (direction, value), (at, expire_s) in fires.items():
            probe = ("?", value) if direction == "callee" else (value, "?")
            ban = dyn.banned(*probe, "", now)
            assert (ban is not None) == (now < at + expire_s * S)
            if ban is not None:
                assert isinstance(ban, Ban) and ban.expires_ms == at + expire_s * S
