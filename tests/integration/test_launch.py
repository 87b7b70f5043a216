"""`twistd vos3k` as an operator starts it: help, bad options, SIGTERM exit status."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, free_port, venv_command

OPTIONS = [
    "--config",
    "--data-dir",
    "--sip-listen",
    "--h323-listen",
    "--ras-listen",
    "--rtp-ports",
    "--media-ip",
    "--ssh-listen",
    "--telnet-listen",
]


def test_help_lists_every_interface_option():
    out = subprocess.run(
        [venv_command("twistd"), "vos3k", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    ).stdout
    for option in OPTIONS:
        assert option + "=" in out, option


@pytest.fixture
def data_dir(tmp_path):
    subprocess.run(
        [venv_command("vos3k"), "init", "--data-dir", str(tmp_path / "data")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return tmp_path / "data"


def twistd(data_dir, *extra):
    return [
        venv_command("twistd"),
        "-n",
        "--pidfile=",
        "vos3k",
        "--data-dir",
        str(data_dir),
        "--sip-listen",
        f"127.0.0.1:{free_port()}",
        "--ssh-listen",
        f"127.0.0.1:{free_port()}",
        "--h323-listen",
        f"127.0.0.1:{free_port()}",
        "--ras-listen",
        f"127.0.0.1:{free_port()}",
        "--rtp-ports",
        "30000-30099",
        *extra,
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sip-listen", "127.0.0.1:99999"], "--sip-listen"),
        (["--data-dir", "/nonexistent/vos3k"], "--data-dir"),
        (["--config", "/nonexistent/vos3k.conf"], "--config"),
        (["--rtp-ports", "9-8"], "--rtp-ports"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(data_dir, extra, message):
    result = subprocess.run(
        twistd(data_dir, *extra), capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("vos3k: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_world_readable_host_key_stops_start_up(data_dir):
    (data_dir / "ssh_host_ed25519_key").chmod(0o644)
    result = subprocess.run(twistd(data_dir), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode != 0 and "chmod 600" in result.stderr


def test_corrupt_database_stops_start_up_untouched(data_dir):
    db = data_dir / "vos3k.db"
    db.write_bytes(b"garbage" * 1000)
    result = subprocess.run(twistd(data_dir), capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode != 0 and "vos3k: error: database" in result.stderr
    assert db.read_bytes() == b"garbage" * 1000


def test_sigterm_exits_zero(data_dir, tmp_path):
    log = tmp_path / "vos3k.log"
    command = twistd(data_dir)
    command[1:1] = ["--logfile", str(log)]
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and "vos3k started" in log.read_text():
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        else:
            pytest.fail("vos3k did not start within 30 s")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "pending CDRs flushed, store closed" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_in_use_is_one_line_and_exit_1(data_dir):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            twistd(data_dir, "--metrics-listen", f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"vos3k: error: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
    )
