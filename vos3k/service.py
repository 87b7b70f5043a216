"""build_service(): the vos3k MultiService, made from validated Settings and a reactor.

Owns the start-up order (store, parameters, CDR writer, then listeners) and the
shutdown order (stop accepting, flush pending CDRs, close the store), so that SIGTERM
ends with exit status 0 and nothing lost.
"""

from __future__ import annotations

import faulthandler
import gc
import signal
import sys
import time
from collections.abc import Callable

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from vos3k import watchdog
from vos3k.admin.hostkey import check_host_key
from vos3k.admin.ssh import install_admin
from vos3k.cdr.files import install_cdr_outputs
from vos3k.cdr.journal import JOURNAL_FILE, CdrJournal
from vos3k.cdr.writer import CdrWriter
from vos3k.config import Settings, check_data_dir
from vos3k.media.relay import install_media
from vos3k.params import LiveParams
from vos3k.store.db import open_store
from vos3k.switch.calls import CurrentCalls
from vos3k.switch.install import install_switch
from vos3k.switch.protect import install_protection


class VosService(MultiService):
    """The whole softswitch: its children are the subsystems and their listeners."""

    log = Logger()

    def __init__(self, settings: Settings, reactor):
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.started_ms = int(reactor.seconds() * 1000)
        check_data_dir(settings)
        if settings.ssh_listen is not None:
            check_host_key(settings.data_dir)
        settings.cdr_dir.mkdir(exist_ok=True)
        self.store = open_store(
            settings.db_path, now_ms=lambda: int(time.time() * 1000), create=False
        )
        self.params = LiveParams(self.store.params)
        # SPEC.md §7: rows are journaled before submit() returns; replayed on start.
        # Batches commit on the writer's own thread and connection (STYLE.md §6).
        journal = CdrJournal(settings.data_dir / JOURNAL_FILE)
        self.cdr_writer = CdrWriter(
            self.store.cdrs, self.params, reactor, journal, own_store=self.store.reopen
        )
        self.cdr_writer.setServiceParent(self)
        self.calls = CurrentCalls()
        # Gauges other subsystems provide as they land (RTP ports, CDR feed backlog).
        self.gauges: dict[str, Callable[[], int]] = {}

    def now_ms(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def stats(self) -> dict[str, int]:
        """The live figures `stats` shows (INTERFACE.md §6 keys)."""
        figures = {
            "current_calls": len(self.calls),
            "cps": self.calls.cps(self.now_ms()),
            "calls_total": self.calls.total,
            "cdr_pending": self.cdr_writer.pending,
            "cdr_committed": self.cdr_writer.committed_total,
            "feed_pending": 0,
            "feed_dropped": 0,
            "rtp_ports_in_use": 0,
            "uptime_s": self.uptime_s,
        }
        figures.update({name: gauge() for name, gauge in self.gauges.items()})
        return figures

    @property
    def uptime_s(self) -> int:
        return int(self.reactor.seconds() - self.started_ms / 1000)

    def add_listener(self, service) -> None:
        """A child that binds a port; bound in privilegedStartService, before the reactor."""
        service.setServiceParent(self)

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as exc:
            # twistd has already redirected sys.stderr into its log by now: tell the
            # operator on the real stderr too, then exit before the reactor runs.
            message = f"cannot listen on {exc.interface or '*'}:{exc.port}: {exc.socketError}"
            self.log.critical("start-up failed: {message}", message=message)
            sys.__stderr__.write(f"vos3k: error: {message}\n")
            raise SystemExit(1) from None

    def startService(self) -> None:
        super().startService()
        # Everything loaded so far (modules, pycrate's ASN.1 tables, indexes) lives for
        # the whole run: keep it out of the garbage collector's scans (~5 % CPU per call).
        gc.freeze()
        # SIGUSR1 writes every thread's stack to the original stderr from C, so it works
        # even when the reactor thread is stuck in a system call or a lock (vos3k.8).
        if sys.__stderr__ is not None and hasattr(signal, "SIGUSR1"):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
        self.stall_watch = watchdog.from_environment(self.reactor)
        self.log.info(
            "vos3k started: data dir {data_dir}, {n} parameters, schema v{schema}",
            data_dir=str(self.settings.data_dir),
            n=len(self.params.registry),
            schema=self.store.schema_version,
        )

    def stopService(self) -> defer.Deferred:
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if getattr(self, "stall_watch", None) is not None:
            self.stall_watch.stop()
        # SPEC.md §14: calls end first (reason 13), while the signalling listeners can
        # still carry their BYEs and final responses; their CDRs are committed by the
        # flush, which also releases the ending messages.  Then the children stop in
        # reverse order: listeners first, the CDR writer last.
        engine = getattr(self, "engine", None)
        if engine is not None and len(engine):
            ended = engine.shutdown()
            self.cdr_writer.flush()
            await ended
        # Every CDR committed (on the writer thread) before any child stops.
        await self.cdr_writer.drained()
        await super().stopService()
        self.store.close()
        self.log.info("vos3k stopped: pending CDRs flushed, store closed")
        # twistd re-raises the signal that stopped the reactor so the exit status shows
        # it (143); INTERFACE.md §1 promises exit 0 after an orderly SIGTERM shutdown.
        if getattr(self.reactor, "_exitSignal", None) == signal.SIGTERM:
            self.reactor._exitSignal = None


def build_service(settings: Settings, reactor) -> VosService:
    """Everything the process runs, wired to one reactor (tests pass a fake one)."""
    from vos3k.h323.install import install_h323
    from vos3k.metrics import install_metrics
    from vos3k.sip.b2bua import install_b2bua
    from vos3k.sip.install import install_sip

    service = VosService(settings, reactor)
    # Each subsystem adds its children; the order is the start-up order (and the
    # reverse of the stop order).
    install_cdr_outputs(service)
    install_media(service)
    install_switch(service)
    install_sip(service)
    install_b2bua(service)
    install_h323(service)
    # After every signalling transport: it plugs the pre-parse guard into them.
    install_protection(service)
    install_admin(service)
    install_metrics(service)
    return service
