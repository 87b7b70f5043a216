"""SSH wiring for the admin shell (twisted.conch): host key, auth, lockout, sessions.

`install_admin(service)` adds the SSH listener (and Telnet when configured) to the
VosService.  An exec request (`ssh host 'COMMAND'`) runs one command with stdout and
stderr kept apart and its 0/1/2 status sent as exit-status; a shell request gets the
interactive terminal.  Nothing here knows a command: that is `shell.py`.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.conch import avatar, interfaces
from twisted.conch.insults import insults
from twisted.conch.ssh import connection, factory, keys, session, userauth
from twisted.conch.telnet import ITelnetProtocol, TelnetBootstrapProtocol
from twisted.cred import portal
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import endpoints
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vos3k.admin.auth import LoginGuard, UserChecker, guard_for
from vos3k.admin.hostkey import HOST_KEY
from vos3k.admin.shell import Session, Shell, build_shell
from vos3k.admin.terminal import ShellTerminal


@implementer(interfaces.ISession)
class AdminAvatar(avatar.ConchUser):
    """One logged-in admin over SSH; `source` is set by the auth service on success."""

    log = Logger()

    def __init__(self, name: str, service: Any, shell: Shell):
        super().__init__()
        self.name = name
        self.service = service
        self.shell = shell
        self.source = ""
        self.channelLookup[b"session"] = session.SSHSession
        self._running = None

    # ISession
    def getPty(self, term, windowSize, modes) -> None:  # noqa: N803 (Conch API)
        pass

    def openShell(self, proto) -> None:
        server = insults.ServerProtocol(
            ShellTerminal, self.shell, self.service, self.name, self.source
        )
        server.makeConnection(proto)
        proto.makeConnection(session.wrapProtocol(server))

    def execCommand(self, proto, command: bytes) -> None:
        line = command.decode("utf-8", "replace")
        # Run on the next turn: the channel must first answer the exec request.
        self.service.reactor.callLater(0, self._exec, proto, line)

    def _exec(self, proto, line: str) -> None:
        run = Session(self.service, self.name, self.source, interactive=False)

        def done(outcome) -> None:
            self._running = None
            if outcome.out:
                proto.outReceived(outcome.out.encode("utf-8"))
            if outcome.err:
                proto.errReceived(outcome.err.encode("utf-8"))
            reason = ProcessDone(0) if outcome.code == 0 else ProcessTerminated(outcome.code)
            proto.processEnded(Failure(reason))

        running = self.shell.run(run, line)
        self._running = running
        running.addCallback(done)
        running.addErrback(lambda f: self.log.failure("exec failed", f))

    def windowChanged(self, newWindowSize) -> None:  # noqa: N803
        pass

    def eofReceived(self) -> None:
        pass

    def closed(self) -> None:
        if self._running is not None:  # the client went away: stop a long job
            self._running.cancel()


@implementer(portal.IRealm)
class AdminRealm:
    """SSH avatars and Telnet terminals for the users the checker let in."""

    def __init__(self, service: Any, shell: Shell):
        self.service = service
        self.shell = shell

    def requestAvatar(self, avatarId: bytes, mind, *wanted):  # noqa: N803
        name = avatarId.decode("utf-8")
        if interfaces.IConchUser in wanted:
            user = AdminAvatar(name, self.service, self.shell)
            return interfaces.IConchUser, user, lambda: None
        if ITelnetProtocol in wanted:
            terminal = TelnetBootstrapProtocol(
                insults.ServerProtocol, ShellTerminal, self.shell, self.service, name
            )
            return ITelnetProtocol, terminal, lambda: None
        # IRealm's contract for an interface this realm does not offer (the portals
        # here only ask for IConchUser or ITelnetProtocol, so no login reaches it).
        raise NotImplementedError(wanted)


class GuardedUserAuth(userauth.SSHUserAuthServer):
    """RFC 4252 user auth that refuses locked-out addresses and counts real failures."""

    guard: LoginGuard
    clock: Any

    def _peer(self) -> str:
        return str(self.transport.transport.getPeer().host)

    def _now_ms(self) -> int:
        return int(self.transport.factory.reactor.seconds() * 1000)

    def ssh_USERAUTH_REQUEST(self, packet: bytes):  # noqa: N802 (Conch API)
        guard = self.transport.factory.guard
        if guard.locked(self._peer(), self._now_ms()):
            self.transport.sendDisconnect(
                userauth.transport.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
                b"too many failed logins from your address; try later",
            )
            return None
        return super().ssh_USERAUTH_REQUEST(packet)

    def _count(self, reason: Failure) -> Failure:
        if reason.check(UnauthorizedLogin):
            user = self.user.decode("utf-8", "replace")
            self.transport.factory.guard.failed(self._peer(), user, self._now_ms())
        return reason

    def auth_password(self, packet: bytes):
        return super().auth_password(packet).addErrback(self._count)

    def auth_publickey(self, packet: bytes):
        d = super().auth_publickey(packet)
        if packet[0:1] != b"\x00":  # only a signed attempt is a real failure
            d.addErrback(self._count)
        return d

    def _cbFinishedAuth(self, result) -> None:  # noqa: N802
        _, user, _ = result
        user.source = self._peer()
        self.transport.factory.guard.succeeded(user.source)
        super()._cbFinishedAuth(result)


class AdminSSHFactory(factory.SSHFactory):
    services = {
        b"ssh-userauth": GuardedUserAuth,
        b"ssh-connection": connection.SSHConnection,
    }

    def __init__(self, service: Any, shell: Shell, the_portal: portal.Portal):
        self.reactor = service.reactor
        self.guard = guard_for(service)
        self.portal = the_portal
        key = keys.Key.fromFile(str(service.settings.data_dir / HOST_KEY))
        self.privateKeys = {key.sshType(): key}
        self.publicKeys = {key.sshType(): key.public()}

    def getPrimes(self):  # noqa: N802
        return None  # no DH group exchange; curve25519/ecdh kex need no primes


def admin_portal(service: Any, shell: Shell) -> portal.Portal:
    """The one portal (one realm, one checker) that SSH and Telnet share."""
    return portal.Portal(AdminRealm(service, shell), [UserChecker(service.store.users)])


def listen_service(reactor, address, server_factory) -> StreamServerEndpointService:
    endpoint_class = (
        endpoints.TCP6ServerEndpoint if ":" in address.host else (endpoints.TCP4ServerEndpoint)
    )
    endpoint = endpoint_class(reactor, address.port, interface=address.host)
    listener = StreamServerEndpointService(endpoint, server_factory)
    listener._raiseSynchronously = True  # a busy port stops start-up with one line
    return listener


def install_admin(service: Any) -> None:
    """Add the SSH listener and, only when configured, Telnet (SPEC.md §10)."""
    from vos3k.admin.telnet import telnet_factory

    settings = service.settings
    if settings.ssh_listen is None and settings.telnet_listen is None:
        return
    shell = build_shell()
    shared = admin_portal(service, shell)
    if settings.ssh_listen is not None:
        ssh_factory = AdminSSHFactory(service, shell, shared)
        service.add_listener(listen_service(service.reactor, settings.ssh_listen, ssh_factory))
    if settings.telnet_listen is not None:
        telnet = telnet_factory(service, shared)
        service.add_listener(listen_service(service.reactor, settings.telnet_listen, telnet))
