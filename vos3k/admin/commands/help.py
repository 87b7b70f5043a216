"""`help [COMMAND]`: what the shell offers, from the registry itself."""

from __future__ import annotations

from vos3k.admin.shell import NOUNS, Command, Context, Message, UsageError, did_you_mean
from vos3k.store.models import Role

GRAMMAR = (
    "grammar: NOUN VERB [POSITIONAL...] [key=value ...] [--json|--csv]\n"
    "values with spaces are quoted shell-style; exit status 0 ok, 1 command error, "
    "2 usage error"
)


def _help(ctx: Context) -> Message:
    registry = ctx.registry
    if not ctx.args:
        lines = ["commands:"]
        nouns = [n for n in NOUNS if registry.verbs(n)]
        nouns += [n for n in registry.nouns() if n not in nouns and n != "help"]
        for noun in nouns:
            verbs = [v for v in registry.verbs(noun) if v]
            lines.append(f"  {noun:<10} {'|'.join(verbs)}")
        lines += ["  help       help COMMAND shows its usage", "  exit       (or quit, Ctrl-D)"]
        lines.append(GRAMMAR)
        return Message("\n".join(lines))
    noun = ctx.args[0]
    verbs = registry.verbs(noun)
    if not verbs:
        raise UsageError(f"help: unknown command {noun!r}{did_you_mean(noun, registry.nouns())}")
    if len(ctx.args) > 1:
        command = verbs.get(ctx.args[1])
        if command is None:
            hint = did_you_mean(ctx.args[1], verbs)
            raise UsageError(f"help: {noun} has no verb {ctx.args[1]!r}{hint}")
        chosen = [command]
    else:
        chosen = list(verbs.values())
    lines = []
    for command in chosen:
        lines.append(f"{command.usage}")
        lines.append(f"    {command.summary} (role {command.role})")
    return Message("\n".join(lines))


COMMANDS = [
    Command("help", "", Role.VIEWER, "help [NOUN [VERB]]", "list commands or show usage",
            _help, ("[NOUN]", "[VERB]"), completers=("noun",)),
]  # fmt: skip
