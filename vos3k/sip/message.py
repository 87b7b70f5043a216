"""SIP message parsing, validation and serialisation (RFC 3261 §7, §20, §25), sans-IO.

Public API (the transport and the B2BUA build on this; keep it stable):

- ``parse(data: bytes) -> Request | Response | Malformed`` parses one datagram (or one
  framed stream message).  Only framing, the start line and the header lines are
  checked here; header *values* are parsed lazily by the accessors below.
- ``validate_request(req) -> Malformed | None`` and ``validate_response(resp)`` do
  the semantic checks of RFC 3261 §8.2 / RFC 4475 §3: mandatory headers, CSeq,
  Via, From/To, Max-Forwards (483), version (505), Request-URI scheme (416),
  Require (420), Content-Type (415) ...  ``Malformed.status`` is the code to answer.
  Call it once per received message before handing it on; accessors on a
  validated message do not raise.
- ``serialise(msg) -> bytes``: header order, names as written and unknown headers
  are kept, so ``serialise(parse(x))`` relays faithfully.  Folded values come
  back unfolded (RFC 3261 §7.3.1: equivalent).
- ``StreamFramer(max_size).feed(bytes) -> list[Request | Response | Malformed | KeepAlive]``
  for TCP/TLS (RFC 3261 §18.3, Content-Length framing; 513 past ``max_size``).
- ``build_response(request, status, ...)`` (§8.2.6), ``error_response(malformed)``.
- ``IdSource(random_bytes)``: tags, branches and Call-IDs from an injected source.
- Accessors on a message: ``header(name)``, ``headers_named(name)``, ``values(name)``,
  ``call_id()``, ``cseq()``, ``vias()``, ``top_via()``, ``from_()``, ``to()``,
  ``contacts()``, ``is_contact_wildcard()``, ``routes()``, ``record_routes()``,
  ``max_forwards()``, ``content_length()``, ``content_type()``, ``expires()``;
  ``Request.request_uri()``.  Value parsers: ``parse_via``, ``parse_name_addr``,
  ``parse_cseq``, ``split_values``; ``reason_phrase(status)``.  They raise
  ``HeaderError`` (a ValueError) on a message that ``validate_*`` would reject.
- Copy-editing: ``with_header``, ``with_headers``, ``with_line``, ``prepend_header``,
  ``append_header``, ``without_header``, ``with_body`` return new frozen messages (pass
  headers as a tuple of ``(name, value)`` when constructing ``Request``/``Response``
  directly); values already parsed are kept for the headers an edit leaves as they were.

Header names match case-insensitively and compact forms are expanded (§7.3.3).
Text is decoded as UTF-8 with ``surrogateescape`` so any byte string round-trips.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Iterable

import attrs
from attrs import field, frozen

from vos3k.sip.uri import (
    MEMO_MAX,
    TOKEN_RE,
    Uri,
    UriError,
    format_host,
    parse_host,
    parse_params,
    parse_uri,
    quoted_string_end,
)

__all__ = [
    "CSeq",
    "HeaderError",
    "IdSource",
    "KeepAlive",
    "Malformed",
    "NameAddr",
    "Request",
    "Response",
    "StreamFramer",
    "Via",
    "build_response",
    "error_response",
    "header_key",
    "parse",
    "parse_cseq",
    "parse_name_addr",
    "parse_via",
    "reason_phrase",
    "serialise",
    "split_values",
    "validate_request",
    "validate_response",
]

ENCODING = "utf-8"
ERRORS = "surrogateescape"
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7
MAX_CSEQ = 2**31 - 1  # §8.1.1.5: CSeq number MUST be less than 2**31

# RFC 3261 §7.3.3 plus the compact forms registered since (RFC 3265, 3515, 3841, 3892, 4028, 4474)
COMPACT = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose grammar is a comma-separated list (§7.3.1); others are never split,
# because Date, WWW-Authenticate and friends carry commas inside one value.
LIST_HEADERS = frozenset(
    (
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "allow-events",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "reason",
        "path",
        "service-route",
    )
)

REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 reason phrase, or a class-generic one."""
    return REASONS.get(status) or REASONS.get(status // 100 * 100, "Unknown")


class HeaderError(ValueError):
    """A header value that does not parse; the peer's fault (400)."""


_KEYS: dict[str, str] = {}
_NO_LINES: list[str] = []  # shared empty result of _Message._lines (never mutated)


def header_key(name: str) -> str:
    """Canonical lookup key: lower case, compact form expanded (§7.3.3)."""
    key = _KEYS.get(name)
    if key is None:
        lower = name.lower()
        key = COMPACT.get(lower, lower)
        if len(_KEYS) < 4096:  # bounded: header names come from the network
            _KEYS[name] = key
    return key


# ---------------------------------------------------------------------------
# Values


@frozen
class Malformed:
    """A message (or header) we cannot accept.

    ``reply_possible``: Via, From, To, Call-ID and CSeq are readable, so the
    transport may answer ``status`` (with ``error_response``); otherwise drop
    and count.  ``headers`` are the raw header lines that could be read.
    ``extra_headers`` go into the reply (Unsupported for 420, Accept for 415).
    """

    reason: str
    reply_possible: bool = False
    status: int = 400
    start_line: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    extra_headers: tuple[tuple[str, str], ...] = ()


@frozen
class KeepAlive:
    """A CRLFCRLF keep-alive ping on a stream (RFC 5626 §3.5.1); answer with CRLF."""


@frozen
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@frozen
class Via:
    """One Via entry (§20.42).  ``host`` is unbracketed; params keep raw values."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return "" if value is None else value
        return None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        value = self.param("received")
        # RFC 5118 §4.5: accept an IPv6 received with or without brackets
        return value.strip("[]") if value else value

    @property
    def rport(self) -> int | None:
        """RFC 3581 rport value; 0 when present without a value, None when absent."""
        value = self.param("rport")
        if value is None:
            return None
        return int(value) if value.isdigit() else 0

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return (self.host.lower(), self.port)

    def __str__(self) -> str:
        out = f"{self.protocol}/{self.transport} {format_host(self.host)}"
        if self.port is not None:
            out += f":{self.port}"
        return out + _format_params(self.params)


@frozen
class NameAddr:
    """name-addr or addr-spec with header parameters (§20.10, §20.20, §20.39).

    ``display`` is as written (quotes kept) or None.  ``params`` are header
    parameters (``tag``, ``expires``, ``q``...), not URI parameters.
    """

    uri: Uri
    display: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return "" if value is None else value
        return None

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_param(self, name: str, value: str | None) -> NameAddr:
        kept = tuple(p for p in self.params if p[0].lower() != name.lower())
        return attrs.evolve(self, params=(*kept, (name, value)))

    def __str__(self) -> str:
        head = f"{self.display} <{self.uri}>" if self.display else f"<{self.uri}>"
        return head + _format_params(self.params)


def _format_params(params: Iterable[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


# ---------------------------------------------------------------------------
# Header value parsers (raise HeaderError)


def split_values(value: str) -> list[str]:
    """Split a list header on commas outside quotes and <> (§7.3.1).

    Empty elements are kept (as '') so callers can reject them.
    """
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    angle = False
    while i < n:
        c = value[i]
        if c == '"' and not angle:
            try:
                i = quoted_string_end(value, i)
            except ValueError as exc:
                raise HeaderError(str(exc)) from None
            continue
        if c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return parts


_VIA_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)"
    r"\s+(\[[^\]]*\]|[^\s:;]+)(?:\s*:\s*([0-9]+))?(.*)\Z",
    re.S,
)


# Header values parse to frozen values, so a value seen before gives the same result:
# the Via, From and To of a call come back in every response and in-dialog request.
# Only successes are kept (a bad value raises each time); bounded like uri.parse_uri's.
_VIA_MEMO: dict[str, Via] = {}
_NAME_ADDR_MEMO: dict[str, NameAddr] = {}
_CSEQ_MEMO: dict[str, CSeq] = {}


def _remember(memo: dict, key: str, value: object) -> None:
    if len(memo) >= MEMO_MAX:
        memo.clear()
    memo[key] = value


def parse_via(value: str) -> Via:
    """One via-parm (already split from its list).  Raises HeaderError."""
    found = _VIA_MEMO.get(value)
    if found is None:
        found = _parse_via(value)
        _remember(_VIA_MEMO, value, found)
    return found


def _parse_via(value: str) -> Via:
    m = _VIA_RE.match(value.strip())
    if m is None:
        raise HeaderError(f"bad Via {value[:60]!r}")
    name, version, transport, host, port, rest = m.groups()
    try:
        host = parse_host(host)
        params = parse_params(rest)
    except ValueError as exc:
        raise HeaderError(f"bad Via: {exc}") from None
    port_num = None
    if port is not None:
        if len(port) > 5 or int(port) > 65535:
            raise HeaderError("Via port out of range")
        port_num = int(port)
    for key, pvalue in params:
        lkey = key.lower()
        if lkey == "ttl" and not (pvalue and pvalue.isdigit() and int(pvalue) <= 255):
            raise HeaderError("bad Via ttl")
        if lkey == "branch" and not pvalue:
            raise HeaderError("empty Via branch")
    return Via(transport.upper(), host, port_num, params, f"{name}/{version}")


_DISPLAY_TOKENS_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]*\Z")


def parse_name_addr(value: str) -> NameAddr:
    """name-addr / addr-spec plus header params (§25.1).  Raises HeaderError."""
    found = _NAME_ADDR_MEMO.get(value)
    if found is None:
        found = _parse_name_addr(value)
        _remember(_NAME_ADDR_MEMO, value, found)
    return found


def _parse_name_addr(value: str) -> NameAddr:
    s = value.strip()
    display: str | None = None
    try:
        if s.startswith('"'):
            end = quoted_string_end(s, 0)
            display = s[:end]
            s = s[end:].lstrip()
            if not s.startswith("<"):
                raise HeaderError("quoted display name without <URI>")
        lt = s.find("<")
        if lt >= 0:
            if display is None:
                token_display = s[:lt].strip()
                if not _DISPLAY_TOKENS_RE.match(token_display):
                    raise HeaderError(f"bad display name {token_display!r}")
                display = token_display or None
            gt = s.find(">", lt)
            if gt < 0:
                raise HeaderError("unterminated <URI>")
            uri_text = s[lt + 1 : gt]
            rest = s[gt + 1 :]
        else:
            semi = s.find(";")
            uri_text, rest = (s, "") if semi < 0 else (s[:semi].rstrip(), s[semi:])
            # §20: a URI with ',', '?' or ';' MUST be in angle brackets
            if "?" in uri_text or "," in uri_text:
                raise HeaderError("addr-spec with '?' or ',' outside <>")
        params = parse_params(rest)
    except ValueError as exc:
        raise HeaderError(f"bad name-addr: {exc}") from None
    uri = parse_uri(uri_text)
    if isinstance(uri, UriError):
        raise HeaderError(f"bad URI: {uri.reason}")
    return NameAddr(uri, display, params)


_CSEQ_RE = re.compile(r"\s*([0-9]+)\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*\Z")


def parse_cseq(value: str) -> CSeq:
    found = _CSEQ_MEMO.get(value)
    if found is None:
        found = _parse_cseq(value)
        _remember(_CSEQ_MEMO, value, found)
    return found


def _parse_cseq(value: str) -> CSeq:
    m = _CSEQ_RE.match(value)
    if m is None:
        raise HeaderError(f"bad CSeq {value[:40]!r}")
    digits, method = m.groups()
    if len(digits) > 10 or int(digits) > MAX_CSEQ:
        raise HeaderError("CSeq number out of range")
    return CSeq(int(digits), method)


def _parse_small_int(value: str, name: str, limit: int) -> int:
    v = value.strip()
    if not v.isdigit() or not v.isascii() or len(v) > 10 or int(v) > limit:
        raise HeaderError(f"bad {name} {value[:40]!r}")
    return int(v)


# ---------------------------------------------------------------------------
# Messages


class _Message(abc.ABC):
    """Header access shared by Request and Response (slots-only mixin)."""

    __slots__ = ()
    headers: tuple[tuple[str, str], ...]
    body: bytes
    _cache: dict

    @abc.abstractmethod
    def _copy(self, headers: tuple[tuple[str, str], ...]) -> Request | Response:
        """The same message with other headers (Request and Response each know how)."""

    def _index(self) -> dict[str, list[str]]:
        """Header values by canonical key, built once per message (lazy)."""
        try:
            return self._cache["#index"]
        except KeyError:
            index: dict[str, list[str]] = {}
            keys = _KEYS
            for hname, value in self.headers:
                key = keys.get(hname) or header_key(hname)
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._cache["#index"] = index
            return index

    def _lines(self, key: str) -> list[str]:
        """The values of canonical header ``key``; the caller must not change the list."""
        try:
            index = self._cache["#index"]
        except KeyError:
            index = self._index()
        return index.get(key, _NO_LINES)

    def header(self, name: str) -> str | None:
        """The first header line of that name (value as received), or None."""
        values = self._lines(header_key(name))
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return list(self._lines(header_key(name)))

    def values(self, name: str) -> list[str]:
        """All values: list headers split on commas (§7.3.1), others one per line."""
        return self._values(header_key(name))

    def _values(self, key: str) -> list[str]:
        lines = self._lines(key)
        if key not in LIST_HEADERS:
            return [v.strip() for v in lines]
        if len(lines) == 1:
            return split_values(lines[0])
        out: list[str] = []
        for line in lines:
            out.extend(split_values(line))
        return out

    def _single(self, key: str) -> str:
        lines = self._lines(key)
        if not lines:
            raise HeaderError(f"missing {key}")
        if len(lines) > 1 and len({v.strip() for v in lines}) > 1:
            raise HeaderError(f"conflicting {key} headers")
        return lines[0]

    # Parsed header values are cached under the header's canonical key (copy-editing
    # carries them over to the copy while that header's lines are unchanged).

    def call_id(self) -> str:
        cache = self._cache
        found = cache.get("call-id")
        if found is None:
            value = self._single("call-id").strip()
            if not value or " " in value or "\t" in value:
                raise HeaderError("bad Call-ID")
            found = cache["call-id"] = value
        return found

    def cseq(self) -> CSeq:
        cache = self._cache
        found = cache.get("cseq")
        if found is None:
            found = cache["cseq"] = parse_cseq(self._single("cseq"))
        return found

    def vias(self) -> tuple[Via, ...]:
        cache = self._cache
        found = cache.get("via")
        if found is None:
            values = self._values("via")
            if not values:
                raise HeaderError("missing Via")
            if "" in values:
                raise HeaderError("empty Via element")
            found = cache["via"] = tuple([parse_via(v) for v in values])
        return found

    def top_via(self) -> Via:
        return self.vias()[0]

    def from_(self) -> NameAddr:
        cache = self._cache
        found = cache.get("from")
        if found is None:
            found = cache["from"] = parse_name_addr(self._single("from"))
        return found

    def to(self) -> NameAddr:
        cache = self._cache
        found = cache.get("to")
        if found is None:
            found = cache["to"] = parse_name_addr(self._single("to"))
        return found

    def _name_addrs(self, key: str) -> tuple[NameAddr, ...]:
        cache = self._cache
        found = cache.get(key)
        if found is None:
            values = self._values(key)
            if "" in values:
                raise HeaderError(f"empty {key} element")
            found = cache[key] = tuple([parse_name_addr(v) for v in values])
        return found

    def is_contact_wildcard(self) -> bool:
        """``Contact: *`` (REGISTER removal of all bindings, §10.2.2)."""
        lines = self._lines("contact")
        return len(lines) == 1 and lines[0].strip() == "*"

    def contacts(self) -> tuple[NameAddr, ...]:
        if self.is_contact_wildcard():
            return ()
        return self._name_addrs("contact")

    def routes(self) -> tuple[NameAddr, ...]:
        return self._name_addrs("route")

    def record_routes(self) -> tuple[NameAddr, ...]:
        return self._name_addrs("record-route")

    def max_forwards(self) -> int | None:
        values = self._lines("max-forwards")
        return _parse_small_int(values[0], "Max-Forwards", 255) if values else None

    def content_length(self) -> int | None:
        values = self._lines("content-length")
        return _parse_small_int(values[0], "Content-Length", 2**31) if values else None

    def content_type(self) -> str | None:
        """Media type without parameters, lower case (``application/sdp``)."""
        values = self._lines("content-type")
        if not values:
            return None
        return values[0].split(";", 1)[0].strip().lower()

    def expires(self) -> int | None:
        values = self._lines("expires")
        return _parse_small_int(values[0], "Expires", 2**32 - 1) if values else None

    # -- copy-editing ------------------------------------------------------

    def with_headers(self, headers: Iterable[tuple[str, str]]):
        copy = self._copy(tuple(headers))
        cache = self._cache
        if len(cache) > 1:
            # values parsed from this message stay valid for headers whose lines the
            # edit left as they were (stamp_via changes the Via only)
            old = self._index()
            new = copy._index()
            kept = copy._cache
            for key, value in cache.items():
                if key[0] == "#":
                    if key == "#ruri":
                        kept[key] = value
                elif old.get(key) == new.get(key):
                    kept[key] = value
        return copy

    def with_line(self, position: int, value: str):
        """A copy with the value of header line ``position`` replaced (name kept).

        What the message parsed stays parsed, that header's values excepted: the
        transport's stamp_via changes one Via line of every request it receives.
        """
        headers = list(self.headers)
        name = headers[position][0]
        headers[position] = (name, value)
        copy = self._copy(tuple(headers))
        key = header_key(name)
        old = self._index()
        occurrence = sum(1 for n, _v in self.headers[:position] if header_key(n) == key)
        lines = list(old[key])
        lines[occurrence] = value
        index = dict(old)  # the other keys' lists are shared: never changed once built
        index[key] = lines
        cache = copy._cache
        for cached, parsed in self._cache.items():
            if cached != key and cached != "#index":
                cache[cached] = parsed
        cache["#index"] = index
        return copy

    def with_header(self, name: str, *values: str):
        """Replace every header of that name by ``values`` at the first one's place."""
        key = header_key(name)
        out: list[tuple[str, str]] = []
        placed = False
        for hname, value in self.headers:
            if header_key(hname) == key:
                if not placed:
                    out.extend((name, v) for v in values)
                    placed = True
                continue
            out.append((hname, value))
        if not placed:
            out.extend((name, v) for v in values)
        return self.with_headers(out)

    def prepend_header(self, name: str, value: str):
        """Insert above the first header of that name (Via, Record-Route), else on top."""
        key = header_key(name)
        out = list(self.headers)
        for i, (hname, _v) in enumerate(out):
            if header_key(hname) == key:
                out.insert(i, (name, value))
                break
        else:
            out.insert(0, (name, value))
        return self.with_headers(out)

    def append_header(self, name: str, value: str):
        return self.with_headers((*self.headers, (name, value)))

    def without_header(self, name: str, *, first_only: bool = False):
        key = header_key(name)
        out: list[tuple[str, str]] = []
        removed = False
        for hname, value in self.headers:
            if header_key(hname) == key and not (first_only and removed):
                removed = True
                continue
            out.append((hname, value))
        return self.with_headers(out)

    def with_body(self, body: bytes, content_type: str | None = None):
        """A copy with a new body; Content-Length (and Content-Type) follow it."""
        msg = self.with_header("Content-Length", str(len(body)))
        if content_type is not None:
            msg = msg.with_header("Content-Type", content_type)
        elif not body:
            msg = msg.without_header("content-type")
        return attrs.evolve(msg, body=body)


@frozen(slots=True)
class Request(_Message):
    method: str
    uri: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    version: str = "SIP/2.0"
    _cache: dict = field(factory=dict, init=False, repr=False, eq=False, hash=False)

    def request_uri(self) -> Uri:
        uri = self._cache.get("#ruri")
        if uri is None:
            uri = parse_uri(self.uri)
            if isinstance(uri, UriError):
                raise HeaderError(f"bad Request-URI: {uri.reason}")
            self._cache["#ruri"] = uri
        return uri

    def _copy(self, headers: tuple[tuple[str, str], ...]) -> Request:
        return Request(self.method, self.uri, headers, self.body, self.version)

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@frozen(slots=True)
class Response(_Message):
    status: int
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    version: str = "SIP/2.0"
    _cache: dict = field(factory=dict, init=False, repr=False, eq=False, hash=False)

    @property
    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _copy(self, headers: tuple[tuple[str, str], ...]) -> Response:
        return Response(self.status, self.reason, headers, self.body, self.version)


Message = Request | Response

# ---------------------------------------------------------------------------
# Parsing

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+\Z", re.I)


def parse(data: bytes) -> Request | Response | Malformed:
    """Parse one message from a datagram; never raises.

    Content-Length shorter than the data: the rest is ignored (RFC 4475
    §3.1.1.13 dblreq).  Longer: Malformed (§18.3, clerr).
    """
    try:
        return _parse(data, stream=False)
    except Exception as exc:  # bad input is a value (STYLE §7), never a raise
        return Malformed(f"unparseable: {type(exc).__name__}: {exc}")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Split at the blank line.  §7.5: leading CRLFs are ignored."""
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")  # bare-LF senders (tolerated, §7 says CRLF)
    if end >= 0:
        return data[:end], data[end + 2 :]
    return None


_VALID_NAMES: set[str] = set()


# One well-formed header line: token name, colon, value (LWS around both trimmed, one
# trailing CR dropped).  When every line matches, _header_lines takes this one C pass.
# The value is runs of non-LWS characters joined by LWS; possessive quantifiers (never
# given back) keep a long run of LWS from backtracking: linear time on any datagram.
_HEADER_LINE_RE = re.compile(
    r"\n([A-Za-z0-9\-.!%*_+`'~]++)[ \t]*+:[ \t]*+"
    r"((?:[^ \t\r\n]++(?:[ \t]++[^ \t\r\n]++)*+)?+)[ \t]*+\r?(?=\n|\Z)"
)


def _header_lines(head: str) -> tuple[str, list[tuple[str, str]], str | None]:
    """Start line, unfolded (name, value) pairs, and the first error if any."""
    first_end = head.find("\n")
    if first_end >= 0:
        pairs = _HEADER_LINE_RE.findall(head, first_end)
        if len(pairs) == head.count("\n", first_end):
            return head[:first_end].rstrip("\r"), pairs, None
    return _header_lines_careful(head)


def _header_lines_careful(head: str) -> tuple[str, list[tuple[str, str]], str | None]:
    """_header_lines line by line: folding, odd names, the first error."""
    lines = head.split("\n")
    start = lines[0].rstrip("\r")
    headers: list[tuple[str, str]] = []
    error = None
    valid = _VALID_NAMES
    for raw in lines[1:]:
        line = raw[:-1] if raw[-1:] == "\r" else raw
        first = line[:1]
        if first == " " or first == "\t":
            # §7.3.1: a line starting with whitespace continues the previous value
            if not headers:
                error = error or "continuation line before any header"
                continue
            name, value = headers[-1]
            stripped = line.strip()
            headers[-1] = (name, f"{value} {stripped}" if value else stripped)
            continue
        name, colon, value = line.partition(":")
        if name[-1:] in (" ", "\t"):
            name = name.rstrip(" \t")
        if name not in valid:
            if not colon or not TOKEN_RE.match(name):
                error = error or f"bad header line {line[:40]!r}"
                continue
            if len(valid) < 4096:  # bounded: names come from the network
                valid.add(name)
        elif not colon:
            error = error or f"bad header line {line[:40]!r}"
            continue
        headers.append((name, value.strip(" \t")))
    return start, headers, error


def _reply_possible(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bool:
    keys = {header_key(n) for n, _v in headers}
    return {"via", "from", "to", "call-id", "cseq"} <= keys


def _parse(data: bytes, *, stream: bool) -> Request | Response | Malformed:
    split = _split_head(data)
    if split is None:
        text = data.decode(ENCODING, ERRORS)
        start, headers, _err = _header_lines(text.replace("\r\n", "\n").rstrip("\n"))
        return Malformed("no blank line after headers", False, 400, start, tuple(headers))
    head_bytes, rest = split
    head = head_bytes.decode(ENCODING, ERRORS)
    start, headers, error = _header_lines(head)
    htuple = tuple(headers)
    is_response = start[:4].upper() == "SIP/"

    def bad(reason: str) -> Malformed:
        # computed only on failure: the common path never pays for it
        can_reply = not is_response and _reply_possible(headers)
        return Malformed(reason, can_reply, 400, start, htuple)

    if error is not None:
        return bad(error)

    # the header index every accessor uses, built here in the one pass over the names
    index: dict[str, list[str]] = {}
    keys = _KEYS
    for hname, value in headers:
        key = keys.get(hname) or header_key(hname)
        if key in index:
            index[key].append(value)
        else:
            index[key] = [value]
    lengths = index.get("content-length", _NO_LINES)
    if len(lengths) > 1 and len(set(lengths)) > 1:  # RFC 4475 §3.3.11 mcl01
        return bad("conflicting Content-Length headers")
    if lengths:
        cl_text = lengths[0]
        if not cl_text.isdigit() or not cl_text.isascii() or len(cl_text) > 10:
            return bad(f"bad Content-Length {cl_text[:20]!r}")
        length = int(cl_text)
        if length > len(rest):
            return bad("body shorter than Content-Length")
        body = rest[:length]
    else:
        body = b"" if stream else rest

    if is_response:
        parts = start.split(" ", 2)
        if len(parts) < 2 or not _VERSION_RE.match(parts[0]):
            return Malformed("bad status line", False, 400, start, htuple)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            return Malformed(f"bad status code {code[:12]!r}", False, 400, start, htuple)
        response = Response(int(code), parts[2] if len(parts) == 3 else "", htuple, body, parts[0])
        response._cache["#index"] = index
        return response

    parts = start.split(" ")
    # §7.1: Method SP Request-URI SP SIP-Version, exactly one SP each (RFC 4475 lwsstart, trws)
    if len(parts) != 3:
        return bad("bad request line")
    method, uri, version = parts
    if not TOKEN_RE.match(method):
        return bad(f"bad method {method[:20]!r}")
    if not _VERSION_RE.match(version):
        return bad(f"bad SIP version {version[:20]!r}")
    if not uri:
        return bad("empty Request-URI")
    request = Request(method, uri, htuple, body, version)
    request._cache["#index"] = index
    return request


# ---------------------------------------------------------------------------
# Validation (RFC 3261 §8.2, §16.3; RFC 4475 §3)

_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z"
)
# what vos3k implements (RFC 3262, RFC 4028): a Require of anything else gets 420
DEFAULT_SUPPORTED = frozenset({"100rel", "timer"})
DEFAULT_ACCEPT = frozenset(
    {
        "application/sdp",
        "multipart/mixed",
        "application/dtmf-relay",  # INFO DTMF
        "application/dtmf",
        "message/sipfrag",  # NOTIFY after REFER (RFC 3515)
    }
)


def _check_common(msg: Request | Response) -> None:
    """Header checks shared by requests and responses.  Raises HeaderError."""
    msg.vias()
    msg.from_()
    msg.to()
    msg.call_id()
    msg.cseq()
    msg.content_length()
    index = msg._index()
    forwards = index.get("max-forwards", _NO_LINES)
    if len(forwards) > 1:
        raise HeaderError("several Max-Forwards headers")  # RFC 4475 multi01
    if forwards:
        _parse_small_int(forwards[0], "Max-Forwards", 255)
    contacts = () if msg.is_contact_wildcard() else msg._name_addrs("contact")
    msg.record_routes()
    date = index.get("date")
    if date is not None and not _DATE_RE.match(date[0].strip()):
        raise HeaderError("Date is not an RFC 1123 GMT date")  # RFC 4475 baddate
    for contact in contacts:
        expires = contact.param("expires")
        if expires is not None:
            _parse_small_int(expires, "Contact expires", 2**32 - 1)


def validate_request(
    req: Request,
    *,
    supported: frozenset[str] = DEFAULT_SUPPORTED,
    accept: frozenset[str] = DEFAULT_ACCEPT,
) -> Malformed | None:
    """Semantic checks a UAS makes before processing (§8.2); None when acceptable.

    The returned Malformed's ``status`` is the response code to send (400, 415,
    416, 420, 483, 505).  ACK never gets a reply: its Malformed has
    ``reply_possible=False``.
    """

    def bad(reason: str, status: int = 400, extra: tuple = (), can: bool | None = None):
        can_reply = _reply_possible(req.headers) if can is None else can
        if req.method == "ACK":
            can_reply = False  # §17.2.1: never respond to ACK
        return Malformed(reason, can_reply, status, req.start_line, req.headers, extra)

    try:
        _check_common(req)
        req.routes()
        if len(req._lines("to")) > 1 or len(req._lines("from")) > 1:
            raise HeaderError("several From or To headers")
        if len(req._lines("call-id")) > 1 or len(req._lines("cseq")) > 1:
            raise HeaderError("several Call-ID or CSeq headers")
        req.expires()
    except HeaderError as exc:
        return bad(str(exc))
    if req.version.upper() != "SIP/2.0":
        return bad(f"unsupported version {req.version}", 505)
    if req.cseq().method != req.method:
        return bad("CSeq method differs from request method")  # RFC 4475 mismatch01/02
    uri = parse_uri(req.uri)
    if isinstance(uri, UriError):
        return bad(f"bad Request-URI: {uri.reason}")
    if uri.scheme not in ("sip", "sips", "tel"):
        return bad(f"unsupported URI scheme {uri.scheme}", 416)
    if uri.headers:
        return bad("Request-URI with headers")  # §19.1.1 table 1, RFC 4475 escruri
    if req.max_forwards() == 0 and req.method != "OPTIONS":
        # §16.3 step 3; an OPTIONS to the B2BUA itself is answered, not forwarded
        return bad("Max-Forwards exhausted", 483)
    if req.method not in ("ACK", "CANCEL"):
        required = [v for v in req.values("require") if v]
        unknown = [ext for ext in required if ext.lower() not in supported]
        if unknown:
            return bad("unsupported extension", 420, (("Unsupported", ", ".join(unknown)),))
    if req.body and req.method not in ("ACK", "CANCEL"):
        ctype = req.content_type()
        if ctype is not None and ctype not in accept:
            return bad(f"unsupported body {ctype}", 415, (("Accept", ", ".join(sorted(accept))),))
    if req.method == "INVITE" and req.header("accept") is not None:
        # §21.4.7 / RFC 4475 §3.3.15 sdp01: we can only answer with SDP
        accepted = {v.split(";", 1)[0].strip().lower() for v in req.values("accept")}
        if not accepted & {"application/sdp", "application/*", "*/*"}:
            return bad("caller accepts no SDP answer", 406)
    return None


def validate_response(resp: Response) -> Malformed | None:
    """Checks before a response goes to the transaction layer (§18.1.2); never answered."""
    try:
        _check_common(resp)
    except HeaderError as exc:
        return Malformed(str(exc), False, 400, resp.start_line, resp.headers)
    if resp.version.upper() != "SIP/2.0":
        return Malformed(f"unsupported version {resp.version}", False, 505, resp.start_line)
    return None


# ---------------------------------------------------------------------------
# Serialising


def serialise(msg: Request | Response) -> bytes:
    """Wire bytes; headers exactly in stored order and spelling."""
    lines = [msg.start_line]
    lines.extend([f"{n}: {v}" for n, v in msg.headers])
    lines.append("\r\n")
    return "\r\n".join(lines).encode(ENCODING, ERRORS) + msg.body


# ---------------------------------------------------------------------------
# Stream framing (RFC 3261 §18.3)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by Content-Length.

    ``feed`` returns parsed messages, ``Malformed`` values and ``KeepAlive``
    pings.  A framing error (size over ``max_size`` -> status 513, or an
    unreadable Content-Length) sets ``broken``: the stream cannot be
    resynchronised, so the adapter answers if it can and closes the connection.
    """

    def __init__(self, max_size: int = 65535) -> None:
        self.max_size = max_size
        self.broken = False
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Request | Response | Malformed | KeepAlive]:
        if self.broken:
            return []
        self._buf += data
        out: list[Request | Response | Malformed | KeepAlive] = []
        buf = self._buf
        while buf:
            # RFC 5626 §3.5.1 keep-alive ping, and §7.5 CRLFs between messages
            if buf[:1] in (b"\r", b"\n"):
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    out.append(KeepAlive())
                    continue
                if buf in (b"\r", b"\r\n", b"\r\n\r"):
                    break  # maybe the start of a ping: wait for more
                del buf[:1]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_size:
                    out.append(self._fail("headers exceed maximum message size", 513))
                break
            head_len = end + 4
            length = self._content_length(bytes(buf[:end]))
            if length is None:
                out.append(self._fail("unreadable Content-Length on a stream", 400, end))
                break
            total = head_len + length
            if total > self.max_size:
                out.append(self._fail("message exceeds maximum size", 513, end))
                break
            if len(buf) < total:
                break
            msg = _safe_parse(bytes(buf[:total]))
            del buf[:total]
            out.append(msg)
        return out

    def _fail(self, reason: str, status: int, head_end: int | None = None) -> Malformed:
        self.broken = True
        head = bytes(self._buf[: self.max_size if head_end is None else head_end])
        self._buf.clear()
        text = head.decode(ENCODING, ERRORS)
        start, headers, _err = _header_lines(text.replace("\r\n", "\n"))
        return Malformed(reason, _reply_possible(headers), status, start, tuple(headers))

    @staticmethod
    def _content_length(head: bytes) -> int | None:
        """Content-Length from raw header bytes; 0 when absent (lenient, §18.3)."""
        found: set[bytes] = set()
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() in (b"content-length", b"l"):
                found.add(value.strip())
        if not found:
            return 0
        if len(found) > 1:
            return None
        value = found.pop()
        if not value.isdigit() or len(value) > 10:
            return None
        return int(value)


def _safe_parse(data: bytes) -> Request | Response | Malformed:
    try:
        return _parse(data, stream=True)
    except Exception as exc:  # bad input is a value (STYLE §7)
        return Malformed(f"unparseable: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------
# Building responses (§8.2.6) and identifiers


def _response_headers(
    headers: Iterable[tuple[str, str]], status: int, to_tag: str | None, copy_rr: bool
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    keys = _KEYS
    for name, value in headers:
        key = keys.get(name) or header_key(name)
        if key == "to" and to_tag and status > 100 and ";tag=" not in value.replace(" ", ""):
            # §8.2.6.2: the UAS adds a To tag (none on 100 Trying)
            out.append((name, f"{value};tag={to_tag}"))
        elif key in ("via", "from", "call-id", "cseq", "to") or (copy_rr and key == "record-route"):
            out.append((name, value))
    return out


def build_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request`` (§8.2.6): Via, From, To, Call-ID, CSeq copied.

    Record-Route is copied into 101-299 responses to INVITE (§12.1.1).  ``headers``
    (Contact, Allow, ...) are appended, then Content-Type and Content-Length.
    """
    copy_rr = request.method == "INVITE" and 100 < status < 300
    out = _response_headers(request.headers, status, to_tag, copy_rr)
    out.extend(headers)
    if body and content_type:
        out.append(("Content-Type", content_type))
    out.append(("Content-Length", str(len(body))))
    return Response(status, reason or reason_phrase(status), tuple(out), body)


def error_response(malformed: Malformed, to_tag: str | None = None) -> Response | None:
    """The reply to a Malformed request, or None when it must be dropped."""
    if not malformed.reply_possible:
        return None
    out = _response_headers(malformed.headers, malformed.status, to_tag, False)
    out.extend(malformed.extra_headers)
    out.append(("Content-Length", "0"))
    return Response(malformed.status, reason_phrase(malformed.status), tuple(out))


class IdSource:
    """Tags, branches and Call-IDs (§19.3, §8.1.1.7) from an injected random source.

    Tests pass a deterministic ``random_bytes``; production uses ``os.urandom``.
    """

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random_bytes

    def tag(self) -> str:
        return self._random(8).hex()  # §19.3: at least 32 bits of randomness

    def branch(self) -> str:
        return MAGIC_COOKIE + self._random(10).hex()

    def call_id(self, host: str | None = None) -> str:
        ident = self._random(12).hex()
        return f"{ident}@{host}" if host else ident
