"""Shared fixtures: repository paths, the venv's commands, free loopback ports."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TESTDATA = SHARED / "testdata"
BIN = Path(sys.executable).parent


def venv_command(name: str) -> str:
    """A console script of the running interpreter's venv (twistd, vos3k)."""
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable} (run make test)")
    return str(path)


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on host (the kernel's choice, then checked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found")


def free_udp_block(count: int = 4, host: str = "127.0.0.1") -> int:
    """An even port with `count` consecutive UDP ports free on host (SIPp's -mp takes
    the RTP port and the ones above it for RTCP and video)."""
    for _ in range(100):
        base = free_port(socket.SOCK_DGRAM, host) & ~1
        held = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind((host, port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError(f"no block of {count} free UDP ports on {host}")


@pytest.fixture
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    return TESTDATA


@pytest.fixture
def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VOS3K_CONFIG", None)
    return env
