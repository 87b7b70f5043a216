"""SIP, SIPS, tel and absolute URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118), sans-IO.

Public API:

- ``parse_uri(text) -> Uri | UriError``: never raises on bad input.
- ``Uri``: frozen value; ``str(uri)`` formats it back.  ``user``, ``password``,
  parameter and header values are kept *escaped* as received, so formatting is
  faithful; ``unescape()`` decodes ``%HH`` when a caller needs the plain text.
- ``parse_params(text) -> tuple[(name, value | None), ...]``: the ``;name=value``
  sequence used by URIs, Via, name-addr and most other headers.  Raises
  ``ValueError`` (internal helper for header parsers).
- ``format_host(host)``: puts brackets back around an IPv6 literal.

Hosts are returned without brackets (``2001:db8::1``); ``Uri.hostport`` adds
them back, as RFC 5118 §4.1 requires on the wire.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote_to_bytes

import attrs
from attrs import frozen

__all__ = [
    "Uri",
    "UriError",
    "format_host",
    "parse_host",
    "parse_params",
    "parse_uri",
    "unescape",
]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN_RE = re.compile(rf"[{TOKEN_CHARS}]+\Z")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
# user = 1*( unreserved / escaped / user-unreserved ) (§25.1)
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+\Z")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?\Z")
# paramchar = param-unreserved / unreserved / escaped (§25.1); "[" and "]" for IPv6 maddr
_PARAMCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+\Z")
_HCHARS_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*\Z")
# tel: global or local number with visual separators (RFC 3966 §3), kept lenient
_BAD_URI_CHARS = re.compile(r'[ \t\r\n<>"]')
_TEL_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+\Z")


@frozen
class UriError:
    """A URI that does not parse; ``reason`` says why."""

    reason: str


@frozen
class Uri:
    """A parsed URI.  For schemes other than sip/sips/tel only ``opaque`` is set."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str = ""

    @property
    def hostport(self) -> str:
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` ('' for a flag), None when absent."""
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        return self.param(name) is not None

    def with_params(self, **changes: str | None) -> Uri:
        """A copy with parameters set (value None = flag); existing ones replaced in place."""
        params = list(self.params)
        for name, value in changes.items():
            lname = name.lower()
            for i, (key, _old) in enumerate(params):
                if key.lower() == lname:
                    params[i] = (key, value)
                    break
            else:
                params.append((name, value))
        return _evolve(self, params=tuple(params))

    def without_params(self, *names: str) -> Uri:
        drop = {n.lower() for n in names}
        return _evolve(self, params=tuple(p for p in self.params if p[0].lower() not in drop))

    def __str__(self) -> str:
        if self.opaque or self.scheme not in ("sip", "sips", "tel"):
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.scheme == "tel":
            out.append(self.user or "")
        else:
            if self.user is not None:
                out.append(self.user)
                if self.password is not None:
                    out += [":", self.password]
                out.append("@")
            out.append(self.hostport)
        for key, value in self.params:
            out += [";", key] if value is None else [";", key, "=", value]
        if self.headers:
            out.append("?")
            out.append("&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(out)


def _evolve(uri: Uri, **changes: object) -> Uri:
    return attrs.evolve(uri, **changes)


def unescape(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2); undecodable bytes become U+FFFD."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "replace")


def format_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URI, Via or SDP-free context (RFC 5118 §4.1)."""
    return f"[{host}]" if ":" in host else host


def parse_host(text: str) -> str:
    """Validate a host (hostname, IPv4, or bracketed IPv6) and return it unbracketed.

    Raises ValueError.
    """
    if not text:
        raise ValueError("empty host")
    if text[0] == "[":
        if text[-1] != "]":
            raise ValueError("unterminated IPv6 reference")
        inner = text[1:-1]
        # RFC 5118 §4.8/§4.9: the ABNF-bug 3-colon form is rejected by a real IPv6 check
        ipaddress.IPv6Address(inner)
        return inner
    if not _HOSTNAME_RE.match(text):
        raise ValueError(f"bad host {text!r}")
    return text


def _split_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` -> (host, port).  Raises ValueError."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and rest[0] != ":":
            raise ValueError("junk after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
            raise ValueError(f"bad port {port_text!r}")
        port = int(port_text)
        if port > 65535:
            raise ValueError(f"port {port} out of range")
    return parse_host(host), port


def parse_params(text: str, *, uri: bool = False) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;a=b;c`` (leading ';' required unless empty).  Raises ValueError.

    Header parameters allow LWS around ';' and '=' and quoted-string values
    (§7.3.1, §25.1 generic-param); URI parameters (``uri=True``) allow neither.
    """
    if not text:
        return ()
    params: list[tuple[str, str | None]] = []
    if uri:
        if text[0] != ";":
            raise ValueError("parameters must start with ';'")
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            if not _PARAMCHARS_RE.match(name) or (eq and not _PARAMCHARS_RE.match(value)):
                raise ValueError(f"bad URI parameter {item!r}")
            params.append((name, value if eq else None))
        return tuple(params)
    if _SIMPLE_PARAMS_RE.match(text):
        # the common case (no LWS, no quoted values): what _header_params_careful returns
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            params.append((name, value if eq else None))
        return tuple(params)
    return _header_params_careful(text)


def _header_params_careful(text: str) -> tuple[tuple[str, str | None], ...]:
    """parse_params for header parameters, character by character (LWS, quoted values)."""
    params: list[tuple[str, str | None]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise ValueError(f"expected ';' at {text[i : i + 10]!r}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        start = i
        while i < n and text[i] not in "=; \t":
            i += 1
        name = text[start:i]
        if not TOKEN_RE.match(name):
            raise ValueError(f"bad parameter name {name!r}")
        while i < n and text[i] in " \t":
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                end = quoted_string_end(text, i)
                value = text[i:end]
                i = end
            else:
                start = i
                while i < n and text[i] not in "; \t":
                    i += 1
                value = text[start:i]
                if not value or not _PARAM_VALUE_RE.match(value):
                    raise ValueError(f"bad value for parameter {name!r}")
        params.append((name, value))
    return tuple(params)


# gen-value = token / host / quoted-string (§25.1): token chars plus IPv6 reference chars
_PARAM_VALUE_RE = re.compile(rf"[{TOKEN_CHARS}\[\]:]+\Z")
# ;token[=gen-value] repeated, without LWS or quoted strings (parse_params' fast path)
_SIMPLE_PARAMS_RE = re.compile(rf"(?:;[{TOKEN_CHARS}]+(?:=[{TOKEN_CHARS}\[\]:]+)?)+\Z")


def quoted_string_end(text: str, start: int) -> int:
    """Index just past the quoted-string starting at ``text[start] == '"'``.

    Honours backslash quoted-pairs (§25.1).  Raises ValueError when unterminated.
    """
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise ValueError("unterminated quoted string")


# Parsed values are frozen, so one text always gives an equal value: a call's
# messages repeat the same URIs (From, To, Contact, Request-URI) several times.
# Bounded: the texts come from the network, so the table is emptied when full.
MEMO_MAX = 4096
_URI_MEMO: dict[str, Uri | UriError] = {}


def parse_uri(text: str) -> Uri | UriError:
    """Parse a URI; never raises."""
    found = _URI_MEMO.get(text)
    if found is not None:
        return found
    try:
        found = _parse_uri(text)
    except ValueError as exc:
        found = UriError(str(exc))
    if len(_URI_MEMO) >= MEMO_MAX:
        _URI_MEMO.clear()
    _URI_MEMO[text] = found
    return found


def _parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise ValueError(f"no scheme in {text[:40]!r}")
    scheme = scheme.lower()
    if not rest or any(c in rest for c in ' \t\r\n<>"'):
        raise ValueError(f"bad characters in URI {text[:40]!r}")
    if scheme == "tel":
        number, _, ptext = rest.partition(";")
        if not _TEL_RE.match(number):
            raise ValueError(f"bad telephone number {number!r}")
        return Uri(scheme, user=number, params=parse_params(";" + ptext, uri=True) if ptext else ())
    if scheme not in ("sip", "sips"):
        return Uri(scheme, opaque=rest)
    # '@' is legal only in userinfo: params and headers must escape it (§25.1)
    at = rest.rfind("@")
    user = password = None
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not _USER_RE.match(user):
            raise ValueError(f"bad user part {user!r}")
        if colon:
            if not _PASSWORD_RE.match(pw):
                raise ValueError("bad password")
            password = pw
    rest, qmark, htext = rest.partition("?")
    semi = rest.find(";")
    hostport, ptext = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
    host, port = _split_hostport(hostport)
    params = parse_params(ptext, uri=True) if ptext else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        items = []
        for item in htext.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not _HCHARS_RE.match(name) or not _HCHARS_RE.match(value):
                raise ValueError(f"bad URI header {item!r}")
            items.append((name, value))
        headers = tuple(items)
    return Uri(scheme, user, password, host, port, params, headers)
