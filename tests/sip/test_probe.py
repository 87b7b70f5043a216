"""Routing-gateway OPTIONS probe (vos3k/sip/probe.py): verdicts, rounds, live period."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from tests.sip.test_endpoint import OPS, FakeTransport
from vos3k.params import LiveParams
from vos3k.sip.b2bua import SipCallLayer
from vos3k.sip.endpoint import SipEndpoint
from vos3k.sip.message import IdSource, Request, build_response, serialise
from vos3k.sip.probe import GatewayProbe, Health, Verdict, observe
from vos3k.sip.transaction import Address
from vos3k.store.db import open_store
from vos3k.store.models import Gateway

U, ON, OFF = Health.UNCHECKED, Health.ONLINE, Health.OFFLINE


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        pytest.param([], Verdict(U, 0), id="spec-s4-unchecked"),
        pytest.param([True], Verdict(ON, 0), id="spec-s4-answer-online"),
        pytest.param([False], Verdict(U, 1), id="spec-s4-one-miss-no-verdict"),
        pytest.param([False, False], Verdict(OFF, 2), id="spec-s4-two-misses-offline"),
        pytest.param([True, False], Verdict(ON, 1), id="spec-s4-one-miss-stays-online"),
        pytest.param([True, False, True, False], Verdict(ON, 1), id="spec-s4-not-in-a-row"),
        pytest.param([False, False, False], Verdict(OFF, 3), id="spec-s4-stays-offline"),
        pytest.param([False, False, True], Verdict(ON, 0), id="spec-s4-answer-back-online"),
    ],
)
def test_observe(answers, expected):
    verdict = Verdict()
    for answered in answers:
        verdict = observe(verdict, answered)
    assert verdict == expected


def gw(name, ip, **kw):
    return Gateway(name=name, kind="routing", ip=ip, prefixes=("*",), **kw)


class Rig:
    def __init__(self, gateways):
        self.store = open_store(None)
        self.params = LiveParams(self.store.params)
        self.params.set("SS_SIP_OPTIONS_CHECK_PERIOD", "10", OPS)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.endpoint = SipEndpoint(
            self.clock, self.params, phone_of=lambda _e: None, ids=IdSource(lambda n: b"\x01" * n)
        )
        self.endpoint.transport = FakeTransport()
        self.endpoint.startService()
        layer = SipCallLayer(self.endpoint, None, None, self.params, self.clock, IdSource())
        self.endpoint.call_layer = layer
        self.gateways = list(gateways)
        self.offline_calls: list[tuple[str, bool]] = []
        self.probe = GatewayProbe(
            self.clock,
            self.params,
            layer,
            lambda: self.gateways,
            lambda name, off: self.offline_calls.append((name, off)),
        )

    def sent_options(self) -> list[tuple[Request, Address]]:
        """One entry per probe (Timer E retransmissions left out)."""
        probes: dict[str, tuple[Request, Address]] = {}
        for m, d, _e in self.endpoint.transport.sent:
            if isinstance(m, Request) and m.method == "OPTIONS":
                probes.setdefault(m.call_id(), (m, d))
        return list(probes.values())

    def answer_last(self, host: str, status: int = 200) -> None:
        request, dest = [(m, d) for m, d in self.sent_options() if d.host == host][-1]
        response = build_response(request, status, to_tag="t")
        self.endpoint.message_received(response, dest)

    def state(self, name):
        return self.probe.state_of(name)


@pytest.fixture
def rig():
    r = Rig([gw("v1", "192.0.2.1", options_check=True), gw("v2", "192.0.2.2", port=5070,
             options_check=True), gw("plain", "192.0.2.3"),
             gw("h323", "192.0.2.4", protocol="h323", options_check=True)])  # fmt: skip
    r.probe.startService()
    yield r
    r.probe.stopService()
    r.endpoint.stopService()


def test_only_sip_routing_gateways_with_options_check_are_probed(rig):
    sent = rig.sent_options()
    assert sorted((d.host, d.port) for _m, d in sent) == [("192.0.2.1", 5060), ("192.0.2.2", 5070)]
    options = sent[0][0]
    assert options.uri == "sip:192.0.2.1:5060"
    assert options.header("max-forwards") == "70" and options.cseq().method == "OPTIONS"
    assert b"Content-Length: 0" in serialise(options)
    assert [rig.state(n) for n in ("v1", "v2", "plain", "h323")] == ["unchecked"] * 4


def test_two_unanswered_rounds_offline_then_answer_online(rig):
    rig.answer_last("192.0.2.2")
    assert rig.state("v2") == "online" and rig.offline_calls == []
    rig.clock.advance(10)  # round 2: round 1 unanswered for v1
    assert rig.state("v1") == "unchecked"
    rig.answer_last("192.0.2.2", 503)  # any answer counts (something is listening)
    rig.clock.advance(10)  # round 3: second miss
    assert rig.state("v1") == "offline"
    assert rig.offline_calls == [("v1", True)]
    assert rig.state("v2") == "online"
    rig.answer_last("192.0.2.1", 404)
    assert rig.state("v1") == "online"
    assert rig.offline_calls == [("v1", True), ("v1", False)]
    assert len(rig.sent_options()) == 6


def test_transaction_timeout_counts_unanswered(rig):
    # a period longer than Timer F (32 s): the timeout decides, not the next round
    rig.params.set("SS_SIP_OPTIONS_CHECK_PERIOD", "100", OPS)
    rig.answer_last("192.0.2.2")
    rig.clock.pump([1] * 40)  # Timer F fires for v1's first probe
    assert rig.probe.verdicts["v1"] == Verdict(U, 1)
    assert len(rig.sent_options()) == 2
    rig.clock.pump([1] * 60)  # round 2 at 100 s
    assert len(rig.sent_options()) == 4
    rig.clock.pump([1] * 40)
    assert rig.state("v1") == "offline" and rig.offline_calls == [("v1", True)]


def test_provisional_is_not_an_answer(rig):
    rig.answer_last("192.0.2.1", 100)
    assert rig.state("v1") == "unchecked" and "v1" in rig.probe.pending


def test_period_is_live(rig):
    rig.params.set("SS_SIP_OPTIONS_CHECK_PERIOD", "30", OPS)
    rig.clock.advance(29)
    assert len(rig.sent_options()) == 2
    rig.clock.advance(1)
    assert len(rig.sent_options()) == 4
    rig.params.set("SS_SIP_OPTIONS_CHECK_PERIOD", "5", OPS)  # next round 5 s after the last
    rig.clock.advance(5)
    assert len(rig.sent_options()) == 6


def test_gateway_list_follows_the_store(rig):
    rig.clock.advance(10)
    rig.clock.advance(10)
    assert rig.state("v1") == "offline"
    # options_check switched off: no longer probed, no longer held offline
    rig.gateways[0] = gw("v1", "192.0.2.1")
    rig.probe.gateways_changed("gateways")
    assert rig.state("v1") == "unchecked"
    assert rig.offline_calls[-1] == ("v1", False)
    rig.gateways.append(gw("v5", "192.0.2.5", options_check=True))
    before = len(rig.sent_options())
    rig.clock.advance(10)
    assert sorted(d.host for _m, d in rig.sent_options()[before:]) == ["192.0.2.2", "192.0.2.5"]


def test_stop_cancels_the_round(rig):
    rig.probe.stopService()
    before = len(rig.sent_options())
    rig.clock.advance(100)
    assert len(rig.sent_options()) == before
    rig.probe.startService()  # the fixture stops it again


def test_gateway_show_and_list_print_the_state(tmp_path):
    from tests.admin.conftest import FakeService, Runner

    service = FakeService(tmp_path)
    service.store.gateways.add(gw("V", "192.0.2.1", options_check=True), OPS)
    service.store.gateways.add(Gateway("C", "mapping", "192.0.2.9"), OPS)
    run = Runner(service)

    def show(name):
        outcome = run(f"gateway show {name} --json")
        assert outcome.code == 0, outcome
        return json.loads(outcome.out)["state"]

    assert (show("V"), show("C")) == ("unchecked", "")  # no probe (yet)
    probe = GatewayProbe(None, None, None, lambda: [], lambda name, off: None)
    probe.verdicts["V"] = Verdict(OFF, 2)
    service.gateway_state = probe.state_of
    assert show("V") == "offline"
    listed = json.loads(run("gateway list --json").out)
    assert {g["name"]: g["state"] for g in listed} == {"C": "", "V": "offline"}
    text = run("gateway list").out
    assert "state" in text.splitlines()[0] and "offline" in text
