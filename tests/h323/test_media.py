"""Fast start / H.245 channels <-> SDP (SPEC §11 payload types, H.323 §8.1.7.1)."""

from __future__ import annotations

import pytest

from vos3k.h323 import h225, media
from vos3k.h323.h225 import Codec, Direction, FastStartChannel, Malformed, TransportAddress
from vos3k.switch.legs import Media

CALLER = TransportAddress("192.0.2.10", 14030)
US = TransportAddress("203.0.113.5", 30000)


@pytest.mark.parametrize(
    ("codec", "pt", "name"),
    [
        (Codec.G711_ALAW, 8, "PCMA"),
        (Codec.G711_ULAW, 0, "PCMU"),
        (Codec.G729, 18, "G729"),
        (Codec.G723_1, 4, "G723"),
    ],
    ids=["§11-g711a-8", "§11-g711u-0", "§11-g729-18", "§11-g7231-4"],
)
def test_payload_type_table(codec, pt, name):
    body = media.sdp_body(US, (codec,), "sendrecv").decode()
    assert f"m=audio 30000 RTP/AVP {pt}\r\n" in body
    assert f"a=rtpmap:{pt} {name}/8000" in body
    assert media.from_media(Media(body.encode())) == media.Offer(US, (codec,))


@pytest.mark.parametrize(
    ("sdp", "expected"),
    [
        (
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 18 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
            media.Offer(TransportAddress("10.0.0.9", 4000), (Codec.G729, Codec.G711_ULAW)),
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n",
            media.Offer(None, (Codec.G711_ALAW,), "sendonly"),
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
            b"m=video 5000 RTP/AVP 96\r\nm=audio 4002 RTP/AVP 97 4\r\na=rtpmap:97 PCMA/8000\r\n",
            media.Offer(TransportAddress("10.0.0.9", 4002), (Codec.G711_ALAW, Codec.G723_1)),
        ),
    ],
    ids=["dynamic-pt-ignored", "rfc3264-hold", "video-skipped-rtpmap-name"],
)
def test_from_media(sdp, expected):
    assert media.from_media(Media(sdp)) == expected


@pytest.mark.parametrize(
    "body", [b"", b"garbage", b"v=0\r\ns=-\r\nt=0 0\r\n"], ids=["empty", "garbage", "no-audio"]
)
def test_from_media_refuses(body):
    assert isinstance(media.from_media(Media(body)), Malformed)
    assert media.offer_codecs(Media(body)) == media.ALL_CODECS


def _proposals() -> tuple[FastStartChannel, ...]:
    return tuple(
        h225.parse_olc(e) for e in h225.fast_start_offer((Codec.G729, Codec.G711_ALAW), CALLER)
    )


def test_fast_start_offer_becomes_sdp_offer():
    offer = media.offer_from_fast_start(_proposals())
    assert offer.address == "192.0.2.10" and offer.port == 14030
    assert offer.codecs == ("G729", "PCMA")
    assert media.from_media(offer) == media.Offer(CALLER, (Codec.G729, Codec.G711_ALAW))


def test_accept_fast_start_for_the_answer():
    answer = media.Offer(US, (Codec.G711_ALAW,))
    accepted = media.accept_fast_start(_proposals(), answer)
    channels = tuple(h225.parse_olc(e) for e in accepted)
    receive, transmit = channels
    assert receive.direction is Direction.RECEIVE and receive.codec is Codec.G711_ALAW
    assert receive.media_channel is None
    assert receive.media_control_channel == TransportAddress(US.host, US.port + 1)
    assert transmit.direction is Direction.TRANSMIT and transmit.media_channel == US
    # What the caller reads back from those channels is our answer.
    assert media.answer_from_fast_start(channels).port == US.port


def test_accept_fast_start_without_common_codec():
    assert media.accept_fast_start(_proposals(), media.Offer(US, (Codec.G711_ULAW,))) is None
    assert media.accept_fast_start(_proposals(), media.Offer(None, (Codec.G729,))) is None


def test_decode_channels_skips_video_refuses_garbage():
    good = h225.fast_start_offer((Codec.G711_ULAW,), CALLER)
    assert len(media.decode_channels(good)) == 2
    assert isinstance(media.decode_channels((b"\xff\x00",)), Malformed)
