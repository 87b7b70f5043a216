"""Fast start / H.245 logical channels <-> SDP media descriptions (SPEC §11), pure.

Every leg hands the switch its media as SDP (`switch.legs.Media`, application/sdp);
this module is where an H.323 leg converts. Payload types (SPEC §11): G.711A ↔ 8,
G.711µ ↔ 0, G.729 ↔ 18, G.723.1 ↔ 4.

Fast start (H.323 §8.1.7.1) directions are always seen from the Setup's sender: a
RECEIVE proposal (codec in reverseLogicalChannelParameters) carries the caller's RTP
address; the callee accepts by returning it with only its RTCP address, and returns
the TRANSMIT proposal with its own RTP address filled in (the ooh323c capture shows
exactly this in Alerting and Connect).
"""

from __future__ import annotations

import ipaddress

from attrs import evolve, frozen

from vos3k.h323.h225 import (
    DEFAULT_FRAMES,
    Codec,
    Direction,
    FastStartChannel,
    Malformed,
    TransportAddress,
    encode_olc,
    parse_olc,
)
from vos3k.sip.sdp import SdpError, parse_sdp, rewrite_sdp
from vos3k.switch.legs import Media

# SPEC §11: the four codecs and their static RTP payload types (RFC 3551 Table 4).
PAYLOAD_TYPES: dict[Codec, int] = {
    Codec.G711_ULAW: 0,
    Codec.G711_ALAW: 8,
    Codec.G729: 18,
    Codec.G723_1: 4,
}
ENCODING_NAMES: dict[Codec, str] = {
    Codec.G711_ULAW: "PCMU",
    Codec.G711_ALAW: "PCMA",
    Codec.G729: "G729",
    Codec.G723_1: "G723",
}
_BY_PT = {pt: codec for codec, pt in PAYLOAD_TYPES.items()}
_BY_NAME = {name: codec for codec, name in ENCODING_NAMES.items()}
# What vos3k offers when the other side said nothing (SPEC §11 outgoing Setup).
ALL_CODECS = (Codec.G711_ALAW, Codec.G711_ULAW, Codec.G729, Codec.G723_1)


@frozen
class Offer:
    """The audio stream of an SDP body, as H.323 needs it."""

    rtp: TransportAddress | None  # None: on hold (0.0.0.0) or no usable address
    codecs: tuple[Codec, ...]
    direction: str = "sendrecv"


def sdp_body(rtp: TransportAddress, codecs: tuple[Codec | str, ...], direction: str) -> bytes:
    """An SDP body for one audio stream (RFC 4566; static payload types only)."""
    known = [Codec(c) for c in codecs if c in PAYLOAD_TYPES]
    family = "IP6" if ipaddress.ip_address(rtp.host).version == 6 else "IP4"
    pts = " ".join(str(PAYLOAD_TYPES[c]) for c in known)
    lines = [
        "v=0",
        f"o=vos3k 1 1 IN {family} {rtp.host}",
        "s=vos3k",
        f"c=IN {family} {rtp.host}",
        "t=0 0",
        f"m=audio {rtp.port} RTP/AVP {pts}",
        *(f"a=rtpmap:{PAYLOAD_TYPES[c]} {ENCODING_NAMES[c]}/8000" for c in known),
        f"a={direction}",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def to_media(
    rtp: TransportAddress, codecs: tuple[Codec | str, ...], direction: str = "sendrecv"
) -> Media:
    """The switch's Media value for an H.323 side's receive address and codecs."""
    known = tuple(Codec(c) for c in codecs if c in PAYLOAD_TYPES)
    return Media(
        body=sdp_body(rtp, known, direction),
        address=rtp.host,
        port=rtp.port,
        codecs=tuple(ENCODING_NAMES[c] for c in known),
        direction=direction,
    )


def slow_start_offer(caller_host: str) -> Media:
    """The offer for a caller without fast start (SPEC §11, H.323 §8.3): vos3k's own
    TerminalCapabilitySet codecs, at the caller's host with the discard port 9 until H.245
    names its real receive address (the proxy then points there; latching also finds it)."""
    return to_media(TransportAddress(caller_host, 9), ALL_CODECS)


def proxied(description: Media, rtp: tuple[str, int]) -> Media:
    """`description` with its address and first audio port replaced by the RTP proxy's
    (SPEC §12); other streams are refused with port 0 as the SIP side does."""
    sdp = parse_sdp(description.body)
    if isinstance(sdp, SdpError) or not sdp.media:
        return description
    host, port = rtp
    ports = [port] + [0] * (len(sdp.media) - 1)
    body = rewrite_sdp(sdp, address=host, ports=ports, origin_address=host)
    return evolve(description, body=body, address=host, port=port)


def from_media(media: Media | None) -> Offer | Malformed:
    """Read the first audio stream of an SDP body into codecs and an RTP address."""
    if media is None or not media.body:
        return Malformed("no SDP")
    sdp = parse_sdp(media.body)
    if isinstance(sdp, SdpError):
        return Malformed(f"SDP: {sdp.reason}")
    for stream in sdp.media:
        if stream.kind != "audio" or stream.port == 0:
            continue
        codecs: list[Codec] = []
        for fmt in stream.formats:
            rtpmap = stream.rtpmaps.get(fmt)
            codec = None
            if rtpmap is not None:
                codec = _BY_NAME.get(rtpmap.encoding.upper())
            elif fmt.isdigit():
                codec = _BY_PT.get(int(fmt))
            if codec is not None and codec not in codecs:
                codecs.append(codec)
        address = stream.connection.address if stream.connection else None
        rtp = None
        if address and address not in ("0.0.0.0", "::"):
            rtp = TransportAddress(address, stream.port)
        return Offer(rtp, tuple(codecs), stream.direction.value)
    return Malformed("SDP has no audio stream")


def decode_channels(encoded: tuple[bytes, ...]) -> tuple[FastStartChannel, ...] | Malformed:
    """Decode a fastStart list; an element that is not audio is skipped, garbage refused."""
    channels = []
    for element in encoded:
        channel = parse_olc(element)
        if isinstance(channel, Malformed):
            if "not audio" in channel.reason:
                continue  # H.323 §8.1.7.1: video/data proposals may simply be ignored
            return channel
        channels.append(channel)
    return tuple(channels)


def offer_from_fast_start(channels: tuple[FastStartChannel, ...]) -> Media | None:
    """A caller's fast start proposals as the SDP offer (SPEC §11 Setup ↔ INVITE)."""
    receive = [c for c in channels if c.direction is Direction.RECEIVE and c.media_channel]
    codecs = _unique(c.codec for c in receive if c.codec in PAYLOAD_TYPES)
    if not codecs:
        return None
    rtp = next(c.media_channel for c in receive if c.codec == codecs[0])
    assert rtp is not None
    return to_media(rtp, codecs)


def answer_from_fast_start(channels: tuple[FastStartChannel, ...]) -> Media | None:
    """The callee's accepted channels (Alerting/Progress/Connect) as the SDP answer."""
    for channel in channels:
        if channel.direction is Direction.TRANSMIT and channel.media_channel is not None:
            if channel.codec in PAYLOAD_TYPES:
                return to_media(channel.media_channel, (channel.codec,))
    return None


def accept_fast_start(
    proposals: tuple[FastStartChannel, ...], answer: Offer
) -> tuple[bytes, ...] | None:
    """The fastStart elements that accept a caller's proposals for the SDP answer.

    The first codec of the answer the caller proposed both ways is taken; None when
    there is none (the call then falls back to H.245, H.323 §8.1.7.2).
    """
    if answer.rtp is None:
        return None
    rtcp = TransportAddress(answer.rtp.host, answer.rtp.port + 1)
    for codec in answer.codecs:
        receive = _first(proposals, Direction.RECEIVE, codec)
        transmit = _first(proposals, Direction.TRANSMIT, codec)
        if receive is None or transmit is None:
            continue
        return (
            encode_olc(evolve(receive, media_channel=None, media_control_channel=rtcp)),
            encode_olc(evolve(transmit, media_channel=answer.rtp, media_control_channel=rtcp)),
        )
    return None


def offer_codecs(media: Media | None) -> tuple[Codec, ...]:
    """Codecs to offer an H.323 callee for the caller's SDP (all four without one)."""
    offer = from_media(media)
    if isinstance(offer, Malformed) or not offer.codecs:
        return ALL_CODECS
    return offer.codecs


def frames_for(codec: Codec) -> int:
    return DEFAULT_FRAMES[codec]


def _first(
    channels: tuple[FastStartChannel, ...], direction: Direction, codec: Codec
) -> FastStartChannel | None:
    for channel in channels:
        if channel.direction is direction and channel.codec == codec:
            return channel
    return None


def _unique(codecs) -> tuple[Codec, ...]:
    out: list[Codec] = []
    for codec in codecs:
        if codec not in out:
            out.append(Codec(codec))
    return tuple(out)
