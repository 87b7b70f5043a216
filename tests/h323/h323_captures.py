"""Test helper: read the shared H.323 captures (pcap/pcapng) and write tshark-ready pcaps."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from attrs import frozen

CAPTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "h323"
TSHARK = shutil.which("tshark")


@frozen
class Segment:
    frame: int  # 1-based, as Wireshark numbers frames
    src: tuple[str, int]
    dst: tuple[str, int]
    protocol: str  # "tcp" or "udp"
    seq: int
    payload: bytes


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    """(link type, frame bytes) for each record of a pcap or pcapng file."""
    magic = data[:4]
    out: list[tuple[int, bytes]] = []
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        endian = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
        link = struct.unpack(endian + "I", data[20:24])[0]
        pos = 24
        while pos + 16 <= len(data):
            incl = struct.unpack(endian + "I", data[pos + 8 : pos + 12])[0]
            out.append((link, data[pos + 16 : pos + 16 + incl]))
            pos += 16 + incl
        return out
    if magic == b"\x0a\x0d\x0d\x0a":
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        links: list[int] = []
        pos = 0
        while pos + 12 <= len(data):
            block_type, length = struct.unpack(endian + "II", data[pos : pos + 8])
            body = data[pos + 8 : pos + length - 4]
            if block_type == 1:  # interface description
                links.append(struct.unpack(endian + "H", body[:2])[0])
            elif block_type == 6:  # enhanced packet
                interface, _, _, captured = struct.unpack(endian + "IIII", body[:16])[:4]
                out.append((links[interface], body[20 : 20 + captured]))
            pos += length
        return out
    raise ValueError("not a pcap or pcapng file")


def segments(name: str) -> list[Segment]:
    """Every IPv4 TCP/UDP segment with a payload (Ethernet or Linux SLL framing)."""
    result = []
    for number, (link, frame) in enumerate(_packets((CAPTURES / name).read_bytes()), 1):
        if link == 1:
            ether_type, ip = struct.unpack("!H", frame[12:14])[0], frame[14:]
        elif link == 113:
            ether_type, ip = struct.unpack("!H", frame[14:16])[0], frame[16:]
        else:
            raise ValueError(f"link type {link}")
        if ether_type != 0x0800:
            continue
        header = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto, src_ip, dst_ip = ip[9], ip[12:16], ip[16:20]
        l4 = ip[header:total]
        src_port, dst_port = struct.unpack("!HH", l4[:4])
        if proto == 6:
            seq = struct.unpack("!I", l4[4:8])[0]
            payload, kind = l4[(l4[12] >> 4) * 4 :], "tcp"
        elif proto == 17:
            seq, payload, kind = 0, l4[8:], "udp"
        else:
            continue
        if payload:
            src = (".".join(map(str, src_ip)), src_port)
            dst = (".".join(map(str, dst_ip)), dst_port)
            result.append(Segment(number, src, dst, kind, seq, bytes(payload)))
    return result


def tcp_streams(name: str, port: int) -> dict[tuple, list[tuple[int, bytes]]]:
    """In-order TCP payloads per direction touching `port`; retransmissions dropped."""
    streams: dict[tuple, list[tuple[int, bytes]]] = {}
    next_seq: dict[tuple, int] = {}
    for seg in segments(name):
        if seg.protocol != "tcp" or port not in (seg.src[1], seg.dst[1]):
            continue
        key = (seg.src, seg.dst)
        expected = next_seq.get(key, seg.seq)
        if seg.seq < expected:  # retransmission or keep-alive probe
            continue
        next_seq[key] = seg.seq + len(seg.payload)
        streams.setdefault(key, []).append((seg.frame, seg.payload))
    return streams


def write_pcap(path: Path, payloads: list[bytes], port: int, udp: bool = False) -> None:
    """One Ethernet/IPv4 frame per payload, TCP (in sequence) or UDP to `port`."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    seq = 1
    for number, payload in enumerate(payloads):
        if udp:
            l4 = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload
            proto = 17
        else:
            l4 = struct.pack("!HHIIBBHHH", 40000, port, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
            l4 += payload
            proto = 6
            seq += len(payload)
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), number, 0, 64, proto, 0,
            bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2)),
        ) + l4  # fmt: skip
        frame = bytes(6) + b"\x02\x00\x00\x00\x00\x01\x08\x00" + ip
        out.append(struct.pack("<IIII", number, 0, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def tshark_fields(path: Path, fields: list[str]) -> list[list[str]]:
    """One row per frame of `tshark -T fields`, each field's occurrences joined by ','."""
    assert TSHARK is not None
    command = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in done.stdout.splitlines()]
