"""Admin passwords: scrypt hashes (cryptography) in a self-describing text form."""

from __future__ import annotations

import base64
import hmac
import os
import secrets

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# RFC 7914 parameters: n=2**14 keeps a login under ~50 ms on this class of machine.
_N, _R, _P, _LEN = 2**14, 8, 1, 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` for storing in admin_users.password_hash."""
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=_LEN, n=_N, r=_R, p=_P).derive(password.encode("utf-8"))
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash; any malformed hash is a mismatch."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        kdf = Scrypt(
            salt=base64.b64decode(salt),
            length=len(base64.b64decode(key)),
            n=int(n),
            r=int(r),
            p=int(p),
        )
        kdf.verify(password.encode("utf-8"), base64.b64decode(key))
    except (ValueError, InvalidKey):
        return False
    return True


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, so unknown users cost what known ones do."""
    hmac.compare_digest(b"x", b"y")
    verify_password(password, _DUMMY)


def generate_password() -> str:
    """A password for the first admin, typed from a terminal: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


_DUMMY = hash_password(secrets.token_hex(8))
