"""The SSH host key in the data dir: created once, refused when others can read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HOST_KEY = "ssh_host_ed25519_key"


class HostKeyError(Exception):
    """The host key is missing, unreadable or readable by others; one-line message."""


def ensure_host_key(data_dir: Path) -> tuple[Path, bool]:
    """Create the ed25519 host key (mode 0600) if absent; returns (path, created)."""
    path = data_dir / HOST_KEY
    if path.exists():
        return path, False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.with_suffix(".pub").write_bytes(public + b" vos3k\n")
    return path, True


def check_host_key(data_dir: Path) -> Path:
    """SPEC.md §10: a host key readable by group or others stops start-up."""
    path = data_dir / HOST_KEY
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise HostKeyError(
            f"no SSH host key at {path} (run 'vos3k init --data-dir {data_dir}')"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HostKeyError(
            f"SSH host key {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):o}); run 'chmod 600 {path}'"
        )
    if not os.access(path, os.R_OK):
        raise HostKeyError(f"SSH host key {path} is not readable")
    return path
