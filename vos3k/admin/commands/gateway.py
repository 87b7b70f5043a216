"""`gateway add|list|show|set|del`: mapping (customer) and routing (vendor) gateways.

Every Gateway field of SPEC.md §2 is a key; each value is validated here before the
repository sees it, so a bad value changes nothing (INTERFACE.md §6).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import attrs

from vos3k.admin.shell import (
    Command,
    CommandError,
    Context,
    Message,
    Record,
    Table,
    UsageError,
    boolean,
    integer,
)
from vos3k.store.models import GATEWAY_KINDS, MEDIA_CHECK, MEDIA_PROXY, PROTOCOLS, Gateway, Role
from vos3k.switch.numbers import Malformed, parse_patterns, parse_rewrites

Convert = Callable[[Context, str, str], Any]


def _choice(options: tuple[str, ...]) -> Convert:
    def convert(ctx: Context, key: str, text: str) -> str:
        if text.lower() not in options:
            raise CommandError(f"{key}: {text!r} is not one of {'|'.join(options)}")
        return text.lower()

    return convert


def _number(low: int, high: int) -> Convert:
    return lambda ctx, key, text: integer(text, key, low, high)


def _bool(ctx: Context, key: str, text: str) -> bool:
    return boolean(text, key)


def _addresses(ctx: Context, key: str, text: str) -> str:
    """SPEC.md §2: IPs, IP:port or CIDRs (comma list); `dynamic` for a RAS-registered one."""
    items = [i.strip() for i in text.split(",")]
    if text.strip().lower() == "dynamic":
        return "dynamic"
    for item in items:
        try:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
            elif item.count(":") == 1:
                host, port = item.split(":")
                ipaddress.ip_address(host)
                if not port.isdigit() or not 1 <= int(port) <= 65535:
                    raise ValueError(port)
            else:
                ipaddress.ip_address(item.strip("[]"))
        except ValueError:
            raise CommandError(f"{key}: {item!r} is not an IP, IP:port or CIDR") from None
    return ",".join(items)


def _account(ctx: Context, key: str, text: str) -> str:
    if text and ctx.store.accounts.get(text) is None:
        raise CommandError(f"{key}: no such account: {text}")
    return text


_PREFIX = re.compile(r"[0-9A-Za-z#]+\*?|\*")


def _prefixes(ctx: Context, key: str, text: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    for item in items:
        if not _PREFIX.fullmatch(item):
            raise CommandError(f"{key}: {item!r} is not a number prefix (digits, or * for any)")
    if not items:
        raise CommandError(f"{key}: at least one prefix is needed (* for any)")
    return items


def _codes(ctx: Context, key: str, text: str) -> tuple[int, ...]:
    codes = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        codes.append(integer(item, key, 300, 699))
    return tuple(codes)


def _replace_codes(ctx: Context, key: str, text: str) -> str:
    """`503:486,...`: a vendor's SIP code replaced by another towards the caller."""
    items = [i.strip() for i in text.split(",") if i.strip()]
    for item in items:
        match = re.fullmatch(r"(\d{3}):(\d{3})", item)
        if not match or not all(300 <= int(c) <= 699 for c in match.groups()):
            raise CommandError(f"{key}: {item!r} is not CODE:CODE with SIP codes 300-699")
    return ",".join(items)


def _rewrites(ctx: Context, key: str, text: str) -> str:
    if text and isinstance(parse_rewrites(text), Malformed):
        raise CommandError(f"{key}: {parse_rewrites(text).detail}")
    return text


def _patterns(ctx: Context, key: str, text: str) -> str:
    if text and isinstance(parse_patterns(text), Malformed):
        raise CommandError(f"{key}: {parse_patterns(text).detail}")
    return text


# key -> (Gateway field, converter); `prefix` is the grammar's name for `prefixes`.
FIELDS: dict[str, tuple[str, Convert]] = {
    "ip": ("ip", _addresses),
    "port": ("port", _number(1, 65535)),
    "account": ("account", _account),
    "protocol": ("protocol", _choice(PROTOCOLS)),
    "prefix": ("prefixes", _prefixes),
    "priority": ("priority", _number(0, 1000000)),
    "lines": ("lines", _number(0, 1000000)),
    "cps": ("cps", _number(0, 100000)),
    "caller_prefix_rewrite": ("caller_prefix_rewrite", _rewrites),
    "callee_prefix_rewrite": ("callee_prefix_rewrite", _rewrites),
    "caller_allow": ("caller_allow", _patterns),
    "caller_deny": ("caller_deny", _patterns),
    "callee_allow": ("callee_allow", _patterns),
    "callee_deny": ("callee_deny", _patterns),
    "replace_codes": ("replace_codes", _replace_codes),
    "stop_codes": ("stop_codes", _codes),
    "until_connect": ("until_connect", _choice(("yes", "no", "unset"))),
    "lock": ("lock", _choice(("none", "locked"))),
    "prefix_mode": ("prefix_mode", _choice(("extend", "stop"))),
    "protect": ("protect", _bool),
    "check_rate": ("check_rate", _bool),
    "options_check": ("options_check", _bool),
    "media_proxy": ("media_proxy", _choice(MEDIA_PROXY)),
    "media_check": ("media_check", _choice(MEDIA_CHECK)),
    "dyn_blacklist": ("dyn_blacklist", _bool),
    "enabled": ("enabled", _bool),
}
FIELDS["prefixes"] = FIELDS["prefix"]

_COMMON = ("ip", "account", "protocol", "priority", "lines", "cps", "caller_prefix_rewrite",
           "callee_prefix_rewrite", "media_proxy", "media_check", "enabled")  # fmt: skip
KIND_KEYS = {
    "mapping": {*_COMMON, "caller_allow", "caller_deny", "callee_allow", "callee_deny",
                "replace_codes", "dyn_blacklist"},
    "routing": {*_COMMON, "port", "prefix", "prefixes", "stop_codes", "until_connect", "lock",
                "prefix_mode", "protect", "check_rate", "options_check"},
}  # fmt: skip
REQUIRED = {"mapping": ("ip", "account"), "routing": ("ip", "prefix")}
ALL_KEYS = tuple(FIELDS)
LIST_COLUMNS = ("name", "kind", "ip", "port", "account", "protocol", "prefixes", "priority",
                "lines", "enabled", "state")  # fmt: skip


def _changes(ctx: Context, kind: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, text in ctx.keys.items():
        if key not in KIND_KEYS[kind]:
            raise UsageError(f"{key}= does not apply to a {kind} gateway", ctx.command.usage)
        name, convert = FIELDS[key]
        changes[name] = convert(ctx, key, text)
    return changes


def _fields(gateway: Gateway) -> dict[str, Any]:
    return attrs.asdict(gateway, recurse=False)


def _state(ctx: Context, gateway: Gateway) -> str:
    """SPEC §4 OPTIONS health of a routing gateway: online, offline or unchecked (the
    probe's verdict, `service.gateway_state`); empty for a mapping gateway."""
    if gateway.kind != "routing":
        return ""
    state_of = getattr(ctx.service, "gateway_state", None)
    return "unchecked" if state_of is None else state_of(gateway.name)


def _with_state(ctx: Context, gateway: Gateway) -> dict[str, Any]:
    return {**_fields(gateway), "state": _state(ctx, gateway)}


def _add(ctx: Context) -> Message:
    kind, name = ctx.args
    if kind not in GATEWAY_KINDS:
        raise ctx.usage_error(f"gateway add: {kind!r} is not mapping or routing")
    if "prefix" in ctx.keys and "prefixes" in ctx.keys:
        raise ctx.usage_error("give prefix= once")
    given = set(ctx.keys) | ({"prefix"} if "prefixes" in ctx.keys else set())
    missing = [k + "=" for k in REQUIRED[kind] if k not in given]
    if missing:
        raise ctx.usage_error(f"gateway add {kind}: {', '.join(missing)} needed")
    gateway = Gateway(name=name, kind=kind, **_changes(ctx, kind))
    ctx.store.gateways.add(gateway, ctx.actor)
    return Message(f"{kind} gateway {name} added")


def _list(ctx: Context) -> Table:
    rows = [_with_state(ctx, g) for g in ctx.store.gateways.list()]
    every = (*(f.name for f in attrs.fields(Gateway)), "state")
    columns = LIST_COLUMNS if ctx.fmt == "text" else every
    return Table(columns, rows)


def _show(ctx: Context) -> Record:
    return Record(_with_state(ctx, ctx.store.gateways.require(ctx.args[0])))


def _set(ctx: Context) -> Message:
    if not ctx.keys:
        raise ctx.usage_error("gateway set: nothing to change")
    gateway = ctx.store.gateways.require(ctx.args[0])
    changes = _changes(ctx, gateway.kind)
    try:
        ctx.store.gateways.update(gateway.name, ctx.actor, **changes)
    except ValueError as exc:
        raise CommandError(f"gateway {gateway.name}: {exc}") from None
    return Message(f"gateway {gateway.name} changed")


def _del(ctx: Context) -> Message:
    ctx.store.gateways.delete(ctx.args[0], ctx.actor)
    return Message(f"gateway {ctx.args[0]} deleted")


COMMANDS = [
    Command("gateway", "add", Role.OPERATOR,
            "gateway add mapping NAME ip=IP account=ACCT [lines=N] [protocol=sip|h323] "
            "[key=value...] | gateway add routing NAME ip=IP [port=P] prefix=P1,P2 "
            "[priority=N] [lines=N] [stop_codes=486,404] [until_connect=yes|no] [key=value...]",
            "add a customer (mapping) or vendor (routing) gateway", _add, ("KIND", "NAME"),
            ALL_KEYS, completers=("gateway_kind",)),
    Command("gateway", "list", Role.VIEWER, "gateway list", "all gateways", _list),
    Command("gateway", "show", Role.VIEWER, "gateway show NAME", "one gateway, every field",
            _show, ("NAME",), completers=("gateway",)),
    Command("gateway", "set", Role.OPERATOR, "gateway set NAME key=value...",
            "change gateway fields", _set, ("NAME",), ALL_KEYS, completers=("gateway",)),
    Command("gateway", "del", Role.OPERATOR, "gateway del NAME", "delete a gateway", _del,
            ("NAME",), completers=("gateway",)),
]  # fmt: skip
