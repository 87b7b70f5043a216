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
    rig.clock.advance(0)  # no fdatasync per reactor turn: write(2) covers kill -9
    assert journal.dirty and got == []
    rig.clock.advance(0.02)  # the batch: sealed, synced and committed, then forgotten
    assert got == [1] and journal.read() == [] and not journal.dirty
    assert list(tmp_path.glob(JOURNAL_FILE + ".*")) == []


def test_a_sealed_segment_is_replayed_with_the_rows_after_it(tmp_path):
    journal = CdrJournal(tmp_path / JOURNAL_FILE)
    journal.append({"call_uuid": "a"})
    first = journal.seal()
    assert first is not None and journal.seal() is None  # nothing new: no segment
    journal.append({"call_uuid": "b"})
    second = journal.seal()
    journal.append({"call_uuid": "c"})
    journal.close()
    # A new process (kill -9 before any commit) sees the segments oldest first.
    again = CdrJournal(tmp_path / JOURNAL_FILE)
    assert [r["call_uuid"] for r in again.read()] == ["a", "b", "c"]
    again.append({"call_uuid": "d"})
    third = again.seal()
    assert third.path.name == JOURNAL_FILE + ".3"  # numbering continues after the old
    first.remove()
    assert [r["call_uuid"] for r in again.read()] == ["b", "c", "d"]
    again.truncate()
    assert again.read() == [] and list(tmp_path.glob(JOURNAL_FILE + ".*")) == []
    second.remove()  # already gone: harmless


def test_rows_submitted_while_a_batch_commits_stay_journaled(tmp_path, monkeypatch):
    rig, journal = journaled(tmp_path, SS_CDR_WRITE_INTERVAL=20)
    real = rig.store.cdrs.commit_batch
    late = []

    def commit(rows):
        # A call ending while the batch is on the writer thread: its row goes to the
        # fresh active file, not into the segment being committed and removed.
        if not late:
            late.append(rig.writer.submit(make_row(9, T + 9000)))
        return real(rows)

    monkeypatch.setattr(rig.store.cdrs, "commit_batch", commit)
    rig.writer.submit(make_row(1, T + 1000))
    rig.writer.flush()
    assert [r["call_uuid"] for r in journal.read()] == ["call-9"]
    rig.clock.advance(0.02)
    assert late[0].called and journal.read() == []


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
    rig.writer.submit(make_row(2, T + 2000))
    rig.writer.flush()  # the failed batch's segment is kept next to the new one
    assert [r["call_uuid"] for r in journal.read()] == ["call-1", "call-2"]
