"""Telnet offers the same shell through the same portal, and honours the lockout."""

from __future__ import annotations

from twisted.cred import portal
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from vos3k.admin.auth import UserChecker, guard_for
from vos3k.admin.passwords import hash_password
from vos3k.admin.shell import build_shell
from vos3k.admin.ssh import AdminRealm
from vos3k.admin.telnet import telnet_factory
from vos3k.params import SYSTEM
from vos3k.store.models import AdminUser, Role


def _telnet(service):
    service.reactor = Clock()
    shared = portal.Portal(
        AdminRealm(service, build_shell()),
        [UserChecker(service.store.users, verify_in_thread=False)],
    )
    factory = telnet_factory(service, shared)
    proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.5", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.5", 40000))
    proto.makeConnection(transport)
    return proto, transport


DO_ECHO, DONT_ECHO = b"\xff\xfd\x01", b"\xff\xfe\x01"  # RFC 857: the client's answers


def _login(proto, user: bytes, password: bytes) -> None:
    proto.dataReceived(user + b"\r\n")
    proto.dataReceived(DO_ECHO)  # the server hides the password: WILL ECHO
    proto.dataReceived(password + b"\r\n")
    proto.dataReceived(DONT_ECHO)  # and shows typing again: WONT ECHO, then logs in


def test_password_login_gets_the_shell(service):
    service.store.users.put(AdminUser("ops", Role.OPERATOR, hash_password("pw")), SYSTEM)
    proto, transport = _telnet(service)
    _login(proto, b"ops", b"pw")
    assert b"ops@vos3k> " in transport.value()
    transport.clear()
    proto.dataReceived(b"account add T\r\n")
    assert b"account T added" in transport.value()


def test_wrong_passwords_lock_the_address_out(service):
    service.params.set("SERVER_LOGIN_MAX_RETRY", "2", SYSTEM)
    service.store.users.put(AdminUser("ops", Role.OPERATOR, hash_password("pw")), SYSTEM)
    proto, transport = _telnet(service)
    for _ in range(2):
        _login(proto, b"ops", b"bad")
    assert b"too many failed logins" in transport.value()
    assert transport.disconnecting
    assert guard_for(service).locked("192.0.2.5", 0)  # the Clock reads 0 s
    _, again = _telnet(service)
    assert b"too many failed logins" in again.value()
