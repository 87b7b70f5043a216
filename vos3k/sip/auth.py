"""SIP digest authentication (RFC 2617, 7616, 8760): nonces, verification, suspension."""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from urllib.parse import unquote

from attrs import define, field, frozen

__all__ = [
    "DEFAULT_NONCE_TTL_MS",
    "DEFAULT_REALM",
    "Algorithm",
    "AuthHeader",
    "DigestAuthenticator",
    "DigestCredentials",
    "Malformed",
    "Outcome",
    "Suspension",
    "SuspensionTracker",
    "Verdict",
    "digest_response",
    "format_auth_header",
    "parse_auth_header",
    "parse_credentials",
    "uri_host",
]

DEFAULT_REALM = "vos3k"  # SPEC §10: realm from config, default vos3k
DEFAULT_NONCE_TTL_MS = 300_000  # SPEC §10: nonces valid 300 s, then stale=true

# ---------------------------------------------------------------------------
# Values


class Algorithm(Enum):
    """Digest algorithms vos3k offers and accepts (RFC 8760 §2: SHA-256 preferred)."""

    SHA256 = "SHA-256"
    MD5 = "MD5"


_HASHES = {Algorithm.MD5: "md5", Algorithm.SHA256: "sha256"}
_ALGORITHM_BY_NAME = {a.value.lower(): a for a in Algorithm}


class Outcome(Enum):
    """What the transaction user does with a credentialed request."""

    OK = "ok"  # admit
    STALE = "stale"  # re-challenge with stale=true, not a failure (RFC 7616 §3.3)
    FAILED = "failed"  # 403 (SPEC §10), counted towards suspension


@frozen
class Malformed:
    """An Authorization value that cannot be read; reason is for logs."""

    reason: str


@frozen
class AuthHeader:
    """A parsed challenge or credentials value: scheme plus auth-params.

    Param names are lower-cased (RFC 7616 §3.3: case-insensitive); values are unquoted.
    """

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


@frozen
class DigestCredentials:
    """The fields of a Digest Authorization/Proxy-Authorization value (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None


@frozen
class Suspension:
    """A current suspension, as `blacklist list` shows it (SPEC §2 blacklist kind auth)."""

    value: str  # source IP or digest username
    expires_ms: int
    kind: str = "auth"


@frozen
class Verdict:
    """The result of checking one credentialed request; reason is for logs only."""

    outcome: Outcome
    reason: str
    username: str | None = None
    algorithm: Algorithm | None = None
    new_suspensions: tuple[Suspension, ...] = ()


# ---------------------------------------------------------------------------
# Parsing and formatting (RFC 7235 §2.1 auth-param list, RFC 3261 §25.1 quoted-string)

_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~#$&^|"
)
_WS = " \t\r\n"
# Lenient bare values: broken UAs send e.g. uri=sip:host unquoted; anything visible but
# the delimiters is taken (Postel), the digest check decides what it is worth.
_BARE_STOP = frozenset(_WS + ',"')
_MAX_HEADER_CHARS = 8192


def _is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN_CHARS for c in text)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _read_quoted(text: str, i: int) -> tuple[str, int] | Malformed:
    """Read a quoted-string starting at the opening quote; return (value, next index)."""
    out: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            # RFC 3261 §25.1 quoted-pair: "\" followed by any char but CR/LF
            if i + 1 >= len(text) or text[i + 1] in "\r\n":
                return Malformed("bad quoted-pair")
            out.append(text[i + 1])
            i += 2
            continue
        if (ord(c) < 0x20 and c not in "\t\r\n") or c == "\x7f":
            return Malformed("control character in quoted-string")
        out.append(c)
        i += 1
    return Malformed("unterminated quoted-string")


def parse_auth_header(value: str) -> AuthHeader | Malformed:
    """Parse `scheme auth-param *("," auth-param)`; never raises."""
    if not isinstance(value, str):
        return Malformed("not text")
    if len(value) > _MAX_HEADER_CHARS:
        return Malformed("too long")
    i = _skip_ws(value, 0)
    start = i
    while i < len(value) and value[i] in _TOKEN_CHARS:
        i += 1
    scheme = value[start:i]
    if not scheme:
        return Malformed("no auth scheme")
    if i < len(value) and value[i] not in _WS:
        return Malformed("bad auth scheme")
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    expect_param = True  # after the scheme or a comma
    while True:
        i = _skip_ws(value, i)
        if i >= len(value):
            break
        if value[i] == ",":  # RFC 7230 §7: empty list elements are ignored
            expect_param = True
            i += 1
            continue
        if not expect_param:
            return Malformed("missing comma between auth-params")
        start = i
        while i < len(value) and value[i] in _TOKEN_CHARS:
            i += 1
        name = value[start:i].lower()
        if not name:
            return Malformed("bad auth-param name")
        i = _skip_ws(value, i)
        if i >= len(value) or value[i] != "=":
            return Malformed(f"auth-param {name} without value")
        i = _skip_ws(value, i + 1)
        if i < len(value) and value[i] == '"':
            read = _read_quoted(value, i)
            if isinstance(read, Malformed):
                return read
            param_value, i = read
        else:
            start = i
            while i < len(value) and value[i] not in _BARE_STOP:
                i += 1
            param_value = value[start:i]
            if not param_value:
                return Malformed(f"auth-param {name} with empty value")
        if name in seen:  # RFC 7616 §3.4: each directive at most once
            return Malformed(f"auth-param {name} repeated")
        seen.add(name)
        params.append((name, param_value))
        expect_param = False
    return AuthHeader(scheme, tuple(params))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_auth_header(
    scheme: str,
    params: Sequence[tuple[str, str]],
    bare: Iterable[str] = ("algorithm", "stale", "nc"),
) -> str:
    """Serialise an auth header value; names in `bare` go unquoted when they are tokens."""
    bare_names = frozenset(bare)
    parts = [
        f"{name}={value}" if name in bare_names and _is_token(value) else f"{name}={_quote(value)}"
        for name, value in params
    ]
    return f"{scheme} " + ", ".join(parts)


_REQUIRED = ("realm", "nonce", "uri", "response")


def parse_credentials(value: str) -> DigestCredentials | Malformed:
    """Parse a Digest Authorization or Proxy-Authorization header value; never raises."""
    header = parse_auth_header(value)
    if isinstance(header, Malformed):
        return header
    if header.scheme.lower() != "digest":
        return Malformed(f"scheme {header.scheme} is not Digest")
    username = header.get("username")
    extended = header.get("username*")
    if username is None and extended is not None:
        # RFC 7616 §3.4.4 / RFC 5987 ext-value: UTF-8''percent-encoded
        charset, sep, rest = extended.partition("''")
        if not sep or charset.lower() != "utf-8":
            return Malformed("bad username*")
        try:
            username = unquote(rest, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return Malformed("bad username*")
    elif extended is not None:
        return Malformed("both username and username*")  # RFC 7616 §3.4.4
    if username is None:
        return Malformed("no username")
    missing = [name for name in _REQUIRED if header.get(name) is None]
    if missing:
        return Malformed("missing " + ",".join(missing))
    return DigestCredentials(
        username=username,
        realm=header.get("realm") or "",
        nonce=header.get("nonce") or "",
        uri=header.get("uri") or "",
        response=header.get("response") or "",
        algorithm=header.get("algorithm"),
        cnonce=header.get("cnonce"),
        opaque=header.get("opaque"),
        qop=header.get("qop"),
        nc=header.get("nc"),
    )


def uri_host(uri: str) -> str | None:
    """The host of a sip:/sips: URI, lower-cased, IPv6 brackets removed; None if none."""
    scheme, sep, rest = uri.strip().partition(":")
    if not sep or scheme.lower() not in ("sip", "sips"):
        return None
    # RFC 3261 §19.1.1: [userinfo "@"] hostport *uri-parameter ["?" headers]
    hostport = rest.split(";", 1)[0].split("?", 1)[0]
    hostport = hostport.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end] if end > 1 else ""
    else:
        host = hostport.split(":", 1)[0]
    return host.lower() or None


# ---------------------------------------------------------------------------
# Digest arithmetic (RFC 7616 §3.4.1-§3.4.3; RFC 2617 §3.2.2 for the no-qop form)


def _h(algorithm: Algorithm, text: str) -> str:
    return hashlib.new(_HASHES[algorithm], text.encode("utf-8")).hexdigest()


def digest_response(
    algorithm: Algorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The request-digest a client with `password` would send (lower-case hex)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:  # RFC 2069 compatibility, RFC 2617 §3.2.2.1
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# ---------------------------------------------------------------------------
# Suspension (SPEC §10)


@define
class SuspensionTracker:
    """Failure counts per source IP and per user, and the suspensions they cause.

    A failure at t counts while now < t + window; MAX_RETRY counts in the window suspend
    the key until now + window. Counts and suspensions each keep at most `max_keys` keys.
    """

    max_keys: int = 65_536
    _failures: dict[tuple[str, str], deque[int]] = field(factory=dict)
    _suspended: dict[tuple[str, str], int] = field(factory=dict)

    def is_suspended(self, kind: str, value: str, now_ms: int) -> bool:
        until = self._suspended.get((kind, value))
        if until is None:
            return False
        if now_ms < until:
            return True
        del self._suspended[(kind, value)]
        return False

    def record_failure(
        self, kind: str, value: str, now_ms: int, max_retry: int, window_s: int
    ) -> Suspension | None:
        """Count one failure; return the suspension it starts, if it starts one."""
        key = (kind, value)
        window_ms = window_s * 1000
        times = self._failures.pop(key, None)
        if times is None:
            self._make_room()
            times = deque(maxlen=100)  # SPEC §9: MAX_RETRY is at most 100
        while times and times[0] + window_ms <= now_ms:
            times.popleft()
        times.append(now_ms)
        self._failures[key] = times  # re-insert: dict order is least recently failed first
        if len(times) < max_retry:
            return None
        del self._failures[key]
        if len(self._suspended) >= self.max_keys:
            self._purge_suspended(now_ms)
        while len(self._suspended) >= self.max_keys:
            # Still full: the soonest-ending suspension goes first (a lift, never a ban).
            del self._suspended[min(self._suspended, key=self._suspended.__getitem__)]
        self._suspended[key] = now_ms + window_ms
        return Suspension(value, now_ms + window_ms)

    def clear(self, kind: str, value: str) -> None:
        self._failures.pop((kind, value), None)

    def lift(self, value: str) -> bool:
        """Remove suspensions and counts of `value` (an admin's `blacklist del`)."""
        found = False
        for kind in ("ip", "user"):
            found = self._suspended.pop((kind, value), None) is not None or found
            self._failures.pop((kind, value), None)
        return found

    def listing(self, now_ms: int) -> list[Suspension]:
        self._purge_suspended(now_ms)
        return sorted(
            (Suspension(value, until) for (_, value), until in self._suspended.items()),
            key=lambda s: (s.expires_ms, s.value),
        )

    def _purge_suspended(self, now_ms: int) -> None:
        for key in [k for k, until in self._suspended.items() if until <= now_ms]:
            del self._suspended[key]

    def _make_room(self) -> None:
        if len(self._failures) < self.max_keys:
            return
        # Oldest-failing keys first; they are the likeliest to have lapsed anyway.
        for key in list(self._failures)[: max(1, self.max_keys // 8)]:
            del self._failures[key]


# ---------------------------------------------------------------------------
# Nonces: timestamp + salt + HMAC(secret, timestamp, salt, source ip)

_TS_BYTES = 8
_SALT_BYTES = 6
_MAC_BYTES = 16
_NONCE_BYTES = _TS_BYTES + _SALT_BYTES + _MAC_BYTES


@define
class _NonceUse:
    """Nonce counts already accepted for one nonce (RFC 7616 §3.4: nc detects replays)."""

    expires_ms: int
    seen: set[int] = field(factory=set)
    floor: int = -1  # counts at or below this were forgotten: treated as used


@define
class DigestAuthenticator:
    """Challenges and verifies digest credentials for one realm.

    `secret` keys the nonce MAC; a fresh one after a restart makes old nonces fail the MAC,
    and a request whose digest is still right is answered STALE, so clients re-authenticate
    without a failure being counted.
    """

    secret: bytes = field(repr=False)
    realm: str = DEFAULT_REALM
    nonce_ttl_ms: int = DEFAULT_NONCE_TTL_MS
    max_tracked_nonces: int = 100_000
    max_counts_per_nonce: int = 64
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    suspensions: SuspensionTracker = field(factory=SuspensionTracker)
    _uses: dict[str, _NonceUse] = field(factory=dict)
    _expiry_heap: list[tuple[int, str]] = field(factory=list)
    _forgotten_before_ms: int = -1  # nonces issued at or before this were evicted
    _dummy_password: str = field(factory=lambda: secrets.token_hex(16), repr=False)

    # -- challenges ----------------------------------------------------------

    @property
    def opaque(self) -> str:
        """A server constant the client echoes (RFC 7616 §3.3); derived, so no state."""
        mac = hmac.new(self.secret, b"vos3k-opaque\0" + self.realm.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def make_nonce(self, source_ip: str, now_ms: int) -> str:
        ts = now_ms.to_bytes(_TS_BYTES, "big", signed=False)
        salt = self.random_bytes(_SALT_BYTES)
        raw = ts + salt + self._mac(ts, salt, source_ip)
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def challenge(
        self, source_ip: str, now_ms: int, *, proxy: bool, stale: bool = False
    ) -> list[tuple[str, str]]:
        """Header (name, value) pairs for a 401 (proxy=False) or 407 (proxy=True).

        One challenge per algorithm, SHA-256 first (RFC 8760 §2.4, RFC 7616 §3.7). Nothing
        depends on the user, so known and unknown users see the same shape (SPEC §10).
        """
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self.make_nonce(source_ip, now_ms)
        headers = []
        for algorithm in (Algorithm.SHA256, Algorithm.MD5):
            params = [
                ("realm", self.realm),
                ("nonce", nonce),
                ("opaque", self.opaque),
                ("algorithm", algorithm.value),
                ("qop", "auth"),
            ]
            if stale:
                params.append(("stale", "true"))
            headers.append((name, format_auth_header("Digest", params)))
        return headers

    # -- verification --------------------------------------------------------

    def verify(
        self,
        *,
        method: str,
        request_uri: str,
        header_value: str,
        source_ip: str,
        now_ms: int,
        password_of: Callable[[str], str | None],
        is_own_host: Callable[[str], bool],
        max_retry: int,
        suspend_s: int,
    ) -> Verdict:
        """Check one Authorization/Proxy-Authorization value.

        `password_of(username)` gives the stored password or None; `is_own_host(host)`
        says whether a host (lower-case, no brackets) is one of this server's addresses or
        domains. `max_retry`/`suspend_s` are the live SS_AUTHENTICATION_MAX_RETRY and
        SS_AUTHENTICATION_FAILED_SUSPEND.
        """
        creds = parse_credentials(header_value)
        if isinstance(creds, Malformed):
            return self._fail(
                f"malformed: {creds.reason}", None, source_ip, now_ms, max_retry, suspend_s
            )
        user = creds.username
        # SPEC §10: while suspended, even the right password gets the wrong-password 403;
        # such requests are not counted again, so the suspension ends when it says.
        if self.suspensions.is_suspended("ip", source_ip, now_ms) or self.suspensions.is_suspended(
            "user", user, now_ms
        ):
            return Verdict(Outcome.FAILED, "suspended", user)
        algorithm = _ALGORITHM_BY_NAME.get((creds.algorithm or "MD5").lower())
        problem = self._check_fields(creds, algorithm, request_uri, is_own_host)
        if problem is not None or algorithm is None:
            return self._fail(
                problem or "unsupported algorithm", user, source_ip, now_ms, max_retry, suspend_s
            )
        # Unknown users are checked against a random password on the same path, so the
        # answer and its cost do not tell whether the user exists (SPEC §10).
        stored = password_of(user)
        expected = digest_response(
            algorithm,
            username=user,
            realm=self.realm,
            password=stored if stored is not None else self._dummy_password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        digest_ok = _same(expected, creds.response.lower()) and stored is not None
        if not digest_ok:
            reason = "unknown user" if stored is None else "wrong password"
            return self._fail(reason, user, source_ip, now_ms, max_retry, suspend_s)
        # The digest proves the password; a nonce that is not good now only asks for a
        # fresh one (RFC 7616 §3.3 stale: "nonce invalid but with a valid digest").
        stale_reason = self._use_nonce(creds, source_ip, now_ms)
        if stale_reason is not None:
            return Verdict(Outcome.STALE, stale_reason, user, algorithm)
        self.suspensions.clear("user", user)  # SPEC §10: a success clears the user's count
        return Verdict(Outcome.OK, "ok", user, algorithm)

    def next_deadline_ms(self) -> int | None:
        """When the oldest tracked nonce expires (its counts can then be dropped)."""
        return self._expiry_heap[0][0] if self._expiry_heap else None

    def purge(self, now_ms: int) -> None:
        """Forget nonce counts of nonces that have expired (they can only be STALE now)."""
        while self._expiry_heap and self._expiry_heap[0][0] <= now_ms:
            _, nonce = heapq.heappop(self._expiry_heap)
            self._uses.pop(nonce, None)

    # -- internals -----------------------------------------------------------

    def _fail(
        self,
        reason: str,
        user: str | None,
        source_ip: str,
        now_ms: int,
        max_retry: int,
        suspend_s: int,
    ) -> Verdict:
        started = [self.suspensions.record_failure("ip", source_ip, now_ms, max_retry, suspend_s)]
        if user is not None:
            started.append(
                self.suspensions.record_failure("user", user, now_ms, max_retry, suspend_s)
            )
        return Verdict(Outcome.FAILED, reason, user, new_suspensions=tuple(s for s in started if s))

    def _check_fields(
        self,
        creds: DigestCredentials,
        algorithm: Algorithm | None,
        request_uri: str,
        is_own_host: Callable[[str], bool],
    ) -> str | None:
        if algorithm is None:
            return f"unsupported algorithm {creds.algorithm}"
        if creds.realm != self.realm:
            return "wrong realm"
        if creds.opaque is not None and not _same(creds.opaque, self.opaque):
            return "wrong opaque"
        if creds.qop is not None:
            if creds.qop.lower() != "auth":
                return f"unsupported qop {creds.qop}"
            if creds.cnonce is None or _parse_nc(creds.nc) is None:
                return "qop=auth without cnonce or valid nc"
        if creds.uri != request_uri:
            # SPEC §10 / INTERFACE §6: another uri is fine when its host is ours (any port)
            host = uri_host(creds.uri)
            if host is None or not is_own_host(host):
                return "digest uri does not match request"
        return None

    def _mac(self, ts: bytes, salt: bytes, source_ip: str) -> bytes:
        msg = ts + salt + b"\0" + source_ip.encode("utf-8", "surrogateescape")
        return hmac.new(self.secret, msg, hashlib.sha256).digest()[:_MAC_BYTES]

    def _use_nonce(self, creds: DigestCredentials, source_ip: str, now_ms: int) -> str | None:
        """Accept the nonce and its count once; the reason it is stale otherwise."""
        try:
            raw = base64.urlsafe_b64decode(creds.nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return "nonce not ours"
        if len(raw) != _NONCE_BYTES:
            return "nonce not ours"
        ts, salt, mac = raw[:_TS_BYTES], raw[_TS_BYTES:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(ts, salt, source_ip)):
            return "nonce not issued to this source"
        issued_ms = int.from_bytes(ts, "big")
        expires_ms = issued_ms + self.nonce_ttl_ms
        if now_ms >= expires_ms or issued_ms > now_ms:
            return "nonce expired"
        if issued_ms <= self._forgotten_before_ms:
            return "nonce counts forgotten"
        # No qop (RFC 2069): no nc, so a nonce is good for one request.
        count = 0 if creds.qop is None else _parse_nc(creds.nc)
        assert count is not None  # _check_fields vetted it
        use = self._uses.get(creds.nonce)
        if use is None:
            self.purge(now_ms)
            self._make_room()
            use = _NonceUse(expires_ms)
            self._uses[creds.nonce] = use
            heapq.heappush(self._expiry_heap, (expires_ms, creds.nonce))
        if count <= use.floor or count in use.seen:
            return "nonce count replayed"
        use.seen.add(count)
        if len(use.seen) > self.max_counts_per_nonce:
            use.floor = min(use.seen)
            use.seen.discard(use.floor)
        return None

    def _make_room(self) -> None:
        while len(self._uses) >= self.max_tracked_nonces and self._expiry_heap:
            expires_ms, nonce = heapq.heappop(self._expiry_heap)
            self._uses.pop(nonce, None)
            # A forgotten nonce must not become reusable: refuse every nonce issued up to it.
            self._forgotten_before_ms = max(
                self._forgotten_before_ms, expires_ms - self.nonce_ttl_ms
            )


def _same(a: str, b: str) -> bool:
    """Constant-time text comparison; compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _parse_nc(nc: str | None) -> int | None:
    # RFC 7616 §3.4: nc is exactly 8 hex digits
    if nc is None or len(nc) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc):
        return None
    return int(nc, 16)
