"""The Python manhole for role `super`: off unless configured, the service in its namespace."""

from __future__ import annotations

from typing import Any

from twisted.conch.manhole import ColoredManhole

from vos3k.store.models import Role


def manhole_refusal(service: Any, user: str) -> str | None:
    """Why `user` may not open the manhole now, or None (SPEC.md §10: off, super only)."""
    if not getattr(service.settings, "manhole", False):
        return "the manhole is disabled ([admin] manhole = on enables it)"
    record = service.store.users.get(user)
    if record is None or record.role < Role.SUPER:
        return "permission denied: the manhole needs role super"
    return None


def open_manhole(terminal: Any, service: Any) -> ColoredManhole:
    """Replace the shell on this terminal by a Python prompt exposing `service`."""
    manhole = ColoredManhole({"service": service, "store": service.store})
    terminal.terminalProtocol = manhole
    manhole.makeConnection(terminal)
    return manhole
