"""Routing-gateway health: OPTIONS every SS_SIP_OPTIONS_CHECK_PERIOD s (SPEC §4 "usable").

Each SIP routing gateway with `options_check` gets one OPTIONS per round.  A probe is
unanswered when its transaction times out or fails (Timer F, transport error) or when
the next round comes first; two unanswered in a row put the gateway offline, any final
answer (even 4xx/5xx: something is listening) puts it online again.  Only the changes
reach the engine (`engine.set_offline(name, offline)`); the router then skips an
offline gateway (SPEC §4).

`observe` is the pure verdict; `GatewayProbe` is the Twisted service: one IDelayedCall
on the injected clock, re-armed when SS_SIP_OPTIONS_CHECK_PERIOD changes (live "yes"),
the gateway list re-read every round and when the store says gateways changed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen
from twisted.application.service import Service
from twisted.logger import Logger

from vos3k.sip.message import Request, Response
from vos3k.sip.transaction import Address
from vos3k.store.models import Gateway

__all__ = ["GatewayProbe", "Health", "Verdict", "install_probe", "observe"]

MISSES_TO_OFFLINE = 2  # SPEC §4: two unanswered in a row


class Health(enum.Enum):
    """What `gateway list` / `gateway show` print as `state`."""

    UNCHECKED = "unchecked"  # not probed (options_check off, H.323) or no verdict yet
    ONLINE = "online"
    OFFLINE = "offline"


@frozen
class Verdict:
    """A gateway's health and the unanswered probes in a row behind it."""

    health: Health = Health.UNCHECKED
    missed: int = 0


def observe(verdict: Verdict, answered: bool) -> Verdict:
    """The verdict after one probe (SPEC §4)."""
    if answered:
        return Verdict(Health.ONLINE, 0)
    missed = verdict.missed + 1
    health = Health.OFFLINE if missed >= MISSES_TO_OFFLINE else verdict.health
    return Verdict(health, missed)


def probed(gateway: Gateway) -> bool:
    """SIP routing gateways with options_check (OPTIONS means nothing to H.323)."""
    return gateway.kind == "routing" and gateway.options_check and gateway.protocol == "sip"


def destination(gateway: Gateway) -> Address:
    return Address("UDP", gateway.ip.strip("[]"), gateway.port or 5060)


class GatewayProbe(Service):
    """Probes routing gateways and tells the engine which are offline."""

    log = Logger()

    def __init__(
        self,
        clock: Any,
        params: Any,
        layer: Any,
        gateways: Callable[[], Iterable[Gateway]],
        set_offline: Callable[[str, bool], None],
    ) -> None:
        """`layer` is the SipCallLayer (`send(request, destination, handler)`, `via`,
        `endpoint.local_address`, `ids`); `gateways()` lists every gateway."""
        self.clock = clock
        self.params = params
        self.layer = layer
        self.gateways = gateways
        self.set_offline = set_offline
        self.verdicts: dict[str, Verdict] = {}
        self.pending: dict[str, object] = {}  # gateway -> token of its unanswered probe
        self.sent = 0
        self._round: Any = None
        self._last_round_ms: int | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- what the shell shows ---------------------------------------------------------

    def state_of(self, name: str) -> str:
        """online / offline / unchecked (`gateway list`, `gateway show`)."""
        return self.verdicts.get(name, Verdict()).health.value

    # -- service ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        subscribe = getattr(self.params, "subscribe", None)
        if subscribe is not None:
            self._unsubscribe = subscribe(self._param_changed)
        self._run_round()

    def stopService(self) -> None:
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._round is not None and self._round.active():
            self._round.cancel()
        self._round = None
        self.pending.clear()

    def gateways_changed(self, table: str) -> None:
        """Store.subscribe listener: forget gateways no longer probed."""
        if table == "gateways":
            self._prune({g.name for g in self._targets()})

    def _param_changed(self, param: Any, old: Any, new: Any) -> None:
        if param.name == "SS_SIP_OPTIONS_CHECK_PERIOD" and self.running:
            self._arm()  # live: the next round comes one new period after the last

    # -- rounds ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _period_ms(self) -> int:
        return int(self.params.snapshot.sip_options_check_period_s) * 1000

    def _targets(self) -> list[Gateway]:
        return [g for g in self.gateways() if probed(g)]

    def _run_round(self) -> None:
        self._round = None
        self._last_round_ms = self._now()
        try:
            targets = self._targets()
            self._prune({g.name for g in targets})
            for gateway in targets:
                if gateway.name in self.pending:  # the last probe's round is over
                    self._verdict(gateway.name, answered=False)
                self._probe(gateway)
        except Exception:
            self.log.failure("OPTIONS probe round failed")
        finally:
            self._arm()

    def _arm(self) -> None:
        if self._round is not None and self._round.active():
            self._round.cancel()
        last = self._now() if self._last_round_ms is None else self._last_round_ms
        delay = max(0, last + self._period_ms() - self._now()) / 1000
        self._round = self.clock.callLater(delay, self._run_round)

    def _prune(self, names: set[str]) -> None:
        for name in [n for n in self.verdicts if n not in names]:
            if self.verdicts.pop(name).health is Health.OFFLINE:
                self.set_offline(name, False)  # no longer probed: no longer held back
        for name in [n for n in self.pending if n not in names]:
            del self.pending[name]

    def _probe(self, gateway: Gateway) -> None:
        to = destination(gateway)
        token = object()
        self.pending[gateway.name] = token

        def answered(response: Response | None) -> None:
            if response is not None and response.status < 200:
                return  # RFC 3261 §17.1.2: wait for the final
            if self.pending.get(gateway.name) is not token:
                return  # its round already counted it unanswered
            del self.pending[gateway.name]
            self._verdict(gateway.name, answered=response is not None)

        self.sent += 1
        self.layer.send(self._options(to), to, answered)

    def _options(self, to: Address) -> Request:
        """RFC 3261 §11.1: an OPTIONS outside any dialog, Max-Forwards 70."""
        layer = self.layer
        local = layer.endpoint.local_address(to)
        host = f"[{to.host}]" if ":" in to.host else to.host
        here = f"[{local.host}]" if ":" in local.host else local.host
        headers = (
            ("Via", layer.via(to)),
            ("Max-Forwards", "70"),
            ("From", f"<sip:vos3k@{here}:{local.port}>;tag={layer.ids.tag()}"),
            ("To", f"<sip:{host}:{to.port}>"),
            ("Call-ID", layer.ids.call_id(local.host)),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
            ("Content-Length", "0"),
        )
        return Request("OPTIONS", f"sip:{host}:{to.port}", headers)

    def _verdict(self, name: str, *, answered: bool) -> None:
        before = self.verdicts.get(name, Verdict())
        after = observe(before, answered)
        self.verdicts[name] = after
        if after.health is before.health:
            return
        offline = after.health is Health.OFFLINE
        if offline or before.health is Health.OFFLINE:
            self.set_offline(name, offline)
        self.log.info("gateway {gateway} is {state}", gateway=name, state=after.health.value)


def install_probe(service: Any) -> GatewayProbe:
    """After install_b2bua: `service.gateway_probe`, and `service.gateway_state(name)`
    for the shell (admin/ reads the verdict, never the protocol objects)."""
    indexes = service.indexes
    probe = GatewayProbe(
        service.reactor,
        service.params,
        service.b2bua,
        lambda: indexes.routing,
        service.engine.set_offline,
    )
    service.store.subscribe(probe.gateways_changed)
    probe.setServiceParent(service)
    service.gateway_probe = probe
    service.gateway_state = probe.state_of
    return probe
