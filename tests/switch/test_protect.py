"""The protection wiring: the guard's live policy, the geofence file, the engine's
dynamic-blacklist hooks and the `blacklist` views (SPEC §3 steps 1 and 4, §10)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet import defer, task
from twisted.logger import capturedLogs

from tests.switch.fakes import default_directory, mapping, snapshot, vendor
from tests.switch.test_engine import T0_S, Factory, FakeLeg, Params, Writer
from vos3k.billing.accounts import AccountPool
from vos3k.sip.auth import SuspensionTracker
from vos3k.store.models import BlacklistEntry, Gateway, Phone
from vos3k.switch.admission import Arrival, CallContext
from vos3k.switch.calls import CurrentCalls
from vos3k.switch.engine import Accepted, Engine
from vos3k.switch.guard import StaticBlacklist
from vos3k.switch.legs import Media
from vos3k.switch.protect import DynamicScreen, GeofencedMedia, Protection, step4_numbers
from vos3k.switch.reasons import EndReason

T0 = T0_S * 1000
STRANGER = "192.0.2.50"
GATEWAY_IP = "203.0.113.10"


def ctx(**kw) -> CallContext:
    kw.setdefault("caller_access", "+86 138-0013")
    kw.setdefault("callee_access", "004412345")
    return CallContext("c1", T0, "203.0.113.10", 5060, "sip", **kw)


# ---------------------------------------------------------------- DynamicScreen


@pytest.mark.parametrize(
    ("kw", "numbers"),
    [
        pytest.param({"caller_gateway": mapping()}, ("861380013", "004412345"), id="SPEC-1"),
        pytest.param(
            {"caller_phone": Phone("1001", "pw", "a"), "caller_e164": "1001"},
            ("1001", "004412345"),
            id="SPEC-7-phone-own-e164",
        ),
        pytest.param(
            {"caller_gateway": mapping(), "caller_e164": "0086", "callee_e164": "4412345"},
            ("861380013", "004412345"),
            id="rewrite-ignored",
        ),
    ],
)
def test_step4_numbers(kw, numbers):
    assert step4_numbers(ctx(**kw)) == numbers


def test_cps_rule_bans_from_the_next_call_and_only_identified_callers():
    screen = DynamicScreen()
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="global", SS_BLACK_LIST_CPS_LIMIT=2)
    known, stranger = ctx(caller_gateway=mapping()), ctx()
    for i in range(3):
        assert screen.started(stranger, snap, T0 + i) is None  # SPEC §10: not counted
    assert [screen.started(known, snap, T0 + i) for i in range(2)] == [None, None]
    with capturedLogs() as events:
        ban = screen.started(known, snap, T0 + 2)
    assert ban is not None and (ban.value, ban.dir, ban.kind.value) == (
        "861380013",
        "caller",
        "cps",
    )
    assert any("banned" in e["log_format"] for e in events)
    assert screen.banned(known, snap, T0 + 3) == ban
    off = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="off")
    assert screen.banned(known, off, T0 + 3) is None  # SPEC §9 live "now": mode off


def test_ended_counts_the_callee_as_admission_saw_it():
    screen = DynamicScreen()
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="global", SS_BLACK_LIST_MALICIOUS_CALL_LIMIT=2)
    call = SimpleNamespace(
        ctx=ctx(caller_gateway=mapping(), callee_e164="4412345"), connect_ms=None, stop_ms=T0
    )
    assert screen.ended(call, snap, T0) == []
    bans = screen.ended(call, snap, T0 + 1)
    assert [(b.value, b.dir, b.kind.value) for b in bans] == [
        ("004412345", "callee", "callee_freq")
    ]


def test_standalone_mode_scopes_to_the_gateway():
    screen = DynamicScreen()
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="standalone", SS_BLACK_LIST_CPS_LIMIT=1)
    watched = ctx(caller_gateway=mapping("A", dyn_blacklist=True))
    other = ctx(caller_gateway=mapping("B", dyn_blacklist=False))
    screen.started(watched, snap, T0)
    assert screen.started(watched, snap, T0 + 1) is not None
    assert screen.banned(watched, snap, T0 + 2) is not None
    assert screen.banned(other, snap, T0 + 2) is None


# ---------------------------------------------------------------- the engine's hooks


class CountingDyn:
    def __init__(self, ban=None) -> None:
        self.ban = ban
        self.log: list = []

    def banned(self, ctx, snap, now_ms):
        self.log.append(("banned", ctx.callee_e164))
        return self.ban

    def started(self, ctx, snap, now_ms):
        self.log.append(("started", ctx.caller_e164))

    def ended(self, call, snap, now_ms):
        self.log.append(("ended", call.end_reason))


class ImmediateWriter(Writer):
    def submit(self, row):
        self.rows.append(row)
        return defer.succeed(len(self.rows))


def engine_with(dyn, writer=None, snap=None):
    clock = task.Clock()
    clock.advance(T0_S)
    log: list = []
    engine = Engine(
        clock=clock,
        params=Params(snap or snapshot()),
        directory=default_directory(
            vendor("VF1", "198.51.100.20"), customer=mapping(callee_prefix_rewrite="00*:*")
        ),
        pool=AccountPool(),
        writer=writer or Writer(),
        calls=CurrentCalls(),
        leg_factories={"sip": Factory(log)},
        dyn=dyn,
    )
    return engine, log


def arrival(**kw):
    kw.setdefault("source_ip", GATEWAY_IP)
    return Arrival("", source_port=5060, protocol="sip", caller="100", callee="004412345", **kw)


@pytest.mark.parametrize(
    ("writer", "before_commit"),
    [
        pytest.param(Writer, ["banned", "started"], id="deferred-commit"),
        pytest.param(ImmediateWriter, ["banned", "started", "ended"], id="sync-commit-once"),
    ],
)
def test_engine_reports_start_and_end_once(writer, before_commit):
    dyn = CountingDyn()
    commits = writer()
    engine, log = engine_with(dyn, commits)
    accepted = engine.incoming(FakeLeg("caller", log), arrival())
    assert isinstance(accepted, Accepted)
    engine.kill(accepted.call_id)
    assert [step for step, _ in dyn.log] == before_commit
    commits.commit()
    assert dyn.log == [
        ("banned", "004412345"),
        ("started", "100"),
        ("ended", EndReason.SERVER_FORCED_RELEASE),
    ]


def test_engine_refuses_a_banned_call_with_20_and_still_reports_it():
    dyn = CountingDyn(ban="a ban")
    engine, log = engine_with(dyn, ImmediateWriter())
    caller = FakeLeg("caller", log)
    assert isinstance(engine.incoming(caller, arrival()), Accepted)
    ending = next(entry for entry in log if entry[:2] == ("caller", "hang_up"))[2]
    assert (ending.reason, ending.sip_code) == (EndReason.BLACKLIST_MATCH, 403)
    assert [step for step, _ in dyn.log] == ["banned", "started", "ended"]


def test_engine_with_the_real_screen_bans_a_callee_after_the_limit():
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="global", SS_BLACK_LIST_MALICIOUS_CALL_LIMIT=2)
    screen = DynamicScreen()
    engine, log = engine_with(screen, ImmediateWriter(), snap)
    for _ in range(2):
        accepted = engine.incoming(FakeLeg("caller", log), arrival())
        engine.kill(accepted.call_id)
    log.clear()
    engine.incoming(FakeLeg("caller", log), arrival())
    ending = next(entry for entry in log if entry[:2] == ("caller", "hang_up"))[2]
    assert ending.reason is EndReason.BLACKLIST_MATCH
    assert [b.entry().kind for b in screen.blacklist.listing(T0)] == ["callee_freq"]


# ---------------------------------------------------------------- Protection


class Rig:
    def __init__(self, entries=(), gateways=(), **params):
        self.clock = task.Clock()
        self.clock.advance(T0_S)
        self.params = Params(snapshot(**params))
        self.entries = list(entries)
        self.gateways = list(gateways)
        self.screen = DynamicScreen()
        self.suspensions = SuspensionTracker()
        self.loads: list = []
        self.protection = Protection(
            clock=self.clock,
            params=self.params,
            gateways=lambda: self.gateways,
            static_blacklist=lambda: StaticBlacklist.compile(self.entries, self.now()),
            screen=self.screen,
            suspensions=self.suspensions,
            run_in_thread=self.run_in_thread,
        )

    def run_in_thread(self, function, *args):
        d = defer.Deferred()
        self.loads.append((d, function, args))
        return d

    def finish_loads(self, order=None):
        loads, self.loads = self.loads, []
        for index in order or range(len(loads)):
            d, function, args = loads[index]
            d.callback(function(*args))

    def now(self):
        return int(self.clock.seconds() * 1000)

    def admits(self, ip):
        return self.protection.admit_source(ip, 5060, "UDP")


def test_rate_limit_drops_the_excess_and_counts_it():
    rig = Rig(SS_SIGNAL_RATE_LIMIT=3, SS_SIGNAL_RATE_WINDOW=2)
    assert [rig.admits(STRANGER) for _ in range(4)] == [True, True, True, False]
    gauges = {k: f() for k, f in rig.protection.gauges().items()}
    assert gauges["signalling_dropped"] == 1 and gauges["signalling_dropped_rate_limit"] == 1
    rig.clock.advance(2)
    assert rig.admits(STRANGER)


@pytest.mark.parametrize(
    ("ip", "admitted"),
    [
        pytest.param(GATEWAY_IP, True, id="SPEC-10-gateway-not-rate-limited"),
        pytest.param("203.0.113.11", False, id="SPEC-10-others-are"),
    ],
)
def test_gateways_bypass_the_rate_limit(ip, admitted):
    rig = Rig(gateways=[mapping()], SS_SIGNAL_RATE_LIMIT=1)
    rig.admits(ip)
    assert rig.admits(ip) is admitted


def test_param_change_applies_at_once():
    rig = Rig(SS_SIGNAL_RATE_LIMIT=0)
    assert rig.admits(STRANGER)
    rig.params.snapshot = snapshot(SS_SIGNAL_RATE_LIMIT=0, SS_ACL_DENY=["192.0.2.0/24"])
    rig.protection.param_changed(SimpleNamespace(name="SS_ACL_DENY"), (), ())
    assert not rig.admits(STRANGER)
    assert rig.protection.guard.dropped()["acl_deny"] == 1


def test_static_ip_entry_drops_until_it_expires():
    entry = BlacklistEntry("192.0.2.0/24", expires_ms=T0 + 5000)
    rig = Rig(SS_SIGNAL_RATE_LIMIT=0)
    rig.entries.append(entry)
    rig.protection.table_changed("blacklist")
    assert not rig.admits(STRANGER)
    rig.clock.advance(5)  # the rebuild armed at valid_until_ms fires
    assert rig.admits(STRANGER)
    assert rig.clock.getDelayedCalls() == []


def test_gateway_change_rebuilds():
    rig = Rig(SS_ACL_ALLOW=["198.51.100.0/24"])
    assert not rig.admits(GATEWAY_IP)
    rig.gateways.append(Gateway("NEW", "mapping", GATEWAY_IP + ":5070"))
    rig.protection.table_changed("gateways")
    assert rig.admits(GATEWAY_IP)  # SPEC §9 SS_ACL_ALLOW: "only these + gateways"


GEO = "# test countries\n192.0.2.0/24,ZZ\n198.51.100.0/24,YY  # trailing comment\nnot a cidr,ZZ\n"


def test_geofence_file_loads_in_a_thread_and_logs_bad_lines(tmp_path):
    path = tmp_path / "geo.csv"
    path.write_text(GEO + "10.0.0.0/8\n")
    rig = Rig(
        SS_SIGNAL_RATE_LIMIT=0,
        SS_GEOFENCE_MODE="forbidden",
        SS_GEOFENCE_COUNTRIES=["ZZ"],
        SS_GEOFENCE_CIDR_FILE=str(path),
    )
    rig.protection.load_geofence()
    assert rig.admits(STRANGER)  # not read yet: nothing applied
    with capturedLogs() as events:
        rig.finish_loads()
    assert not rig.admits(STRANGER) and rig.admits("198.51.100.7")
    text = [e.get("problem") and str(e["problem"]) for e in events]
    assert [t.split(":")[0] for t in text if t] == ["line 4", "line 5"]


def test_only_the_latest_geofence_load_applies(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("192.0.2.0/24,ZZ\n")
    second.write_text("198.51.100.0/24,ZZ\n")
    rig = Rig(
        SS_SIGNAL_RATE_LIMIT=0,
        SS_GEOFENCE_MODE="forbidden",
        SS_GEOFENCE_COUNTRIES=["ZZ"],
        SS_GEOFENCE_CIDR_FILE=str(first),
    )
    rig.protection.load_geofence()
    rig.params.snapshot = snapshot(
        SS_SIGNAL_RATE_LIMIT=0,
        SS_GEOFENCE_MODE="forbidden",
        SS_GEOFENCE_COUNTRIES=["ZZ"],
        SS_GEOFENCE_CIDR_FILE=str(second),
    )
    rig.protection.param_changed(SimpleNamespace(name="SS_GEOFENCE_CIDR_FILE"), "", "")
    rig.finish_loads(order=[1, 0])  # the older read lands last
    assert rig.admits(STRANGER) and not rig.admits("198.51.100.7")


def test_unreadable_geofence_file_is_logged_and_leaves_no_table(tmp_path):
    rig = Rig(
        SS_SIGNAL_RATE_LIMIT=0,
        SS_GEOFENCE_MODE="allow",
        SS_GEOFENCE_COUNTRIES=["ZZ"],
        SS_GEOFENCE_CIDR_FILE=str(tmp_path / "missing.csv"),
    )
    with capturedLogs() as events:
        rig.protection.load_geofence()
        rig.finish_loads()
    assert any(e.get("reason") for e in events)
    assert not rig.admits("8.8.8.8") and rig.admits("127.0.0.1")  # allow mode, no country


def test_listing_and_lift_cover_bans_and_suspensions():
    rig = Rig()
    snap = snapshot(SS_BLACK_LIST_DYNAMIC_RUN_MODE="global", SS_BLACK_LIST_CPS_LIMIT=1)
    caller = ctx(caller_gateway=mapping())
    rig.screen.started(caller, snap, T0)
    rig.screen.started(caller, snap, T0 + 1)
    for n in range(3):
        rig.suspensions.record_failure("ip", STRANGER, T0 + n, 3, 180)
    rows = rig.protection.listing(rig.now())
    assert [(r.value, r.kind) for r in rows] == [("861380013", "cps"), (STRANGER, "auth")]
    assert rows[1].expires_ms == T0 + 2 + 180_000
    assert rig.protection.lift("861380013", "auth") == 0  # kind filter
    assert rig.protection.lift("861380013", "cps") == 1
    assert rig.protection.lift(STRANGER) == 1
    assert rig.protection.listing(rig.now()) == []


# ---------------------------------------------------------------- install_protection


@pytest.fixture
def installed(tmp_path, capsys):
    from vos3k.cli import main as cli
    from vos3k.config import load_settings
    from vos3k.service import VosService
    from vos3k.switch.install import install_switch
    from vos3k.switch.protect import install_protection

    assert cli(["init", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    settings = load_settings({"data-dir": str(tmp_path), "ssh-listen": "off"})
    clock = task.Clock()
    clock.advance(T0_S)
    svc = VosService(settings, clock)
    install_switch(svc)
    svc.h323 = SimpleNamespace()  # what install_protection plugs into, as install_h323 makes
    install_protection(svc)
    yield svc
    svc.store.close()


def test_install_follows_store_and_param_changes(installed):
    from vos3k.params import Actor

    ops = Actor("ops", "test")
    svc = installed
    assert svc.admit_source(STRANGER) and svc.h323.admit_source(STRANGER)
    svc.store.blacklist.add(BlacklistEntry("192.0.2.0/24", reason="scanner"), ops)
    assert not svc.admit_source(STRANGER, 5060, "UDP")
    assert svc.static_blacklist().ip_blocked(STRANGER)
    svc.params.set("SS_ACL_DENY", "198.51.100.0/24", ops)
    assert not svc.admit_source("198.51.100.1")
    stats = svc.stats()
    assert (stats["signalling_dropped_blacklist"], stats["signalling_dropped_acl_deny"]) == (1, 1)
    assert stats["signalling_dropped"] == 2


def test_a_geofenced_sdp_address_is_refused_at_step_4(tmp_path):
    # SPEC §10: mode and list apply to SDP addresses too (refused, reason 20)
    path = tmp_path / "geo.csv"
    path.write_text(GEO)
    rig = Rig(SS_GEOFENCE_MODE="forbidden", SS_GEOFENCE_COUNTRIES=["ZZ"],
              SS_GEOFENCE_CIDR_FILE=str(path))  # fmt: skip
    offer = Media(body=b"v=0\r\n", address="192.0.2.40", port=4000)
    call = ctx(caller_gateway=mapping(), media=offer)
    assert rig.screen.banned(call, rig.params.snapshot, rig.now()) is None  # file not read
    rig.protection.load_geofence()
    rig.finish_loads()
    assert rig.screen.banned(call, rig.params.snapshot, rig.now()) == GeofencedMedia(
        "192.0.2.40", "ZZ"
    )
    elsewhere = ctx(caller_gateway=mapping(), media=Media(address="198.51.100.9", port=4000))
    assert rig.screen.banned(elsewhere, rig.params.snapshot, rig.now()) is None
