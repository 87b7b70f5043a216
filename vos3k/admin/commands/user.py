"""`user add|del|list|passwd`: admin users, their roles, passwords and SSH keys."""

from __future__ import annotations

import re

import attrs
from twisted.conch.ssh.keys import BadKeyError, Key

from vos3k.admin.passwords import generate_password, hash_password
from vos3k.admin.shell import Command, CommandError, Context, Message, Table
from vos3k.store.models import AdminUser, Role

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")


def _key(text: str) -> str:
    """One OpenSSH public key line, checked by parsing it."""
    line = text.strip()
    try:
        Key.fromString(line.encode("utf-8"))
    except (BadKeyError, ValueError, IndexError, TypeError) as exc:
        raise CommandError(f"key: not an OpenSSH public key line ({exc or 'unreadable'})") from None
    if len(line.split()) < 2:
        raise CommandError("key: not an OpenSSH public key line")
    return line


def _grantable(ctx: Context, role: Role) -> None:
    """Nobody hands out more power than they hold."""
    mine = ctx.session.role()
    if mine is None or role > mine:
        raise CommandError(f"permission denied: you cannot grant role {role}")


def _add(ctx: Context) -> Message:
    name = ctx.args[0]
    if not _NAME.fullmatch(name):
        raise CommandError(f"user name {name!r}: 1-32 of letters, digits, _ . -")
    try:
        role = Role.parse(ctx.keys["role"])
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _grantable(ctx, role)
    keys = (_key(ctx.keys["key"]),) if ctx.keys.get("key") else ()
    password = ctx.keys.get("password")
    if password == "":
        raise CommandError("password: must not be empty")
    shown = ""
    if password is None and not keys:
        password = generate_password()
        shown = f"; password '{password}' (shown once)"
    password_hash = hash_password(password) if password else ""
    ctx.store.users.put(AdminUser(name, role, password_hash, keys), ctx.actor, create_only=True)
    return Message(f"user {name} added with role {role}{shown}")


def _del(ctx: Context) -> Message:
    name = ctx.args[0]
    if name == ctx.session.user:
        raise CommandError("you cannot delete yourself")
    user = ctx.store.users.get(name)
    if user is not None:
        _grantable(ctx, user.role)
    ctx.store.users.delete(name, ctx.actor)
    return Message(f"user {name} deleted")


def _list(ctx: Context) -> Table:
    rows = [
        {
            "name": u.name,
            "role": str(u.role),
            "password": bool(u.password_hash),
            "keys": len(u.keys),
        }
        for u in ctx.store.users.list()
    ]
    return Table(("name", "role", "password", "keys"), rows)


def _passwd(ctx: Context) -> Message:
    name = ctx.args[0]
    user = ctx.store.users.get(name)
    if user is None:
        raise CommandError(f"no such user: {name}")
    mine = ctx.session.role()
    # Anyone may change their own password; others' need role admin (and enough power).
    if name != ctx.session.user:
        if mine is None or mine < Role.ADMIN:
            raise CommandError("permission denied: 'user passwd' of another user needs role admin")
        _grantable(ctx, user.role)
    password = ctx.keys.get("password")
    if password == "":
        raise CommandError("password: must not be empty")
    shown = ""
    if password is None:
        password = generate_password()
        shown = f": new password '{password}' (shown once)"
    ctx.store.users.put(attrs.evolve(user, password_hash=hash_password(password)), ctx.actor)
    return Message(f"password of {name} changed{shown}")


COMMANDS = [
    Command("user", "add", Role.ADMIN,
            "user add NAME role=viewer|operator|admin|super [password=PW] "
            "[key='ssh-ed25519 AAAA... comment']",
            "add an admin user (no password or key: one is generated and shown)", _add,
            ("NAME",), ("role", "password", "key"), ("role",)),
    Command("user", "del", Role.ADMIN, "user del NAME", "delete an admin user", _del,
            ("NAME",), completers=("user",)),
    Command("user", "list", Role.ADMIN, "user list", "admin users and how they log in", _list),
    Command("user", "passwd", Role.VIEWER, "user passwd NAME [password=PW]",
            "set a password (yours, or anyone's as admin); none given: one is generated",
            _passwd, ("NAME",), ("password",), completers=("user",)),
]  # fmt: skip
