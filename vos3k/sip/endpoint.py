"""The SIP service: drives the transaction layer, answers OPTIONS and REGISTER, hands calls on.

Layers in pjsip's fixed order (STYLE §1): ``transport.py`` gives validated messages to
``SipEndpoint.message_received``; the endpoint runs them through the sans-IO
``TransactionLayer`` (one ``IDelayedCall`` armed at the earliest deadline of the
transaction layer, the registrar and the nonce table) and carries out its effects.

What the endpoint answers itself:

- OPTIONS: 200 with Allow, Accept and Supported (SPEC §10: no header names a product or
  version; no Server or User-Agent is ever added).
- REGISTER: digest (401 first, always and the same for known and unknown users; 403 on
  a failed digest; 401 ``stale=true`` on a stale nonce; suspension after
  SS_AUTHENTICATION_MAX_RETRY), then the registrar (423 with Min-Expires, un-REGISTER,
  ``Contact: *``); bindings are written to ``store.registrations`` as they change and
  loaded again on start, and expired ones are purged on the timer.
- CANCEL: 200 when it matches an INVITE server transaction (the call layer is told
  through ``cancelled``; it answers the INVITE with 487), else 481 (RFC 3261 §9.2).
- SUBSCRIBE, NOTIFY, PUBLISH, MESSAGE, REFER: 405 with Allow; unknown methods: 501.

Everything else -- INVITE, ACK, BYE, PRACK, UPDATE, INFO and every response to a client
transaction -- goes to the call layer (the B2BUA), which implements ``CallLayer`` and is
plugged in with ``endpoint.call_layer = b2bua``.  Until then there is no one to take a
call: an INVITE is answered ``503 Service Unavailable`` with ``Retry-After: 5`` (SPEC §3
step 2, the overload answer, so a caller retries or fails over instead of waiting for a
timeout), in-dialog requests get 481 (no dialog can exist) and ACKs are absorbed.

The call layer sends through ``send_request`` (a client transaction; its responses come
back to ``CallLayer.response``), ``send_response`` (on a server transaction key) and
``send_stateless`` (2xx retransmissions and the ACK for a 2xx, which live outside
transactions, RFC 3261 §13.3.1.4 / §17.1.1.3), authenticates a phone's INVITE with
``check_digest`` / ``digest_challenge`` (407, SPEC §10), and finds registered phones
with ``lookup`` / ``route_to`` (SPEC §3 step 9).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.logger import Logger

from vos3k.reschedule import reschedule
from vos3k.sip.auth import (
    DigestAuthenticator,
    Outcome,
    Verdict,
    parse_auth_header,
    parse_credentials,
    uri_host,
)
from vos3k.sip.auth import Malformed as AuthMalformed
from vos3k.sip.message import IdSource, Request, Response, build_response
from vos3k.sip.registrar import Binding, ContactSpec, Registrar
from vos3k.sip.transaction import (
    Address,
    Deliver,
    Drop,
    ReportTimeout,
    ReportTransportError,
    RequestReceived,
    RequestSubmitted,
    ResponseReceived,
    ResponseSubmitted,
    Send,
    SendFailed,
    TimerConfig,
    TimersDue,
    TransactionKey,
    TransactionLayer,
    client_key,
)
from vos3k.sip.uri import format_host, unescape
from vos3k.store.models import Registration

__all__ = [
    "ACCEPT",
    "ALLOW",
    "SUPPORTED",
    "CallLayer",
    "SipEndpoint",
    "format_source",
    "parse_source",
    "timer_config",
]

# INTERFACE §3: the methods vos3k handles; RFC 3261 §20.5 Allow
ALLOW = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO")
ACCEPT = ("application/sdp",)
# RFC 3262 (100rel) and RFC 4028 (timer) are what the call layer does (SPEC §13)
SUPPORTED = ("100rel", "timer")
# Methods with an RFC of their own that vos3k does not handle: 405 (RFC 3261 §8.2.1)
KNOWN_NOT_ALLOWED = frozenset({"SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER"})
CALL_METHODS = frozenset({"INVITE", "ACK", "BYE", "PRACK", "UPDATE", "INFO"})
RETRY_AFTER_S = 5  # SPEC §3 step 2
_WILDCARDS = ("0.0.0.0", "::")


class CallLayer(Protocol):
    """What the B2BUA implements; every call is synchronous and must not block.

    ``key`` identifies a transaction: a server one for ``request`` (answer it with
    ``SipEndpoint.send_response(response, key)``), a client one for ``response``.
    """

    def request(
        self, request: Request, key: TransactionKey | None, source: Address, now_ms: int
    ) -> None:
        """A new INVITE, BYE, PRACK, UPDATE or INFO (a server transaction ``key``), or an
        ACK: ``key`` None for the ACK of a 2xx (RFC 3261 §17.2.3), else the INVITE's."""

    def cancelled(self, invite_key: TransactionKey, cancel: Request, now_ms: int) -> None:
        """A CANCEL matched the INVITE ``invite_key``; the endpoint has answered it 200.
        If that INVITE has no final response yet, answer it 487 (RFC 3261 §9.2)."""

    def response(
        self, response: Response, key: TransactionKey | None, source: Address, now_ms: int
    ) -> None:
        """A response to ``send_request``'s transaction ``key``; ``key`` None for a 2xx
        retransmission after that transaction ended (re-ACK it with send_stateless)."""

    def timeout(self, key: TransactionKey, request: Request, now_ms: int) -> None:
        """Timer B/F (no final response: act as on 408) or Timer H (no ACK for our final)."""

    def transport_error(self, key: TransactionKey, request: Request, now_ms: int) -> None:
        """``request``'s transaction could not send (RFC 3261 §17.1.4: act as on 503)."""


def timer_config(snapshot: Any) -> TimerConfig:
    """RFC 3261 timers from the live parameters.

    SS_SIP_RESEND_INTERVAL is Timer A's schedule; SS_SIP_TIMEOUT bounds both client
    transactions (Timer B and F).  T1/T2/T4 keep RFC 3261's values.
    """
    timeout_ms = int(snapshot.sip_timeout_s) * 1000
    return TimerConfig(
        timer_b_ms=timeout_ms,
        timer_f_ms=timeout_ms,
        invite_resend_ms=tuple(int(v) for v in snapshot.sip_resend_interval_ms),
    )


def _algorithm(challenge: str) -> str | None:
    header = parse_auth_header(challenge)
    return None if isinstance(header, AuthMalformed) else header.get("algorithm")


def format_source(address: Address) -> str:
    """``udp:192.0.2.1:5060`` / ``tcp:[2001:db8::1]:5060``: a binding's source column."""
    return f"{address.transport.lower()}:{format_host(address.host)}:{address.port}"


def parse_source(text: str) -> Address | None:
    """The inverse of format_source; None for anything else."""
    transport, sep, rest = text.partition(":")
    host, sep2, port = rest.rpartition(":")
    if not sep or not sep2 or not port.isdigit() or not host:
        return None
    return Address(transport.upper(), host.strip("[]"), int(port))


class SipEndpoint(Service):
    """The SIP transaction user of vos3k, below the call layer (module docstring)."""

    log = Logger()

    def __init__(
        self,
        clock: Any,
        params: Any,
        *,
        phone_of: Callable[[str], Any],
        registrations: Any = None,
        realm: str = "vos3k",
        own_hosts: Iterable[str] = (),
        wildcard_listen: bool = False,
        secret: bytes | None = None,
        ids: IdSource | None = None,
    ) -> None:
        """``phone_of(e164)`` gives the provisioned Phone (password, enabled) or None;
        ``registrations`` is ``store.registrations`` (``replace``/``load``) or None;
        ``own_hosts`` are this server's addresses and domains (digest uri-host rule);
        ``wildcard_listen``: a listener on 0.0.0.0/:: also owns the Request-URI host."""
        self.clock = clock
        self.params = params
        self.phone_of = phone_of
        self.registrations = registrations
        self.own_hosts = frozenset(h.lower().strip("[]") for h in own_hosts)
        self.wildcard_listen = wildcard_listen
        self.ids = ids or IdSource()
        self.layer = TransactionLayer(timer_config(params.snapshot))
        self.registrar = Registrar()
        self.authenticator = DigestAuthenticator(secret or os.urandom(32), realm=realm)
        self.call_layer: CallLayer | None = None
        self.transport: Any = None  # SipTransport; set by install_sip (or a test)
        self.stats = {"stray": 0, "registers": 0, "auth_failed": 0}
        self._timer: Any = None
        self._timer_deadline: int | None = None
        # nesting of handle-and-perform runs (the call layer answers from inside one):
        # only the outermost re-arms the timer, once, when everything it caused is done
        self._depth = 0
        self._unsubscribe: Callable[[], None] | None = None

    # -- service ---------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.load_bindings()
        subscribe = getattr(self.params, "subscribe", None)
        if subscribe is not None:
            self._unsubscribe = subscribe(self._param_changed)
        self._rearm(self.now_ms())

    def stopService(self) -> None:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def load_bindings(self) -> int:
        """Restore persisted bindings (SPEC §2: bindings survive a restart)."""
        if self.registrations is None:
            return 0
        now = self.now_ms()
        rows = self.registrations.load(now)
        # registered_ms is not stored: the rows come oldest expiry first, and equal
        # registered_ms keep that order, so the latest-expiring binding counts as newest.
        bindings = [
            Binding(r.e164, r.contact, r.expires_ms, r.call_id, r.cseq, now - 1, r.source)
            for r in rows
        ]
        taken = self.registrar.load(bindings, now)
        self.log.info("SIP registrations restored: {n}", n=taken)
        return taken

    def _param_changed(self, param: Any, old: Any, new: Any) -> None:
        if param.name in ("SS_SIP_TIMEOUT", "SS_SIP_RESEND_INTERVAL"):
            # new transactions use the new timers; running ones keep theirs
            self.layer.config = timer_config(self.params.snapshot)
        elif param.name == "SS_QOS_SIGNAL" and self.transport is not None:
            self.transport.set_tos(int(new))

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- from the transport ----------------------------------------------------------

    def message_received(self, message: Request | Response, source: Address) -> None:
        now = self.now_ms()
        self._depth += 1
        try:
            if isinstance(message, Request):
                effects = self.layer.handle(RequestReceived(message, source), now)
            else:
                effects = self.layer.handle(ResponseReceived(message, source), now)
            self._perform(effects, source, now)
        finally:
            self._done(now)

    def _done(self, now: int) -> None:
        self._depth -= 1
        if not self._depth:
            self._rearm(now)

    # -- for the call layer ----------------------------------------------------------

    def send_request(self, request: Request, destination: Address) -> TransactionKey | None:
        """Start a client transaction (its responses reach ``CallLayer.response``).

        Returns its key; None for an ACK, which is sent without a transaction."""
        now = self.now_ms()
        self._depth += 1
        try:
            effects = self.layer.handle(RequestSubmitted(request, destination), now)
            self._perform(effects, destination, now)
        finally:
            self._done(now)
        return None if request.method == "ACK" else client_key(request)

    def send_response(self, response: Response, key: TransactionKey) -> None:
        """Answer the server transaction ``key`` (from ``CallLayer.request``)."""
        now = self.now_ms()
        self._depth += 1
        try:
            effects = self.layer.handle(ResponseSubmitted(response, key), now)
            self._perform(effects, None, now)
        finally:
            self._done(now)

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction: 2xx retransmissions, the ACK for a 2xx."""
        self.transport.send(message, destination)

    def local_address(self, destination: Address) -> Address:
        """Our address as ``destination`` sees it: for Via sent-by and Contact."""
        return self.transport.local_address(destination)

    def lookup(self, aor: str, now_ms: int | None = None) -> Binding | None:
        """The phone's newest live binding (SPEC §3 step 9), or None when unregistered."""
        return self.registrar.lookup(aor, self.now_ms() if now_ms is None else now_ms)

    def route_to(self, aor: str, now_ms: int | None = None) -> tuple[Binding, Address] | None:
        """The newest binding and where to send: the address its REGISTER came from
        (RFC 3581 / NAT: the phone's contact is often unreachable), on its transport."""
        binding = self.lookup(aor, now_ms)
        if binding is None:
            return None
        address = parse_source(binding.source)
        return None if address is None else (binding, address)

    def credentials(self, request: Request, *, proxy: bool) -> str | None:
        """The Authorization (Proxy-Authorization) value for our realm, else the first."""
        values = request.headers_named("proxy-authorization" if proxy else "authorization")
        for value in values:
            creds = parse_credentials(value)
            if not isinstance(creds, AuthMalformed) and creds.realm == self.authenticator.realm:
                return value
        return values[0] if values else None

    def check_digest(
        self, request: Request, source: Address, *, proxy: bool, now_ms: int | None = None
    ) -> Verdict | None:
        """Verify a request's digest (SPEC §10); None when it carries none (challenge it).

        ``proxy=True`` for a phone's INVITE (Proxy-Authorization after our 407).  A
        FAILED verdict is answered 403 (INVITE: end reason 16), STALE re-challenged
        with ``digest_challenge(..., stale=True)``; suspensions are counted here.
        """
        now = self.now_ms() if now_ms is None else now_ms
        value = self.credentials(request, proxy=proxy)
        if value is None:
            return None
        snap = self.params.snapshot
        request_host = uri_host(request.uri)

        def is_own_host(host: str) -> bool:
            # INTERFACE §6: any of this server's addresses or domains, any port; a
            # wildcard listener cannot list its addresses, so the host the request
            # was sent to counts as ours too
            return host in self.own_hosts or (self.wildcard_listen and host == request_host)

        verdict = self.authenticator.verify(
            method=request.method,
            request_uri=request.uri,
            header_value=value,
            source_ip=source.host,
            now_ms=now,
            password_of=self._password_of,
            is_own_host=is_own_host,
            max_retry=int(snap.auth_max_retry),
            suspend_s=int(snap.auth_failed_suspend_s),
        )
        if verdict.outcome is Outcome.FAILED:
            self.stats["auth_failed"] += 1
            self.log.info(
                "SIP digest failed for {user} from {ip}: {reason}",
                user=verdict.username or "-",
                ip=source.host,
                reason=verdict.reason,
            )
        for suspension in verdict.new_suspensions:
            self.log.warn(
                "SIP digest suspension: {value} until {expires_ms} (kind auth)",
                value=suspension.value,
                expires_ms=suspension.expires_ms,
            )
        return verdict

    def digest_challenge(
        self,
        request: Request,
        source: Address,
        *,
        proxy: bool,
        stale: bool = False,
        now_ms: int | None = None,
    ) -> Response:
        """A 401 (REGISTER) or 407 (INVITE) with a fresh nonce for ``source``; the same
        for known and unknown users (SPEC §10)."""
        now = self.now_ms() if now_ms is None else now_ms
        headers = self.authenticator.challenge(source.host, now, proxy=proxy, stale=stale)
        # MD5 on top, SHA-256 still offered and accepted: many UACs answer only the
        # first challenge and know only MD5 (SIPp 3.6, older ATAs; VOS3000 offers MD5
        # alone), and a customer's phone that registered to VOS3000 must register here.
        headers.sort(key=lambda header: _algorithm(header[1]) != "MD5")
        return build_response(
            request, 407 if proxy else 401, to_tag=self.ids.tag(), headers=headers
        )

    def _password_of(self, user: str) -> str | None:
        phone = self.phone_of(user)
        if phone is None or not getattr(phone, "enabled", True):
            return None  # a disabled phone fails like an unknown one
        return phone.password

    # -- effects -------------------------------------------------------------------

    def _perform(self, effects: list, source: Address | None, now: int) -> None:
        # Sends first: the layer lists an INVITE's Deliver before its automatic 100
        # Trying, and what the TU answers while handling the Deliver must follow it.
        for effect in effects:
            if isinstance(effect, Send):
                on_error = None if effect.key is None else partial(self._send_failed, effect.key)
                self.transport.send(effect.message, effect.destination, on_error)
        for effect in effects:
            if isinstance(effect, Send):
                continue
            if isinstance(effect, Deliver):
                if isinstance(effect.message, Request):
                    self._request(effect, source, now)
                elif self.call_layer is not None:
                    self._to_call_layer("response", effect.message, effect.key, source, now)
                else:
                    self.stats["stray"] += 1
            elif isinstance(effect, ReportTimeout):
                if self.call_layer is not None:
                    self._to_call_layer("timeout", effect.key, effect.request, now)
            elif isinstance(effect, ReportTransportError):
                if self.call_layer is not None:
                    self._to_call_layer("transport_error", effect.key, effect.request, now)
            elif isinstance(effect, Drop):
                self.stats["stray"] += 1  # retransmissions and strays (STYLE §5: counted)

    def _to_call_layer(self, method: str, *args: Any) -> None:
        """One call into the B2BUA; its bug is logged once and the other effects go on."""
        try:
            getattr(self.call_layer, method)(*args)
        except Exception:
            message = next((a for a in args if isinstance(a, Request | Response)), None)
            call_id = message.header("call-id") if message is not None else None
            self.log.failure(
                "call layer {method} raised (call {call_id})", method=method, call_id=call_id
            )

    def _send_failed(self, key: TransactionKey) -> None:
        now = self.now_ms()
        self._depth += 1
        try:
            effects = self.layer.handle(SendFailed(key), now)
            self._perform(effects, None, now)
        finally:
            self._done(now)

    def _request(self, effect: Deliver, source: Address | None, now: int) -> None:
        request: Request = effect.message  # type: ignore[assignment]
        key = effect.key
        method = request.method
        assert source is not None  # requests are only delivered on receipt
        if method == "ACK":
            if self.call_layer is not None:
                self._to_call_layer("request", request, key, source, now)
            return
        assert key is not None  # every other request has a server transaction
        if method == "OPTIONS":
            self._answer(request, key, 200, self._capabilities())
        elif method == "REGISTER":
            self._register(request, key, source, now)
        elif method == "CANCEL":
            self._cancel(request, key, effect.cancels, now)
        elif method in CALL_METHODS:
            if self.call_layer is not None:
                self._to_call_layer("request", request, key, source, now)
            elif method == "INVITE":
                self._answer(request, key, 503, (("Retry-After", str(RETRY_AFTER_S)),))
            else:
                self._answer(request, key, 481)
        elif method in KNOWN_NOT_ALLOWED:
            self._answer(request, key, 405, (("Allow", ", ".join(ALLOW)),))
        else:
            self._answer(request, key, 501, (("Allow", ", ".join(ALLOW)),))

    def _capabilities(self) -> tuple[tuple[str, str], ...]:
        return (
            ("Allow", ", ".join(ALLOW)),
            ("Accept", ", ".join(ACCEPT)),
            ("Supported", ", ".join(SUPPORTED)),
        )

    def _answer(
        self,
        request: Request,
        key: TransactionKey,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        response = build_response(request, status, reason, to_tag=self.ids.tag(), headers=headers)
        self.send_response(response, key)

    def _cancel(
        self, request: Request, key: TransactionKey, cancels: TransactionKey | None, now: int
    ) -> None:
        if cancels is None:
            self._answer(request, key, 481)  # RFC 3261 §9.2: nothing to cancel
            return
        self._answer(request, key, 200)
        if self.call_layer is not None:
            self._to_call_layer("cancelled", cancels, request, now)

    # -- REGISTER (RFC 3261 §10.3, SPEC §2 phone, §10) -------------------------------

    def _register(self, request: Request, key: TransactionKey, source: Address, now: int) -> None:
        self.stats["registers"] += 1
        verdict = self.check_digest(request, source, proxy=False, now_ms=now)
        if verdict is None or verdict.outcome is Outcome.STALE:
            stale = verdict is not None
            self.send_response(
                self.digest_challenge(request, source, proxy=False, stale=stale, now_ms=now), key
            )
            return
        if verdict.outcome is Outcome.FAILED:
            self._answer(request, key, 403)
            return
        to_user = request.to().uri.user
        aor = verdict.username or ""
        if to_user is None or unescape(to_user) != aor:
            # §10.3 step 6: the authenticated phone may only bind its own number
            self._answer(request, key, 403)
            return
        if request.is_contact_wildcard():
            contacts = [ContactSpec("*")]
        else:
            contacts = [ContactSpec(str(c.uri), c.param("expires")) for c in request.contacts()]
        snap = self.params.snapshot
        result = self.registrar.register(
            aor=aor,
            contacts=contacts,
            expires_header=request.header("expires"),
            call_id=request.call_id(),
            cseq=request.cseq().number,
            now_ms=now,
            min_expires_s=int(snap.sip_register_min_expires_s),
            max_expires_s=int(snap.sip_register_max_expires_s),
            source=format_source(source),
        )
        if result.changed:
            # stored before the 200 goes out: a phone told it is registered stays so
            # across a restart (SPEC §2)
            self._persist(aor, result.bindings)
        self._answer(request, key, result.status, result.headers, result.phrase)
        if result.changed:
            self.log.info(
                "SIP REGISTER {aor} from {source}: {n} binding(s)",
                aor=aor,
                source=format_source(source),
                n=len(result.bindings),
            )

    def _persist(self, aor: str, bindings: Iterable[Binding]) -> None:
        if self.registrations is None:
            return
        self.registrations.replace(
            aor,
            [
                Registration(b.aor, b.contact, b.source, b.expires_at_ms, b.call_id, b.cseq)
                for b in bindings
            ],
        )

    # -- the one timer ---------------------------------------------------------------

    def _rearm(self, now: int) -> None:
        deadlines = [
            d
            for d in (
                self.layer.next_deadline_ms(),
                self.registrar.next_deadline_ms(),
                self.authenticator.next_deadline_ms(),
            )
            if d is not None
        ]
        active = self._timer is not None and self._timer.active()
        if not deadlines:
            if active:
                self._timer.cancel()
            self._timer = None
            self._timer_deadline = None
            return
        deadline = min(deadlines)
        if active and deadline == self._timer_deadline:
            return
        delay = max(0, deadline - now) / 1000
        if active:
            self._timer = reschedule(self.clock, self._timer, delay, self._timer_fired)
        else:
            self._timer = self.clock.callLater(delay, self._timer_fired)
        self._timer_deadline = deadline

    def _timer_fired(self) -> None:
        self._timer = None
        # the reactor may wake a hair early in float seconds: the deadline is due now
        now = max(self.now_ms(), self._timer_deadline or 0)
        self._depth += 1
        try:
            effects = self.layer.handle(TimersDue(), now)
            self._perform(effects, None, now)
            expired = self.registrar.purge(now)
            for aor in sorted({b.aor for b in expired}):
                self._persist(aor, self.registrar.bindings(aor, now))
            self.authenticator.purge(now)
        except Exception:
            self.log.failure("SIP timer processing raised an internal error")
        finally:
            self._done(now)
