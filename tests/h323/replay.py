"""Test helper: the Q.931 messages and RAS datagrams of the shared captures, by frame."""

from __future__ import annotations

from vos3k.h323 import tpkt

from .h323_captures import segments, tcp_streams

OOH_FAST = "ooh323c-loopback-faststart-tunnel.pcapng"
OOH_SLOW = "ooh323c-loopback-slowstart-h245-peercrash.pcapng"
NDPI = "ndpi-h323.pcap"


def tpkt_payloads(name: str, port: int) -> dict[int, bytes]:
    """Every whole TPKT payload touching `port`, keyed by the frame that completed it."""
    out: dict[int, bytes] = {}
    for stream in tcp_streams(name, port).values():
        reassembler = tpkt.TpktReassembler()
        for frame, payload in stream:
            for packet in reassembler.feed(payload):
                if isinstance(packet, bytes):
                    out[frame] = packet
    return out


def ras_datagrams(name: str) -> dict[int, tuple[tuple[str, int], bytes]]:
    """Every UDP payload to or from port 1719: frame -> (source, payload)."""
    return {
        s.frame: (s.src, s.payload)
        for s in segments(name)
        if s.protocol == "udp" and 1719 in (s.src[1], s.dst[1])
    }
