"""One credentials checker and one realm for SSH and Telnet, and the login lockout.

SPEC.md §10: SERVER_LOGIN_MAX_RETRY failed logins from one address within
SERVER_LOGIN_FAILED_DISABLE_TIME seconds lock that address out for that long.  Both are
read from the live parameters at every attempt, so `param set` applies at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.conch import error as conch_error
from twisted.conch.ssh.keys import BadKeyError, Key
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from vos3k.admin.passwords import dummy_verify, verify_password


class LoginGuard:
    """Counts failed logins per source address and locks an address out (SPEC.md §10)."""

    log = Logger()

    def __init__(self, limits: Callable[[], tuple[int, int]]):
        # limits() -> (max failures, window and lockout in seconds), read at each use.
        self._limits = limits
        self._failures: dict[str, deque[int]] = {}
        self._locked_until: dict[str, int] = {}

    def locked(self, address: str, now_ms: int) -> bool:
        until = self._locked_until.get(address)
        if until is None:
            return False
        if now_ms >= until:
            del self._locked_until[address]
            return False
        return True

    def failed(self, address: str, user: str, now_ms: int) -> bool:
        """Note one failure; True when it locks the address out."""
        max_retry, disable_s = self._limits()
        window_ms = disable_s * 1000
        times = self._failures.setdefault(address, deque())
        times.append(now_ms)
        while times and times[0] <= now_ms - window_ms:
            times.popleft()
        self.log.warn(
            "admin login failed for {user} from {address} ({count} of {max_retry})",
            user=user,
            address=address,
            count=len(times),
            max_retry=max_retry,
        )
        if len(times) >= max_retry:
            self._locked_until[address] = now_ms + window_ms
            del self._failures[address]
            self.log.warn(
                "admin logins from {address} locked out for {seconds} s after {count} failures",
                address=address,
                seconds=disable_s,
                count=max_retry,
            )
            return True
        return False

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


def guard_for(service: Any) -> LoginGuard:
    """The service's one guard (shared by SSH and Telnet), made on first use."""
    guard = getattr(service, "login_guard", None)
    if guard is None:

        def limits() -> tuple[int, int]:
            snap = service.params.snapshot
            return int(snap.login_max_retry), int(snap.login_failed_disable_s)

        guard = LoginGuard(limits)
        service.login_guard = guard
    return guard


@implementer(ICredentialsChecker)
class UserChecker:
    """Passwords (scrypt) and SSH public keys of the admin users in the store."""

    credentialInterfaces = (IUsernamePassword, ISSHPrivateKey)  # noqa: N815 (cred API)

    def __init__(self, users, verify_in_thread: bool = True):
        self._users = users
        self._in_thread = verify_in_thread

    def requestAvatarId(self, credentials) -> defer.Deferred:
        name = credentials.username.decode("utf-8", "replace")
        user = self._users.get(name)
        if ISSHPrivateKey.providedBy(credentials):
            return defer.maybeDeferred(self._check_key, user, credentials)
        password = credentials.password.decode("utf-8", "replace")

        def check() -> bool:
            if user is None or not user.password_hash:
                dummy_verify(password)  # unknown users cost what known ones do
                return False
            return verify_password(password, user.password_hash)

        d = threads.deferToThread(check) if self._in_thread else defer.maybeDeferred(check)

        def decide(ok: bool) -> bytes:
            if not ok:
                raise UnauthorizedLogin("wrong user name or password")
            return credentials.username

        return d.addCallback(decide)

    @staticmethod
    def _check_key(user, credentials) -> bytes:
        if user is None:
            raise UnauthorizedLogin("no such key")
        for line in user.keys:
            try:
                known = Key.fromString(line.encode("utf-8"))
            except (BadKeyError, ValueError, IndexError, TypeError):
                continue
            if known.blob() != credentials.blob:
                continue
            if credentials.signature is None:
                # RFC 4252 §7: a key query without signature; the client signs next.
                raise conch_error.ValidPublicKey()
            if known.verify(credentials.signature, credentials.sigData):
                return credentials.username
            raise UnauthorizedLogin("bad signature")
        raise UnauthorizedLogin("no such key")
