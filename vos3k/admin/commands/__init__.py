"""The admin shell's commands, one module per noun (INTERFACE.md §2)."""

from __future__ import annotations

from vos3k.admin.shell import Command


def all_commands() -> list[Command]:
    from vos3k.admin.commands import (
        account,
        audit,
        blacklist,
        call,
        cdr,
        gateway,
        help,
        param,
        phone,
        rate,
        report,
        stats,
        trace,
        user,
    )

    modules = (param, account, rate, gateway, phone, call, cdr, report, blacklist, audit, user)
    commands = [c for m in modules for c in m.COMMANDS]
    return [*commands, *stats.COMMANDS, *trace.COMMANDS, *help.COMMANDS]
