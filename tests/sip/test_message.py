"""Unit tests for vos3k.sip.message and vos3k.sip.uri."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.sip.message import (
    HeaderError,
    IdSource,
    KeepAlive,
    Malformed,
    Request,
    Response,
    StreamFramer,
    build_response,
    error_response,
    parse,
    parse_name_addr,
    parse_via,
    serialise,
    split_values,
    validate_request,
)
from vos3k.sip.uri import Uri, UriError, parse_uri

INVITE = (
    b"INVITE sip:+15551234567@gw.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKfirst;received=192.0.2.99\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:+15551234567@gw.example.com>\r\n"
    b'From: "Alice, A." <sip:+15557654321@192.0.2.10>;tag=1928301774\r\n'
    b"i: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"m: <sip:+15557654321@192.0.2.10:5060>\r\n"
    b"X-Custom: keep, me\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> Request:
    msg = parse(INVITE)
    assert isinstance(msg, Request)
    return msg


def test_parse_request_basics_rfc3261_7_1():
    msg = invite()
    assert (msg.method, msg.uri, msg.version) == (
        "INVITE",
        "sip:+15551234567@gw.example.com;user=phone",
        "SIP/2.0",
    )
    assert msg.body == b"v=0\n"
    assert msg.call_id() == "a84b4c76e66710@192.0.2.10"  # compact "i" (§7.3.3)
    assert msg.header("CALL-ID") == msg.header("i")
    assert msg.cseq().number == 314159 and msg.cseq().method == "INVITE"
    assert msg.max_forwards() == 70
    assert msg.content_length() == 4
    assert msg.content_type() == "application/sdp"
    assert msg.from_().display == '"Alice, A."'
    assert msg.from_().tag == "1928301774"
    assert msg.to().tag is None
    assert [str(r.uri) for r in msg.record_routes()] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert msg.values("x-custom") == ["keep, me"]  # unknown headers are never split
    assert validate_request(msg) is None


def test_via_fields_rfc3261_20_42_rfc3581():
    top, second = invite().vias()
    assert (top.transport, top.host, top.port, top.branch) == (
        "UDP",
        "192.0.2.10",
        5060,
        "z9hG4bK776asdhds",
    )
    assert top.rport == 0 and second.rport is None
    assert (second.host, second.port, second.received) == ("2001:db8::1", 5061, "192.0.2.99")
    assert str(second) == "SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKfirst;received=192.0.2.99"
    assert parse_via("SIP/2.0/UDP h;maddr=224.0.0.1;ttl=16").maddr == "224.0.0.1"


@pytest.mark.parametrize(
    "value",
    [
        "SIP/2.0/UDP",  # no sent-by
        "SIP/2.0/UDP host;branch=",  # empty branch
        "SIP/2.0/UDP host:99999",  # port out of range
        "SIP/2.0/UDP host;ttl=300",  # ttl > 255
        "SIP/2.0 host",
    ],
    ids=["no-host", "empty-branch", "port", "ttl", "no-transport"],
)
def test_via_rejects_rfc3261_20_42(value):
    with pytest.raises(HeaderError):
        parse_via(value)


def test_round_trip_keeps_order_and_unknown_headers():
    msg = invite()
    again = parse(serialise(msg))
    assert again == msg
    assert [n for n, _ in again.headers][:3] == ["Via", "Via", "Max-Forwards"]
    assert serialise(msg) == INVITE  # canonical input comes back byte for byte


def test_folding_unfolds_rfc3261_7_3_1():
    data = INVITE.replace(b"X-Custom: keep, me\r\n", b"X-Custom: keep,\r\n\t  me\r\n")
    msg = parse(data)
    assert msg.header("x-custom") == "keep, me"


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ('"a, b" <sip:x@y>, <sip:z@w;p=1,2>', ['"a, b" <sip:x@y>', "<sip:z@w;p=1,2>"]),
        ("a,,b", ["a", "", "b"]),
        ('"esc \\" ," <sip:q>, c', ['"esc \\" ," <sip:q>', "c"]),
        ("single", ["single"]),
    ],
    ids=["quotes-and-angles", "empty-element", "escaped-quote", "single"],
)
def test_split_values_rfc3261_7_3_1(value, parts):
    assert split_values(value) == parts


@pytest.mark.parametrize(
    ("text", "display", "uri", "params"),
    [
        ("<sip:a@b>", None, "sip:a@b", ()),
        ("sip:a@b;tag=1", None, "sip:a@b", (("tag", "1"),)),
        ('"A \\"B\\"" <sip:a@b;lr>;tag=x', '"A \\"B\\""', "sip:a@b;lr", (("tag", "x"),)),
        ("Bob Smith <tel:+1-555>", "Bob Smith", "tel:+1-555", ()),
        (
            "<sip:a@[2001:db8::1]:5070>;expires=60",
            None,
            "sip:a@[2001:db8::1]:5070",
            (("expires", "60"),),
        ),
        ("caller<sip:c@e>", "caller", "sip:c@e", ()),
    ],
    ids=["bracketed", "addr-spec", "quoted", "tokens-tel", "ipv6", "no-space-rfc4475-lwsdisp"],
)
def test_name_addr_rfc3261_20_10(text, display, uri, params):
    na = parse_name_addr(text)
    assert (na.display, str(na.uri), na.params) == (display, uri, params)


@pytest.mark.parametrize(
    "text",
    ['"unterminated <sip:a@b>', "Bell, Al <sip:a@b>", "< sip:a@b >", "sip:a@b?x=y", "<sip:a@b"],
    ids=["quotbal", "baddn", "badaspec", "regbadct", "unterminated-angle"],
)
def test_name_addr_rejects(text):
    with pytest.raises(HeaderError):
        parse_name_addr(text)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "sip:alice:secret@atlanta.com;transport=tcp",
            ("sip", "alice", "secret", "atlanta.com", None),
        ),
        ("sips:bob@[2001:db8::9]:5061", ("sips", "bob", None, "2001:db8::9", 5061)),
        ("sip:atlanta.com:5060", ("sip", None, None, "atlanta.com", 5060)),
        ("SIP:a%20b@h", ("sip", "a%20b", None, "h", None)),
        ("tel:+358-555-1234567;postd=pp22", ("tel", "+358-555-1234567", None, "", None)),
    ],
    ids=["password-param", "sips-ipv6", "no-user", "escaped-user", "tel-rfc3966"],
)
def test_parse_uri_rfc3261_19_1(text, fields):
    uri = parse_uri(text)
    assert isinstance(uri, Uri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == fields
    assert parse_uri(str(uri)) == uri


def test_uri_params_and_headers_rfc3261_19_1_1():
    uri = parse_uri("sip:a@h;maddr=[2001:db8::1];lr?subject=x&priority=urgent")
    assert uri.param("MADDR") == "[2001:db8::1]" and uri.param("lr") == ""
    assert uri.headers == (("subject", "x"), ("priority", "urgent"))
    assert str(uri.with_params(transport="tcp").without_params("lr")).startswith(
        "sip:a@h;maddr=[2001:db8::1];transport=tcp?"
    )


@pytest.mark.parametrize(
    "text",
    ["sip:", "sip:a@", "sip:a@h:port", "sip:a@[::1", "sip:a b@h", "no-scheme", "sip:a@h;x=%zz"],
)
def test_parse_uri_errors_are_values(text):
    assert isinstance(parse_uri(text), UriError)


def test_build_response_rfc3261_8_2_6():
    req = invite()
    resp = build_response(req, 180, to_tag="abc", headers=[("Contact", "<sip:me@h>")])
    assert (resp.status, resp.reason) == (180, "Ringing")
    assert resp.to().tag == "abc"
    assert resp.vias() == req.vias()
    assert resp.call_id() == req.call_id() and resp.cseq() == req.cseq()
    assert len(resp.record_routes()) == 2  # §12.1.1: copied into dialog-creating responses
    assert resp.header("content-length") == "0"
    trying = build_response(req, 100, to_tag="abc")
    assert trying.to().tag is None  # no tag on 100 (§8.2.6.1)
    assert trying.header("record-route") is None
    ok = build_response(req, 200, to_tag="abc", body=b"v=0\r\n", content_type="application/sdp")
    assert ok.content_length() == 5 and ok.content_type() == "application/sdp"
    assert parse(serialise(ok)) == ok


def test_error_response_from_malformed():
    bad = parse(INVITE.replace(b"l: 4", b"l: 400"))
    assert isinstance(bad, Malformed) and bad.reply_possible
    reply = error_response(bad, to_tag="t")
    assert reply.status == 400 and reply.to().tag == "t" and reply.call_id()
    assert error_response(Malformed("x")) is None


def test_validate_420_lists_unsupported():
    req = invite().with_header("Require", "100rel, foo")
    bad = validate_request(req)
    assert bad.status == 420 and bad.extra_headers == (("Unsupported", "foo"),)
    assert error_response(bad).header("unsupported") == "foo"
    # an INVITE with Replaces would be taken for a new call: vos3k does not claim it
    replaces = validate_request(invite().with_header("Require", "replaces, timer"))
    assert replaces.status == 420 and replaces.extra_headers == (("Unsupported", "replaces"),)


def test_ack_is_never_answered_rfc3261_17_2_1():
    ack = Request("ACK", "sip:a@b", (("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),))
    bad = validate_request(ack)
    assert bad is not None and not bad.reply_possible


def test_copy_editing_helpers():
    req = invite()
    req2 = req.prepend_header("Via", "SIP/2.0/UDP me;branch=z9hG4bKme")
    assert req2.top_via().host == "me" and len(req2.vias()) == 3
    assert req.top_via().host == "192.0.2.10"  # the original is untouched (frozen)
    req3 = req2.without_header("via", first_only=True)
    assert req3.vias() == req.vias()
    req4 = req.with_body(b"hello", "text/plain")
    assert req4.content_length() == 5 and req4.content_type() == "text/plain"
    assert parse(serialise(req4)) == req4
    req5 = req4.with_header("Max-Forwards", "69")
    assert req5.max_forwards() == 69
    assert [n for n, _ in req5.headers].index("Max-Forwards") == 2  # kept in place


def test_response_start_line_and_empty_reason():
    msg = parse(b"SIP/2.0 183 \r\nContent-Length: 0\r\n\r\n")
    assert isinstance(msg, Response) and (msg.status, msg.reason) == (183, "")
    assert parse(b"SIP/2.0 099 Low\r\n\r\n").reason.startswith("bad status code")


def test_leading_crlf_ignored_rfc3261_7_5():
    msg = parse(b"\r\n\r\n" + INVITE)
    assert isinstance(msg, Request)


def test_missing_blank_line_is_malformed():
    msg = parse(INVITE.split(b"\r\n\r\n")[0])
    assert isinstance(msg, Malformed) and msg.reason == "no blank line after headers"


# -- stream framing (RFC 3261 §18.3) ---------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 64, len(INVITE) * 3], ids=lambda c: f"chunk{c}")
def test_framer_reassembles_any_split(chunk):
    stream = INVITE + b"\r\n\r\n" + INVITE
    framer = StreamFramer()
    out = []
    for i in range(0, len(stream), chunk):
        out.extend(framer.feed(stream[i : i + chunk]))
    assert out == [invite(), KeepAlive(), invite()]


def test_framer_oversize_513():
    framer = StreamFramer(max_size=200)
    out = framer.feed(INVITE.replace(b"l: 4", b"l: 5000"))
    assert len(out) == 1 and out[0].status == 513 and out[0].reply_possible
    assert framer.broken and framer.feed(INVITE) == []


def test_framer_bad_content_length_breaks_stream():
    framer = StreamFramer()
    out = framer.feed(INVITE.replace(b"l: 4", b"l: x"))
    assert out[0].status == 400 and framer.broken


def test_framer_headers_too_long_without_end():
    framer = StreamFramer(max_size=100)
    out = framer.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 30)
    assert out[0].status == 513


def test_id_source_is_injected():
    counter = itertools.count()
    ids = IdSource(lambda n: bytes([next(counter) % 256]) * n)
    assert ids.tag() == "00" * 8
    assert ids.branch() == "z9hG4bK" + "01" * 10
    assert ids.call_id("h") == "02" * 12 + "@h"
    assert IdSource().branch().startswith("z9hG4bK")


# -- properties of the value parsers ---------------------------------------------------

URI_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda user, host, params: f"sip:{user}@{host}{params}",
        st.text(alphabet="abc%20;?,:&=+$-_.!~*'()", max_size=12),
        st.sampled_from(["h.example", "[2001:db8::1]", "192.0.2.1:5060", "[::1", "h:99999"]),
        st.text(alphabet=";=lrtransport[]:%abc", max_size=20),
    ),
)


@settings(max_examples=300, deadline=None)
@given(URI_TEXT)
def test_parse_uri_value_or_error_and_round_trip(text):
    uri = parse_uri(text)
    assert isinstance(uri, Uri | UriError)
    if isinstance(uri, Uri):
        assert parse_uri(str(uri)) == uri


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_header_value_parsers_raise_only_header_error(text):
    for parser in (parse_name_addr, parse_via, split_values):
        try:
            parser(text)
        except HeaderError:
            pass
