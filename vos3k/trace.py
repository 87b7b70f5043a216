"""The signalling trace hub: admin taps with IP/number filters over SIP, Q.931 and RAS.

The transports call the hub only behind one attribute check (``if HUB.active:``), so
with no tap the hot path pays a global lookup and an attribute read per message and
nothing else (issue 11).  With taps, a message is decoded into readable lines once and
offered to every tap whose filter it matches.  A tap queues what it is offered in a
bounded deque and writes it out on a later reactor turn, so a slow admin terminal makes
the tap drop (and count) lines, never makes signalling wait.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any, TextIO

from attrs import frozen
from twisted.logger import Logger

from vos3k.h323 import h225, q931, ras
from vos3k.sip.message import Request, Response

__all__ = [
    "HUB",
    "Direction",
    "Tap",
    "TraceFilter",
    "TraceHub",
    "Traced",
    "decode_q931",
    "decode_ras",
    "decode_sip",
]

log = Logger()

DEFAULT_QUEUE = 1000  # events a tap holds for its terminal before it drops
DEFAULT_BURST = 200  # events written per reactor turn
MAX_BACKLOG = 64 * 1024  # unsent terminal bytes above which a tap stops writing
RETRY_S = 0.1  # how soon a held-back tap looks at its terminal again


class Direction(enum.Enum):
    IN = "in"
    OUT = "out"


# ---------------------------------------------------------------- filters


@frozen
class TraceFilter:
    """Which messages a tap wants: remote IP (address or CIDR) and a number.

    ``number`` matches when it occurs in any number of the message (Request-URI, From
    and To users for SIP; calling/called party numbers and aliases for H.323), so a
    prefix, a full E.164 or one with a technical prefix all match.
    """

    ip: str | None = None
    number: str | None = None

    @classmethod
    def parse(cls, ip: str | None, number: str | None) -> TraceFilter | str:
        """Build from the shell's ``ip=`` and ``number=``; a reason string if invalid."""
        if ip is not None:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                return f"ip={ip!r} is not an IP address or CIDR"
        if number is not None and not re.fullmatch(r"[0-9A-Za-z+*#._-]{1,64}", number):
            return f"number={number!r} is not a number"
        return cls(ip, number)

    def wants_ip(self, host: str) -> bool:
        if self.ip is None:
            return True
        try:
            return ipaddress.ip_address(host) in ipaddress.ip_network(self.ip, strict=False)
        except ValueError:
            return False

    def wants_numbers(self, numbers: Iterable[str]) -> bool:
        return self.number is None or any(self.number in n for n in numbers)

    def __str__(self) -> str:
        parts = [f"ip={self.ip}" if self.ip else "", f"number={self.number}" if self.number else ""]
        return " ".join(p for p in parts if p) or "all messages"


# ---------------------------------------------------------------- decoded messages


@frozen
class Traced:
    """One message as the trace shows it."""

    at_ms: int
    protocol: str  # SIP, Q.931, RAS
    direction: Direction
    transport: str  # UDP, TCP
    host: str  # the remote side: where it came from or goes to
    port: int
    numbers: tuple[str, ...]
    lines: tuple[str, ...]

    def render(self, tz: tzinfo | None = None) -> str:
        moment = datetime.fromtimestamp(self.at_ms / 1000, tz)
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.at_ms % 1000:03d}"
        way = "from" if self.direction is Direction.IN else "to"
        head = (
            f"{stamp} {self.protocol} {self.direction.value} {way} "
            f"{self.transport} {self.host}:{self.port}"
        )
        return "\n".join([head, *("  " + line for line in self.lines)]) + "\n"


_SIP_USER = re.compile(r"(?:sips?|tel):([^@;>?\s]+)", re.I)
_NUMBER_HEADERS = ("from", "f", "to", "t")


def decode_sip(message: Request | Response) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numbers, lines): start line and headers; the body as a one-line summary."""
    lines = [message.start_line, *(f"{name}: {value}" for name, value in message.headers)]
    if message.body:
        kind = message.header("content-type") or "no content type"
        lines.append(f"(body {len(message.body)} bytes, {kind})")
    texts = [message.uri] if isinstance(message, Request) else []
    texts += [value for name, value in message.headers if name.lower() in _NUMBER_HEADERS]
    numbers = tuple(dict.fromkeys(m.group(1) for t in texts for m in _SIP_USER.finditer(t)))
    return numbers, tuple(lines)


def _message_type(value: int) -> str:
    try:
        return q931.MessageType(value).name.replace("_", " ")
    except ValueError:
        return f"type 0x{value:02x}"


def _aliases(aliases: Iterable[h225.Alias]) -> str:
    return ",".join(f"{a.value}({a.kind})" for a in aliases)


def _address(address: h225.TransportAddress | None) -> str:
    return "" if address is None else f"{address.host}:{address.port}"


def _uuie_lines(data: bytes) -> tuple[list[str], list[str]]:
    info = h225.parse_user_information(data)
    if isinstance(info, h225.Malformed):
        return [f"H.225 user-user: undecodable ({info.reason})"], []
    fields = [
        ("call-id", info.call_identifier.hex() if info.call_identifier else ""),
        ("source", _aliases(info.source_aliases)),
        ("destination", _aliases(info.destination_aliases)),
        ("source-signal", _address(info.source_call_signal_address)),
        ("destination-signal", _address(info.destination_call_signal_address)),
        ("h245", _address(info.h245_address)),
        ("fast-start", str(len(info.fast_start)) if info.fast_start else ""),
        ("h245-tunnelling", "yes" if info.h245_tunnelling else ""),
        ("h245-tunnelled", str(len(info.h245_control)) if info.h245_control else ""),
        ("reason", info.release_complete_reason or info.facility_reason or ""),
    ]
    shown = [f"{name}={value}" for name, value in fields if value]
    numbers = [a.value for a in (*info.source_aliases, *info.destination_aliases)]
    return [f"H.225 {info.body}: " + " ".join(shown)], numbers


def decode_q931(message: q931.Message | q931.Malformed) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numbers, lines): message type, call reference, the key IEs and UUIE fields."""
    if isinstance(message, q931.Malformed):
        return (), (f"malformed Q.931: {message.reason}",)
    side = "to originator" if message.from_destination else "from originator"
    lines = [f"{_message_type(message.message_type)} cr={message.call_reference} ({side})"]
    numbers: list[str] = []
    for ie in message.ies:
        match ie:
            case q931.CallingPartyNumber(digits=digits) | q931.CalledPartyNumber(digits=digits):
                label = "Calling" if isinstance(ie, q931.CallingPartyNumber) else "Called"
                lines.append(f"{label}-Party-Number: {digits}")
                numbers.append(digits)
            case q931.Cause(value=value, location=location):
                lines.append(f"Cause: {value} (location {location})")
            case q931.Display(text=text):
                lines.append(f"Display: {text}")
            case q931.ProgressIndicator(description=description):
                lines.append(f"Progress-Indicator: {description}")
            case q931.UserUser(data=data):
                uuie, aliases = _uuie_lines(data)
                lines += uuie
                numbers += aliases
    return tuple(dict.fromkeys(numbers)), tuple(lines)


def decode_ras(message: ras.RasMessage | h225.Malformed) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numbers, lines): the RAS kind (RRQ, ARQ...), sequence number and key fields."""
    if isinstance(message, h225.Malformed):
        return (), (f"malformed RAS: {message.reason}",)
    fields = [
        ("endpoint", message.endpoint_identifier or ""),
        ("gatekeeper", message.gatekeeper_identifier or ""),
        ("aliases", _aliases(message.aliases)),
        ("destination", _aliases(message.destination_aliases)),
        ("signal", _address(message.destination_call_signal_address)),
        ("ttl", "" if message.time_to_live is None else str(message.time_to_live)),
        ("reason", message.reason or ""),
    ]
    shown = " ".join(f"{name}={value}" for name, value in fields if value)
    kind = message.kind.name
    numbers = tuple(a.value for a in (*message.aliases, *message.destination_aliases))
    return numbers, (f"{kind} seq={message.seq}" + (f" {shown}" if shown else ""),)


# ---------------------------------------------------------------- taps and the hub


class Tap:
    """One admin's trace: a filter, a bounded queue and where the lines go.

    ``write(text)`` shows text on the admin's terminal; ``backlog()`` says how many bytes
    that terminal has not sent yet (SSH window or TCP buffer), so a slow terminal holds
    the queue back until it drops.  ``log_file``, when given, gets every matching
    message whether or not the terminal kept up.
    """

    def __init__(
        self,
        filter: TraceFilter,
        write: Callable[[str], None],
        clock: Any,
        *,
        tz: tzinfo | None = None,
        backlog: Callable[[], int] = lambda: 0,
        log_file: TextIO | None = None,
        limit: int = DEFAULT_QUEUE,
        burst: int = DEFAULT_BURST,
    ) -> None:
        self.filter = filter
        self._write = write
        self._clock = clock
        self._tz = tz
        self._backlog = backlog
        self.log_file = log_file
        self._queue: deque[Traced] = deque()
        self._limit = limit
        self._burst = burst
        self._call: Any = None
        self.matched = 0
        self.shown = 0
        self.dropped = 0
        self.closed = False

    def wants_ip(self, host: str) -> bool:
        return self.filter.wants_ip(host)

    def offer(self, traced: Traced) -> None:
        if not (self.filter.wants_ip(traced.host) and self.filter.wants_numbers(traced.numbers)):
            return
        self.matched += 1
        if self.log_file is not None:
            try:
                self.log_file.write(traced.render(self._tz))
            except (OSError, ValueError) as exc:  # disk full, closed: stop logging only
                log.error("trace log write failed: {error}", error=str(exc))
                self.log_file = None
        if len(self._queue) >= self._limit:
            self.dropped += 1  # the terminal is behind: drop, never wait
            return
        self._queue.append(traced)
        if self._call is None:
            self._call = self._clock.callLater(0, self._drain)

    def _drain(self) -> None:
        self._call = None
        if self.closed:
            return
        if self._backlog() > MAX_BACKLOG:
            self._call = self._clock.callLater(RETRY_S, self._drain)
            return
        texts = []
        for _ in range(min(self._burst, len(self._queue))):
            texts.append(self._queue.popleft().render(self._tz))
        if texts:
            self.shown += len(texts)
            self._write("".join(texts))
        self._flush_log()
        if self._queue:
            self._call = self._clock.callLater(0, self._drain)

    def _flush_log(self) -> None:
        # Once per reactor turn, so `tail -f` on the file keeps up without a write per line.
        if self.log_file is not None:
            try:
                self.log_file.flush()
            except (OSError, ValueError) as exc:
                log.error("trace log write failed: {error}", error=str(exc))
                self.log_file = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop: pending lines are discarded, the log file is closed."""
        self.closed = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self.dropped += len(self._queue)
        self._queue.clear()
        if self.log_file is not None:
            try:
                self.log_file.close()
            except OSError as exc:
                log.error("trace log close failed: {error}", error=str(exc))
            self.log_file = None


Decoder = Callable[[], tuple[tuple[str, ...], tuple[str, ...]]]


class TraceHub:
    """The taps of the process.  ``active`` is the one flag the transports read."""

    def __init__(self) -> None:
        self.active = False
        self._taps: list[Tap] = []

    @property
    def taps(self) -> tuple[Tap, ...]:
        return tuple(self._taps)

    def add(self, tap: Tap) -> None:
        self._taps.append(tap)
        self.active = True

    def remove(self, tap: Tap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)
        tap.close()
        self.active = bool(self._taps)

    # The transports' entry points: called only when `active` is true.

    def sip(self, direction: Direction, message: Any, transport: str, host: str, port: int,
            now_ms: int) -> None:  # fmt: skip
        self._publish("SIP", direction, transport, host, port, now_ms,
                      lambda: decode_sip(message))  # fmt: skip

    def q931(self, direction: Direction, message: Any, host: str, port: int,
             now_ms: int) -> None:  # fmt: skip
        """``message`` is a parsed q931.Message/Malformed, or the bytes we send."""
        if isinstance(message, bytes):
            message = q931.parse(message)
        self._publish("Q.931", direction, "TCP", host, port, now_ms,
                      lambda: decode_q931(message))  # fmt: skip

    def ras(self, direction: Direction, message: Any, host: str, port: int,
            now_ms: int) -> None:  # fmt: skip
        self._publish("RAS", direction, "UDP", host, port, now_ms,
                      lambda: decode_ras(message))  # fmt: skip

    def _publish(self, protocol: str, direction: Direction, transport: str, host: str,
                 port: int, now_ms: int, decode: Decoder) -> None:  # fmt: skip
        # A trace must never break signalling: a decoding bug is logged, the message
        # goes on its way untraced.
        try:
            taps = [tap for tap in self._taps if tap.wants_ip(host)]
            if not taps:
                return
            numbers, lines = decode()
            traced = Traced(now_ms, protocol, direction, transport, host, port, numbers, lines)
            for tap in taps:
                tap.offer(traced)
        except Exception:
            log.failure("trace of a {protocol} message failed", protocol=protocol)


HUB = TraceHub()
