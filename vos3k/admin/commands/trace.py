"""`trace on|off`: stream matching SIP and H.323 messages to this admin's terminal."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TextIO

from vos3k.admin.shell import Command, CommandError, Context, Message
from vos3k.store.models import Role
from vos3k.trace import HUB, Tap, TraceFilter

TRACE_DIR = "trace"  # under the data dir: `trace on file=NAME` logs to data_dir/trace/NAME
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# The tap of each interactive terminal; the terminal's on_close hook removes it.
_TAPS: dict[Any, Tap] = {}


def _console(ctx: Context) -> Any:
    console = ctx.session.console
    if console is None or not ctx.session.interactive:
        # A trace streams after the command returns: an exec session has ended by then.
        raise CommandError(
            "trace needs an interactive session: log in with ssh (no command) "
            "or telnet, then run 'trace on'"
        )
    return console


def _open_log(ctx: Context, name: str) -> tuple[Path, TextIO]:
    if not _FILE_NAME.fullmatch(name):
        raise CommandError(f"file={name!r}: a plain file name (letters, digits, . _ -)")
    folder = Path(ctx.service.settings.data_dir) / TRACE_DIR
    path = folder / name
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return path, os.fdopen(fd, "a", encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot open {path}: {exc.strerror}") from None


def _stop(console: Any) -> Tap | None:
    tap = _TAPS.pop(console, None)
    if tap is not None:
        HUB.remove(tap)
    return tap


def _on(ctx: Context) -> Message:
    console = _console(ctx)
    wanted = TraceFilter.parse(ctx.keys.get("ip"), ctx.keys.get("number"))
    if isinstance(wanted, str):
        raise CommandError(wanted)
    path, log_file = None, None
    if "file" in ctx.keys:
        path, log_file = _open_log(ctx, ctx.keys["file"])
    first = console not in _TAPS
    _stop(console)  # `trace on` again replaces the filter
    tap = Tap(
        wanted,
        console.notify,
        ctx.service.reactor,
        tz=ctx.tz,
        backlog=console.backlog,
        log_file=log_file,
    )
    HUB.add(tap)
    _TAPS[console] = tap
    if first:
        console.on_close(lambda: _stop(console))
    logging = f", also to {path}" if path is not None else ""
    return Message(f"trace on: {wanted}{logging}; 'trace off' stops it")


def _off(ctx: Context) -> Message:
    tap = _stop(_console(ctx))
    if tap is None:
        raise CommandError("trace is not on in this session")
    return Message(f"trace off: {tap.shown} messages shown, {tap.dropped} dropped")


COMMANDS = [
    Command("trace", "on", Role.OPERATOR, "trace on [ip=IP|CIDR] [number=DIGITS] [file=NAME]",
            "stream matching SIP/H.323 messages to this session (file: data_dir/trace/NAME)",
            _on, keys=("ip", "number", "file")),
    Command("trace", "off", Role.OPERATOR, "trace off", "stop this session's trace", _off),
]  # fmt: skip
