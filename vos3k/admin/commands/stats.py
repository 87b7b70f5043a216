"""`stats`: the live figures of the running server (INTERFACE.md §6 keys)."""

from __future__ import annotations

from vos3k.admin.shell import Command, Context, Record
from vos3k.store.models import Role


def _stats(ctx: Context) -> Record:
    return Record(dict(ctx.service.stats()))


COMMANDS = [
    Command("stats", "", Role.VIEWER, "stats",
            "calls now, CPS, CDR queues, RTP ports in use, uptime", _stats),
]  # fmt: skip
