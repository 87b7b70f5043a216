"""The RAS gatekeeper of SPEC §11's table (H.225.0 §7, §8.1), sans-IO.

`Gatekeeper.handle(event, now_ms) -> effects` answers each request with one confirm
or reject; `next_deadline_ms()` is the earliest registration to probe or drop. The
switch's rules come in as injected callables, so the core stays pure:
- `allowed(ip)`: SPEC §10 ACL/blacklist for GRQ;
- `authorize(ip, port)`: RRQ from an h323 mapping gateway (SPEC §11);
- `admit(AdmissionQuery)`: SPEC §3 steps 3-8 plus "a route exists"; returns None to
  confirm or the end reason that refuses, mapped here to the ARJ reason of the table;
- `password_of(e164)`: the password of an enabled provisioned phone, else None: an RRQ
  that is not from a mapping gateway registers a phone only with a valid H.235 password
  token for that alias (SPEC §11 RRQ row), checked here (`check_phone_token`);
- `suspensions`: optionally the SIP digest's `SuspensionTracker`, so failed tokens count
  toward the same SS_AUTHENTICATION_MAX_RETRY suspensions (SPEC §10).
Registrations (per endpoint: REGISTERED -> PROBING -> gone) follow one transition table.
Every admitted call is gatekeeper-routed: the ACF points at vos3k's call-signalling
address (SPEC §11 "routed via vos3k").
"""

from __future__ import annotations

import enum
import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

from attrs import define, evolve, field, frozen

from vos3k.h323.h225 import Alias, AliasKind, Malformed, TransportAddress
from vos3k.h323.ras import (
    MD5_OID,
    CatToken,
    PwdHash,
    RasKind,
    RasMessage,
    cat_challenge,
    pwd_hash_digest,
)

# H.225.0 Appendix (RAS timers): a response is due within 3 s, retried twice; an IRQ
# at expiry gets that long for its IRR before the registration is dropped.
IRR_GRACE_MS = 9_000
DEFAULT_BANDWIDTH = 1280  # 128 kbit/s in 100 bit/s units (two G.711 directions)
# H.235 tokens carry the sender's clock (TimeStamp, UTC seconds); one further off than
# this is refused, and a token is remembered this long so its replay is caught.
TOKEN_WINDOW_S = 300
MAX_REMEMBERED_TOKENS = 65_536  # replay memory bound (a flood evicts the oldest first)


@frozen
class GkSettings:
    gatekeeper_id: str  # SS_H323_GATEKEEPER_ID
    ttl_s: int  # SS_ENDPOINTTIMETOLIVE
    ras_address: TransportAddress
    signal_address: TransportAddress  # where ACF sends admitted calls (vos3k's 1720)
    auth_max_retry: int = 6  # SS_AUTHENTICATION_MAX_RETRY
    auth_suspend_s: int = 180  # SS_AUTHENTICATION_FAILED_SUSPEND
    token_window_s: int = TOKEN_WINDOW_S


@frozen
class AdmissionQuery:
    """An ARQ as the switch's admission sees it (SPEC §3 steps 3-8)."""

    endpoint: Endpoint
    caller: str
    callee: str
    answer_call: bool
    call_identifier: bytes | None


@frozen
class Endpoint:
    """One registration (RCF'd RRQ)."""

    endpoint_id: str
    source: TransportAddress  # where its RAS datagrams come from (NAT-safe reply address)
    aliases: tuple[Alias, ...]
    call_signal_addresses: tuple[TransportAddress, ...]
    expires_ms: int
    phone: str | None = None  # the provisioned phone's E.164 its H.235 token proved

    @property
    def signal_address(self) -> TransportAddress:
        """Where vos3k places calls to it (ip=dynamic routing, SPEC §2)."""
        if self.call_signal_addresses:
            return self.call_signal_addresses[0]
        return TransportAddress(self.source.host, 1720)


# ---------------------------------------------------------------- events and effects


@frozen
class RasReceived:
    message: RasMessage | Malformed
    source: TransportAddress


@frozen
class Tick:
    """The adapter's timer fired."""


@frozen
class SendRas:
    message: RasMessage
    to: TransportAddress


@frozen
class Registered:
    endpoint: Endpoint


@frozen
class Unregistered:
    endpoint: Endpoint
    why: str  # "urq" | "expired"


@frozen
class Dropped:
    reason: str


@frozen
class AuthFailed:
    """An RRQ refused for its H.235 token (for the log; SPEC §10 lists suspensions)."""

    alias: str
    source: TransportAddress
    reason: str
    new_suspensions: tuple[Any, ...] = ()  # sip.auth.Suspension values it started


GkEffect = SendRas | Registered | Unregistered | Dropped | AuthFailed


# ---------------------------------------------------------------- H.235 password tokens


class TokenCheck(enum.Enum):
    OK = "ok"
    BAD = "bad"  # wrong hash, unknown or disabled phone, alias not the RRQ's: counted
    STALE = "stale"  # timestamp outside the window (a clock, not a guess: not counted)
    REPLAY = "replay"  # a token already accepted, from another request


@frozen
class TokenVerdict:
    check: TokenCheck
    alias: str  # the phone the token names ("" when it names none)
    replay_key: tuple[Any, ...] = ()


_DUMMY_PASSWORD = os.urandom(16).hex()  # unknown aliases are hashed like known ones


def phone_passwords(phones: Callable[[], Mapping[str, Any]]) -> Callable[[str], str | None]:
    """`password_of` over the store's phones (models.Phone by E.164, read at each call
    because admin changes replace the index): a disabled phone has none (SPEC §11)."""

    def password_of(e164: str) -> str | None:
        phone = phones().get(e164)
        return phone.password if phone is not None and phone.enabled else None

    return password_of


def check_phone_token(
    message: RasMessage, password_of: Callable[[str], str | None], now_ms: int, window_s: int
) -> TokenVerdict | None:
    """Verify the first H.235 password token of `message` (None: it carries none).

    cryptoEPPwdHash: MD5 over the ClearToken PER (ras.pwd_hash_digest), as H323Plus's
    H235AuthSimpleMD5 builds and GnuGk's SimplePasswordAuth checks it; CAT ClearToken:
    MD5(random, password, timestamp) (ras.cat_challenge, H235AuthCAT). As GnuGk does with
    CheckID, the token's alias must be one of the RRQ's own aliases. Unknown and disabled
    phones go through the same hash with a random password, so the answer and its cost do
    not tell which aliases exist (SPEC §10's rule for digest, kept for RAS).
    """
    token: PwdHash | CatToken
    if message.crypto_tokens:
        token = message.crypto_tokens[0]
        alias = token.alias.value
    elif message.clear_tokens:
        token = message.clear_tokens[0]
        alias = token.general_id.rstrip("\x00")
    else:
        return None
    stored = password_of(alias)
    password = stored if stored is not None else _DUMMY_PASSWORD
    try:
        if isinstance(token, PwdHash):
            expected = pwd_hash_digest(alias, password, token.timestamp)
            sent, ok_algorithm = token.digest, token.algorithm == MD5_OID
            key: tuple[Any, ...] = ("md5", alias, token.timestamp, token.digest)
        else:
            expected = cat_challenge(token.random, password, token.timestamp)
            sent, ok_algorithm = token.challenge, -127 <= token.random <= 255
            key = ("cat", alias, token.timestamp, token.random)
    except ValueError:  # an alias or timestamp no ClearToken can carry
        return TokenVerdict(TokenCheck.BAD, alias)
    matches = hmac.compare_digest(expected, sent)
    own_alias = any(a.value == alias for a in message.aliases)
    if not (matches and ok_algorithm and own_alias and stored is not None):
        return TokenVerdict(TokenCheck.BAD, alias)
    if abs(now_ms // 1000 - token.timestamp) > window_s:
        return TokenVerdict(TokenCheck.STALE, alias)
    return TokenVerdict(TokenCheck.OK, alias, key)


# ---------------------------------------------------------------- registration table


class Reg(enum.Enum):
    NONE = "none"
    REGISTERED = "registered"
    PROBING = "probing"  # TTL passed, IRQ sent, waiting for IRR


class RegInput(enum.Enum):
    FULL_RRQ = "full_rrq"
    KEEPALIVE_RRQ = "keepalive_rrq"
    IRR = "irr"
    URQ = "urq"
    EXPIRED = "expired"


class RegAction(enum.Enum):
    CONFIRM = "confirm"  # RCF, TTL renewed
    REJECT_FULL = "reject_full"  # RRJ fullRegistrationRequired
    RENEW = "renew"  # IRR: one more TTL
    UNREGISTER = "unregister"  # UCF, binding removed
    REJECT_URQ = "reject_urq"  # URJ notCurrentlyRegistered
    PROBE = "probe"  # IRQ out, grace deadline
    DROP = "drop"  # silence after IRQ: binding removed


_R, _RI, _RA = Reg, RegInput, RegAction
# H.225.0 §7.9 (RRQ, lightweight keepAlive), §7.10 (URQ), §7.15 (IRQ/IRR); SPEC §11.
REGISTRATION: dict[tuple[Reg, RegInput], tuple[Reg, RegAction]] = {
    (_R.NONE, _RI.FULL_RRQ): (_R.REGISTERED, _RA.CONFIRM),
    (_R.NONE, _RI.KEEPALIVE_RRQ): (_R.NONE, _RA.REJECT_FULL),
    (_R.NONE, _RI.URQ): (_R.NONE, _RA.REJECT_URQ),
    (_R.REGISTERED, _RI.FULL_RRQ): (_R.REGISTERED, _RA.CONFIRM),
    (_R.REGISTERED, _RI.KEEPALIVE_RRQ): (_R.REGISTERED, _RA.CONFIRM),
    (_R.REGISTERED, _RI.IRR): (_R.REGISTERED, _RA.RENEW),
    (_R.REGISTERED, _RI.URQ): (_R.NONE, _RA.UNREGISTER),
    (_R.REGISTERED, _RI.EXPIRED): (_R.PROBING, _RA.PROBE),
    (_R.PROBING, _RI.FULL_RRQ): (_R.REGISTERED, _RA.CONFIRM),
    (_R.PROBING, _RI.KEEPALIVE_RRQ): (_R.REGISTERED, _RA.CONFIRM),
    (_R.PROBING, _RI.IRR): (_R.REGISTERED, _RA.RENEW),
    (_R.PROBING, _RI.URQ): (_R.NONE, _RA.UNREGISTER),
    (_R.PROBING, _RI.EXPIRED): (_R.NONE, _RA.DROP),
}

# SPEC §11 ARQ row: end reason that refused -> ARJ rejectReason.
ARJ_REASONS = {6: "calledPartyNotRegistered", 18: "resourceUnavailable",
               19: "resourceUnavailable", 22: "resourceUnavailable"}  # fmt: skip


@define
class _Registration:
    endpoint: Endpoint
    state: Reg = Reg.REGISTERED
    deadline_ms: int = 0
    irq_seq: int = 0


@define
class Gatekeeper:
    settings: GkSettings
    allowed: Callable[[str], bool]
    authorize: Callable[[str, int], bool]
    admit: Callable[[AdmissionQuery], int | None]
    password_of: Callable[[str], str | None] = lambda _e164: None
    suspensions: Any | None = None  # sip.auth.SuspensionTracker, shared with SIP digest
    registrations: dict[str, _Registration] = field(factory=dict)
    calls: dict[bytes, str] = field(factory=dict)  # ARQ'd callIdentifier -> endpoint id
    next_id: int = 1
    next_seq: int = 1
    dropped: int = 0
    # accepted token -> (source, forget at). A token again from the socket that first
    # sent it is a retransmitted RRQ (H.225.0 §7.x retries) or a re-registration within
    # the same second (an MD5 token has no random): it can only bind the phone where it
    # already is. From anywhere else it is a replay, which would steal the phone's calls.
    seen_tokens: dict[tuple[Any, ...], tuple[TransportAddress, int]] = field(factory=dict)

    # -- public ----------------------------------------------------------------------

    def endpoints(self) -> tuple[Endpoint, ...]:
        """Registered endpoints, for routing gateways with ip=dynamic (SPEC §2)."""
        return tuple(r.endpoint for r in self.registrations.values() if r.state is Reg.REGISTERED)

    def locate(self, name: str) -> Endpoint | None:
        """The registered endpoint with alias `name` (h323-ID or dialledDigits)."""
        for endpoint in self.endpoints():
            if any(alias.value == name for alias in endpoint.aliases):
                return endpoint
        return None

    def registered_at(self, host: str) -> Endpoint | None:
        """The endpoint registered from (or signalling at) `host`: RAS-admitted callers."""
        for endpoint in self.endpoints():
            if host in _hosts(endpoint):
                return endpoint
        return None

    def phone_at(self, host: str, caller: str = "") -> str | None:
        """The registered phone a call from `host` comes from (SPEC §3 "RAS phones by
        address"): the one whose alias is `caller`, else the only phone at that host."""
        phones = [e for e in self.endpoints() if e.phone is not None and host in _hosts(e)]
        for endpoint in phones:
            if caller and caller in (endpoint.phone, *(a.value for a in endpoint.aliases)):
                return endpoint.phone
        return phones[0].phone if len(phones) == 1 else None

    def next_deadline_ms(self) -> int | None:
        deadlines = [r.deadline_ms for r in self.registrations.values()]
        return min(deadlines) if deadlines else None

    def handle(self, event: RasReceived | Tick, now_ms: int) -> list[GkEffect]:
        if isinstance(event, Tick):
            return self._expire(now_ms)
        message, source = event.message, event.source
        if isinstance(message, Malformed):
            self.dropped += 1  # H.225.0 §7.x: no reply to what cannot be parsed
            return [Dropped(message.reason)]
        handler = _HANDLERS.get(message.kind)
        if handler is None:
            self.dropped += 1
            return [Dropped(f"{message.kind.name} is not a request vos3k answers")]
        return handler(self, message, source, now_ms)

    # -- helpers -----------------------------------------------------------------------

    def _reply(self, request: RasMessage, kind: RasKind, to: TransportAddress, **fields) -> SendRas:
        return SendRas(RasMessage(kind, request.seq, **fields), to)

    def _ttl_ms(self) -> int:
        return self.settings.ttl_s * 1000

    def _find(self, message: RasMessage, source: TransportAddress) -> _Registration | None:
        if message.endpoint_identifier:
            return self.registrations.get(message.endpoint_identifier)
        for registration in self.registrations.values():
            if registration.endpoint.source == source:
                return registration
        return None

    def _step(
        self,
        registration: _Registration | None,
        what: RegInput,
        message: RasMessage,
        source: TransportAddress,
        now_ms: int,
        phone: str | None = None,
    ) -> list[GkEffect]:
        state = Reg.NONE if registration is None else registration.state
        next_state, action = REGISTRATION[(state, what)]
        effects: list[GkEffect] = []
        match action:
            case RegAction.CONFIRM:
                if registration is None or what is RegInput.FULL_RRQ:
                    registration = self._register(registration, message, source, now_ms, phone)
                    effects.append(Registered(registration.endpoint))
                endpoint = evolve(registration.endpoint, expires_ms=now_ms + self._ttl_ms())
                registration.endpoint = endpoint
                registration.deadline_ms = endpoint.expires_ms
                effects.append(
                    self._reply(
                        message,
                        RasKind.RCF,
                        source,
                        protocol_identifier=message.protocol_identifier,
                        gatekeeper_identifier=self.settings.gatekeeper_id,
                        endpoint_identifier=endpoint.endpoint_id,
                        call_signal_addresses=(self.settings.signal_address,),
                        aliases=_echoable(endpoint.aliases) if what is RegInput.FULL_RRQ else (),
                        time_to_live=self.settings.ttl_s,
                    )
                )
            case RegAction.REJECT_FULL:
                effects.append(
                    self._reply(
                        message,
                        RasKind.RRJ,
                        source,
                        reason="fullRegistrationRequired",
                        protocol_identifier=message.protocol_identifier,
                    )
                )
            case RegAction.RENEW:
                assert registration is not None
                registration.deadline_ms = now_ms + self._ttl_ms()
                registration.endpoint = evolve(
                    registration.endpoint, expires_ms=registration.deadline_ms
                )
            case RegAction.UNREGISTER:
                assert registration is not None
                self.registrations.pop(registration.endpoint.endpoint_id, None)
                effects += [
                    Unregistered(registration.endpoint, "urq"),
                    self._reply(message, RasKind.UCF, source),
                ]
            case RegAction.REJECT_URQ:
                effects.append(
                    self._reply(message, RasKind.URJ, source, reason="notCurrentlyRegistered")
                )
        if registration is not None and next_state is not Reg.NONE:
            registration.state = next_state
        return effects

    def _register(
        self,
        old: _Registration | None,
        message: RasMessage,
        source: TransportAddress,
        now_ms: int,
        phone: str | None = None,
    ) -> _Registration:
        endpoint_id = old.endpoint.endpoint_id if old is not None else f"vos3k-{self.next_id:06d}"
        if old is None:
            self.next_id += 1
        endpoint = Endpoint(
            endpoint_id, source, message.aliases, message.call_signal_addresses, now_ms, phone
        )
        registration = _Registration(endpoint)
        self.registrations[endpoint_id] = registration
        return registration

    def _expire(self, now_ms: int) -> list[GkEffect]:
        effects: list[GkEffect] = []
        for registration in list(self.registrations.values()):
            if registration.deadline_ms > now_ms:
                continue
            next_state, action = REGISTRATION[(registration.state, RegInput.EXPIRED)]
            endpoint = registration.endpoint
            if action is RegAction.PROBE:
                registration.irq_seq = self.next_seq
                self.next_seq = self.next_seq % 65535 + 1
                registration.deadline_ms = now_ms + IRR_GRACE_MS
                irq = RasMessage(RasKind.IRQ, registration.irq_seq, call_reference=0)
                effects.append(SendRas(irq, endpoint.source))
                registration.state = next_state
            else:
                self.registrations.pop(endpoint.endpoint_id, None)
                effects.append(Unregistered(endpoint, "expired"))
        return effects

    # -- requests ----------------------------------------------------------------------

    def _grq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        wanted = message.gatekeeper_identifier
        if not self.allowed(source.host) or wanted not in (None, "", self.settings.gatekeeper_id):
            return [self._reply(message, RasKind.GRJ, source, reason="terminalExcluded",
                                protocol_identifier=message.protocol_identifier)]  # fmt: skip
        return [
            self._reply(
                message,
                RasKind.GCF,
                source,
                protocol_identifier=message.protocol_identifier,
                gatekeeper_identifier=self.settings.gatekeeper_id,
                ras_addresses=(self.settings.ras_address,),
            )
        ]

    def _rrq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        registration = self._find(message, source)
        if message.keep_alive:
            if registration is not None and registration.endpoint.source.host != source.host:
                registration = None  # a keep-alive from elsewhere is not this endpoint's
            return self._step(registration, RegInput.KEEPALIVE_RRQ, message, source, now_ms)
        if self.authorize(source.host, source.port):
            return self._step(registration, RegInput.FULL_RRQ, message, source, now_ms)
        # SPEC §11 RRQ row: otherwise a phone alias with a valid H.235 password token.
        verdict = check_phone_token(message, self.password_of, now_ms, self.settings.token_window_s)
        if verdict is None:
            return [self._security_denial(message, source)]
        refusal = self._refusal(verdict, message, source, now_ms)
        if refusal is not None:
            return [refusal, self._security_denial(message, source)]
        self._remember(verdict.replay_key, source, now_ms)
        if self.suspensions is not None:
            self.suspensions.clear("user", verdict.alias)  # SPEC §10: success clears it
        return self._step(registration, RegInput.FULL_RRQ, message, source, now_ms, verdict.alias)

    def _security_denial(self, message: RasMessage, source: TransportAddress) -> SendRas:
        return self._reply(message, RasKind.RRJ, source, reason="securityDenial",
                           protocol_identifier=message.protocol_identifier)  # fmt: skip

    def _refusal(
        self, verdict: TokenVerdict, message: RasMessage, source: TransportAddress, now_ms: int
    ) -> AuthFailed | None:
        """Why a token does not register its phone (None: it does), suspensions counted
        as SPEC §10 counts a failed digest: per source IP and per user."""
        tracker, alias = self.suspensions, verdict.alias
        if tracker is not None and (
            tracker.is_suspended("ip", source.host, now_ms)
            or tracker.is_suspended("user", alias, now_ms)
        ):
            return AuthFailed(alias, source, "suspended")  # not counted again (SPEC §10)
        if verdict.check is TokenCheck.OK:
            seen = self.seen_tokens.get(verdict.replay_key)
            if seen is None or seen[1] <= now_ms or seen[0] == source:
                return None
            return AuthFailed(alias, source, "replayed token")
        if verdict.check is TokenCheck.STALE:
            return AuthFailed(alias, source, "timestamp outside the window")
        started: list[Any] = []
        if tracker is not None:
            limits = (now_ms, self.settings.auth_max_retry, self.settings.auth_suspend_s)
            started.append(tracker.record_failure("ip", source.host, *limits))
            if alias:
                started.append(tracker.record_failure("user", alias, *limits))
        return AuthFailed(alias, source, "bad token", tuple(s for s in started if s))

    def _remember(self, key: tuple[Any, ...], source: TransportAddress, now_ms: int) -> None:
        # A token is good for window_s either side of its timestamp: forget it after that.
        forget_at = now_ms + 2 * self.settings.token_window_s * 1000
        if key not in self.seen_tokens and len(self.seen_tokens) >= MAX_REMEMBERED_TOKENS:
            for old in [k for k, v in self.seen_tokens.items() if v[1] <= now_ms]:
                del self.seen_tokens[old]
            while len(self.seen_tokens) >= MAX_REMEMBERED_TOKENS:
                del self.seen_tokens[next(iter(self.seen_tokens))]
        if key not in self.seen_tokens:  # the first sender keeps it
            self.seen_tokens[key] = (source, forget_at)

    def _urq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        return self._step(self._find(message, source), RegInput.URQ, message, source, now_ms)

    def _irr(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        registration = self._find(message, source)
        if registration is None:
            self.dropped += 1
            return [Dropped("IRR from an unregistered endpoint")]
        return self._step(registration, RegInput.IRR, message, source, now_ms)

    def _arq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        registration = self._find(message, source)
        if registration is None or registration.state is not Reg.REGISTERED:
            return [self._reply(message, RasKind.ARJ, source, reason="callerNotRegistered")]
        callee = _digits(message.destination_aliases)
        caller = _digits(message.aliases) or _digits(registration.endpoint.aliases)
        query = AdmissionQuery(
            registration.endpoint, caller, callee, message.answer_call, message.call_identifier
        )
        refused = self.admit(query)
        if refused is not None:
            reason = ARJ_REASONS.get(int(refused), "requestDenied")
            return [self._reply(message, RasKind.ARJ, source, reason=reason)]
        if message.call_identifier:
            self.calls[message.call_identifier] = registration.endpoint.endpoint_id
        return [
            self._reply(
                message,
                RasKind.ACF,
                source,
                bandwidth=message.bandwidth or DEFAULT_BANDWIDTH,
                call_model="gatekeeperRouted",
                destination_call_signal_address=self.settings.signal_address,
            )
        ]

    def _drq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        registration = self._find(message, source)
        known = message.call_identifier is not None and message.call_identifier in self.calls
        if registration is None and not known:
            return [self._reply(message, RasKind.DRJ, source, reason="notRegistered")]
        if message.call_identifier is not None:
            self.calls.pop(message.call_identifier, None)
        return [self._reply(message, RasKind.DCF, source)]

    def _brq(self, message: RasMessage, source: TransportAddress, now_ms: int) -> list[GkEffect]:
        bandwidth = message.bandwidth or DEFAULT_BANDWIDTH
        return [self._reply(message, RasKind.BCF, source, bandwidth=bandwidth)]


_HANDLERS = {
    RasKind.GRQ: Gatekeeper._grq,
    RasKind.RRQ: Gatekeeper._rrq,
    RasKind.URQ: Gatekeeper._urq,
    RasKind.IRR: Gatekeeper._irr,
    RasKind.ARQ: Gatekeeper._arq,
    RasKind.DRQ: Gatekeeper._drq,
    RasKind.BRQ: Gatekeeper._brq,
}


def _echoable(aliases: tuple[Alias, ...]) -> tuple[Alias, ...]:
    """The aliases vos3k can encode back in RCF terminalAlias (h225.AliasKind)."""
    kinds = {kind.value for kind in AliasKind}
    return tuple(a for a in aliases if a.kind in kinds)


def _hosts(endpoint: Endpoint) -> set[str]:
    return {endpoint.source.host, *(a.host for a in endpoint.call_signal_addresses)}


def _digits(aliases: tuple[Alias, ...]) -> str:
    for alias in aliases:
        if alias.kind in ("dialledDigits", "partyNumber") and alias.value:
            return alias.value
    return ""
