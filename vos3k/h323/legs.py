"""H.323 caller and callee legs: the switch's Leg protocol on top of a CallDriver.

A caller leg is an incoming Setup: on `CallArrived` it asks the engine
(`engine.incoming(leg, Arrival(...))`) and then relays the switch's commands as
Alerting/Progress/Connect/Release Complete. A callee leg is one vendor attempt made by
`H323LegFactory.create_leg(setup, report)`: `offer()` opens TCP to the gateway and sends
Setup. Media crosses as SDP both ways (media.py converts). Q.850 causes are carried as
data: `hang_up(ending)` sends `ending.q850`, and the vendor's cause goes back in
`Failed(cause=...)`; mapping to end reasons is switch/reasons.py's alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from vos3k.h323 import call as core
from vos3k.h323.h225 import TransportAddress
from vos3k.h323.transport import CallDriver, connect_call, new_identifiers
from vos3k.switch.admission import Arrival
from vos3k.switch.legs import Ending, Failed, LegEvent, Media, Setup

# Q.850 for a call the switch would not take at all (SPEC §3 step 2's 503 / table 2a).
CAUSE_UNAVAILABLE = 41
CAUSE_REJECTED = 21


class H323CallerLeg:
    """The customer's incoming H.323 call, as the switch's caller leg."""

    log = Logger()

    def __init__(self, engine: Any, driver: CallDriver, source: tuple[str, int]) -> None:
        self.engine = engine
        self.driver = driver
        self.source = source
        self.call_id: str | None = None
        self._report: Callable[[LegEvent], None] | None = None
        driver.listener = self

    # -- from the driver ----------------------------------------------------------------

    def arrived(self, event: core.CallArrived) -> None:
        arrival = Arrival(
            call_id="",
            source_ip=self.source[0],
            source_port=self.source[1],
            protocol="h323",
            caller=event.caller,
            callee=event.callee,
            from_user=event.caller,
            media=event.media,
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
        # The Leg protocol has no DTMF command yet; counted for the report (see notes).
        self.driver.counters["dropped"] += 1

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

    def cancel(self) -> None:
        self.driver.handle(core.Release(core.CAUSE_NORMAL))


class H323CalleeLeg:
    """One attempt towards an H.323 routing gateway (or registered endpoint)."""

    def __init__(
        self,
        reactor: Any,
        settings: core.CallSettings,
        report: Callable[[LegEvent], None],
        counters: dict[str, int],
        signal_address: TransportAddress | None,
    ) -> None:
        self.reactor = reactor
        self._report = report
        self.signal_address = signal_address
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

    def arrived(self, event: core.CallArrived) -> None:
        raise core.LocalProtocolError("an outgoing call cannot receive a Setup")

    def reported(self, event: LegEvent) -> None:
        self._report(event)

    def digit(self, event: core.DigitReceived) -> None:
        self.driver.counters["dropped"] += 1

    def offer(self, setup: Setup) -> None:
        if self._offered:
            raise core.LocalProtocolError("offered twice")
        self._offered = True
        self.driver.counters["calls_out"] += 1
        destination = TransportAddress(setup.target_ip, setup.target_port or 1720)
        place = core.Place(
            caller=setup.caller,
            callee=setup.callee,
            local_media=setup.media,
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


class H323LegFactory:
    """The engine's leg factory for protocol "h323" (switch/engine.py LegFactory)."""

    def __init__(
        self,
        reactor: Any,
        settings: Callable[[], core.CallSettings],
        counters: dict[str, int],
        signal_address: Callable[[], TransportAddress | None] = lambda: None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.counters = counters
        self.signal_address = signal_address

    def create_leg(self, setup: Setup, report: Callable[[LegEvent], None]) -> H323CalleeLeg:
        return H323CalleeLeg(
            self.reactor, self.settings(), report, self.counters, self.signal_address()
        )
