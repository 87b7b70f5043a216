"""A fake service (in-memory store, real LiveParams and CurrentCalls) for shell tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet import defer

from vos3k.admin.shell import Outcome, Session, build_shell
from vos3k.params import SYSTEM, LiveParams
from vos3k.store.db import open_store
from vos3k.store.models import AdminUser, Role
from vos3k.switch.calls import CurrentCalls

NOW_MS = 1_767_268_800_000  # 2026-01-01 12:00:00 UTC


class FakeSettings:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.timezone = "UTC"
        self.manhole = False


class FakeService:
    def __init__(self, data_dir: Path):
        self.now = NOW_MS
        self.store = open_store(None, now_ms=lambda: self.now)
        self.params = LiveParams(self.store.params)
        self.calls = CurrentCalls()
        self.settings = FakeSettings(data_dir)
        for name, role in (
            ("viewer", Role.VIEWER),
            ("operator", Role.OPERATOR),
            ("admin", Role.ADMIN),
            ("super", Role.SUPER),
        ):
            self.store.users.put(AdminUser(name, role, "", ()), SYSTEM)

    def now_ms(self) -> int:
        return self.now

    def stats(self) -> dict[str, int]:
        return {
            "current_calls": len(self.calls),
            "cps": self.calls.cps(self.now),
            "cdr_pending": 0,
            "feed_pending": 0,
            "feed_dropped": 0,
            "rtp_ports_in_use": 0,
            "uptime_s": 5,
        }


def drive(steps) -> defer.Deferred:
    """Run a job's steps at once (no reactor in unit tests)."""
    for _ in steps:
        pass
    return defer.succeed(None)


class Runner:
    def __init__(self, service: FakeService):
        self.service = service
        self.shell = build_shell()

    def __call__(self, line: str, user: str = "admin") -> Outcome:
        session = Session(self.service, user, "192.0.2.1", run_steps=drive)
        results: list[Outcome] = []
        self.shell.run(session, line).addCallback(results.append)
        assert results, f"{line!r} did not finish synchronously"
        return results[0]


@pytest.fixture
def service(tmp_path) -> FakeService:
    return FakeService(tmp_path)


@pytest.fixture
def run(service) -> Runner:
    return Runner(service)
