"""Wires the protection cores into the running service: pre-parse guard, geofence file, blacklists.

After `install_protection(service)` (once the switch, SIP and, if present, H.323 are in):

- `service.protection` is the `Protection`: one `guard.Guard` for every signalling
  transport, its policy rebuilt when a relevant parameter (`SS_ACL_*`,
  `SS_SIGNAL_RATE_*`, `SS_GEOFENCE_*`), a gateway or the blacklist changes, and when a
  static blacklist entry expires (SPEC §9: live "now");
- `service.admit_source(ip, port=0, transport="") -> bool` is the pre-parse check
  (SPEC §3 step 1), set on `service.sip.transport.admit_source` and on
  `service.h323.admit_source` (which H.323 calls as `admit_source(ip)`);
- `SS_GEOFENCE_CIDR_FILE` is read at start and whenever the parameter changes, off the
  reactor thread (`deferToThread`); skipped lines are logged with their line numbers;
- `stats` shows `signalling_dropped` (all transports) and `signalling_dropped_REASON`
  for each `guard.DropReason`;
- `blacklist list|del` reach the dynamic bans and the digest suspensions through
  `Protection.listing(now_ms)` and `Protection.lift(value, kind)` (SPEC §2, §10).

`DynamicScreen` is what `switch/install.py` hands the engine as `dyn`: the engine asks it
at SPEC §3 step 4 and tells it of call starts and ends (SPEC §10 dynamic blacklist).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from attrs import frozen
from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger

from vos3k.store.models import BlacklistEntry
from vos3k.switch.dynblacklist import (
    Ban,
    BanKind,
    CallEnded,
    DynamicBlacklist,
    DynSettings,
    scope_for,
)
from vos3k.switch.geo import CidrMap, GeoFence, GeoLoad, read_geo_file
from vos3k.switch.guard import ALLOW, DropReason, Guard, GuardPolicy, StaticBlacklist
from vos3k.switch.numbers import clean_number

__all__ = ["DynamicScreen", "Protection", "install_protection"]

# Parameters the guard's policy is built from (SPEC §9 Security, all live "now").
POLICY_PARAMS = frozenset(
    {
        "SS_ACL_ALLOW",
        "SS_ACL_DENY",
        "SS_SIGNAL_RATE_LIMIT",
        "SS_SIGNAL_RATE_WINDOW",
        "SS_GEOFENCE_MODE",
        "SS_GEOFENCE_COUNTRIES",
    }
)
GEOFENCE_FILE = "SS_GEOFENCE_CIDR_FILE"
DYNAMIC_KINDS = frozenset(kind.value for kind in BanKind)
# Kinds only the running server holds (SPEC §2 blacklist), never rows in the store.
IN_MEMORY_KINDS = DYNAMIC_KINDS | {"auth"}
AUTH_REASON = "SIP digest failures (SS_AUTHENTICATION_MAX_RETRY)"

# ---------------------------------------------------------------- the engine's hooks


def step4_numbers(ctx: Any) -> tuple[str, str]:
    """(caller, callee) as SPEC §3 step 4 sees them, before the mapping rewrite.

    A phone calls as its own E.164; otherwise the cleaned access numbers (fields 12, 13).
    Computed from the context alone, so a call's end counts under the same numbers its
    admission was checked under, whatever step 5 rewrote them to.
    """
    phone = ctx.caller_phone
    caller = phone.e164 if phone is not None else clean_number(ctx.caller_access)
    return caller, clean_number(ctx.callee_access)


@frozen
class GeofencedMedia:
    """SPEC §10: the offer's media address is in a country the geofence forbids (20)."""

    address: str
    country: str


class DynamicScreen:
    """The dynamic blacklist (SPEC §10) as the engine sees it; no reactor, no clock.

    Only identified callers (a mapping gateway's or a phone's call) are counted: an
    illegal call's numbers are whatever the sender wrote, and counting them would let
    anyone get a real customer's number banned.
    """

    log = Logger()

    def __init__(self, blacklist: DynamicBlacklist | None = None):
        self.blacklist = blacklist or DynamicBlacklist()
        # The current geofence, kept in step with the guard's by Protection.rebuild.
        self.geofence = GeoFence.build("ignore", (), None)
        self._snap: Any = None
        self._settings = DynSettings()

    def settings(self, snap: Any) -> DynSettings:
        """DynSettings of a params snapshot, cached by identity (`param set` makes anew)."""
        if snap is not self._snap:
            self._settings = DynSettings.from_snapshot(snap)
            self._snap = snap
        return self._settings

    def banned(self, ctx: Any, snap: Any, now_ms: int) -> Ban | GeofencedMedia | None:
        """SPEC §3 step 4: why this call is refused with reason 20, or None: a dynamic
        ban, or (SPEC §10) an SDP address the geofence forbids."""
        media = getattr(ctx, "media", None)
        if media is not None and media.address and self.geofence.blocks(media.address):
            return GeofencedMedia(media.address, self.geofence.country(media.address) or "")
        scope = scope_for(self.settings(snap), ctx.caller_gateway)
        if scope is None:
            return None
        caller, callee = step4_numbers(ctx)
        return self.blacklist.banned(caller, callee, scope, now_ms)

    def started(self, ctx: Any, snap: Any, now_ms: int) -> Ban | None:
        """A call arrived and was admitted or refused: the CPS rule counts it."""
        if not _identified(ctx):
            return None
        settings = self.settings(snap)
        caller, _ = step4_numbers(ctx)
        ban = self.blacklist.call_started(
            caller, scope_for(settings, ctx.caller_gateway), settings, now_ms
        )
        self._announce([] if ban is None else [ban], now_ms)
        return ban

    def ended(self, call: Any, snap: Any, now_ms: int) -> list[Ban]:
        """A call is over (`switch.call.Call`, after its CDR commit): the end rules."""
        ctx = call.ctx
        if not _identified(ctx):
            return []
        settings = self.settings(snap)
        caller, callee = step4_numbers(ctx)
        connect = call.connect_ms
        stop = call.stop_ms if call.stop_ms is not None else now_ms
        ended = CallEnded(
            caller, callee, connect is not None, 0 if connect is None else max(0, stop - connect)
        )
        bans = self.blacklist.call_ended(
            ended, scope_for(settings, ctx.caller_gateway), settings, now_ms
        )
        self._announce(bans, now_ms)
        return bans

    def _announce(self, bans: list[Ban], now_ms: int) -> None:
        for ban in bans:
            if ban.since_ms == now_ms:  # new, not an extension of a ban in force
                self.log.warn(
                    "dynamic blacklist: {dir} {value} banned ({kind}: {detail}) for "
                    "{seconds} s{where}",
                    dir=ban.dir,
                    value=ban.value,
                    kind=ban.kind.value,
                    detail=ban.detail,
                    seconds=(ban.expires_ms - now_ms) // 1000,
                    where=f" on gateway {ban.scope}" if ban.scope else "",
                )


def _identified(ctx: Any) -> bool:
    return ctx.caller_gateway is not None or ctx.caller_phone is not None


# ---------------------------------------------------------------- the running side


class Protection:
    """The guard, its policy inputs and the blacklist views of one running service."""

    log = Logger()

    def __init__(
        self,
        *,
        clock: Any,  # IReactorTime: `seconds()` and `callLater()`
        params: Any,  # LiveParams
        gateways: Callable[[], Iterable[Any]],
        static_blacklist: Callable[[], StaticBlacklist],
        screen: DynamicScreen | None = None,
        suspensions: Any | None = None,  # sip.auth.SuspensionTracker
        run_in_thread: Callable[..., defer.Deferred] = threads.deferToThread,
    ) -> None:
        self._clock = clock
        self._params = params
        self._gateways = gateways
        self._static = static_blacklist
        self.screen = screen
        self.suspensions = suspensions
        self._in_thread = run_in_thread
        self._geo_table: CidrMap[str] | None = None
        self._geo_generation = 0
        self._expiry: Any = None  # the IDelayedCall rebuilding at a blacklist expiry
        self.guard = Guard()
        self.rebuild()

    def now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    # -- SPEC §3 step 1 -----------------------------------------------------------------

    def admit_source(self, ip: str, port: int = 0, transport: str = "") -> bool:
        """The transports' pre-parse hook: True lets the packet be parsed."""
        return self.guard.check(ip, int(self._clock.seconds() * 1000)) is ALLOW

    def rebuild(self) -> None:
        """A new guard policy from the current parameters, gateways and blacklist."""
        snap = self._params.snapshot
        blacklist = self._static()
        geofence = GeoFence.build(snap.geofence_mode, snap.geofence_countries, self._geo_table)
        if self.screen is not None:
            self.screen.geofence = geofence  # SPEC §10: SDP addresses too (reason 20)
        self.guard.configure(
            GuardPolicy.from_snapshot(
                snap, geofence=geofence, blacklist=blacklist, gateways=self._gateways()
            )
        )
        self._arm_expiry(blacklist.valid_until_ms)

    def _arm_expiry(self, until_ms: int | None) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if until_ms is not None:
            delay = max(0, until_ms - self.now_ms()) / 1000
            self._expiry = self._clock.callLater(delay, self.rebuild)

    def stop(self) -> None:
        self._arm_expiry(None)
        self._geo_generation += 1  # a load still running is ignored when it lands

    # -- live changes -----------------------------------------------------------------

    def param_changed(self, param: Any, old: Any, new: Any) -> None:
        """LiveParams observer."""
        if param.name == GEOFENCE_FILE:
            self.load_geofence()
        elif param.name in POLICY_PARAMS:
            self.rebuild()

    def table_changed(self, table: str) -> None:
        """Store listener: gateways and blacklist entries feed the policy."""
        if table in ("gateways", "blacklist"):
            self.rebuild()

    def load_geofence(self) -> defer.Deferred:
        """(Re)read SS_GEOFENCE_CIDR_FILE in a thread; the policy follows when it is read.

        A file that cannot be read leaves no country table (and is logged): the old
        file's table described another file, so it is not kept.  Only the latest load
        applies when several overlap.
        """
        self._geo_generation += 1
        generation = self._geo_generation
        path = str(self._params.snapshot.geofence_cidr_file or "").strip()
        if not path:
            return defer.succeed(self._apply_geofence(generation, path, None))
        d = self._in_thread(read_geo_file, path)
        d.addCallback(lambda loaded: self._apply_geofence(generation, path, loaded))
        d.addErrback(lambda failure: self.log.failure("geofence file {path}", failure, path=path))
        return d

    def _apply_geofence(self, generation: int, path: str, loaded: Any) -> None:
        if generation != self._geo_generation:
            return
        if isinstance(loaded, GeoLoad):
            for problem in loaded.problems:
                self.log.warn(
                    "geofence file {path}: {problem} (line skipped)", path=path, problem=problem
                )
            self.log.info(
                "geofence file {path}: {n} CIDRs, {bad} lines skipped",
                path=path,
                n=len(loaded.table),
                bad=len(loaded.problems),
            )
            self._geo_table = loaded.table
        else:
            if loaded is not None:
                self.log.error(
                    "geofence file {path} not loaded: {reason}", path=path, reason=loaded.reason
                )
            self._geo_table = None
        self.rebuild()

    # -- stats --------------------------------------------------------------------------

    def gauges(self) -> dict[str, Callable[[], int]]:
        """`stats` keys: signalling_dropped and one per drop reason (SPEC §10)."""
        guard = self.guard
        figures: dict[str, Callable[[], int]] = {
            "signalling_dropped": lambda: guard.dropped()["total"]
        }
        for reason in DropReason:
            figures[f"signalling_dropped_{reason.value}"] = lambda key=reason.value: (
                guard.dropped()[key]
            )
        return figures

    # -- `blacklist list|del` ---------------------------------------------------------

    def listing(self, now_ms: int) -> list[BlacklistEntry]:
        """Dynamic bans and digest suspensions in force, as SPEC §2 blacklist rows."""
        rows: list[BlacklistEntry] = []
        if self.screen is not None:
            rows.extend(ban.entry() for ban in self.screen.blacklist.listing(now_ms))
        if self.suspensions is not None:
            rows.extend(
                BlacklistEntry(s.value, "both", s.kind, AUTH_REASON, s.expires_ms)
                for s in self.suspensions.listing(now_ms)
            )
        return rows

    def lift(self, value: str, kind: str | None = None) -> int:
        """Lift dynamic bans (a dynamic `kind` or None) and suspensions (`auth` or None)
        of `value`; how many were lifted.  Static entries are the store's."""
        lifted = 0
        if self.screen is not None and (kind is None or kind in DYNAMIC_KINDS):
            bans = self.screen.blacklist
            held = [b for b in bans.listing(self.now_ms()) if b.value == value]
            if kind is None or any(b.kind.value == kind for b in held):
                lifted += bans.remove(value)
        if self.suspensions is not None and kind in (None, "auth"):
            held = [s for s in self.suspensions.listing(self.now_ms()) if s.value == value]
            if self.suspensions.lift(value):
                lifted += max(1, len(held))
        return lifted


class ProtectionService(Service):
    """Loads the geofence file as the service starts; stops the expiry timer."""

    def __init__(self, protection: Protection):
        self.protection = protection

    def startService(self) -> None:
        super().startService()
        self.protection.load_geofence()

    def stopService(self) -> None:
        super().stopService()
        self.protection.stop()


def install_protection(service: Any) -> Protection:
    """Build `service.protection` and plug it into the transports (module docstring)."""
    indexes = service.indexes
    sip = getattr(service, "sip", None)
    authenticator = getattr(sip, "authenticator", None)
    protection = Protection(
        clock=service.reactor,
        params=service.params,
        gateways=lambda: indexes.gateways.values(),
        static_blacklist=service.static_blacklist,
        screen=getattr(service, "dyn_screen", None),
        suspensions=getattr(authenticator, "suspensions", None),
    )
    # Listeners run in subscription order: the hot indexes and the switch's static
    # blacklist subscribed before this, so a rebuild sees their fresh state.
    service.params.subscribe(protection.param_changed)
    service.store.subscribe(protection.table_changed)
    media, screen = getattr(service, "media", None), protection.screen
    if media is not None and screen is not None:
        # SPEC §10: RTP from a geofenced source is dropped (checked per new source)
        media.source_filter = lambda ip: screen.geofence.blocks(ip)
    service.protection = protection
    service.admit_source = protection.admit_source
    if sip is not None:
        sip.transport.admit_source = protection.admit_source
    h323 = getattr(service, "h323", None)
    if h323 is not None:
        h323.admit_source = protection.admit_source
    service.gauges.update(protection.gauges())
    ProtectionService(protection).setServiceParent(service)
    return protection
