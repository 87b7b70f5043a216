"""Issue 7 / SPEC §7 durability: kill -9 under load loses no acknowledged CDR and
charges none twice (the writer's journal, replayed on start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO
from vos3k.params import Actor
from vos3k.store.db import open_store
from vos3k.store.models import Account

CHILD = Path(__file__).with_name("killload_child.py")
INITIAL = Decimal("1000000")


def run_child(data_dir: Path, *args: str, kill_after: int | None = None) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), *args],
        stdout=subprocess.PIPE,
        env=env,
    )
    lines: list[str] = []
    try:
        if kill_after is None:
            out, _ = proc.communicate(timeout=30)
            return out.decode().splitlines()
        assert proc.stdout is not None
        while len(lines) < kill_after:
            line = proc.stdout.readline()
            assert line, "the child stopped before it was killed"
            lines.append(line.decode().rstrip("\n"))
        os.kill(proc.pid, signal.SIGKILL)
        # Every line printed before the kill was acknowledged: read them all.
        rest = proc.stdout.read().decode()
        lines += [x for x in rest.split("\n") if x and not x.startswith("recovered")]
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        # A line cut by the kill is not a whole call_uuid the child acknowledged.
        return [x for x in lines if x.count("-") == 1 and x.split("-")[1].isdigit()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_exactly_once(data_dir: Path, acked: set[str]) -> int:
    store = open_store(data_dir / "vos3k.db")
    try:
        rows = store.cdrs.query(limit=None)
        stored = [r["call_uuid"] for r in rows]
        assert len(stored) == len(set(stored)), "a CDR was stored twice"
        missing = acked - set(stored)
        assert not missing, f"{len(missing)} acknowledged CDRs lost, e.g. {sorted(missing)[:3]}"
        charged = sum(Decimal(r["fee_e4"]) / 10000 for r in rows)
        assert store.accounts.require("ACME").balance == INITIAL - charged
        return len(rows)
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path):
    store = open_store(tmp_path / "vos3k.db")
    store.accounts.add(Account("ACME", balance=INITIAL), Actor("test", "kill9"))
    store.close()
    return tmp_path


@pytest.mark.parametrize(
    ("interval_ms", "buffer_size"),
    [
        pytest.param("1000", "100000", id="SPEC-7-killed-before-any-commit"),
        pytest.param("2", "300", id="SPEC-7-killed-between-commits"),
    ],
)
def test_kill_9_mid_load_then_restart_stores_every_acknowledged_cdr_once(
    data_dir, interval_ms, buffer_size
):
    acked = set(run_child(data_dir, "load", interval_ms, buffer_size, kill_after=2000))
    assert len(acked) >= 2000
    out = run_child(data_dir, "recover")
    recovered = int(out[-1].split()[1])
    if interval_ms == "1000":
        # Nothing was committed before the kill: every row came back from the journal.
        assert recovered >= len(acked)
    stored = check_exactly_once(data_dir, acked)
    # Two loads in a row (a second kill on top of the first) still hold the invariant.
    acked |= set(run_child(data_dir, "load", interval_ms, buffer_size, kill_after=1000))
    run_child(data_dir, "recover")
    assert check_exactly_once(data_dir, acked) > stored
