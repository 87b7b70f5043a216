"""SDP bodies: read media and direction, rewrite c=/m= for the RTP proxy (RFC 4566, 3264).

Public API:

- ``parse_sdp(body: bytes) -> Sdp | SdpError``: never raises.
- ``Sdp.media``: one ``Media`` per m= line with its effective connection address,
  direction (media-level attribute, else session-level, else sendrecv), payload
  types and rtpmaps; ``Media.on_hold`` covers both RFC 3264 §8.4 (sendonly /
  inactive) and the RFC 2543 ``c=IN IP4 0.0.0.0`` form.
- ``rewrite_sdp(sdp, address=..., ports=[...]) -> bytes``: replaces every c=
  address (session and media level) and the port of each m= line; every other
  byte, line endings included, is kept.  A ``0.0.0.0`` hold address and a port 0
  (rejected stream, RFC 3264 §6) are kept as they are.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from enum import Enum

import attrs
from attrs import frozen

__all__ = ["Direction", "Media", "Rtpmap", "Sdp", "SdpError", "parse_sdp", "rewrite_sdp"]

ENCODING = "utf-8"
ERRORS = "surrogateescape"


class Direction(Enum):
    """RFC 3264 §5.1 / RFC 4566 §6 direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


_DIRECTIONS = {d.value: d for d in Direction}


@frozen
class SdpError:
    """An SDP body we cannot use (the B2BUA answers 488 / 400)."""

    reason: str


@frozen
class Rtpmap:
    encoding: str
    clock_rate: int
    channels: int | None = None


@frozen
class Connection:
    """c=<nettype> <addrtype> <address>[/ttl...] (RFC 4566 §5.7); ``line`` indexes Sdp.lines."""

    addrtype: str
    address: str
    line: int


@frozen
class Media:
    kind: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None
    direction: Direction
    rtpmaps: dict[str, Rtpmap] = attrs.field(eq=True, hash=False)
    fmtps: dict[str, str] = attrs.field(eq=True, hash=False)
    line: int = 0

    @property
    def address(self) -> str | None:
        return None if self.connection is None else self.connection.address

    @property
    def on_hold(self) -> bool:
        if self.direction in (Direction.SENDONLY, Direction.INACTIVE):
            return True
        return self.address in ("0.0.0.0", "::")  # RFC 2543 hold, still seen (RFC 3264 §8.4)

    @property
    def rejected(self) -> bool:
        return self.port == 0  # RFC 3264 §6


@frozen
class Sdp:
    """A parsed body.  ``lines`` keep their original line endings."""

    lines: tuple[str, ...]
    session_connection: Connection | None
    session_direction: Direction | None
    media: tuple[Media, ...]
    origin_address: str | None = None

    @property
    def connections(self) -> list[Connection]:
        found = [self.session_connection] + [m.connection for m in self.media]
        unique = {c.line: c for c in found if c is not None}
        return [unique[k] for k in sorted(unique)]


_LINE_RE = re.compile(r"([a-z])=(.*)\Z", re.S)
_MEDIA_RE = re.compile(r"([^ ]+) ([0-9]{1,5})(?:/([0-9]{1,5}))? ([^ ]+)((?: [^ ]+)*)\s*\Z")
_CONN_RE = re.compile(r"IN (IP4|IP6) ([^ /]+)((?:/[0-9]+){0,2})\s*\Z")
_RTPMAP_RE = re.compile(r"([0-9]{1,3}) ([^/ ]+)/([0-9]{1,9})(?:/([0-9]{1,3}))?\s*\Z")


def _split_eol(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n") or line.endswith("\r"):
        return line[:-1], line[-1]
    return line, ""


# One body is read several times per call (the switch's summary, the proxy rewrite, the
# caller's offer once more per attempt); the result is a frozen value, so the last
# bodies are kept.  Bounded: bodies come from the network.
_MEMO_MAX = 1024
_MEMO: dict[bytes, Sdp | SdpError] = {}


def parse_sdp(body: bytes) -> Sdp | SdpError:
    """Parse an SDP body; never raises."""
    found = _MEMO.get(body)
    if found is not None:
        return found
    try:
        found = _parse(body)
    except ValueError as exc:
        found = SdpError(str(exc))
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[body] = found
    return found


_DIGITS_DOTS_RE = re.compile(r"[0-9.]+\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*\Z")


def _is_ipv4(address: str) -> bool:
    """Dotted quad as ipaddress.IPv4Address accepts it (no leading zeros, <= 255)."""
    parts = address.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part or len(part) > 3 or (part[0] == "0" and len(part) > 1) or int(part) > 255:
            return False
    return True


def _parse_connection(value: str, index: int) -> Connection:
    m = _CONN_RE.match(value)
    if m is None:
        raise ValueError(f"bad c= line {value[:40]!r}")
    addrtype, address, _ttl = m.groups()
    if addrtype == "IP6":
        ipaddress.IPv6Address(address)
    elif not _DIGITS_DOTS_RE.match(address):
        # IP4 may also be a FQDN (RFC 4566 §5.7); accept hostnames, reject junk
        if not _HOSTNAME_RE.match(address):
            raise ValueError(f"bad connection address {address[:40]!r}")
    elif not _is_ipv4(address):
        ipaddress.IPv4Address(address)  # raises with the library's reason
    return Connection(addrtype, address, index)


_KINDS = frozenset("abcdefghijklmnopqrstuvwxyz")


def _parse(body: bytes) -> Sdp:
    text = body.decode(ENCODING, ERRORS)
    lines = tuple(text.splitlines(keepends=True))
    if not lines or _split_eol(lines[0])[0].strip() != "v=0":
        raise ValueError("SDP must start with v=0")
    session_conn: Connection | None = None
    session_dir: Direction | None = None
    origin: str | None = None
    # per m= line: [kind, port, count, proto, formats, connection, direction, rtpmaps,
    # fmtps, line index]; built into Media at the end (c= and a= come after m=)
    media: list[list] = []
    current: list | None = None
    directions = _DIRECTIONS
    for index, raw in enumerate(lines):
        if raw[-1:] == "\n":
            line = raw[:-2] if raw[-2:-1] == "\r" else raw[:-1]
        elif raw[-1:] == "\r":
            line = raw[:-1]
        else:
            line = raw
        kind = line[:1]
        if kind not in _KINDS or line[1:2] != "=":
            if not line.strip():
                continue  # tolerate a trailing blank line
            raise ValueError(f"bad SDP line {line[:40]!r}")
        value = line[2:]
        if kind == "a":
            name, _, avalue = value.partition(":")
            if name == "rtpmap":
                if current is not None:
                    rm = _RTPMAP_RE.match(avalue)
                    # RFC 4566 §5.13: an attribute we cannot read is ignored, not fatal
                    # (RFC 5118's own examples carry "a=rtpmap:107 H263-1998" without a rate)
                    if rm is not None:
                        pt, enc, rate, channels = rm.groups()
                        current[7][pt] = Rtpmap(enc, int(rate), int(channels) if channels else None)
            elif name in directions and not avalue:
                if current is None:
                    session_dir = directions[name]
                else:
                    current[6] = directions[name]
            elif name == "fmtp" and current is not None:
                pt, _, params = avalue.partition(" ")
                current[8][pt] = params
        elif kind == "m":
            mm = _MEDIA_RE.match(value)
            if mm is None:
                raise ValueError(f"bad m= line {value[:40]!r}")
            mkind, port, count, proto, fmts = mm.groups()
            port_num = int(port)
            if port_num > 65535:
                raise ValueError("m= port out of range")
            current = [
                mkind, port_num, int(count) if count else None, proto, tuple(fmts.split()),
                None, None, {}, {}, index,
            ]  # fmt: skip
            media.append(current)
        elif kind == "c":
            conn = _parse_connection(value, index)
            if current is None:
                session_conn = conn
            else:
                current[5] = conn
        elif kind == "o":
            parts = value.split()
            if len(parts) != 6:
                raise ValueError("bad o= line")
            origin = parts[5]
    default_dir = session_dir or Direction.SENDRECV
    built = tuple(
        Media(
            kind=m[0],
            port=m[1],
            port_count=m[2],
            proto=m[3],
            formats=m[4],
            connection=session_conn if m[5] is None else m[5],
            direction=default_dir if m[6] is None else m[6],
            rtpmaps=m[7],
            fmtps=m[8],
            line=m[9],
        )
        for m in media
    )
    return Sdp(lines, session_conn, session_dir, built, origin)


def rewrite_sdp(
    sdp: Sdp,
    *,
    address: str | None = None,
    ports: Sequence[int | None] | None = None,
    origin_address: str | None = None,
) -> bytes:
    """Replace c= addresses, m= ports (one per m= line; None keeps) and optionally o=.

    Raises ValueError if ``ports`` does not have one entry per m= line (our bug).
    """
    lines = list(sdp.lines)
    if address is not None:
        addrtype = "IP6" if ":" in address else "IP4"
        for conn in sdp.connections:
            if conn.address in ("0.0.0.0", "::"):
                continue  # keep an RFC 2543 hold visible to the other side
            line, eol = _split_eol(lines[conn.line])
            ttl = _CONN_RE.match(line[2:]).group(3)  # type: ignore[union-attr]
            lines[conn.line] = f"c=IN {addrtype} {address}{ttl}{eol}"
    if ports is not None:
        if len(ports) != len(sdp.media):
            raise ValueError(f"{len(ports)} ports for {len(sdp.media)} m= lines")
        for media, port in zip(sdp.media, ports, strict=True):
            if port is None or media.port == 0:
                continue
            line, eol = _split_eol(lines[media.line])
            kind, _old, rest = line.split(" ", 2)
            old_port = _old.split("/", 1)
            count = f"/{old_port[1]}" if len(old_port) == 2 else ""
            lines[media.line] = f"{kind} {port}{count} {rest}{eol}"
    if origin_address is not None:
        for i, raw in enumerate(lines):
            if raw.startswith("o="):
                line, eol = _split_eol(raw)
                head, _addrtype, _addr = line.rsplit(" ", 2)
                addrtype = "IP6" if ":" in origin_address else "IP4"
                lines[i] = f"{head} {addrtype} {origin_address}{eol}"
                break
    return "".join(lines).encode(ENCODING, ERRORS)
