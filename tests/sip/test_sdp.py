"""Tests for vos3k.sip.sdp (RFC 4566 parsing, RFC 3264 direction, proxy rewriting)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.sip.message import parse
from vos3k.sip.sdp import Direction, Rtpmap, Sdp, SdpError, parse_sdp, rewrite_sdp

SIP_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "sip"

OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"a=sendrecv\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"m=video 51372 RTP/AVP 31\r\n"
    b"c=IN IP4 192.0.2.11/127\r\n"
    b"a=recvonly\r\n"
    b"m=audio 0 RTP/AVP 18\r\n"
)


def offer() -> Sdp:
    sdp = parse_sdp(OFFER)
    assert isinstance(sdp, Sdp)
    return sdp


def test_media_lines_rfc4566_5_14():
    audio, video, rejected = offer().media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == (
        "audio",
        49170,
        "RTP/AVP",
        ("0", "8", "101"),
    )
    assert audio.rtpmaps == {"0": Rtpmap("PCMU", 8000), "101": Rtpmap("telephone-event", 8000)}
    assert audio.fmtps == {"101": "0-16"}
    assert audio.address == "192.0.2.10"  # inherited session-level c=
    assert video.address == "192.0.2.11"
    assert rejected.rejected and not audio.rejected
    assert offer().origin_address == "192.0.2.10"


def test_directions_rfc3264_5_1():
    audio, video, _ = offer().media
    assert audio.direction is Direction.SENDRECV and not audio.on_hold
    assert video.direction is Direction.RECVONLY and not video.on_hold


@pytest.mark.parametrize(
    ("attr_line", "conn", "direction", "hold"),
    [
        (b"a=sendonly\r\n", b"192.0.2.1", Direction.SENDONLY, True),
        (b"a=inactive\r\n", b"192.0.2.1", Direction.INACTIVE, True),
        (b"a=recvonly\r\n", b"192.0.2.1", Direction.RECVONLY, False),
        (b"", b"0.0.0.0", Direction.SENDRECV, True),  # RFC 2543 hold
        (b"", b"192.0.2.1", Direction.SENDRECV, False),
    ],
    ids=["sendonly", "inactive", "recvonly", "rfc2543-hold", "default"],
)
def test_hold_detection_rfc3264_8_4(attr_line, conn, direction, hold):
    body = b"v=0\r\nc=IN IP4 " + conn + b"\r\nm=audio 4000 RTP/AVP 0\r\n" + attr_line
    media = parse_sdp(body).media[0]
    assert (media.direction, media.on_hold) == (direction, hold)


def test_rewrite_keeps_other_bytes():
    out = rewrite_sdp(offer(), address="203.0.113.5", ports=[20000, 20002, 30000])
    expected = (
        OFFER.replace(b"c=IN IP4 192.0.2.10\r\n", b"c=IN IP4 203.0.113.5\r\n")
        .replace(b"c=IN IP4 192.0.2.11/127", b"c=IN IP4 203.0.113.5/127")
        .replace(b"m=audio 49170", b"m=audio 20000")
        .replace(b"m=video 51372", b"m=video 20002")
    )
    assert out == expected  # port 0 stays 0, o= untouched, ttl kept


def test_rewrite_ipv6_origin_and_bare_lf():
    body = OFFER.replace(b"\r\n", b"\n")
    out = rewrite_sdp(parse_sdp(body), address="2001:db8::5", origin_address="2001:db8::5")
    assert b"c=IN IP6 2001:db8::5\n" in out
    assert b"o=alice 2890844526 2890844526 IN IP6 2001:db8::5\n" in out
    assert b"\r" not in out and b"m=audio 49170" in out


def test_unreadable_rtpmap_is_ignored_rfc4566_5_13():
    sdp = parse_sdp(b"v=0\r\nm=video 1 RTP/AVP 107\r\na=rtpmap:107 H263-1998\r\n")
    assert sdp.media[0].formats == ("107",) and sdp.media[0].rtpmaps == {}


def test_rewrite_keeps_hold_address():
    body = b"v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n"
    assert rewrite_sdp(parse_sdp(body), address="203.0.113.5") == body


def test_rewrite_wrong_port_count_is_our_bug():
    with pytest.raises(ValueError):
        rewrite_sdp(offer(), ports=[1])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"v=1\r\n",
        b"v=0\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\nc=IN IP4 999.1.1.1\r\n",
        b"v=0\r\nc=IN IP6 2001:db8:::1\r\n",
        b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
        b"v=0\r\nnot a line\r\n",
        b"v=0\r\no=short\r\n",
    ],
    ids=["empty", "version", "port-text", "ipv4", "ipv6", "port-range", "junk", "origin"],
)
def test_malformed_sdp_is_a_value(body):
    assert isinstance(parse_sdp(body), SdpError)


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("ipv6-in-sdp", ["2001:db8::20"]),
        ("mult-ip-in-sdp", ["192.0.2.1", "2001:db8::1"]),
    ],
    ids=["rfc5118-4.11", "rfc5118-4.8"],
)
def test_rfc5118_sdp_bodies(name, addresses):
    msg = parse((SIP_DATA / "rfc5118" / f"{name}.dat").read_bytes())
    sdp = parse_sdp(msg.body)
    assert [c.address for c in sdp.connections] == addresses
    out = parse_sdp(rewrite_sdp(sdp, address="192.0.2.99"))
    assert {c.address for c in out.connections} == {"192.0.2.99"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_give_sdp_or_error(data):
    result = parse_sdp(b"v=0\r\n" + data)
    assert isinstance(result, Sdp | SdpError)
    if isinstance(result, Sdp):
        again = parse_sdp(
            rewrite_sdp(result, address="192.0.2.1", ports=[None] * len(result.media))
        )
        assert isinstance(again, Sdp) and len(again.media) == len(result.media)
