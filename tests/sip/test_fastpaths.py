"""The SIP hot path's shortcuts give exactly what the careful code gives (issue 6 CPS work).

Each fast path (one-regex header split, simple header parameters, memo tables of parsed
values, parsed values carried over by copy-editing, the SDP summary of a proxy rewrite,
a leg's own dialog keys) is checked against the general code it stands in for.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.sip import message as sip_message
from vos3k.sip import uri as sip_uri
from vos3k.sip.b2bua import SDP, media_of, rewritten_summary
from vos3k.sip.message import _header_lines, _header_lines_careful, parse, parse_via, serialise
from vos3k.sip.sdp import Sdp, parse_sdp, rewrite_sdp
from vos3k.sip.uri import _header_params_careful, parse_params, parse_uri

INVITE = (
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@192.0.2.1>;tag=f1\r\n"
    b"To: <sip:bob@192.0.2.4>\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)

# characters that make header lines interesting: separators, LWS, CR/LF, quotes
HEAD_CHARS = st.sampled_from([*'Ab1-.:; \t\r\n"<>=,~', "\x0b", "\x85", "é"])
PARAM_CHARS = st.sampled_from([*'ab1-.;= \t"[]:%,\\', "é"])


def careful_params(text: str):
    try:
        return _header_params_careful(text)
    except ValueError as exc:
        return ("ValueError", str(exc))


def fast_params(text: str):
    try:
        return parse_params(text)
    except ValueError as exc:
        return ("ValueError", str(exc))


@pytest.mark.parametrize(
    "head",
    [
        "INVITE sip:a@b SIP/2.0\r\nVia: x\r\nTo:  <sip:a@b> \t",  # RFC 3261 §7.3.1 LWS trimmed
        "INVITE sip:a@b SIP/2.0\r\nSubject: a\r\n  folded",  # §7.3.1 folding: careful path
        "INVITE sip:a@b SIP/2.0\nTo: x\nFrom: y",  # bare LF lines (tolerated)
        "INVITE sip:a@b SIP/2.0\r\nBad Name: x",  # RFC 4475 §3.1.2: not a token
        "INVITE sip:a@b SIP/2.0\r\nTo: x\r\r\nFrom: y",  # a stray CR stays in the value
        "INVITE sip:a@b SIP/2.0\r\nEmpty:\r\nX:\t\r",  # empty values
        "INVITE sip:a@b SIP/2.0",  # no header at all
    ],
    ids=["rfc3261-7.3.1-lws", "rfc3261-7.3.1-folding", "rfc3261-7-bare-lf",
         "rfc4475-3.1.2-bad-name", "stray-cr", "empty-values", "start-line-only"],
)  # fmt: skip
def test_header_split_matches_the_careful_loop(head):
    assert _header_lines(head) == _header_lines_careful(head)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(HEAD_CHARS, max_size=30), max_size=6))
def test_header_split_matches_the_careful_loop_on_any_text(lines):
    head = "\r\n".join(["OPTIONS sip:a@b SIP/2.0", *lines])
    assert _header_lines(head) == _header_lines_careful(head)


def test_a_long_run_of_lws_is_split_in_one_pass():
    # possessive quantifiers: a value of 30,000 LWS pairs that ends badly must not
    # backtrack per character (RFC 3261 §7.3.1 allows LWS, not quadratic work)
    head = "OPTIONS sip:a@b SIP/2.0\r\nSubject: " + " \t" * 30000 + "x\ry"
    assert _header_lines(head) == _header_lines_careful(head)


@pytest.mark.parametrize(
    "text",
    [";branch=z9hG4bK1;rport", ";maddr=[2001:db8::1];ttl=1", " ; a = b", ';a="q;v"', ";a=",
     ";a;", ";a=b=c", "a=b", ";é=1"],
    ids=["rfc3261-20.42-via", "rfc5118-ipv6-maddr", "rfc3261-7.3.1-lws", "rfc3261-25.1-quoted",
         "empty-value", "trailing-semicolon", "double-equals", "no-semicolon", "non-token"],
)  # fmt: skip
def test_simple_header_params_match_the_careful_parser(text):
    assert fast_params(text) == careful_params(text)


@settings(max_examples=300, deadline=None)
@given(st.text(PARAM_CHARS, max_size=40))
def test_simple_header_params_match_the_careful_parser_on_any_text(text):
    if text:
        assert fast_params(text) == careful_params(text)


def test_memo_tables_are_bounded_and_give_equal_values(monkeypatch):
    monkeypatch.setattr(sip_uri, "MEMO_MAX", 8)
    monkeypatch.setattr(sip_message, "MEMO_MAX", 8)
    first = [parse_uri(f"sip:u{i}@192.0.2.1") for i in range(20)]
    vias = [parse_via(f"SIP/2.0/UDP 192.0.2.{i};branch=z9hG4bK{i}") for i in range(20)]
    assert len(sip_uri._URI_MEMO) <= 8 and len(sip_message._VIA_MEMO) <= 8
    assert first == [sip_uri._parse_uri(f"sip:u{i}@192.0.2.1") for i in range(20)]
    assert vias == [sip_message._parse_via(f"SIP/2.0/UDP 192.0.2.{i};branch=z9hG4bK{i}")
                    for i in range(20)]  # fmt: skip


def test_a_bad_value_is_not_remembered():
    with pytest.raises(sip_message.HeaderError):
        parse_via("SIP/2.0/UDP ;branch=")
    assert "SIP/2.0/UDP ;branch=" not in sip_message._VIA_MEMO


def test_copy_editing_keeps_parsed_values_of_unchanged_headers_only():
    msg = parse(INVITE)
    assert msg.from_().tag == "f1" and msg.top_via().branch == "z9hG4bKa1"
    edited = msg.with_header("From", "<sip:carol@192.0.2.9>;tag=f2").with_header(
        "Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb2"
    )
    assert edited.from_().tag == "f2" and edited.top_via().branch == "z9hG4bKb2"
    assert edited.to() is msg.to()  # unchanged: carried over, not parsed again
    assert edited.cseq() == msg.cseq() and edited.request_uri() == msg.request_uri()


OFFERS = [
    b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n",
    b"v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n",
    b"v=0\r\no=a 1 1 IN IP4 h.example\r\nm=audio 0 RTP/AVP 0\r\nc=IN IP4 h.example/127\r\n"
    b"m=video 5000 RTP/AVP 31\r\n",
    b"v=0\r\nm=audio 4000/2 RTP/AVP 18\r\na=sendonly\r\n",
]


@pytest.mark.parametrize(
    ("body", "address", "port"),
    [(OFFERS[0], "203.0.113.5", 30000), (OFFERS[1], "203.0.113.5", 30000),
     (OFFERS[2], "2001:db8::5", 30002), (OFFERS[3], "203.0.113.5", None)],
    ids=["rfc4566-5.7-rewritten", "rfc3264-8.4-hold-kept", "rfc3264-6-rejected-kept",
         "no-connection-line"],
)  # fmt: skip
def test_the_rewrite_summary_is_what_parsing_the_rewrite_gives(body, address, port):
    sdp = parse_sdp(body)
    assert isinstance(sdp, Sdp)
    ports = [port] + [0] * (len(sdp.media) - 1)
    rewritten = rewrite_sdp(sdp, address=address, ports=ports, origin_address=address)
    summary = rewritten_summary(media_of(body, SDP), sdp.media[0], rewritten, address, port)
    assert summary == media_of(rewritten, SDP)


def test_parse_sdp_again_gives_an_equal_value():
    assert parse_sdp(OFFERS[0]) == parse_sdp(bytes(OFFERS[0]))


@pytest.mark.parametrize(
    ("position", "value"),
    [(0, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1;rport=5060;received=192.0.2.1"),
     (2, "<sip:carol@192.0.2.9>;tag=f9"), (5, "2 INVITE")],
    ids=["rfc3581-4-stamped-via", "rfc3261-20.20-from", "rfc3261-20.16-cseq"],
)  # fmt: skip
def test_replacing_one_line_is_what_parsing_the_edited_message_gives(position, value):
    msg = parse(INVITE)
    msg.vias(), msg.from_(), msg.to(), msg.cseq(), msg.contacts(), msg.request_uri()
    edited = msg.with_line(position, value)
    fresh = parse(serialise(edited))
    for accessor in ("vias", "from_", "to", "cseq", "contacts", "call_id", "request_uri"):
        assert getattr(edited, accessor)() == getattr(fresh, accessor)(), accessor
    assert edited.headers_named("via") == fresh.headers_named("via")
