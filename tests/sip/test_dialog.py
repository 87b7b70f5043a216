"""Tests for vos3k.sip.dialog (RFC 3261 §12, §13.2.2.4)."""

from __future__ import annotations

import pytest

from vos3k.sip.dialog import (
    Dialog,
    DialogError,
    DialogId,
    DialogState,
    request_dialog_id,
    response_dialog_id,
)
from vos3k.sip.message import Request, build_response, parse, serialise

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Record-Route: <sip:p2.example.com;lr>\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)
VIA = "SIP/2.0/UDP me.example.com;branch=z9hG4bKnew"


def invite() -> Request:
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    return msg


def uac_dialog(status: int = 200, record_route=True) -> Dialog:
    req = invite()
    resp = build_response(
        req, status, to_tag="314", headers=[("Contact", "<sip:bob@192.0.2.4:5062>")]
    )
    if not record_route:
        resp = resp.without_header("record-route")
    dialog = Dialog.uac(req, resp)
    assert isinstance(dialog, Dialog)
    return dialog


def test_uac_dialog_rfc3261_12_1_2():
    d = uac_dialog()
    assert d.id == DialogId("a84b4c76e66710", "1928301774", "314")
    assert d.remote_target == "sip:bob@192.0.2.4:5062"
    # the UAC reverses Record-Route
    assert d.route_set == ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    assert d.local_cseq == 314159 and d.remote_cseq is None
    assert d.state is DialogState.CONFIRMED
    assert uac_dialog(180).state is DialogState.EARLY


def test_uas_dialog_rfc3261_12_1_1():
    d = Dialog.uas(invite(), "b0b", "<sip:b2bua@192.0.2.1>")
    assert d.id == DialogId("a84b4c76e66710", "b0b", "1928301774")
    assert d.route_set == ("<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>")
    assert d.remote_target == "sip:alice@pc33.atlanta.example.com"
    assert d.remote_cseq == 314159
    assert d.local_party == "Bob <sip:bob@biloxi.example.com>;tag=b0b"


@pytest.mark.parametrize(
    ("status", "why"),
    [(100, "100 creates nothing"), (486, "failure"), (200, "no Contact")],
    ids=["100", "failure", "no-contact"],
)
def test_uac_no_dialog(status, why):
    req = invite()
    resp = build_response(req, status, to_tag="x")
    assert isinstance(Dialog.uac(req, resp), DialogError), why


def test_uas_requires_contact_rfc3261_8_1_1_8():
    assert isinstance(Dialog.uas(invite().without_header("contact"), "t"), DialogError)


@pytest.mark.parametrize(
    ("route_set", "uri", "routes"),
    [
        ((), "sip:bob@192.0.2.4:5062", []),
        (
            ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"),
            "sip:bob@192.0.2.4:5062",
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"],
        ),
        (
            ("<sip:strict.example.com;maddr=192.0.2.9>", "<sip:p2.example.com;lr>"),
            "sip:strict.example.com;maddr=192.0.2.9",
            ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4:5062>"],
        ),
    ],
    ids=["12.2.1.1-no-routes", "12.2.1.1-loose", "12.2.1.1-strict"],
)
def test_request_uri_and_route(route_set, uri, routes):
    d = Dialog(
        "c",
        "l",
        "r",
        "<sip:a@x>;tag=l",
        "<sip:b@y>;tag=r",
        "sip:bob@192.0.2.4:5062",
        route_set,
        5,
        None,
        state=DialogState.CONFIRMED,
    )
    _d, bye = d.new_request("BYE", VIA)
    assert bye.uri == uri
    assert bye.headers_named("route") == routes


def test_in_dialog_requests_cseq_rfc3261_12_2_1_1():
    d = uac_dialog()
    d2, bye = d.new_request("BYE", VIA)
    assert bye.cseq().number == 314160 and bye.cseq().method == "BYE"
    assert bye.from_().tag == "1928301774" and bye.to().tag == "314"
    assert bye.call_id() == "a84b4c76e66710"
    assert bye.header("contact") is None
    assert d2.state is DialogState.TERMINATED and d2.local_cseq == 314160
    assert parse(serialise(bye)) == bye
    d3, reinvite = d.new_request("INVITE", VIA, body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.header("contact") == "<sip:alice@pc33.atlanta.example.com>"
    assert reinvite.content_length() == 5 and d3.local_cseq == 314160
    _d4, update = d3.new_request("UPDATE", VIA)
    assert update.cseq().number == 314161


def test_ack_for_2xx_rfc3261_13_2_2_4():
    d = uac_dialog()
    ack = d.ack(314159, VIA)
    assert ack.method == "ACK" and ack.cseq().number == 314159 and ack.cseq().method == "ACK"
    assert ack.uri == "sip:bob@192.0.2.4:5062"
    assert ack.headers_named("route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert ack.top_via().branch == "z9hG4bKnew"


def test_early_to_confirmed_refreshes_target_and_routes_rfc3261_13_2_2_4():
    early = uac_dialog(183)
    req = invite()
    ok = build_response(req, 200, to_tag="314", headers=[("Contact", "<sip:bob@192.0.2.77>")])
    ok = ok.without_header("record-route").append_header("Record-Route", "<sip:p9.example.com;lr>")
    confirmed = early.on_response(ok)
    assert confirmed.state is DialogState.CONFIRMED
    assert confirmed.remote_target == "sip:bob@192.0.2.77"
    assert confirmed.route_set == ("<sip:p9.example.com;lr>",)
    failed = early.on_response(build_response(req, 486, to_tag="314"))
    assert failed.state is DialogState.TERMINATED


def test_incoming_requests_rfc3261_12_2_2():
    d = Dialog.uas(invite(), "b0b")
    d = d.on_response(build_response(invite(), 200, to_tag="b0b"))
    reinvite = Request(
        "INVITE",
        "sip:b2bua@192.0.2.1",
        (
            ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK2"),
            ("To", "Bob <sip:bob@biloxi.example.com>;tag=b0b"),
            ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
            ("Call-ID", "a84b4c76e66710"),
            ("CSeq", "314160 INVITE"),
            ("Contact", "<sip:alice@192.0.2.55>"),
        ),
    )
    assert request_dialog_id(reinvite) == d.id
    d2 = d.on_request(reinvite)
    assert d2.remote_cseq == 314160 and d2.remote_target == "sip:alice@192.0.2.55"
    stale = d2.on_request(reinvite)
    assert isinstance(stale, DialogError) and stale.status == 500
    ack = Request("ACK", reinvite.uri, reinvite.with_header("CSeq", "314160 ACK").headers)
    assert d2.on_request(ack) is d2
    bye = Request("BYE", reinvite.uri, reinvite.with_header("CSeq", "314161 BYE").headers)
    assert d2.on_request(bye).state is DialogState.TERMINATED


def test_dialog_ids_for_matching():
    req = invite()
    assert request_dialog_id(req) is None  # no To tag: not in a dialog
    resp = build_response(req, 200, to_tag="314")
    assert response_dialog_id(resp) == uac_dialog().id
    assert response_dialog_id(build_response(req, 100)) is None
