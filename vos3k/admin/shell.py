"""The admin shell's command registry, parser and renderer, independent of any transport.

Grammar (INTERFACE.md §2): `NOUN VERB [POSITIONAL...] [key=value ...] [--json|--csv]`,
quoted shell-style.  `Shell.execute(session, line)` turns one line into an `Outcome`
(exit code 0 success, 1 command error, 2 usage error; stdout and stderr kept apart), so
SSH exec, the interactive terminal, Telnet and the tests all run the same code.
"""

from __future__ import annotations

import csv
import difflib
import enum
import inspect
import io
import json
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from attrs import define, field, frozen
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from vos3k.cdr.query import QueryError, parse_local_time
from vos3k.params import Actor, ParamError, UnknownParamError
from vos3k.store.models import MoneyError, Role, parse_money
from vos3k.store.repos import ExistsError, NotFoundError

log = Logger()

OK, COMMAND_ERROR, USAGE_ERROR = 0, 1, 2

# The nouns of INTERFACE.md §2, in the order `help` lists them.
NOUNS = (
    "param",
    "account",
    "rate",
    "gateway",
    "phone",
    "call",
    "cdr",
    "report",
    "blacklist",
    "audit",
    "user",
    "stats",
)


# ---------------------------------------------------------------- errors and outcomes


class CommandError(Exception):
    """The command is well formed but cannot be done (exit 1)."""


class UsageError(Exception):
    """The command line is malformed (exit 2); `usage` is appended to the message."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage


@frozen
class Outcome:
    """What one command line produced: exit code, stdout text, stderr text."""

    code: int
    out: str = ""
    err: str = ""


# ---------------------------------------------------------------- results


@frozen
class Table:
    """Rows for a list command: aligned text, a JSON array, or CSV."""

    columns: tuple[str, ...]
    rows: list[Mapping[str, Any]]
    note: str = ""  # shown on stderr in text mode only (e.g. "first 1000 rows")


@frozen
class Record:
    """One object for a show command (or `stats`)."""

    fields: Mapping[str, Any]


@frozen
class Message:
    """The confirmation of a change."""

    text: str


Result = Table | Record | Message


def json_value(value: Any) -> Any:
    """INTERFACE.md §6: money (Decimal) as a decimal string, never a float."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, tuple | list):
        return ",".join(text_value(v) for v in value)
    return str(value)


def render(result: Result, fmt: str) -> tuple[str, str]:
    """(stdout, stderr) of a result in `text`, `json` or `csv`."""
    if isinstance(result, Message):
        if fmt == "json":
            return json.dumps({"message": result.text}) + "\n", ""
        return result.text + ("\n" if result.text else ""), ""
    if isinstance(result, Record):
        if fmt == "json":
            return json.dumps(json_value(dict(result.fields))) + "\n", ""
        if fmt == "csv":
            return _csv(tuple(result.fields), [result.fields]), ""
        width = max((len(k) for k in result.fields), default=0)
        lines = [f"{k.ljust(width)}  {text_value(v)}" for k, v in result.fields.items()]
        return "\n".join(lines) + "\n", ""
    if fmt == "json":
        rows = [{c: json_value(row.get(c)) for c in result.columns} for row in result.rows]
        return json.dumps(rows) + "\n", ""
    if fmt == "csv":
        return _csv(result.columns, result.rows), ""
    note = result.note + "\n" if result.note else ""
    return aligned(result.columns, result.rows), note


def aligned(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    cells = [[text_value(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not cells:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def _csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([text_value(row.get(c)) for c in columns])
    return buf.getvalue()


# ---------------------------------------------------------------- time, money, numbers


def format_time(epoch_ms: int | None, tz: tzinfo | None) -> str:
    """UTC epoch ms as `YYYY-MM-DD HH:MM:SS` in the server's time zone (None = local)."""
    if epoch_ms is None:
        return ""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str, tz: tzinfo | None, what: str = "time") -> tuple[int, bool]:
    """`YYYY-MM-DD[ HH:MM[:SS]]` in server local time -> (epoch ms, date only).

    A malformed time is a usage error (exit 2)."""
    try:
        return parse_local_time(text, tz)
    except QueryError as exc:
        raise UsageError(f"{what}: {exc}") from None


def money(text: str, what: str) -> Decimal:
    try:
        return parse_money(text, what)
    except MoneyError as exc:
        raise CommandError(str(exc)) from None


def integer(text: str, what: str, low: int | None = None, high: int | None = None) -> int:
    if not re.fullmatch(r"[+-]?\d+", text.strip()):
        raise CommandError(f"{what}: {text!r} is not an integer")
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low if low is not None else ''}..{high if high is not None else ''}"
        raise CommandError(f"{what}: {value} is out of range {span}")
    return value


_TRUE, _FALSE = {"1", "yes", "on", "true"}, {"0", "no", "off", "false"}


def boolean(text: str, what: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise CommandError(f"{what}: {text!r} is not yes/no (1/0, on/off)")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


# ---------------------------------------------------------------- sessions and commands


def _cooperate(steps: Iterator[Any]) -> defer.Deferred:
    """Run a job's steps between reactor turns; cancelling the Deferred stops the job."""
    job = task.cooperate(steps)
    done: defer.Deferred = defer.Deferred(lambda _: job.stop())

    def finished(result: Any) -> None:
        if not done.called:  # a cancelled job has already failed `done`
            done.callback(None) if not isinstance(result, Failure) else done.errback(result)

    job.whenDone().addBoth(finished)
    return done


@define
class Session:
    """Who runs commands, from where, and how the transport can show progress."""

    service: Any
    user: str
    source: str
    interactive: bool = False
    progress: Callable[[str], None] | None = None
    # The interactive terminal itself (ShellTerminal), for commands that keep writing
    # after they return (`trace on`): notify(text), backlog() and on_close(callback).
    console: Any = None
    # Drives a long job's generator between reactor turns (tests drive it at once).
    run_steps: Callable[[Iterator[Any]], defer.Deferred] = _cooperate

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user, source=self.source)

    def role(self) -> Role | None:
        """Read at each command, so a role change or `user del` applies at once."""
        user = self.service.store.users.get(self.user)
        return None if user is None else user.role


@define
class Context:
    """What a command handler sees: the parsed line and the service."""

    session: Session
    command: Command
    args: list[str]
    keys: dict[str, str]
    fmt: str
    registry: Registry

    @property
    def service(self) -> Any:
        return self.session.service

    @property
    def store(self) -> Any:
        return self.session.service.store

    @property
    def actor(self) -> Actor:
        return self.session.actor

    @property
    def tz(self) -> tzinfo | None:
        name = getattr(getattr(self.service, "settings", None), "timezone", "")
        if not name:
            return None
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)

    def now_ms(self) -> int:
        return self.service.now_ms()

    def arg(self, index: int, default: str | None = None) -> str | None:
        return self.args[index] if index < len(self.args) else default

    def usage_error(self, message: str) -> UsageError:
        return UsageError(message, self.command.usage)


Handler = Callable[[Context], "Result | Awaitable[Result]"]


@frozen
class Command:
    """One `NOUN VERB`: who may run it, what it accepts, and what it does."""

    noun: str
    verb: str
    role: Role
    usage: str
    summary: str
    handler: Handler = field(eq=False, repr=False)
    positional: tuple[str, ...] = ()  # names; `[NAME]` optional, `NAME...` the rest
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    completers: tuple[str, ...] = ()  # per positional: an entity kind for tab completion

    @property
    def name(self) -> str:
        return f"{self.noun} {self.verb}".strip()

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.positional if not p.startswith("[") and "..." not in p)

    @property
    def max_args(self) -> int | None:
        return None if any("..." in p for p in self.positional) else len(self.positional)


class Registry:
    """Every command by noun and verb."""

    def __init__(self, commands: Iterable[Command] = ()):
        self._by_noun: dict[str, dict[str, Command]] = {}
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        verbs = self._by_noun.setdefault(command.noun, {})
        if command.verb in verbs:
            raise ValueError(f"command {command.name} defined twice")
        verbs[command.verb] = command

    def nouns(self) -> list[str]:
        return list(self._by_noun)

    def verbs(self, noun: str) -> dict[str, Command]:
        return self._by_noun.get(noun, {})

    def __iter__(self) -> Iterator[Command]:
        for verbs in self._by_noun.values():
            yield from verbs.values()


_KEY = re.compile(r"([a-z][a-z0-9_]*)=(.*)", re.S)
FORMATS = {"--json": "json", "--csv": "csv"}


@frozen
class Parsed:
    command: Command
    args: list[str]
    keys: dict[str, str]
    fmt: str


def split_line(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise UsageError(f"cannot parse the line: {exc}") from None


def parse(registry: Registry, words: list[str]) -> Parsed:
    """Words of one line -> the command, its arguments and keys; UsageError if malformed."""
    fmt = "text"
    rest: list[str] = []
    for word in words:
        if word.startswith("--"):
            if word not in FORMATS:
                raise UsageError(f"unknown option {word}{did_you_mean(word, FORMATS)}")
            fmt = FORMATS[word]
        else:
            rest.append(word)
    noun, *rest = rest
    verbs = registry.verbs(noun)
    if not verbs:
        raise UsageError(
            f"unknown command {noun!r}{did_you_mean(noun, registry.nouns())}; "
            "'help' lists the commands"
        )
    if "" in verbs:  # a noun without verbs (stats, help)
        command = verbs[""]
    else:
        if not rest:
            raise UsageError(f"{noun}: a verb is needed: {', '.join(verbs)}")
        verb, *rest = rest
        command = verbs.get(verb)
        if command is None:
            raise UsageError(
                f"{noun}: unknown verb {verb!r}{did_you_mean(verb, verbs)}; "
                f"verbs: {', '.join(verbs)}"
            )
    args: list[str] = []
    keys: dict[str, str] = {}
    for word in rest:
        match = _KEY.fullmatch(word)
        if match and not (command.max_args is None and not command.keys):
            key, value = match.groups()
            if key not in command.keys:
                hint = did_you_mean(key, command.keys)
                raise UsageError(f"{command.name}: unknown key {key!r}{hint}", command.usage)
            if key in keys:
                raise UsageError(f"{command.name}: {key}= given twice", command.usage)
            keys[key] = value
        else:
            args.append(word)
    if len(args) < command.min_args or (
        command.max_args is not None and len(args) > command.max_args
    ):
        what = "missing arguments" if len(args) < command.min_args else "too many arguments"
        raise UsageError(f"{command.name}: {what}", command.usage)
    missing = [k for k in command.required if k not in keys]
    if missing:
        raise UsageError(
            f"{command.name}: {', '.join(k + '=' for k in missing)} needed", command.usage
        )
    return Parsed(command, args, keys, fmt)


class Shell:
    """Runs command lines for sessions; the one entry point every transport uses."""

    log = Logger()

    def __init__(self, registry: Registry):
        self.registry = registry

    async def execute(self, session: Session, line: str) -> Outcome:
        """One line -> Outcome.  Never raises: a traceback here is a vos3k bug, logged."""
        try:
            words = split_line(line)
            if not words:
                return Outcome(OK)
            parsed = parse(self.registry, words)
            role = session.role()
            if role is None or role < parsed.command.role:
                # INTERFACE.md §6: permission denied is a command error, nothing changes.
                have = str(role) if role is not None else "no role"
                raise CommandError(
                    f"permission denied: '{parsed.command.name}' needs role "
                    f"{parsed.command.role} (you are {have})"
                )
            ctx = Context(
                session, parsed.command, parsed.args, parsed.keys, parsed.fmt, self.registry
            )
            result = parsed.command.handler(ctx)
            if inspect.isawaitable(result):
                result = await result
            out, err = render(result, parsed.fmt)
            return Outcome(OK, out, err)
        except UsageError as exc:
            usage = f"\nusage: {exc.usage}" if exc.usage else ""
            return Outcome(USAGE_ERROR, err=f"error: {exc}{usage}\n")
        except UnknownParamError as exc:
            word = str(exc).rsplit(" ", 1)[-1]
            hint = did_you_mean(word.upper(), session.service.params.registry.names())
            return Outcome(COMMAND_ERROR, err=f"error: {exc}{hint}\n")
        except (CommandError, ParamError, MoneyError, NotFoundError, ExistsError) as exc:
            return Outcome(COMMAND_ERROR, err=f"error: {exc}\n")
        except defer.CancelledError:
            return Outcome(COMMAND_ERROR, err="error: cancelled\n")
        except Exception:
            self.log.failure("admin command failed: {line}", line=line)
            return Outcome(COMMAND_ERROR, err="error: internal error (logged)\n")

    def run(self, session: Session, line: str) -> defer.Deferred:
        """`execute` as a Deferred (what Twisted code holds and may cancel)."""
        return defer.ensureDeferred(self.execute(session, line))

    # ------------------------------------------------------------ completion

    def complete(self, session: Session, before_cursor: str) -> list[str]:
        """Candidates for the word being typed: nouns, verbs, keys, names of entities."""
        words = before_cursor.split()
        if before_cursor and not before_cursor[-1].isspace():
            partial = words.pop()
        else:
            partial = ""
        if not words:
            pool = [*self.registry.nouns(), "exit", "quit"]
        else:
            verbs = self.registry.verbs(words[0])
            if "" in verbs:
                command = verbs[""]
                position = len(words) - 1
            elif len(words) == 1:
                pool = list(verbs)
                return sorted(w for w in pool if w.startswith(partial))
            else:
                command = verbs.get(words[1])
                position = len(words) - 2
            if command is None:
                return []
            positional = [w for w in words[2 if "" not in verbs else 1 :] if "=" not in w]
            position = len(positional)
            pool = [k + "=" for k in command.keys]
            if position < len(command.completers) and command.completers[position]:
                pool += entity_names(session.service, command.completers[position])
        return sorted({w for w in pool if w.startswith(partial)})


def entity_names(service: Any, kind: str) -> list[str]:
    """Names of one kind of entity, for tab completion."""
    store = service.store
    try:
        if kind == "param":
            return [p.name for p in service.params.registry]
        if kind == "account":
            return [a.name for a in store.accounts.list()]
        if kind == "gateway":
            return [g.name for g in store.gateways.list()]
        if kind == "rate_table":
            return store.rates.tables()
        if kind == "phone":
            return [p.e164 for p in store.phones.list()]
        if kind == "user":
            return [u.name for u in store.users.list()]
        if kind == "call":
            return [c.id for c in service.calls.list()]
        if kind == "noun":
            return list(NOUNS)
        if kind == "gateway_kind":
            return ["mapping", "routing"]
    except Exception:
        log.failure("completion of {kind} failed", kind=kind)
    return []


def build_shell() -> Shell:
    """The shell with every command of INTERFACE.md §2."""
    from vos3k.admin.commands import all_commands

    return Shell(Registry(all_commands()))
