"""`call list|show|kill`: the current calls, read from service.calls (INTERFACE.md §6)."""

from __future__ import annotations

from typing import Any

from vos3k.admin.shell import Command, CommandError, Context, Message, Record, Table, format_time
from vos3k.store.models import Role

# INTERFACE.md §6: the keys of each `call list` row.
COLUMNS = ("id", "caller", "callee", "caller_gateway", "callee_gateway", "state", "duration_ms")


def _fields(ctx: Context, call: Any) -> dict[str, Any]:
    return {
        "id": call.id,
        "caller": call.caller,
        "callee": call.callee,
        "caller_gateway": call.caller_gateway,
        "callee_gateway": call.callee_gateway,
        "state": call.state,
        "duration_ms": call.duration_ms(ctx.now_ms()),
        "caller_ip": call.caller_ip,
        "callee_ip": call.callee_ip,
        "account": call.account,
        "start_time": format_time(call.start_ms, ctx.tz),
        "connect_time": format_time(call.connect_ms, ctx.tz),
    }


def _require(ctx: Context) -> Any:
    call = ctx.service.calls.get(ctx.args[0])
    if call is None:
        raise CommandError(f"no such call: {ctx.args[0]}")
    return call


def _list(ctx: Context) -> Table:
    return Table(COLUMNS, [_fields(ctx, c) for c in ctx.service.calls.list()])


def _show(ctx: Context) -> Record:
    call = _require(ctx)
    fields = _fields(ctx, call)
    # SPEC §12: a proxied call's RTP figures per direction (a_* = received from the
    # caller side, b_* = from the callee side), read through the media manager's accessor.
    media = getattr(ctx.service, "media", None)
    figures = None if media is None else media.call_stats(call.id)
    if figures is not None:
        fields.update({f"media_{key}": value for key, value in figures.items()})
    return Record(fields)


def _kill(ctx: Context) -> Message:
    call = _require(ctx)
    if not ctx.service.calls.kill(call.id):
        raise CommandError(f"no such call: {call.id}")
    ctx.store.audit.record(ctx.actor, "call kill", call.id, f"{call.caller}->{call.callee}", "")
    return Message(f"call {call.id} ({call.caller} -> {call.callee}) is being released")


COMMANDS = [
    Command("call", "list", Role.VIEWER, "call list", "current calls", _list),
    Command("call", "show", Role.VIEWER, "call show ID", "one current call", _show, ("ID",),
            completers=("call",)),
    Command("call", "kill", Role.OPERATOR, "call kill ID",
            "release a call (end reason 13, Server Forced Release)", _kill, ("ID",),
            completers=("call",)),
]  # fmt: skip
