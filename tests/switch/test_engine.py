"""The Twisted adapter: task.Clock timers, fake legs, CDR commit before the ending message."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from twisted.internet import defer, task

from tests.switch.fakes import default_directory, mapping, snapshot, vendor
from vos3k.billing.accounts import AccountPool
from vos3k.switch.admission import Arrival, Challenge
from vos3k.switch.calls import CurrentCalls
from vos3k.switch.engine import Accepted, Engine, Unavailable
from vos3k.switch.legs import Answered, Ending, Failed, HungUp, Media, Proceeding, Ringing
from vos3k.switch.reasons import EndReason

D = Decimal
T0_S = 1_777_000_000
SDP = Media(b"v=0\r\n", address="198.51.100.20")


class FakeLeg:
    """Records the commands the engine gives it."""

    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log
        self.report = None
        self.setup = None

    def offer(self, setup):
        self.setup = setup
        self.log.append((self.name, "offer", setup.gateway))

    def ring(self, early_media):
        self.log.append((self.name, "ring", early_media))

    def progress(self, early_media):
        self.log.append((self.name, "progress", early_media))

    def answer(self, media):
        self.log.append((self.name, "answer", media))

    def hang_up(self, ending):
        self.log.append((self.name, "hang_up", ending))

    def cancel(self):
        self.log.append((self.name, "cancel", None))


class Factory:
    def __init__(self, log: list) -> None:
        self.log = log
        self.legs: list[FakeLeg] = []

    def create_leg(self, setup, report):
        leg = FakeLeg(f"{setup.gateway}#{setup.attempt}", self.log)
        leg.report = report
        self.legs.append(leg)
        return leg


class Writer:
    """A CdrWriter stand-in: Deferreds fire when the test commits them."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.pending: list[defer.Deferred] = []
        self.full = False

    def submit(self, row):
        self.rows.append(row)
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def commit(self):
        pending, self.pending = self.pending, []
        for i, d in enumerate(pending):
            d.callback(i)


class Params:
    def __init__(self, snap) -> None:
        self.snapshot = snap


@pytest.fixture
def rig():
    clock = task.Clock()
    clock.advance(T0_S)
    log: list = []
    factory = Factory(log)
    writer = Writer()
    calls = CurrentCalls()
    directory = default_directory(
        vendor("VF1", "198.51.100.20"),
        vendor("VF2", "198.51.100.30", priority=1),
        customer=mapping(callee_prefix_rewrite="00*:*"),
    )
    ids = iter(f"call{i}" for i in range(1, 100))
    engine = Engine(
        clock=clock,
        params=Params(snapshot(SS_SIP_TIMEOUT_INVITE=4)),
        directory=directory,
        pool=AccountPool(),
        writer=writer,
        calls=calls,
        leg_factories={"sip": factory},
        new_call_id=lambda: next(ids),
    )
    return SimpleNamespace(
        engine=engine, clock=clock, factory=factory, writer=writer, calls=calls, log=log
    )


def arrival(**kw):
    kw.setdefault("source_ip", "203.0.113.10")
    return Arrival("", source_port=5060, protocol="sip", caller="100", callee="004412345", **kw)


def test_basic_call_commits_cdr_before_the_200_to_bye(rig):
    engine = rig.engine
    clock = rig.clock
    factory = rig.factory
    writer = rig.writer
    calls = rig.calls
    log = rig.log
    caller = FakeLeg("caller", log)
    accepted = engine.incoming(caller, arrival())
    assert isinstance(accepted, Accepted) and accepted.call_id == "call1"
    assert log == [("VF1#1", "offer", "VF1")]
    assert calls.get("call1").state == "routing"
    vf1 = factory.legs[0]
    vf1.report(Proceeding())
    clock.advance(1)
    vf1.report(Ringing())
    assert log[-1] == ("caller", "ring", None) and calls.get("call1").state == "ringing"
    vf1.report(Answered(SDP))
    assert log[-1] == ("caller", "answer", SDP)
    info = calls.get("call1")
    assert (info.state, info.callee_gateway, info.connect_ms) == (
        "talking",
        "VF1",
        T0_S * 1000 + 1000,
    )
    clock.advance(45)  # SPEC §6 ticks run on the clock
    accepted.report(HungUp())
    assert writer.rows[0]["hold_ms"] == 45_000 and writer.rows[0]["end_reason"] == 1
    assert log[-1] == ("caller", "answer", SDP)  # nothing sent before the commit
    assert calls.get("call1").state == "ending"
    writer.commit()
    bye = Ending(EndReason.NORMAL_CLEARING, None, 16)
    assert log[-2:] == [("caller", "hang_up", bye), ("VF1#1", "hang_up", bye)]
    assert calls.get("call1") is None and len(engine) == 0
    assert engine.pool.view("cust").balance == D("99.94")


def test_invite_timeout_failover_on_the_clock(rig):
    engine = rig.engine
    clock = rig.clock
    factory = rig.factory
    writer = rig.writer
    log = rig.log
    caller = FakeLeg("caller", log)
    engine.incoming(caller, arrival())
    clock.advance(3.999)
    assert len(factory.legs) == 1
    clock.advance(0.001)
    assert log[-2:] == [("VF1#1", "cancel", None), ("VF2#2", "offer", "VF2")]
    factory.legs[1].report(Failed(code=503))
    assert writer.rows[-1]["end_reason"] == 5 and writer.rows[-1]["callee_gateway_id"] == "VF2"
    writer.commit()
    assert log[-1] == ("caller", "hang_up", Ending(EndReason.NETWORK_CONGESTION, 503, 41))
    assert not clock.getDelayedCalls()


def test_kill_and_late_events(rig):
    engine = rig.engine
    factory = rig.factory
    writer = rig.writer
    calls = rig.calls
    log = rig.log
    caller = FakeLeg("caller", log)
    accepted = engine.incoming(caller, arrival())
    factory.legs[0].report(Ringing())
    assert calls.kill(accepted.call_id)
    assert writer.rows[-1]["end_reason"] == 13 and writer.rows[-1]["end_direction"] == 2
    writer.commit()
    assert log[-2:] == [
        ("caller", "hang_up", Ending(EndReason.SERVER_FORCED_RELEASE, 500, 41)),
        ("VF1#1", "cancel", None),
    ]
    factory.legs[0].report(Failed(code=487))  # the vendor's answer to our CANCEL
    assert engine.dropped == 1
    assert not engine.kill(accepted.call_id)


def test_shutdown_ends_every_call_as_13(rig):
    engine = rig.engine
    clock = rig.clock
    factory = rig.factory
    writer = rig.writer
    calls = rig.calls
    log = rig.log
    for _ in range(3):
        engine.incoming(FakeLeg("caller", log), arrival())
    factory.legs[0].report(Answered(SDP))
    done = engine.shutdown()
    assert [r["end_reason"] for r in writer.rows] == [13, 13, 13]
    assert isinstance(engine.incoming(FakeLeg("late", log), arrival()), Unavailable)
    fired = []
    done.addCallback(fired.append)
    assert not fired
    writer.commit()
    assert fired and len(calls) == 0
    assert not clock.getDelayedCalls()


def test_refused_call_gets_its_403_after_the_commit(rig):
    engine = rig.engine
    writer = rig.writer
    calls = rig.calls
    log = rig.log
    caller = FakeLeg("caller", log)
    # an unknown user's digest failed (SPEC §10: strangers are challenged first)
    accepted = engine.incoming(caller, arrival(source_ip="192.0.2.1", auth_failed=True))
    assert isinstance(accepted, Accepted) and log == []
    writer.commit()
    assert log == [("caller", "hang_up", Ending(EndReason.UNAUTHORIZED_IP, 403, 21))]
    assert len(calls) == 0


def test_pending_list_full_is_unavailable(rig):
    engine = rig.engine
    writer = rig.writer
    log = rig.log
    writer.full = True
    assert engine.incoming(FakeLeg("caller", log), arrival()) == Unavailable()


def test_unknown_protocol_fails_the_attempt(rig):
    engine = rig.engine
    writer = rig.writer
    log = rig.log
    engine._factories.pop("sip")
    engine.incoming(FakeLeg("caller", log), arrival())
    # Both gateways unreachable: 21 with 408 for the caller (SPEC §3).
    assert writer.rows[-1]["end_reason"] == 21 and writer.rows[-1]["attempts"] == 2


def test_phone_is_challenged(rig):
    engine = rig.engine
    calls = rig.calls
    log = rig.log
    engine.board.directory.phones["1001"] = _phone()
    outcome = engine.incoming(
        FakeLeg("caller", log), arrival(source_ip="192.0.2.1", from_user="1001")
    )
    assert outcome == Challenge("1001") and len(calls) == 0


def _phone():
    from vos3k.store.models import Phone

    return Phone("1001", "pw", "cust")
