"""Table-driven tests for vos3k.sip.transaction (RFC 3261 §17, RFC 6026), literal now_ms."""

from __future__ import annotations

import pytest

from vos3k.sip.message import Request, Response, build_response, parse, serialise
from vos3k.sip.transaction import (
    Address,
    Deliver,
    Drop,
    LocalProtocolError,
    ReportTimeout,
    ReportTransportError,
    RequestReceived,
    RequestSubmitted,
    ResponseReceived,
    ResponseSubmitted,
    Send,
    SendFailed,
    TimerConfig,
    TimersDue,
    TransactionLayer,
    build_cancel,
    response_destination,
    server_key,
)

UDP = Address("UDP", "192.0.2.20", 5060)
TCP = Address("TCP", "192.0.2.20", 5060)


def request(method: str, branch: str = "z9hG4bKtx1", via: str | None = None) -> Request:
    via = via or f"SIP/2.0/UDP 192.0.2.10:5060;branch={branch}"
    data = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:bob@example.com>\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "Call-ID: call-1@example.com\r\n"
        f"CSeq: 1 {method}\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse(data)
    assert isinstance(msg, Request)
    return msg


def describe(effect) -> str:
    if isinstance(effect, Send):
        m = effect.message
        return f"send {m.method}" if isinstance(m, Request) else f"send {m.status}"
    if isinstance(effect, Deliver):
        m = effect.message
        what = m.method if isinstance(m, Request) else str(m.status)
        return f"deliver {what}" + ("" if effect.key else " (no txn)")
    if isinstance(effect, ReportTimeout):
        return "timeout"
    if isinstance(effect, ReportTransportError):
        return "transport error"
    if isinstance(effect, Drop):
        return "drop"
    raise AssertionError(effect)


def run(steps, *, method="INVITE", peer=UDP, config=None, client=True):
    """Run (now_ms, step, expected effects) rows against one transaction."""
    layer = TransactionLayer(config or TimerConfig())
    req = request(method)
    key = None
    for now, step, expected in steps:
        if step == "submit":
            event = RequestSubmitted(req, peer)
        elif step == "timers":
            event = TimersDue()
        elif step == "fail":
            event = SendFailed(key)
        elif step.startswith("rx "):
            what = step[3:]
            if what.isdigit():
                event = ResponseReceived(build_response(req, int(what), to_tag="b1"), peer)
            elif what == "ACK":
                event = RequestReceived(ack_for(req), peer)
            else:
                event = RequestReceived(req, peer)
        elif step.startswith("tu "):
            event = ResponseSubmitted(build_response(req, int(step[3:]), to_tag="b1"), key)
        else:
            raise AssertionError(step)
        effects = layer.handle(event, now)
        for e in effects:
            if isinstance(e, Deliver | Send) and e.key is not None:
                key = e.key
        assert [describe(e) for e in effects] == expected, (now, step)
    return layer


def ack_for(req: Request) -> Request:
    """The ACK a UAC's transaction sends for a non-2xx (same branch, §17.1.1.3)."""
    edited = req.with_header("CSeq", "1 ACK").with_header("To", "<sip:bob@example.com>;tag=b1")
    return Request("ACK", req.uri, edited.headers)


SCENARIOS = {
    # -- INVITE client (§17.1.1) ------------------------------------------------------
    "17.1.1.2-timer-A-doubles-B-times-out": dict(
        steps=[
            (0, "submit", ["send INVITE"]),
            (500, "timers", ["send INVITE"]),
            (1500, "timers", ["send INVITE"]),
            (3500, "timers", ["send INVITE"]),
            (7500, "timers", ["send INVITE"]),
            (15500, "timers", ["send INVITE"]),
            (31500, "timers", ["send INVITE"]),
            (32000, "timers", ["timeout"]),
        ]
    ),
    "17.1.1.2-provisional-stops-A-failure-acked": dict(
        steps=[
            (0, "submit", ["send INVITE"]),
            (100, "rx 180", ["deliver 180"]),
            (600, "timers", []),
            (40000, "timers", []),  # no Timer B once Proceeding
            (40100, "rx 486", ["send ACK", "deliver 486"]),
            (40200, "rx 486", ["send ACK"]),  # retransmitted final: ACK again, TU not told
            (40300, "rx 180", []),
            (72100, "timers", []),  # Timer D ends it
            (72200, "rx 486", ["drop"]),
        ]
    ),
    "rfc6026-7.2-accepted-passes-every-2xx": dict(
        steps=[
            (0, "submit", ["send INVITE"]),
            (50, "rx 200", ["deliver 200"]),
            (60, "rx 200", ["deliver 200"]),
            (500, "timers", []),  # Timer A stopped
            (32050, "timers", []),  # Timer M
            (32060, "rx 200", ["deliver 200 (no txn)"]),  # §17.1.1.2: TU re-ACKs
        ]
    ),
    "17.1.1.2-reliable-no-A-zero-D": dict(
        peer=TCP,
        steps=[
            (0, "submit", ["send INVITE"]),
            (500, "timers", []),
            (1000, "rx 503", ["send ACK", "deliver 503"]),
            (1001, "rx 503", ["drop"]),  # D was zero: transaction gone
        ],
    ),
    "SS_SIP_RESEND_INTERVAL-schedule": dict(
        config=TimerConfig(invite_resend_ms=(500, 1000)),
        steps=[
            (0, "submit", ["send INVITE"]),
            (500, "timers", ["send INVITE"]),
            (1500, "timers", ["send INVITE"]),
            (3500, "timers", []),
            (32000, "timers", ["timeout"]),
        ],
    ),
    "17.1.4-transport-error": dict(
        steps=[(0, "submit", ["send INVITE"]), (10, "fail", ["transport error"])]
    ),
    # -- non-INVITE client (§17.1.2) --------------------------------------------------
    "17.1.2.2-timer-E-capped-at-T2-F-times-out": dict(
        method="OPTIONS",
        steps=[
            (0, "submit", ["send OPTIONS"]),
            (500, "timers", ["send OPTIONS"]),
            (1500, "timers", ["send OPTIONS"]),
            (3500, "timers", ["send OPTIONS"]),
            (7500, "timers", ["send OPTIONS"]),
            (11500, "timers", ["send OPTIONS"]),
            (31500, "timers", ["send OPTIONS"] * 5),
            (32000, "timers", ["timeout"]),
        ],
    ),
    "17.1.2.2-proceeding-E-at-T2-K-absorbs": dict(
        method="BYE",
        steps=[
            (0, "submit", ["send BYE"]),
            (100, "rx 100", ["deliver 100"]),
            (500, "timers", ["send BYE"]),
            (4500, "timers", ["send BYE"]),
            (5000, "rx 200", ["deliver 200"]),
            (5100, "rx 200", []),
            (10000, "timers", []),  # Timer K = T4
            (10001, "rx 200", ["drop"]),
        ],
    ),
    "17.1.2.2-reliable-zero-K": dict(
        method="BYE",
        peer=TCP,
        steps=[
            (0, "submit", ["send BYE"]),
            (5000, "rx 481", ["deliver 481"]),
            (5001, "rx 481", ["drop"]),
        ],
    ),
    # -- INVITE server (§17.2.1) ------------------------------------------------------
    "17.2.1-retransmissions-G-then-ACK-I": dict(
        steps=[
            (0, "rx INVITE", ["deliver INVITE", "send 100"]),
            (200, "rx INVITE", ["send 100"]),
            (300, "tu 180", ["send 180"]),
            (400, "rx INVITE", ["send 180"]),
            (1000, "tu 486", ["send 486"]),
            (1500, "timers", ["send 486"]),
            (2500, "timers", ["send 486"]),
            (4500, "timers", ["send 486"]),
            (8500, "timers", ["send 486"]),  # capped at T2 from here
            (9000, "rx INVITE", ["send 486"]),
            (9100, "rx ACK", []),
            (9200, "rx ACK", []),  # absorbed in Confirmed
            (12500, "timers", []),  # no more G once Confirmed
            (14100, "timers", []),  # Timer I = T4
            (14200, "rx ACK", ["deliver ACK (no txn)"]),
        ]
    ),
    "17.2.1-timer-H-no-ACK": dict(
        steps=[
            (0, "rx INVITE", ["deliver INVITE", "send 100"]),
            (0, "tu 500", ["send 500"]),
            (31999, "timers", ["send 500"] * 10),  # G at 0.5, 1.5, 3.5, 7.5, then every T2
            (32000, "timers", ["timeout"]),
        ]
    ),
    "rfc6026-7.1-accepted-absorbs-INVITE-L": dict(
        steps=[
            (0, "rx INVITE", ["deliver INVITE", "send 100"]),
            (10, "tu 200", ["send 200"]),
            (20, "rx INVITE", []),
            (30, "tu 200", ["send 200"]),  # the TU's own 2xx retransmission
            (32010, "timers", []),  # Timer L
            (32020, "rx INVITE", ["deliver INVITE", "send 100"]),  # a new transaction
        ]
    ),
    "17.2.1-reliable-no-G-zero-I": dict(
        peer=TCP,
        steps=[
            (0, "rx INVITE", ["deliver INVITE", "send 100"]),
            (0, "tu 404", ["send 404"]),
            (1000, "timers", []),
            (1100, "rx ACK", []),
            (1101, "rx ACK", ["deliver ACK (no txn)"]),
        ],
    ),
    # -- non-INVITE server (§17.2.2) --------------------------------------------------
    "17.2.2-trying-absorbs-completed-resends-J": dict(
        method="OPTIONS",
        steps=[
            (0, "rx OPTIONS", ["deliver OPTIONS"]),
            (100, "rx OPTIONS", []),
            (200, "tu 200", ["send 200"]),
            (300, "rx OPTIONS", ["send 200"]),
            (32199, "timers", []),
            (32200, "timers", []),  # Timer J
            (32300, "rx OPTIONS", ["deliver OPTIONS"]),
        ],
    ),
    "17.2.2-proceeding-resends-provisional": dict(
        method="BYE",
        steps=[
            (0, "rx BYE", ["deliver BYE"]),
            (10, "tu 100", ["send 100"]),
            (20, "rx BYE", ["send 100"]),
            (30, "tu 200", ["send 200"]),
        ],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS), ids=list(SCENARIOS))
def test_transaction_scenarios(name):
    layer = run(**SCENARIOS[name])
    assert layer.next_deadline_ms() is None or len(layer) > 0


def test_layer_empties_after_timers():
    layer = run(SCENARIOS["17.1.1.2-provisional-stops-A-failure-acked"]["steps"][:5])
    assert len(layer) == 1
    layer.handle(TimersDue(), 80000)
    assert len(layer) == 0 and layer.next_deadline_ms() is None


def test_ack_for_failure_rfc3261_17_1_1_3():
    layer = TransactionLayer()
    req = request("INVITE")
    layer.handle(RequestSubmitted(req, UDP), 0)
    resp = build_response(req, 486, to_tag="b1")
    (send_ack, _deliver) = layer.handle(ResponseReceived(resp, UDP), 10)
    ack = send_ack.message
    assert ack.method == "ACK" and ack.uri == req.uri
    assert ack.top_via() == req.top_via() and len(ack.vias()) == 1
    assert ack.cseq().number == 1 and ack.cseq().method == "ACK"
    assert ack.to().tag == "b1" and ack.from_().tag == "a1"
    assert ack.header("route") == req.header("route")
    assert parse(serialise(ack)) == ack


def test_cancel_matches_invite_rfc3261_9_2():
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.handle(RequestReceived(invite, UDP), 0)
    cancel = invite.with_header("CSeq", "1 CANCEL")
    cancel = Request("CANCEL", cancel.uri, cancel.headers)
    (deliver,) = layer.handle(RequestReceived(cancel, UDP), 10)
    assert deliver.cancels == server_key(invite) and deliver.key == server_key(cancel)
    other = Request(
        "CANCEL", cancel.uri, cancel.with_header("Via", "SIP/2.0/UDP h;branch=z9hG4bKx").headers
    )
    (deliver2,) = layer.handle(RequestReceived(other, UDP), 20)
    assert deliver2.cancels is None  # the TU answers 481


def test_server_key_sent_by_distinguishes_rfc3261_17_2_3():
    a = request("INVITE", via="SIP/2.0/UDP host-a:5060;branch=z9hG4bKsame")
    b = request("INVITE", via="SIP/2.0/UDP host-b:5060;branch=z9hG4bKsame")
    assert server_key(a) != server_key(b)
    layer = TransactionLayer()
    assert len(layer.handle(RequestReceived(a, UDP), 0)) == 2
    assert len(layer.handle(RequestReceived(b, UDP), 0)) == 2  # a new transaction
    assert len(layer) == 2


def test_rfc2543_branchless_matching_rfc4475_3_2_1():
    old = request("INVITE", via="SIP/2.0/UDP 192.0.2.10:5060")
    layer = TransactionLayer()
    assert [describe(e) for e in layer.handle(RequestReceived(old, UDP), 0)] == [
        "deliver INVITE",
        "send 100",
    ]
    assert [describe(e) for e in layer.handle(RequestReceived(old, UDP), 100)] == ["send 100"]
    key = server_key(old)
    layer.handle(ResponseSubmitted(build_response(old, 486, to_tag="b1"), key), 200)
    assert layer.handle(RequestReceived(ack_for(old), UDP), 300) == []
    assert layer.get(key).state.value == "Confirmed"


def test_stray_responses():
    layer = TransactionLayer()
    req = request("INVITE")
    assert [
        describe(e) for e in layer.handle(ResponseReceived(build_response(req, 180), UDP), 0)
    ] == ["drop"]
    ok = build_response(req, 200, to_tag="x")
    assert [describe(e) for e in layer.handle(ResponseReceived(ok, UDP), 0)] == [
        "deliver 200 (no txn)"
    ]


def test_tu_misuse_raises():
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.handle(RequestReceived(req, UDP), 0)
    key = server_key(req)
    layer.handle(ResponseSubmitted(build_response(req, 200), key), 1)
    with pytest.raises(LocalProtocolError):
        layer.handle(ResponseSubmitted(build_response(req, 180), key), 2)
    with pytest.raises(LocalProtocolError):
        layer.handle(RequestSubmitted(request("BYE", "z9hG4bKdup"), UDP), 3)
        layer.handle(RequestSubmitted(request("BYE", "z9hG4bKdup"), UDP), 4)


def test_ack_to_2xx_is_sent_statelessly():
    layer = TransactionLayer()
    ack = request("ACK", "z9hG4bKack")
    (send,) = layer.handle(RequestSubmitted(ack, UDP), 0)
    assert send.key is None and len(layer) == 0


def test_configurable_t1_t2_t4():
    cfg = TimerConfig(t1_ms=100, t2_ms=200, t4_ms=300)
    run(
        [
            (0, "submit", ["send BYE"]),
            (100, "timers", ["send BYE"]),
            (300, "timers", ["send BYE"]),
            (500, "timers", ["send BYE"]),
            (600, "rx 200", ["deliver 200"]),
            (900, "timers", []),
        ],
        method="BYE",
        config=cfg,
    )


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        ("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1", UDP, Address("UDP", "192.0.2.20", 5070)),
        ("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1", UDP, Address("UDP", "192.0.2.20", 5060)),
        ("SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bK1", UDP, UDP),
        (
            "SIP/2.0/UDP 10.0.0.1;maddr=224.0.1.75;branch=z9hG4bK1",
            UDP,
            Address("UDP", "224.0.1.75", 5060),
        ),
        ("SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK1", TCP, TCP),
    ],
    ids=[
        "18.2.2-received-port",
        "18.2.2-default-port",
        "rfc3581-rport",
        "18.2.2-maddr",
        "18.2.2-reliable",
    ],
)
def test_response_destination(via, source, expected):
    assert response_destination(request("INVITE", via=via).top_via(), source) == expected


def test_next_deadline_tracks_many_transactions():
    layer = TransactionLayer()
    for i in range(5):
        layer.handle(RequestSubmitted(request("OPTIONS", f"z9hG4bK{i}"), UDP), i * 100)
    assert layer.next_deadline_ms() == 500
    effects = layer.handle(TimersDue(), 800)
    assert [describe(e) for e in effects] == ["send OPTIONS"] * 4
    assert layer.next_deadline_ms() == 900
    response = build_response(request("OPTIONS", "z9hG4bK4"), 200)
    layer.handle(ResponseReceived(response, UDP), 850)
    assert layer.next_deadline_ms() == 1500
    assert isinstance(response, Response)


def test_cancel_for_our_invite_rfc3261_9_1():
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.handle(RequestSubmitted(invite, UDP), 0)
    layer.handle(ResponseReceived(build_response(invite, 180, to_tag="b1"), UDP), 10)
    cancel = build_cancel(invite)
    assert cancel.uri == invite.uri and cancel.top_via() == invite.top_via()
    assert cancel.cseq().number == 1 and cancel.cseq().method == "CANCEL"
    assert cancel.to().tag is None and cancel.header("route") == invite.header("route")
    (send,) = layer.handle(RequestSubmitted(cancel, UDP), 20)
    assert send.message is cancel and len(layer) == 2
    ok = build_response(cancel, 200, to_tag="b1")
    assert [describe(e) for e in layer.handle(ResponseReceived(ok, UDP), 30)] == ["deliver 200"]
    terminated = build_response(invite, 487, to_tag="b1")
    effects = layer.handle(ResponseReceived(terminated, UDP), 40)
    assert [describe(e) for e in effects] == ["send ACK", "deliver 487"]


def test_response_after_server_transaction_ended_is_dropped():
    layer = TransactionLayer()
    req = request("OPTIONS")
    key = server_key(req)
    layer.handle(RequestReceived(req, TCP), 0)
    layer.handle(ResponseSubmitted(build_response(req, 200), key), 1)  # J = 0 on TCP
    (drop,) = layer.handle(ResponseSubmitted(build_response(req, 200), key), 2)
    assert isinstance(drop, Drop)
