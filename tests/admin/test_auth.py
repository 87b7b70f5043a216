"""Admin login: the shared checker (passwords, keys) and the lockout (SPEC.md §10)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.conch.error import ValidPublicKey
from twisted.conch.ssh.keys import Key
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from vos3k.admin.auth import LoginGuard, UserChecker, guard_for
from vos3k.admin.passwords import hash_password
from vos3k.params import SYSTEM
from vos3k.store.models import AdminUser, Role


def _key() -> Key:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )  # fmt: skip
    return Key.fromString(pem)


def _result(d):
    out = []
    d.addBoth(out.append)
    return out[0]


@pytest.fixture
def checker(service):
    return UserChecker(service.store.users, verify_in_thread=False)


def test_password(service, checker):
    service.store.users.put(AdminUser("pw", Role.VIEWER, hash_password("right")), SYSTEM)
    assert _result(checker.requestAvatarId(UsernamePassword(b"pw", b"right"))) == b"pw"
    wrong = _result(checker.requestAvatarId(UsernamePassword(b"pw", b"wrong")))
    assert wrong.check(UnauthorizedLogin)
    unknown = _result(checker.requestAvatarId(UsernamePassword(b"ghost", b"right")))
    assert unknown.check(UnauthorizedLogin)
    keyonly = _result(checker.requestAvatarId(UsernamePassword(b"viewer", b"")))
    assert keyonly.check(UnauthorizedLogin)


def test_public_key(service, checker):
    key, other = _key(), _key()
    line = key.public().toString("OPENSSH").decode() + " me@host"
    service.store.users.put(AdminUser("k", Role.ADMIN, "", (line,)), SYSTEM)
    blob = key.public().blob()
    query = SSHPrivateKey(b"k", b"ssh-ed25519", blob, None, None)
    assert _result(checker.requestAvatarId(query)).check(ValidPublicKey)
    data = b"session data"
    signed = SSHPrivateKey(b"k", b"ssh-ed25519", blob, data, key.sign(data))
    assert _result(checker.requestAvatarId(signed)) == b"k"
    forged = SSHPrivateKey(b"k", b"ssh-ed25519", blob, data, other.sign(data))
    assert _result(checker.requestAvatarId(forged)).check(UnauthorizedLogin)
    stranger = SSHPrivateKey(b"k", b"ssh-ed25519", other.public().blob(), data, other.sign(data))
    assert _result(checker.requestAvatarId(stranger)).check(UnauthorizedLogin)


def test_lockout_after_max_retry_within_window():
    guard = LoginGuard(lambda: (3, 300))
    t = 1_000_000
    assert [guard.failed("192.0.2.9", "u", t + i) for i in range(3)] == [False, False, True]
    assert guard.locked("192.0.2.9", t + 299_000)
    assert not guard.locked("192.0.2.10", t)  # per address
    assert not guard.locked("192.0.2.9", t + 300_002)  # locked out that long, then free


def test_failures_outside_window_lapse_and_success_clears():
    guard = LoginGuard(lambda: (2, 10))
    assert not guard.failed("a", "u", 0)
    assert not guard.failed("a", "u", 10_001)  # the first lapsed
    guard.succeeded("a")
    assert not guard.failed("a", "u", 10_002)
    assert guard.failed("a", "u", 10_003)


def test_limits_follow_live_params(service):
    guard = guard_for(service)
    assert guard_for(service) is guard
    service.params.set("SERVER_LOGIN_MAX_RETRY", "1", SYSTEM)
    assert guard.failed("a", "u", 0)
    assert guard.locked("a", 1)
