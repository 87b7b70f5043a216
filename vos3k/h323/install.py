"""Wires H.323 into the running VosService: call signalling, RAS gatekeeper, legs, stats.

After `install_h323(service)`:
- `service.h323` is the `H323Service` (listeners on `--h323-listen` TCP and
  `--ras-listen` UDP, each only when not off);
- `service.gatekeeper` is the `gk.Gatekeeper` core (registered endpoints for routing);
- the engine makes callee legs for protocol "h323" (`engine.add_leg_factory`);
- `stats` shows h323_calls_in, h323_calls_out, h323_received, h323_sent,
  h323_malformed, h323_errors, ras_received, ras_sent, ras_registered.
The switch (`service.engine`) must be installed first; without it, calls are refused
with cause 41 and RAS still answers.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from vos3k.h323 import call as core
from vos3k.h323 import gk
from vos3k.h323.h225 import TransportAddress
from vos3k.h323.legs import H323CallerLeg, H323LegFactory
from vos3k.h323.transport import (
    CallDriver,
    H323Service,
    RasProtocol,
    SignallingFactory,
    new_identifiers,
)
from vos3k.switch.numbers import clean_number

__all__ = ["install_h323"]

# SPEC §8 reasons the gatekeeper's ARQ check can give (SPEC §11 ARQ row).
REASON_UNALLOCATED = 4
REASON_NO_ROUTE = 6
REASON_UNAUTHORIZED_IP = 17

log = Logger()


class _AuthLoggingRas(RasProtocol):
    """RasProtocol that also logs refused H.235 tokens and the suspensions they start."""

    def _perform(self, effects: list[Any]) -> None:
        for effect in effects:
            if not isinstance(effect, gk.AuthFailed):
                continue
            log.info("h323: RRQ for {alias} from {host} refused: {reason}",
                     alias=effect.alias, host=effect.source.host, reason=effect.reason)  # fmt: skip
            for suspension in effect.new_suspensions:
                log.warn("H.235 suspension: {value} until {expires_ms} (kind auth)",
                         value=suspension.value, expires_ms=suspension.expires_ms)  # fmt: skip
        super()._perform(effects)


def _advertised_host(settings: Any) -> str:
    """The address peers reach vos3k's call signalling at (ACF, RCF, Setup)."""
    listen = settings.h323_listen
    if listen is not None and listen.host not in ("0.0.0.0", "::", ""):
        return listen.host
    return settings.media_ip or "127.0.0.1"


def install_h323(service: Any) -> H323Service:
    reactor = service.reactor
    settings = service.settings
    params = service.params
    engine = getattr(service, "engine", None)
    media = getattr(service, "media", None)  # the RTP proxy, when installed (SPEC §12)
    h323 = H323Service(reactor)
    counters = h323.counters
    host = _advertised_host(settings)
    signal = TransportAddress(host, settings.h323_listen.port if settings.h323_listen else 1720)

    def call_settings(attempt: bool) -> core.CallSettings:
        # Snapshotted per call: a live `param set` applies from the next call (SPEC §1).
        return core.CallSettings.from_snapshot(params.snapshot, switch_runs_attempt_timers=attempt)

    def admit_source(ip: str) -> bool:
        check = getattr(h323, "admit_source", None)
        return True if check is None else check(ip)

    def new_call(peer_host: str, peer_port: int) -> CallDriver:
        counters["calls_in"] += 1
        reference, guid, conference, sdn = new_identifiers()
        incoming = core.H323Call(
            call_settings(False), call_reference=reference, outgoing=False,
            call_identifier=guid, conference_id=conference, h245_sdn=sdn,
        )  # fmt: skip
        driver = CallDriver(reactor, incoming, counters)
        H323CallerLeg(engine, driver, (peer_host, peer_port), media, keeper.phone_at)
        return driver

    def locate_endpoint(name: str) -> TransportAddress | None:
        # Routing gateways with ip=dynamic reach the endpoint registered as `name`.
        endpoint = keeper.locate(name)
        return None if endpoint is None else endpoint.signal_address

    if engine is not None:
        factory = H323LegFactory(
            reactor, lambda: call_settings(True), counters, lambda: signal, media,
            engine.release, locate_endpoint,
        )  # fmt: skip
        engine.add_leg_factory("h323", factory)

    if settings.h323_listen is not None:
        h323.listen_tcp(settings.h323_listen, SignallingFactory(new_call, admit_source))

    indexes = getattr(service, "indexes", None)

    def authorize(ip: str, port: int) -> bool:
        # SPEC §11 RRQ row: an h323 mapping gateway (phones: gk.check_phone_token).
        return indexes is not None and indexes.mapping.match(ip, port, "h323") is not None

    # SPEC §11 RRQ row: a provisioned, enabled phone's password (hot index, SPEC §2).
    password_of = gk.phone_passwords(lambda: {} if indexes is None else indexes.phones)

    def admit(query: gk.AdmissionQuery) -> int | None:
        """SPEC §11 ARQ: the caller is known and a route exists. The full §3 checks run
        on the Setup itself, which the ACF routes through vos3k."""
        if query.answer_call:
            return None
        source = query.endpoint.source
        if query.endpoint.phone is None and not authorize(source.host, source.port):
            return REASON_UNAUTHORIZED_IP
        callee = clean_number(query.callee) if query.callee else ""
        if not isinstance(callee, str) or not callee:
            return REASON_UNALLOCATED
        for gateway in indexes.routing:
            if any(callee.startswith(p) or p == "*" for p in gateway.prefixes):
                return None
        return REASON_NO_ROUTE

    ras_address = TransportAddress(host, settings.ras_listen.port if settings.ras_listen else 1719)

    def gk_settings(snap: Any) -> gk.GkSettings:
        return gk.GkSettings(
            snap.h323_gatekeeper_id, snap.endpoint_ttl_s, ras_address, signal,
            auth_max_retry=snap.auth_max_retry, auth_suspend_s=snap.auth_failed_suspend_s,
        )  # fmt: skip

    # SPEC §10: failed H.235 tokens count with failed SIP digests, when SIP is installed.
    authenticator = getattr(getattr(service, "sip", None), "authenticator", None)
    keeper = gk.Gatekeeper(
        gk_settings(params.snapshot),
        allowed=admit_source,
        authorize=authorize,
        admit=admit,
        password_of=password_of,
        suspensions=getattr(authenticator, "suspensions", None),
    )

    def refresh(current: gk.Gatekeeper) -> None:
        live = gk_settings(params.snapshot)
        if live != current.settings:
            current.settings = live

    if settings.ras_listen is not None:
        protocol = _AuthLoggingRas(reactor, keeper, counters, refresh)
        h323.listen_udp(settings.ras_listen, protocol)

    service.add_listener(h323)
    service.h323 = h323
    service.gatekeeper = keeper
    for name in ("calls_in", "calls_out", "received", "sent", "malformed", "errors"):
        service.gauges[f"h323_{name}"] = lambda name=name: counters[name]
    for name in ("ras_received", "ras_sent"):
        service.gauges[name] = lambda name=name: counters[name]
    service.gauges["ras_registered"] = lambda: len(keeper.endpoints())
    return h323
