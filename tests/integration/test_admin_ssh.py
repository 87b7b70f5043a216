"""The admin shell through the real OpenSSH client against a real `twistd -n vos3k`.

INTERFACE.md §2: key and password login, roles, exit status 0/1/2, `--json`, a live
`param set`; SPEC.md §10: wrong passwords refused and the address locked out; §1
SIGTERM ends with exit 0.  Everything on loopback; only our own PID is signalled.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SSH = shutil.which("ssh")
SSH_KEYGEN = shutil.which("ssh-keygen")
PASSWORD = "correct horse 42"

if not (SSH and SSH_KEYGEN and (BIN / "twistd").exists() and (BIN / "vos3k").exists()):
    pytest.skip("needs the OpenSSH client and the installed twistd/vos3k", allow_module_level=True)


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_options(port: int) -> list[str]:
    return [
        SSH, "-F", "/dev/null", "-p", str(port), "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
    ]  # fmt: skip


class Server:
    def __init__(self, work: Path):
        self.work = work
        self.data = work / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def vsh(self, command: str, user="admin", key=None, source=None):
        args = [*ssh_options(self.port), "-n", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-i", str(key or self.work / "admin_key")]  # fmt: skip
        if source:
            args += ["-b", source]
        args += [f"{user}@127.0.0.1", command]
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def password_login(self, user: str, password: str, command: str, source=None):
        """ssh asks for the password on its terminal: answer it through a pty."""
        args = [*ssh_options(self.port), "-o", "PreferredAuthentications=password",
                "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]  # fmt: skip
        if source:
            args += ["-b", source]
        args += [f"{user}@127.0.0.1", command]
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(args[0], args)
        output, answered, deadline = b"", False, time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"assword:" in output:
                os.write(fd, password.encode() + b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("admin_ssh")
    srv = Server(work)
    run = lambda *a, **kw: subprocess.run(a, check=True, capture_output=True, timeout=60, **kw)  # noqa: E731
    run(str(BIN / "vos3k"), "init", "--data-dir", str(srv.data))
    for name in ("admin_key", "viewer_key"):
        run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(work / name))
    run(str(BIN / "vos3k"), "user", "add", "admin", "--role", "admin",
        "--key", str(work / "admin_key.pub"), "--data-dir", str(srv.data))  # fmt: skip
    run(str(BIN / "vos3k"), "user", "add", "ops", "--role", "operator", "--password-stdin",
        "--data-dir", str(srv.data), input=(PASSWORD + "\n").encode())  # fmt: skip
    srv.proc = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", f"--logfile={work / 'vos3k.log'}", "vos3k",
         "--data-dir", str(srv.data), "--ssh-listen", f"127.0.0.1:{srv.port}",
         "--sip-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
         "--h323-listen", f"127.0.0.1:{free_port()}",
         "--ras-listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
         "--rtp-ports", "41000-41099", "--media-ip", "127.0.0.1"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        if srv.proc.poll() is not None:
            pytest.fail(f"twistd exited: {srv.proc.stderr.read().decode()[-500:]}")
        if srv.vsh("stats")[0] == 0:
            break
        if time.monotonic() > deadline:
            srv.proc.kill()
            pytest.fail("the SSH shell did not answer within 30 s")
        time.sleep(0.3)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_key_login_and_json(server):
    code, out, _ = server.vsh("stats --json")
    assert code == 0
    assert {"current_calls", "cps", "cdr_pending", "uptime_s"} <= set(json.loads(out))
    code, out, _ = server.vsh("param show SS_SIP_TIMEOUT_INVITE --json")
    assert (code, json.loads(out)["name"]) == (0, "SS_SIP_TIMEOUT_INVITE")


@pytest.mark.parametrize(
    ("command", "code", "stderr"),
    [
        pytest.param("help", 0, "", id="INTERFACE-2-ok"),
        pytest.param("param set NO_SUCH_PARAM 1", 1, "error: no such parameter", id="exit-1"),
        pytest.param("frobnicate everything", 2, "error: unknown command", id="exit-2-noun"),
        pytest.param("param frobnicate", 2, "error: param: unknown verb", id="exit-2-verb"),
    ],
)
def test_exit_status_and_stderr(server, command, code, stderr):
    got, out, err = server.vsh(command)
    assert got == code
    assert stderr in err
    if code:
        assert out == ""


def test_param_set_is_live_without_restart(server):
    assert server.vsh("param set SERVER_BILLING_HOLD_TIME_PRECISION 321")[0] == 0
    code, out, _ = server.vsh("param show SERVER_BILLING_HOLD_TIME_PRECISION --json")
    assert (code, json.loads(out)["value"]) == (0, "321")
    rows = json.loads(server.vsh("audit list limit=5 --json")[1])
    change = next(r for r in rows if r["object"] == "SERVER_BILLING_HOLD_TIME_PRECISION")
    assert (change["user"], change["old"], change["new"]) == ("admin", "50", "321")
    assert change["source"] == "127.0.0.1"


def test_viewer_added_in_shell_is_read_only(server):
    pub = (server.work / "viewer_key.pub").read_text().strip()
    assert server.vsh(f"user add watcher role=viewer key='{pub}'")[0] == 0
    key = server.work / "viewer_key"
    assert server.vsh("param list", "watcher", key)[0] == 0
    code, _, err = server.vsh("param set SS_SIP_TIMEOUT_INVITE 7", "watcher", key)
    assert (code, "permission denied" in err) == (1, True)
    assert json.loads(server.vsh("param show SS_SIP_TIMEOUT_INVITE --json")[1])["value"] == "10"


def test_password_login(server):
    code, output = server.password_login("ops", PASSWORD, "account add PWTEST")
    assert code == 0, output
    assert "account PWTEST added" in output


def test_wrong_password_refused_then_lockout(server):
    assert server.vsh("param set SERVER_LOGIN_MAX_RETRY 2")[0] == 0
    source = "127.0.0.3"  # a separate address, so the lockout spares the other tests
    for _ in range(2):
        code, output = server.password_login("ops", "wrong", "stats", source)
        assert code == 255, output
    # Locked out now: even the right key from that address is refused.
    assert server.vsh("stats", source=source)[0] == 255
    assert server.vsh("stats")[0] == 0  # other addresses are unaffected
    log = (server.work / "vos3k.log").read_text()
    assert "admin logins from 127.0.0.3 locked out" in log


def test_sigterm_exits_zero(server):
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
