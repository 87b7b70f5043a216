"""The `vos3k` console script: init, user add/list/del, check-config; exit statuses."""

from __future__ import annotations

import io
import stat

import pytest

from vos3k.cli import main
from vos3k.store.db import open_store
from vos3k.store.models import Role


def run(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_init_is_idempotent_and_prints_the_first_admin_once(tmp_path, capsys):
    data = tmp_path / "data"
    code, out, _ = run(capsys, "init", "--data-dir", str(data), "--admin", "admin")
    assert code == 0
    assert "created admin user: login 'admin', password '" in out
    key = data / "ssh_host_ed25519_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "vos3k.db").stat().st_mode) == 0o600
    assert (data / "cdr").is_dir()
    key_before = key.read_bytes()
    code, out, _ = run(capsys, "init", "--data-dir", str(data), "--admin", "admin")
    assert code == 0 and "password" not in out and "checked" in out
    assert key.read_bytes() == key_before


def test_user_add_with_key_and_password(tmp_path, capsys, monkeypatch):
    data = tmp_path / "d"
    run(capsys, "init", "--data-dir", str(data))
    pub = tmp_path / "k.pub"
    pub.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG4rT3vTt99Ox5kndS4HmgTrKBT8SKzhK4rhGkEVGlCI x\n"
    )
    code, out, _ = run(
        capsys,
        "user",
        "add",
        "ops",
        "--role",
        "operator",
        "--key",
        str(pub),
        "--data-dir",
        str(data),
    )
    assert code == 0, out
    code, _, _ = run(
        capsys,
        "user",
        "add",
        "view",
        "--role",
        "viewer",
        "--password-stdin",
        "--data-dir",
        str(data),
        stdin="s3cret\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0
    store = open_store(data / "vos3k.db", create=False)
    ops, view = store.users.get("ops"), store.users.get("view")
    assert ops.role is Role.OPERATOR and ops.keys[0].startswith("ssh-ed25519 ")
    assert view.password_hash.startswith("scrypt$") and "s3cret" not in view.password_hash
    store.close()
    code, _, err = run(
        capsys, "user", "add", "ops", "--role", "admin", "--key", str(pub), "--data-dir", str(data)
    )
    assert code == 1 and "already exists" in err and err.count("\n") == 1
    code, out, _ = run(capsys, "user", "list", "--data-dir", str(data))
    assert "ops\toperator\tkey" in out and "view\tviewer\tpassword" in out
    assert run(capsys, "user", "del", "view", "--data-dir", str(data))[0] == 0
    assert run(capsys, "user", "del", "view", "--data-dir", str(data))[0] == 1


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["user", "add", "x", "--role", "king", "--key", "/dev/null"], 1, "--role"),
        (["user", "add", "x", "--role", "admin"], 1, "--password-stdin or --key"),
        (["user", "add", "x", "--role", "admin", "--key", "/nonexistent"], 1, "--key"),
        (["user", "add", "x"], 2, "--role"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors(tmp_path, capsys, argv, code, message):
    run(capsys, "init", "--data-dir", str(tmp_path))
    got, _, err = run(capsys, *argv, "--data-dir", str(tmp_path))
    assert got == code
    assert message in err


def test_user_add_needs_an_initialised_data_dir(tmp_path, capsys):
    pub = tmp_path / "k.pub"
    pub.write_text("ssh-ed25519 AAAA x\n")
    code, _, err = run(
        capsys,
        "user",
        "add",
        "a",
        "--role",
        "admin",
        "--key",
        str(pub),
        "--data-dir",
        str(tmp_path / "empty"),
    )
    assert code == 1 and "vos3k init" in err


def test_check_config(tmp_path, capsys):
    run(capsys, "init", "--data-dir", str(tmp_path))
    code, out, _ = run(capsys, "check-config", "--data-dir", str(tmp_path))
    assert code == 0 and "schema v" in out and out.rstrip().endswith("ok")
    bad = tmp_path / "bad.conf"
    bad.write_text("[sip]\nlisten = nowhere\n")
    code, _, err = run(capsys, "check-config", "--config", str(bad))
    assert code == 1 and "[sip] listen" in err
