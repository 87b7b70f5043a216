"""The interactive admin shell on a terminal: prompt, line editing, history, completion.

The same protocol runs under SSH and Telnet (insults.ServerProtocol in both); it only
draws and reads lines, and hands each line to `Shell` like any other transport.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.conch.recvline import HistoricRecvLine
from twisted.internet import defer
from twisted.logger import Logger

from vos3k.admin.manhole import manhole_refusal, open_manhole
from vos3k.admin.shell import Outcome, Session, Shell

HISTORY_LINES = 500
_SECRET = re.compile(r"(password=)(\S+|'[^']*'|\"[^\"]*\")")


def history_path(data_dir: Path, user: str) -> Path:
    return Path(data_dir) / "history" / user


def load_history(path: Path) -> list[bytes]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][-HISTORY_LINES:]


def append_history(path: Path, line: str) -> None:
    """Keep the line (passwords masked) in the user's history file, mode 0600."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as fh:
        fh.write(_SECRET.sub(r"\1***", line).encode("utf-8") + b"\n")


def common_prefix(words: list[str]) -> str:
    if not words:
        return ""
    first, last = min(words), max(words)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


class ShellTerminal(HistoricRecvLine):
    """`user@vos3k> ` prompt; Ctrl-C cancels, Ctrl-D / exit / quit leave, Tab completes."""

    log = Logger()

    def __init__(self, shell: Shell, service: Any, user: str, source: str | None = None):
        super().__init__()
        self.shell = shell
        self.service = service
        self.user = user
        self.source = source
        self.running: defer.Deferred | None = None
        self._progress_shown = False
        self._history = history_path(service.settings.data_dir, user)
        self._on_close: list[Callable[[], None]] = []

    # ------------------------------------------------------------ set-up

    def connectionMade(self) -> None:
        self.ps = (f"{self.user}@vos3k> ".encode(), b"... ")
        super().connectionMade()
        if self.source is None:
            self.source = _peer_of(self.terminal)
        self.historyLines = load_history(self._history)
        self.historyPosition = len(self.historyLines)
        self.keyHandlers.update(
            {b"\x03": self.handle_INT, b"\x04": self.handle_EOF, b"\t": self.handle_TAB}
        )

    def initializeScreen(self) -> None:  # noqa: N802 (Conch API)
        self.terminal.write(b"vos3k admin shell: 'help' lists the commands, 'exit' leaves\n")
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()

    def session(self) -> Session:
        return Session(
            self.service,
            self.user,
            self.source or "",
            interactive=True,
            progress=self.progress,
            console=self,
        )

    # ------------------------------------------------------------ the console API

    def notify(self, text: str) -> None:
        """Show text that arrives between commands (`trace`) above the line being typed.

        The prompt and the half-typed line are drawn again below it, cursor in place, so
        the line editor's state and the screen still agree.
        """
        if self.terminal is None:
            return
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self._progress_shown = False
        self.terminal.write(text.encode("utf-8"))
        if self.running is None:
            self.terminal.write(self.ps[self.pn] + b"".join(self.lineBuffer))
            back = len(self.lineBuffer) - self.lineBufferIndex
            if back:
                self.terminal.cursorBackward(back)

    def backlog(self) -> int:
        """Bytes written to this terminal but not sent yet (SSH window, TCP buffer)."""
        return _unsent(getattr(self.terminal, "transport", None))

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the session ends (a trace stops with its terminal)."""
        self._on_close.append(callback)

    def connectionLost(self, reason: Any = None) -> None:
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self.log.failure("session close callback failed")
        super().connectionLost(reason)

    # ------------------------------------------------------------ lines

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            self.prompt()
            return
        try:
            append_history(self._history, text)
        except OSError as exc:
            self.log.warn("cannot write history {path}: {err}", path=str(self._history), err=exc)
        if text in ("exit", "quit", "logout"):
            self.terminal.loseConnection()
            return
        if text == "manhole":
            self.start_manhole()
            return
        running = self.shell.run(self.session(), text)
        self.running = running
        running.addCallback(self.show)
        running.addErrback(lambda f: self.log.failure("shell line failed", f))

    def show(self, outcome: Outcome) -> None:
        self.running = None
        if self._progress_shown:
            self.terminal.write(b"\r")
            self.terminal.eraseLine()
            self._progress_shown = False
        for text in (outcome.out, outcome.err):
            if text:
                self.terminal.write(text.encode("utf-8"))
        self.prompt()

    def prompt(self) -> None:
        self.terminal.write(self.ps[self.pn])

    def progress(self, text: str) -> None:
        """A one-line status that the next write replaces (rate import)."""
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self.terminal.write(text.encode("utf-8"))
        self._progress_shown = True

    def start_manhole(self) -> None:
        refusal = manhole_refusal(self.service, self.user)
        if refusal is not None:
            self.terminal.write(f"error: {refusal}\n".encode())
            self.prompt()
            return
        self.service.store.audit.record(self.session().actor, "manhole open", self.user, "", "", "")
        open_manhole(self.terminal, self.service)

    # ------------------------------------------------------------ keys

    def keystrokeReceived(self, keyID, modifier) -> None:  # noqa: N803
        if self.running is not None and keyID != b"\x03":
            return  # a command is running: only Ctrl-C means something
        super().keystrokeReceived(keyID, modifier)

    def handle_INT(self) -> None:
        """Ctrl-C: cancel the running command, else drop the line being typed."""
        if self.running is not None:
            self.running.cancel()
            return
        self.terminal.write(b"^C\n")
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.historyPosition = len(self.historyLines)
        self.prompt()

    def handle_EOF(self) -> None:
        if self.lineBuffer:
            self.handle_DELETE()
        else:
            self.terminal.write(b"\n")
            self.terminal.loseConnection()

    def handle_TAB(self) -> None:
        before = b"".join(self.lineBuffer[: self.lineBufferIndex]).decode("utf-8", "replace")
        partial = "" if not before or before[-1].isspace() else before.split()[-1]
        candidates = self.shell.complete(self.session(), before)
        if not candidates:
            return
        extra = common_prefix(candidates)[len(partial) :]
        if len(candidates) == 1 and not extra.endswith("="):
            extra += " "
        if extra:
            for ch in extra:
                self.characterReceived(ch.encode("utf-8"), False)
            return
        self.terminal.write(b"\n" + "  ".join(candidates).encode("utf-8") + b"\n")
        self.prompt()
        self.terminal.write(b"".join(self.lineBuffer))
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)


def _unsent(transport: Any) -> int:
    """Walk down the transports to the one that buffers: an SSH channel's window
    backlog, or a TCP socket's write buffer (Telnet)."""
    for _ in range(5):
        if transport is None:
            return 0
        channel = getattr(transport, "session", None)
        if channel is not None and hasattr(channel, "buf"):
            return len(channel.buf or b"")
        buffered = getattr(transport, "dataBuffer", None)
        if isinstance(buffered, bytes):
            return len(buffered) + int(getattr(transport, "_tempDataLen", 0))
        transport = getattr(transport, "transport", None)
    return 0


def _peer_of(terminal: Any) -> str:
    transport = getattr(terminal, "transport", None)
    try:
        return str(transport.getPeer().host)
    except Exception:
        return ""
