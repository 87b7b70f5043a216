"""H.323 caller and callee legs: the switch's Leg protocol on top of a CallDriver.

A caller leg is an incoming Setup: on `CallArrived` it asks the engine
(`engine.incoming(leg, Arrival(...))`) and then relays the switch's commands as
Alerting/Progress/Connect/Release Complete. A callee leg is one vendor attempt made by
`H323LegFactory.create_leg(setup, report)`: `offer()` opens TCP to the gateway and sends
Setup. Media crosses as SDP both ways (media.py converts). Q.850 causes are carried as
data: `hang_up(ending)` sends `ending.q850`, and the vendor's cause goes back in
`Failed(cause=...)`; mapping to end reasons is switch/reasons.py's alone.

RTP proxy (SPEC §12), as the SIP B2BUA does it: when `Setup.proxy_media` is set the
callee leg opens (or reuses) the call's media session, gives the vendor the proxy's side-B
address for the caller's offer (whose address becomes side A's remote) and gives the
caller the proxy's side-A address for the vendor's media (side B's remote). The caller
leg closes the session when the call ends. A caller without fast start is offered to the
vendor with vos3k's own capabilities (media.slow_start_offer) and its real address is
set once H.245 opened our channel to it (`PeerMedia`).
DTMF: UserInputIndication is reported as `Dtmf`, and `send_dtmf` sends one (SPEC §11).
SS_H323_TIMEOUT_H245 after Connect ends the call through `release(call_id, 15)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import evolve
from twisted.logger import Logger

from vos3k.h323 import call as core
from vos3k.h323 import media as h323media
from vos3k.h323.h225 import TransportAddress
from vos3k.h323.transport import CallDriver, connect_call, new_identifiers
from vos3k.media.policy import Leg as Side
from vos3k.switch.admission import Arrival
from vos3k.switch.legs import (
    Answered,
    Dtmf,
    Ending,
    Failed,
    HungUp,
    LegEvent,
    Media,
    MediaStarted,
    Setup,
)
from vos3k.switch.reasons import EndReason

# Q.850 for a call the switch would not take at all (SPEC §3 step 2's 503 / table 2a).
CAUSE_UNAVAILABLE = 41
CAUSE_REJECTED = 21
_SPOKEN = (core.State.NULL, core.State.RELEASED)  # no call to carry a digit in these
Release = Callable[[str, EndReason], bool]  # engine.release
Locate = Callable[[str], TransportAddress | None]  # a registered endpoint's signal address
PhoneAt = Callable[[str, str], str | None]  # gk.Gatekeeper.phone_at(host, caller)
DYNAMIC = "dynamic"  # a routing gateway's ip for a RAS-registered endpoint (SPEC §2)


def _through_proxy(session: Any, side: Side, description: Media) -> Media:
    """`side`'s media into the proxy: it receives there; the other side is given the
    proxy's address facing it (SPEC §12)."""
    if description.address and description.port:
        session.set_remote(side, description.address, description.port, description.direction)
    other = Side.B if side is Side.A else Side.A
    return h323media.proxied(description, session.local_address(other))


def _release_or_hang_up(
    release: Release | None, call_id: str | None, report: Callable[[LegEvent], None], cause: int
) -> None:
    """SPEC §8 reason 15: H.245 never brought media up; without a switch, a hang-up."""
    if release is not None and call_id and release(call_id, EndReason.MEDIA_TIMEOUT):
        return
    report(HungUp(cause=cause))


class H323CallerLeg:
    """The customer's incoming H.323 call, as the switch's caller leg."""

    log = Logger()

    def __init__(
        self,
        engine: Any,
        driver: CallDriver,
        source: tuple[str, int],
        media: Any = None,
        phone_at: PhoneAt | None = None,
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.source = source
        self.media = media  # the RTP proxy (media/relay.py MediaManager) or None
        self.phone_at = phone_at  # the RAS phone registered at a host, if any
        self.call_id: str | None = None
        self._report: Callable[[LegEvent], None] | None = None
        driver.listener = self

    # -- from the driver ----------------------------------------------------------------

    def arrived(self, event: core.CallArrived) -> None:
        # SPEC §3 step 3 "RAS phones by address": a Setup from where a phone registered
        # with a valid H.235 token is that phone's call, as a verified digest is for SIP.
        phone = self.phone_at(self.source[0], event.caller) if self.phone_at else None
        arrival = Arrival(
            call_id="",
            source_ip=self.source[0],
            source_port=self.source[1],
            protocol="h323",
            caller=event.caller,
            callee=event.callee,
            from_user=phone or event.caller,
            authenticated=phone,
            media=event.media or h323media.slow_start_offer(self.source[0]),
        )
        if self.engine is None:
            self.driver.handle(core.Release(CAUSE_UNAVAILABLE))
            return
        outcome = self.engine.incoming(self, arrival)
        report = getattr(outcome, "report", None)
        if report is None:
            # Unavailable (shutting down, CDR list full) or a SIP-only digest challenge.
            cause = CAUSE_UNAVAILABLE if hasattr(outcome, "retry_after_s") else CAUSE_REJECTED
            self.driver.handle(core.Release(cause))
            return
        self.call_id = outcome.call_id
        self._report = report

    def reported(self, event: LegEvent) -> None:
        if self._report is not None:
            self._report(event)

    def digit(self, event: core.DigitReceived) -> None:
        self.reported(Dtmf(event.digit, event.duration_ms or 100))

    def media_failed(self, event: core.MediaFailed) -> None:
        release = None if self.engine is None else self.engine.release
        _release_or_hang_up(release, self.call_id, self.reported, event.cause)

    def peer_media(self, event: core.PeerMedia) -> None:
        session = self._session()
        if session is not None and event.media.address:
            session.set_remote(Side.A, event.media.address, event.media.port)

    def _session(self) -> Any:
        if self.media is None or self.call_id is None:
            return None
        return self.media.session(self.call_id)

    # -- the Leg protocol ------------------------------------------------------------------

    def offer(self, setup: Setup) -> None:
        raise core.LocalProtocolError("a caller leg is not offered calls")

    def ring(self, early_media: Media | None) -> None:
        self.driver.handle(core.Alert(early_media))

    def progress(self, early_media: Media | None) -> None:
        self.driver.handle(core.SendProgress(early_media))

    def answer(self, media: Media | None) -> None:
        self.driver.handle(core.Answer(media))

    def hang_up(self, ending: Ending) -> None:
        self.driver.handle(core.Release(ending.q850))
        session = self._session()
        if session is not None:
            session.close()  # SPEC §12: the call's ports are freed on every end

    def cancel(self) -> None:
        self.driver.handle(core.Release(core.CAUSE_NORMAL))

    def send_dtmf(self, dtmf: Dtmf) -> None:
        if self.driver.call.state not in _SPOKEN:
            self.driver.handle(core.SendDigit(dtmf.digit, dtmf.duration_ms))


class H323CalleeLeg:
    """One attempt towards an H.323 routing gateway (or registered endpoint)."""

    def __init__(
        self,
        reactor: Any,
        settings: core.CallSettings,
        report: Callable[[LegEvent], None],
        counters: dict[str, int],
        signal_address: TransportAddress | None,
        media: Any = None,
        release: Release | None = None,
        locate: Locate | None = None,
    ) -> None:
        self.reactor = reactor
        self._report = report
        self.locate = locate
        self.signal_address = signal_address
        self.media = media  # the RTP proxy (media/relay.py MediaManager) or None
        self.release = release
        self.session: Any = None
        self.call_id = ""
        reference, guid, conference, sdn = new_identifiers()
        call = core.H323Call(
            settings,
            call_reference=reference,
            outgoing=True,
            call_identifier=guid,
            conference_id=conference,
            h245_sdn=sdn,
        )
        self.driver = CallDriver(reactor, call, counters, self)
        self._offered = False
        self.setup: Setup | None = None

    def arrived(self, event: core.CallArrived) -> None:
        raise core.LocalProtocolError("an outgoing call cannot receive a Setup")

    def reported(self, event: LegEvent) -> None:
        media = getattr(event, "media", None)
        if self.session is not None and media is not None:
            proxied = _through_proxy(self.session, Side.B, media)
            event = evolve(event, media=proxied)  # type: ignore[arg-type]
            if isinstance(event, Answered):
                self._arm_media_timeout()
        self._report(event)

    def digit(self, event: core.DigitReceived) -> None:
        self._report(Dtmf(event.digit, event.duration_ms or 100))

    def media_failed(self, event: core.MediaFailed) -> None:
        _release_or_hang_up(self.release, self.call_id, self._report, event.cause)

    def peer_media(self, event: core.PeerMedia) -> None:
        """Only incoming calls learn the peer's media this way."""

    def _arm_media_timeout(self) -> None:
        """SPEC §3 step 11 / §12: from answer the proxy times the sides `media_check`
        chose; silence ends the call with 15, direction 2."""
        watch = self.setup.media_watch if self.setup is not None else frozenset()
        self.session.watch(watch)
        if watch and self.release is not None:
            call_id, release = self.call_id, self.release
            self.session.on_timeout(lambda _s, _leg: release(call_id, EndReason.MEDIA_TIMEOUT))

    def _media_started(self) -> None:
        if self.driver.call.state is not core.State.RELEASED:
            self._report(MediaStarted())

    def offer(self, setup: Setup) -> None:
        if self._offered:
            raise core.LocalProtocolError("offered twice")
        self._offered = True
        self.setup = setup
        self.call_id = setup.call_id
        self.driver.counters["calls_out"] += 1
        local_media = setup.media
        if setup.proxy_media and self.media is not None and setup.media is not None:
            session = self.media.open_session(setup.call_id)
            if not hasattr(session, "local_address"):  # PortsExhausted
                # SPEC §3 step 9: no RTP pair is the server's refusal (5, 503, direction
                # 2, no failover), not a vendor 503
                if self.release is None or not self.release(
                    setup.call_id, EndReason.NETWORK_CONGESTION
                ):
                    self._report(Failed(code=503))
                return
            self.session = session
            local_media = _through_proxy(session, Side.A, setup.media)
            first_rtp = getattr(session, "on_first_rtp", None)
            if first_rtp is not None:
                first_rtp(Side.B, self._media_started)  # SPEC §4: the vendor's first RTP
        destination = TransportAddress(setup.target_ip, setup.target_port or 1720)
        if setup.target_ip == DYNAMIC:
            # SPEC §2 ip=dynamic: the endpoint registered (RAS) under the gateway's name.
            found = self.locate(setup.gateway) if self.locate is not None else None
            if found is None:
                self._report(Failed())  # not registered: unreachable (SPEC §3: 21)
                return
            destination = found
        place = core.Place(
            caller=setup.caller,
            callee=setup.callee,
            local_media=local_media,
            signal_address=self.signal_address,
            destination=destination,
        )
        self.driver.handle(place)
        try:
            connect_call(self.reactor, self.driver, destination.host, destination.port)
        except Exception:
            # e.g. an unparsable host: the vendor is unreachable (SPEC §3: 21, 408).
            self.driver.handle(core.Release(core.CAUSE_NORMAL))
            self._report(Failed())

    def ring(self, early_media: Media | None) -> None:
        raise core.LocalProtocolError("ring is a caller-leg command")

    def progress(self, early_media: Media | None) -> None:
        raise core.LocalProtocolError("progress is a caller-leg command")

    def answer(self, media: Media | None) -> None:
        raise core.LocalProtocolError("answer is a caller-leg command")

    def hang_up(self, ending: Ending) -> None:
        self.driver.handle(core.Release(ending.q850))

    def cancel(self) -> None:
        self.driver.handle(core.Release(core.CAUSE_NORMAL))

    def send_dtmf(self, dtmf: Dtmf) -> None:
        if self.driver.call.state not in _SPOKEN:
            self.driver.handle(core.SendDigit(dtmf.digit, dtmf.duration_ms))


class H323LegFactory:
    """The engine's leg factory for protocol "h323" (switch/engine.py LegFactory)."""

    def __init__(
        self,
        reactor: Any,
        settings: Callable[[], core.CallSettings],
        counters: dict[str, int],
        signal_address: Callable[[], TransportAddress | None] = lambda: None,
        media: Any = None,
        release: Release | None = None,
        locate: Locate | None = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.counters = counters
        self.signal_address = signal_address
        self.media = media
        self.release = release
        self.locate = locate

    def create_leg(self, setup: Setup, report: Callable[[LegEvent], None]) -> H323CalleeLeg:
        return H323CalleeLeg(
            self.reactor, self.settings(), report, self.counters, self.signal_address(),
            self.media, self.release, self.locate,
        )  # fmt: skip
