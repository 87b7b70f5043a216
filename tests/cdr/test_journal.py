"""Issue 7 "kill -9 loses nothing": the writer journals each row before acknowledging it."""

from __future__ import annotations

from decimal import Decimal

from tests.cdr.helpers import Rig, make_row
from vos3k.cdr.journal import JOURNAL_FILE, CdrJournal
from vos3k.cdr.writer import CdrWriter

T = 1_777_000_000_000


def journaled(tmp_path, **params) -> tuple[Rig, CdrJournal]:
    rig = Rig(**params)
    journal = CdrJournal(tmp_path / JOURNAL_FILE)
    rig.writer = CdrWriter(rig.store.cdrs, rig.params, rig.clock, journal)
    return rig, journal


def test_a_row_is_in_the_journal_when_submit_returns_and_gone_after_its_commit(tmp_path):
    rig, journal = journaled(tmp_path, SS_CDR_WRITE_INTERVAL=20)
    got = []
    rig.writer.submit(make_row(1, T + 1000)).addCallback(got.append)
    assert [r["call_uuid"] for r in journal.read()] == ["call-1"] and got == []
    assert journal.dirty
    rig.clock.advance(0)  # the end of the reactor turn: one fdatasync for the turn
    assert not journal.dirty and got == []
    rig.clock.advance(0.02)
    assert got == [1] and journal.read() == []


def test_a_row_without_call_uuid_gets_one_so_a_replay_can_recognise_it(tmp_path):
    rig, journal = journaled(tmp_path)
    row = make_row(1, T + 1000)
    del row["call_uuid"]
    rig.writer.submit(row)
    assert len(journal.read()[0]["call_uuid"]) == 32


def test_replay_commits_the_uncommitted_and_charges_the_committed_once(tmp_path):
    rig, journal = journaled(tmp_path)
    done, lost = make_row(1, T + 1000), make_row(2, T + 2000)
    rig.store.cdrs.commit_batch([done])  # committed, journal not yet truncated
    journal.append(done)
    journal.append(lost)
    with open(journal.path, "ab") as f:
        f.write(b'{"call_uuid":"torn')  # a write cut short: never acknowledged
    seen = []
    rig.writer.on_commit(lambda written: seen.extend(i for i, _ in written))
    rig.writer.startService()
    assert seen == [2] and journal.read() == []
    assert [r["call_uuid"] for r in rig.store.cdrs.query(newest_first=False)] == [
        "call-1",
        "call-2",
    ]
    assert rig.store.accounts.require("ACME").balance == Decimal("99.76")


def test_a_failed_commit_keeps_the_journal(tmp_path, monkeypatch):
    rig, journal = journaled(tmp_path)

    def broken(rows):
        raise OSError("disk full")

    monkeypatch.setattr(rig.store.cdrs, "commit_batch", broken)
    rig.writer.submit(make_row(1, T + 1000))
    rig.writer.flush()
    assert [r["call_uuid"] for r in journal.read()] == ["call-1"]
