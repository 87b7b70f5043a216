"""The `vos3k` console script: offline work on a data dir (init, users, config check).

Exit status: 0 success, 1 error (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vos3k.admin.hostkey import ensure_host_key
from vos3k.admin.passwords import generate_password, hash_password
from vos3k.config import DEFAULT_CONFIG, ConfigError, load_settings
from vos3k.params import Actor, LiveParams, ParamError
from vos3k.store.db import StoreError, open_store
from vos3k.store.models import AdminUser, Role
from vos3k.store.repos import ExistsError, NotFoundError

CLI = Actor(user="cli", source=f"local:{os.getenv('USER') or os.getuid()}")


class CliError(Exception):
    """A command failed; printed as one line, exit 1."""


def _settings(args: argparse.Namespace):
    config = args.config
    if config is None and Path(DEFAULT_CONFIG).exists() and args.data_dir is None:
        config = DEFAULT_CONFIG
    return load_settings({"config": config, "data-dir": args.data_dir})


def cmd_init(args: argparse.Namespace) -> None:
    settings = _settings(args)
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        (data_dir / "cdr").mkdir(exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data-dir: cannot create {data_dir}: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK):
        raise CliError(f"--data-dir: {data_dir} is not writable")
    existed = settings.db_path.exists()
    store = open_store(settings.db_path)
    # Phone passwords are stored for digest auth: the db is for vos3k's user only.
    settings.db_path.chmod(0o600)
    try:
        LiveParams(store.params)  # a db with invalid parameter values is refused here too
        _, key_created = ensure_host_key(data_dir)
        print(
            f"{'checked' if existed else 'created'} {settings.db_path} "
            f"(schema v{store.schema_version})"
        )
        if key_created:
            print(f"created SSH host key {data_dir / 'ssh_host_ed25519_key'}")
        if args.admin and store.users.get(args.admin) is None:
            password = generate_password()
            store.users.put(
                AdminUser(args.admin, Role.ADMIN, hash_password(password)), CLI, create_only=True
            )
            print(f"created admin user: login '{args.admin}', password '{password}'")
            print("(shown once; change it in the shell with 'user passwd')")
    finally:
        store.close()


def _read_key(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--key: cannot read {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if (
        len(lines) != 1
        or len(lines[0].split()) < 2
        or not lines[0].split()[0].startswith(("ssh-", "ecdsa-", "sk-"))
    ):
        raise CliError(f"--key: {path} is not one OpenSSH public key line")
    return lines[0].strip()


def _open_existing(args: argparse.Namespace):
    settings = _settings(args)
    if not settings.db_path.exists():
        raise CliError(
            f"--data-dir: {settings.data_dir} has no vos3k.db "
            f"(run 'vos3k init --data-dir {settings.data_dir}')"
        )
    return open_store(settings.db_path, create=False)


def cmd_user_add(args: argparse.Namespace) -> None:
    try:
        role = Role.parse(args.role)
    except ValueError as exc:
        raise CliError(f"--role: {exc}") from None
    password_hash = ""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("--password-stdin: no password on standard input")
        password_hash = hash_password(password)
    keys = tuple(_read_key(path) for path in args.key or [])
    if not password_hash and not keys:
        raise CliError("give --password-stdin or --key: a user needs a way to log in")
    store = _open_existing(args)
    try:
        store.users.put(AdminUser(args.name, role, password_hash, keys), CLI, create_only=True)
    except ExistsError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(f"user {args.name} added with role {role}")


def cmd_user_list(args: argparse.Namespace) -> None:
    store = _open_existing(args)
    try:
        for user in store.users.list():
            auth = ",".join(
                m for m, on in (("password", user.password_hash), ("key", user.keys)) if on
            )
            print(f"{user.name}\t{user.role}\t{auth}")
    finally:
        store.close()


def cmd_user_del(args: argparse.Namespace) -> None:
    store = _open_existing(args)
    try:
        store.users.delete(args.name, CLI)
    except NotFoundError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(f"user {args.name} deleted")


def cmd_check_config(args: argparse.Namespace) -> None:
    options = {"config": args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)}
    options["data-dir"] = args.data_dir
    settings = load_settings(options)
    print(f"config: {settings.config_file or '(built-in defaults)'}")
    print(f"data dir: {settings.data_dir}")
    print(f"sip: {', '.join(str(a) for a in settings.sip_listen)} (UDP and TCP)")
    for label, address in (
        ("h323", settings.h323_listen),
        ("ras", settings.ras_listen),
        ("ssh", settings.ssh_listen),
        ("telnet", settings.telnet_listen),
        ("metrics", settings.metrics_listen),
    ):
        print(f"{label}: {address or 'off'}")
    print(f"rtp: {settings.rtp_ports[0]}-{settings.rtp_ports[1]} on {settings.media_ip}")
    if settings.db_path.exists():
        store = open_store(settings.db_path, create=False)
        try:
            params = LiveParams(store.params)
            print(
                f"store: schema v{store.schema_version}, {len(params.registry)} parameters, "
                f"{len(store.users.list())} admin users"
            )
        finally:
            store.close()
    else:
        print(f"store: none yet (run 'vos3k init --data-dir {settings.data_dir}')")
    print("ok")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="data directory (default: from the config, else var)")
    common.add_argument("--config", help=f"configuration file (default: {DEFAULT_CONFIG})")
    parser = argparse.ArgumentParser(
        prog="vos3k", description="Offline administration of a vos3k data directory."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser(
        "init", parents=[common], help="create the db, SSH host key and cdr/ (idempotent)"
    )
    init.add_argument("--admin", metavar="NAME", help="also create this admin, print its password")
    init.set_defaults(func=cmd_init)
    user = sub.add_parser("user", help="admin users").add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    add = user.add_parser("add", parents=[common], help="add an admin user")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="viewer|operator|admin|super")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--key", action="append", metavar="PUBKEY_FILE", help="OpenSSH public key")
    add.set_defaults(func=cmd_user_add)
    lst = user.add_parser("list", parents=[common], help="list admin users")
    lst.set_defaults(func=cmd_user_list)
    delete = user.add_parser("del", parents=[common], help="delete an admin user")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_user_del)
    check = sub.add_parser(
        "check-config", parents=[common], help="validate the config file and data dir"
    )
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2
    try:
        args.func(args)
    except (CliError, ConfigError, StoreError, ParamError) as exc:
        print(f"vos3k: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
