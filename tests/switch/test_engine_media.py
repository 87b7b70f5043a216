"""The engine's hooks for the RTP proxy: server releases (SPEC §12 media timeout → 15),
media figures in the CDR's `extra`, and the end listener that frees a call's ports."""

from __future__ import annotations

import pytest

from tests.switch.test_engine import FakeLeg, arrival, rig  # noqa: F401 (the fixture)
from vos3k.switch.legs import Answered, Ending, HungUp, MediaStarted
from vos3k.switch.reasons import EndReason


def answered_call(rig):  # noqa: F811 (the fixture's name)
    caller = FakeLeg("caller", rig.log)
    call_id = rig.engine.incoming(caller, arrival()).call_id
    rig.factory.legs[0].report(Answered())
    rig.clock.advance(10)
    return call_id


@pytest.mark.parametrize(
    ("reason", "q850"),
    [
        pytest.param(EndReason.MEDIA_TIMEOUT, 41, id="SPEC-12-media-timeout"),
        pytest.param(EndReason.SESSION_TIMEOUT, 102, id="SPEC-8-session-timeout"),
    ],
)
def test_release_ends_with_the_reason_direction_2_after_the_commit(rig, reason, q850):  # noqa: F811
    call_id = answered_call(rig)
    assert rig.engine.release(call_id, reason) is True
    [row] = rig.writer.rows
    assert (row["end_reason"], row["end_direction"], row["hold_ms"]) == (int(reason), 2, 10_000)
    assert not [e for e in rig.log if e[1] == "hang_up"]  # SPEC §3 step 13: CDR first
    rig.writer.commit()
    bye = Ending(reason, None, q850)
    assert [e for e in rig.log if e[1] == "hang_up"] == [
        ("caller", "hang_up", bye),
        ("VF1#1", "hang_up", bye),
    ]
    assert rig.engine.release(call_id, reason) is False  # gone
    assert len(rig.engine) == 0


def test_cdr_extras_are_added_at_commit(rig):  # noqa: F811
    rig.engine.add_cdr_extra("media", lambda call_id: {"a_packets": 7, "call": call_id})
    rig.engine.add_cdr_extra("nothing", lambda call_id: None)

    def broken(call_id):
        raise RuntimeError("boom")

    rig.engine.add_cdr_extra("broken", broken)
    call_id = answered_call(rig)
    rig.factory.legs[0].report(HungUp())
    [row] = rig.writer.rows
    assert row["extra"]["media"] == {"a_packets": 7, "call": call_id}
    assert "nothing" not in row["extra"] and "broken" not in row["extra"]
    assert row["extra"]["attempts"][0]["gateway"] == "VF1"  # the core's own extras stay


def test_end_listener_runs_once_per_call_after_the_commit(rig):  # noqa: F811
    ended = []
    rig.engine.add_end_listener(ended.append)
    call_id = answered_call(rig)
    rig.engine.kill(call_id)
    assert ended == []
    rig.writer.commit()
    assert ended == [call_id]


def test_media_started_before_answer_is_noted_for_failover(rig):  # noqa: F811
    # SPEC §4 step 5: an attempt that sent RTP stops the hunt
    # (SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START defaults to 1).
    caller = FakeLeg("caller", rig.log)
    rig.engine.incoming(caller, arrival())
    vf1 = rig.factory.legs[0]
    vf1.report(MediaStarted())
    vf1.report(HungUp(cause=42))  # 2b: 42 → 5, failover y, but RTP already flowed
    [row] = rig.writer.rows
    assert (row["end_reason"], row["attempts"]) == (5, 1)
    assert len(rig.factory.legs) == 1
