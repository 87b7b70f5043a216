"""`param list|show|set|reset`: the live server parameters (SPEC.md §9)."""

from __future__ import annotations

import fnmatch
from typing import Any

from vos3k.admin.shell import Command, Context, Message, Record, Table
from vos3k.params import Param
from vos3k.store.models import Role

# INTERFACE.md §6: the keys of `param show` and of each `param list` row.
KEYS = ("name", "value", "default", "min", "max", "choices", "unit", "live", "description")
TEXT_COLUMNS = ("name", "value", "default", "range", "unit", "live")


def param_fields(param: Param, value: Any) -> dict[str, Any]:
    """One parameter as INTERFACE.md §6 shows it: value and default as the shell's text."""
    return {
        "name": param.name,
        "value": param.render(value),
        "default": param.render(param.default_value),
        "min": param.min,
        "max": param.max,
        "choices": list(param.choices),
        "unit": param.unit,
        "live": param.live.value,
        "description": param.description,
        "range": param.range_text,
    }


def _list(ctx: Context) -> Table:
    pattern = ctx.arg(0)
    live = ctx.service.params
    rows = []
    for param in live.registry:
        if pattern and not _matches(param, pattern):
            continue
        rows.append(param_fields(param, live.snapshot[param.name]))
    columns = KEYS if ctx.fmt != "text" else TEXT_COLUMNS
    return Table(columns, rows)


def _matches(param: Param, pattern: str) -> bool:
    """A glob (`SS_SIP_*`) or, without wildcards, a substring of the name or an alias."""
    names = (param.name, *param.aliases)
    pattern = pattern.upper()
    if any(ch in pattern for ch in "*?["):
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)
    return any(pattern in n for n in names)


def _show(ctx: Context) -> Record:
    param, value = ctx.service.params.show(ctx.args[0])
    fields = param_fields(param, value)
    if ctx.fmt == "json":
        fields.pop("range")
        return Record({k: fields[k] for k in KEYS})
    fields["aliases"] = ",".join(param.aliases)
    fields["section"] = param.section
    return Record(fields)


def _set(ctx: Context) -> Message:
    param, old, new = ctx.service.params.set(ctx.args[0], ctx.args[1], ctx.actor)
    return Message(f"{param.name}: {param.render(old)} -> {param.render(new)} ({_when(param)})")


def _reset(ctx: Context) -> Message:
    param, old, new = ctx.service.params.reset(ctx.args[0], ctx.actor)
    return Message(f"{param.name}: {param.render(old)} -> {param.render(new)} ({_when(param)})")


def _when(param: Param) -> str:
    return "effective now" if param.live.value == "now" else "effective from the next call"


COMMANDS = [
    Command("param", "list", Role.VIEWER, "param list [PATTERN]",
            "parameters with value, default, range", _list, ("[PATTERN]",)),
    Command("param", "show", Role.VIEWER, "param show NAME",
            "one parameter in full", _show, ("NAME",), completers=("param",)),
    Command("param", "set", Role.ADMIN, "param set NAME VALUE",
            "change a parameter live (validated, persisted, audited)", _set,
            ("NAME", "VALUE"), completers=("param",)),
    Command("param", "reset", Role.ADMIN, "param reset NAME",
            "back to the default value", _reset, ("NAME",), completers=("param",)),
]  # fmt: skip
