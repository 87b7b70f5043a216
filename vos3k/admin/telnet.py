"""Telnet wiring for the admin shell: the same portal and terminal as SSH, password only."""

from __future__ import annotations

from typing import Any

from twisted.conch.telnet import AuthenticatingTelnetProtocol, TelnetTransport
from twisted.cred import portal
from twisted.internet.protocol import ServerFactory

from vos3k.admin.auth import LoginGuard, guard_for


class GuardedTelnetAuth(AuthenticatingTelnetProtocol):
    """Username/password prompts; locked-out addresses are refused (SPEC.md §10)."""

    def __init__(self, portal: portal.Portal, guard: LoginGuard, reactor: Any):
        super().__init__(portal)
        self.guard = guard
        self.reactor = reactor

    def _peer(self) -> str:
        return str(self.transport.getPeer().host)

    def _now_ms(self) -> int:
        return int(self.reactor.seconds() * 1000)

    def connectionMade(self) -> None:
        if self.guard.locked(self._peer(), self._now_ms()):
            self.transport.write(b"too many failed logins from your address; try later\r\n")
            self.transport.loseConnection()
            return
        super().connectionMade()

    def telnet_Password(self, line: bytes):  # noqa: N802 (Conch API)
        self._user = self.username
        return super().telnet_Password(line)

    def _cbLogin(self, ial) -> None:  # noqa: N802
        self.guard.succeeded(self._peer())
        super()._cbLogin(ial)

    def _ebLogin(self, failure) -> None:  # noqa: N802
        user = getattr(self, "_user", b"").decode("utf-8", "replace")
        if self.guard.failed(self._peer(), user, self._now_ms()):
            self.transport.write(b"\r\ntoo many failed logins; try later\r\n")
            self.transport.loseConnection()
            return
        super()._ebLogin(failure)


def telnet_factory(service: Any, shared: portal.Portal) -> ServerFactory:
    """Telnet connections: negotiation, then the login prompts, then the shell."""
    guard = guard_for(service)
    reactor = service.reactor

    class Factory(ServerFactory):
        def buildProtocol(self, addr):
            proto = TelnetTransport(GuardedTelnetAuth, shared, guard, reactor)
            proto.factory = self
            return proto

    return Factory()
