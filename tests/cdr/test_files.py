"""SPEC §7 "Files": hourly pipe files, fsync policy, exactly-once start-up, rotation."""

from __future__ import annotations

import pytest

from tests.cdr.helpers import SHANGHAI, Rig, local_ms, make_cdr, make_row
from vos3k.cdr import files as files_module
from vos3k.cdr.files import CdrFileWriter
from vos3k.cdr.record import to_pipe_line


@pytest.fixture
def fsyncs(monkeypatch):
    calls: list[int] = []
    real = files_module.os.fsync

    def counting(fd):
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(files_module.os, "fsync", counting)
    return calls


def output(rig: Rig, cdr_dir) -> CdrFileWriter:
    out = CdrFileWriter(rig.store.cdrs, rig.params, rig.clock, cdr_dir, SHANGHAI)
    rig.writer.on_commit(out.on_commit)
    out.startService()
    return out


def expected(*cdrs) -> str:
    return "".join(to_pipe_line(c, SHANGHAI) for c in cdrs)


def test_each_cdr_goes_to_the_file_of_its_local_stop_hour(tmp_path):
    rig = Rig()
    output(rig, tmp_path)
    stops = [local_ms(2026, 5, 1, 10, 59, 59), local_ms(2026, 5, 1, 11, 0, 0)]
    rig.commit([make_row(n, stop) for n, stop in enumerate(stops)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026050110.txt", "2026050111.txt"]
    assert (tmp_path / "2026050110.txt").read_text() == expected(make_cdr(0, stops[0]))
    assert (tmp_path / "2026050111.txt").read_text() == expected(make_cdr(1, stops[1]))


@pytest.mark.parametrize(
    ("interval", "after_batch", "after_interval"),
    [
        pytest.param(0, 1, 1, id="SPEC-9-SERVER_CDR_FILE_WRITE_INTERVAL-0-every-batch"),
        pytest.param(5, 0, 1, id="SPEC-9-SERVER_CDR_FILE_WRITE_INTERVAL-5s"),
    ],
)
def test_fsync_period(tmp_path, fsyncs, interval, after_batch, after_interval):
    rig = Rig(SERVER_CDR_FILE_WRITE_INTERVAL=interval)
    out = output(rig, tmp_path)
    first = local_ms(2026, 5, 1, 10, 0, 0)
    rig.commit([make_row(1, first)])  # the first line opens the file: no fsync yet
    fsyncs.clear()
    rig.commit([make_row(2, first + 1000)])
    assert len(fsyncs) == after_batch
    rig.clock.advance(5)
    assert len(fsyncs) == after_interval
    # The position is stored only once the lines are on disk.
    assert rig.store.cdrs.output_position("files") == out.last_id == 2


def test_the_first_batch_of_a_new_hour_fsyncs_the_old_file(tmp_path, fsyncs):
    rig = Rig(SERVER_CDR_FILE_WRITE_INTERVAL=3600)
    output(rig, tmp_path)
    rig.commit([make_row(1, local_ms(2026, 5, 1, 10, 30, 0))])
    assert fsyncs == []
    rig.commit([make_row(2, local_ms(2026, 5, 1, 11, 0, 1))])
    assert len(fsyncs) == 1


def test_start_up_after_kill_9_appends_missing_cdrs_exactly_once(tmp_path):
    rig = Rig(SERVER_CDR_FILE_WRITE_INTERVAL=3600)
    output(rig, tmp_path)
    stop = local_ms(2026, 5, 1, 10, 0, 0)
    cdrs = [make_cdr(n, stop + n * 1000) for n in range(6)]
    rows = [make_row(n, stop + n * 1000) for n in range(6)]
    rig.commit(rows[:2])  # opens the file: checkpoint after id 0, at size 0
    rig.commit(rows[2:4])  # written, not yet fsynced or checkpointed
    hour = tmp_path / "2026050110.txt"
    with open(hour, "a") as f:
        f.write("8613|half a line cut by the kill")
    # kill -9: the output object is gone; CDRs 5 and 6 commit before the next start.
    rig.store.cdrs.commit_batch(rows[4:])
    again = CdrFileWriter(rig.store.cdrs, rig.params, rig.clock, tmp_path, SHANGHAI)
    again.startService()
    assert hour.read_text() == expected(*cdrs)
    again.stopService()
    third = CdrFileWriter(rig.store.cdrs, rig.params, rig.clock, tmp_path, SHANGHAI)
    third.startService()  # a clean restart appends nothing
    assert hour.read_text() == expected(*cdrs)


def test_record_to_file_is_live_and_off_time_cdrs_never_reach_the_files(tmp_path):
    rig = Rig()
    output(rig, tmp_path)
    stop = local_ms(2026, 5, 1, 10, 0, 0)
    rig.commit([make_row(1, stop)])
    rig.set("SS_CDR_RECORD_TO_FILE", 0)
    rig.commit([make_row(2, stop + 1000)])
    rig.set("SS_CDR_RECORD_TO_FILE", 1)
    rig.commit([make_row(3, stop + 2000)])
    want = expected(make_cdr(1, stop), make_cdr(3, stop + 2000))
    assert (tmp_path / "2026050110.txt").read_text() == want
    restarted = CdrFileWriter(rig.store.cdrs, rig.params, rig.clock, tmp_path, SHANGHAI)
    restarted.startService()
    assert (tmp_path / "2026050110.txt").read_text() == want


def test_write_max_keeps_the_newest_files(tmp_path):
    rig = Rig(SERVER_CDR_FILE_WRITE_MAX=2)
    output(rig, tmp_path)
    for n, hour in enumerate((8, 9, 10, 11)):
        rig.commit([make_row(n, local_ms(2026, 5, 1, hour, 5, 0))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026050110.txt", "2026050111.txt"]
    rig.set("SERVER_CDR_FILE_WRITE_MAX", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026050111.txt"]
