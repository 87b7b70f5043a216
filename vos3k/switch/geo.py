"""IP address → value lookups over CIDR lists, and the geofence country file (SPEC §10).

`CidrMap` answers "which value does the most specific CIDR holding this address carry"
with one `bisect` over disjoint integer ranges, for IPv4 and IPv6 alike; the ACL, the
static IP blacklist and the gateway bypass in `guard.py` are `CidrMap`s of `True`.

`SS_GEOFENCE_CIDR_FILE` is a text file the operator supplies (no network fetches):

    # comment lines and blank lines are ignored; so is anything after a `#`
    1.0.0.0/24,AU
    2001:db8::/32,NL
    192.0.2.7,ZZ          (a bare address is a /32 or /128)

one `CIDR,CC` per line, CC an ISO 3166 two-letter code (any case).  A bad line is
reported with its line number and skipped; the rest of the file still loads.  When
CIDRs nest, the most specific one wins (a /24 carved out of a /16).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from bisect import bisect_right
from collections.abc import Iterable
from pathlib import Path
from typing import Generic, TypeVar

from attrs import frozen

V = TypeVar("V")

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_COUNTRY = re.compile(r"[A-Za-z]{2}")


def ip_key(text: str) -> tuple[int, int] | None:
    """(4 or 6, the address as an int) of an IP literal, or None if it is not one.

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket reports)
    is its IPv4 address; an IPv6 zone (`fe80::1%eth0`) is dropped.
    """
    try:
        if ":" not in text:
            # inet_pton is strict (unlike inet_aton, which takes "1" or "1.2").
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
    except (OSError, ValueError, TypeError):
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")


def parse_network(
    text: str, *, strict: bool = True
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR or bare address as a network, else None; `strict`: host bits must be clear.

    Operator-entered lists (ACL, blacklist, gateway `ip`) are read with strict=False,
    as `params.py` does: `192.0.2.1/24` means 192.0.2.0/24.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=strict)
    except (ValueError, TypeError):
        return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Range = tuple[int, int, int]  # (version, first address, last address)
_BITS = {4: 32, 6: 128}


def _network_range(net: Network | Range) -> Range:
    if isinstance(net, tuple):
        return net
    start = int(net.network_address)
    return net.version, start, start + net.num_addresses - 1


def cidr_range(text: str) -> Range | str:
    """`CIDR` or bare address → (version, first, last), or why it is not one.

    The geofence file's fast path: `inet_pton` and integer masks instead of
    `ipaddress.ip_network`, which makes loading a country file several times quicker.
    """
    address, slash, length = text.strip().partition("/")
    try:
        if ":" in address:
            version, number = 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big")
        else:
            version, number = 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except (OSError, ValueError):
        return f"{text!r} is not a CIDR or address"
    bits = _BITS[version]
    if not slash:
        return version, number, number
    if not (length.isascii() and length.isdigit()) or int(length) > bits:
        return f"{text!r} is not a CIDR or address"
    host_mask = (1 << (bits - int(length))) - 1
    if number & host_mask:
        return f"{text!r} has host bits set"
    return version, number, number | host_mask


class _Ranges(Generic[V]):
    """Disjoint sorted [start, end] ranges of one IP version, each with a value."""

    __slots__ = ("ends", "starts", "values")

    def __init__(self, nested: list[tuple[int, int, V]]):
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.values: list[V] = []
        # CIDRs are laminar: two are disjoint or one holds the other.  Sorting by start,
        # widest first, and sweeping with a stack of open parents flattens them so the
        # most specific CIDR owns each address.
        nested.sort(key=lambda r: (r[0], -r[1]))
        stack: list[tuple[int, V]] = []
        cursor = 0
        for start, end, value in nested:
            while stack and stack[-1][0] < start:
                top_end, top_value = stack.pop()
                self._emit(cursor, top_end, top_value)
                cursor = top_end + 1
            if stack:
                self._emit(cursor, start - 1, stack[-1][1])
            stack.append((end, value))
            cursor = start
        while stack:
            top_end, top_value = stack.pop()
            self._emit(cursor, top_end, top_value)
            cursor = top_end + 1

    def _emit(self, start: int, end: int, value: V) -> None:
        if start > end:
            return
        if self.starts and self.ends[-1] + 1 == start and self.values[-1] == value:
            self.ends[-1] = end  # adjacent ranges with one value merge: fewer to search
            return
        self.starts.append(start)
        self.ends.append(end)
        self.values.append(value)

    def get(self, number: int) -> V | None:
        i = bisect_right(self.starts, number) - 1
        if i >= 0 and number <= self.ends[i]:
            return self.values[i]
        return None


class CidrMap(Generic[V]):
    """CIDR → value, looked up by address; the most specific CIDR wins."""

    __slots__ = ("_v4", "_v6", "size")

    def __init__(self, items: Iterable[tuple[Network | Range, V]]):
        by_version: dict[int, list[tuple[int, int, V]]] = {4: [], 6: []}
        seen: dict[tuple[int, int, int], int] = {}
        for net, value in items:
            version, start, end = _network_range(net)
            key = (version, start, end)
            if key in seen:  # a repeated CIDR: the later value wins
                by_version[version][seen[key]] = (start, end, value)
                continue
            seen[key] = len(by_version[version])
            by_version[version].append((start, end, value))
        self.size = len(seen)
        self._v4: _Ranges[V] = _Ranges(by_version[4])
        self._v6: _Ranges[V] = _Ranges(by_version[6])

    @classmethod
    def of_networks(cls, texts: Iterable[str]) -> CidrMap[bool]:
        """A membership set of CIDR/IP strings (already validated, e.g. by params.py)."""
        networks = [parse_network(text, strict=False) for text in texts]
        return CidrMap((net, True) for net in networks if net is not None)

    def get(self, ip: str) -> V | None:
        """The value for the address `ip`, or None when no CIDR holds it (or not an IP)."""
        key = ip_key(ip)
        return None if key is None else self.get_key(key)

    def get_key(self, key: tuple[int, int]) -> V | None:
        """As `get`, for an address already turned into `ip_key` form."""
        version, number = key
        return (self._v4 if version == 4 else self._v6).get(number)

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, str) and self.get(ip) is not None


EMPTY_CIDRS: CidrMap[bool] = CidrMap(())


@frozen
class LineProblem:
    """A line of the geofence file that was skipped, and why."""

    line_no: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}: {self.text!r}"


@frozen
class GeoLoad:
    """What a geofence file yielded: the table and the lines it skipped."""

    table: CidrMap[str]
    problems: tuple[LineProblem, ...]


@frozen
class Unreadable:
    """The geofence file could not be read at all (a value, not an exception)."""

    path: str
    reason: str


def parse_geo_lines(lines: Iterable[str]) -> GeoLoad:
    """Parse `CIDR,CC` lines (module docstring); bad lines become LineProblems."""
    items: list[tuple[Range, str]] = []
    first_seen: dict[Range, tuple[int, str]] = {}
    problems: list[LineProblem] = []
    for line_no, raw in enumerate(lines, start=1):
        text = raw.partition("#")[0].strip()
        if not text:
            continue
        problem, item = _geo_line(text, first_seen)
        if problem:
            problems.append(LineProblem(line_no, raw.rstrip("\r\n"), problem))
        elif item is not None:
            first_seen[item[0]] = (line_no, item[1])
            items.append(item)
    return GeoLoad(CidrMap(items), tuple(problems))


def _geo_line(
    text: str, first_seen: dict[Range, tuple[int, str]]
) -> tuple[str, tuple[Range, str] | None]:
    """(problem, None), or ("", the item), or ("", None) for a harmless repeat."""
    fields = text.split(",")
    if len(fields) != 2:
        return "expected CIDR,CC", None
    cidr, country = fields[0].strip(), fields[1].strip()
    if _COUNTRY.fullmatch(country) is None:
        return f"{country!r} is not a country code", None
    span = cidr_range(cidr)
    if isinstance(span, str):
        return span, None
    country = country.upper()
    earlier = first_seen.get(span)
    if earlier is None:
        return "", (span, country)
    if earlier[1] == country:
        return "", None
    # The first line stands; the conflict is reported.
    return f"{cidr} is already {earlier[1]} (line {earlier[0]})", None


def read_geo_file(path: str | Path) -> GeoLoad | Unreadable:
    """Read and parse SS_GEOFENCE_CIDR_FILE; a missing or unreadable file is a value."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_geo_lines(handle)
    except OSError as exc:
        return Unreadable(str(path), exc.strerror or type(exc).__name__)


GEOFENCE_MODES = ("ignore", "forbidden", "allow")


@frozen
class GeoFence:
    """SS_GEOFENCE_MODE and SS_GEOFENCE_COUNTRIES over a country table (SPEC §10).

    Used for signalling sources (dropped), SDP addresses (refused, reason 20) and RTP
    sources (dropped).  An address the table does not know has no country: in `allow`
    mode it is blocked unless it is not globally routable (loopback, RFC 1918,
    link-local, ULA), since such an address never has a country to allow.
    """

    mode: str = "ignore"
    countries: frozenset[str] = frozenset()
    table: CidrMap[str] = EMPTY_CIDRS  # type: ignore[assignment]

    @classmethod
    def build(cls, mode: str, countries: Iterable[str], table: CidrMap[str] | None) -> GeoFence:
        return cls(
            mode if mode in GEOFENCE_MODES else "ignore",
            frozenset(c.upper() for c in countries),
            table if table is not None else EMPTY_CIDRS,
        )

    @property
    def active(self) -> bool:
        return self.mode != "ignore"

    def country(self, ip: str) -> str | None:
        return self.table.get(ip)

    def blocks(self, ip: str) -> bool:
        """Whether the geofence refuses this address."""
        if self.mode == "ignore":
            return False
        key = ip_key(ip)
        if key is None:
            return True
        return self.blocks_key(key)

    def blocks_key(self, key: tuple[int, int]) -> bool:
        """As `blocks`, for an address already in `ip_key` form."""
        if self.mode == "ignore":
            return False
        country = self.table.get_key(key)
        if self.mode == "forbidden":
            return country is not None and country in self.countries
        if country is not None:
            return country not in self.countries
        version, number = key
        address = ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number)
        return address.is_global


NO_GEOFENCE = GeoFence()
