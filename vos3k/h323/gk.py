"""The RAS gatekeeper of SPEC §11's table (H.225.0 §7, §8.1), sans-IO.

`Gatekeeper.handle(event, now_ms) -> effects` answers each request with one confirm
or reject; `next_deadline_ms()` is the earliest registration to probe or drop. The
switch's rules come in as injected callables, so the core stays pure:
- `allowed(ip)`: SPEC §10 ACL/blacklist for GRQ;
- `authorize(ip, port)`: RRQ from an h323 mapping gateway (SPEC §11);
- `admit(AdmissionQuery)`: SPEC §3 steps 3-8 plus "a route exists"; returns None to
  confirm or the end reason that refuses, mapped here to the ARJ reason of the table.
Registrations (per endpoint: REGISTERED -> PROBING -> gone) follow one transition table.
Every admitted call is gatekeeper-routed: the ACF points at vos3k's call-signalling
address (SPEC §11 "routed via vos3k").
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from attrs import define, evolve, field, frozen

from vos3k.h323.h225 import Alias, AliasKind, Malformed, TransportAddress
from vos3k.h323.ras import RasKind, RasMessage

# H.225.0 Appendix (RAS timers): a response is due within 3 s, retried twice; an IRQ
# at expiry gets that long for its IRR before the registration is dropped.
IRR_GRACE_MS = 9_000
DEFAULT_BANDWIDTH = 1280  # 128 kbit/s in 100 bit/s units (two G.711 directions)


@frozen
class GkSettings:
    gatekeeper_id: str  # SS_H323_GATEKEEPER_ID
    ttl_s: int  # SS_ENDPOINTTIMETOLIVE
    ras_address: TransportAddress
    signal_address: TransportAddress  # where ACF sends admitted calls (vos3k's 1720)


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


GkEffect = SendRas | Registered | Unregistered | Dropped


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
    registrations: dict[str, _Registration] = field(factory=dict)
    calls: dict[bytes, str] = field(factory=dict)  # ARQ'd callIdentifier -> endpoint id
    next_id: int = 1
    next_seq: int = 1
    dropped: int = 0

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
            hosts = {endpoint.source.host, *(a.host for a in endpoint.call_signal_addresses)}
            if host in hosts:
                return endpoint
        return None

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
    ) -> list[GkEffect]:
        state = Reg.NONE if registration is None else registration.state
        next_state, action = REGISTRATION[(state, what)]
        effects: list[GkEffect] = []
        match action:
            case RegAction.CONFIRM:
                if registration is None or what is RegInput.FULL_RRQ:
                    registration = self._register(registration, message, source, now_ms)
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
    ) -> _Registration:
        endpoint_id = old.endpoint.endpoint_id if old is not None else f"vos3k-{self.next_id:06d}"
        if old is None:
            self.next_id += 1
        endpoint = Endpoint(
            endpoint_id, source, message.aliases, message.call_signal_addresses, now_ms
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
        if not self.authorize(source.host, source.port):
            return [self._reply(message, RasKind.RRJ, source, reason="securityDenial",
                                protocol_identifier=message.protocol_identifier)]  # fmt: skip
        return self._step(registration, RegInput.FULL_RRQ, message, source, now_ms)

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


def _digits(aliases: tuple[Alias, ...]) -> str:
    for alias in aliases:
        if alias.kind in ("dialledDigits", "partyNumber") and alias.value:
            return alias.value
    return ""
