"""DESIGN.md layering, checked by walking every module's imports with ast."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "vos3k"

# Pure cores: no reactor, sockets, SQL or wall clock (DESIGN.md "Layering").
PURE = [
    "vos3k/sip/message.py",
    "vos3k/sip/sdp.py",
    "vos3k/sip/transaction.py",
    "vos3k/sip/dialog.py",
    "vos3k/sip/auth.py",
    "vos3k/sip/registrar.py",
    "vos3k/h323/tpkt.py",
    "vos3k/h323/q931.py",
    "vos3k/h323/h225.py",
    "vos3k/billing/rating.py",
    "vos3k/billing/accounts.py",
    "vos3k/cdr/record.py",
    "vos3k/cdr/policy.py",
    "vos3k/switch/reasons.py",
    "vos3k/switch/numbers.py",
    "vos3k/switch/legs.py",
    "vos3k/switch/admission.py",
    "vos3k/switch/router.py",
    "vos3k/switch/call.py",
    "vos3k/media/ports.py",
    "vos3k/media/policy.py",
    "vos3k/media/stats.py",
]
FORBIDDEN_IN_PURE = (
    "twisted.internet",
    "socket",
    "sqlite3",
    "sqlite_utils",
    "vos3k.store",
    "time",
    "asyncio",
    "select",
)


def imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


# Plain attrs values with no I/O: pure code may build on them.
ALLOWED = ("vos3k.store.models",)


def offending(names, forbidden):
    return [
        n
        for n in names
        if n not in ALLOWED and any(n == f or n.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize("relative", PURE)
def test_pure_cores_stay_pure(relative):
    path = REPO / relative
    if not path.exists():
        pytest.skip(f"{relative} not written yet")
    assert offending(imports(path), FORBIDDEN_IN_PURE) == []


def test_only_the_store_speaks_sql():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "store":
            continue
        assert offending(imports(path), ("sqlite3", "sqlite_utils")) == [], path


def test_switch_imports_no_protocol():
    for path in (PACKAGE / "switch").rglob("*.py"):
        assert offending(imports(path), ("vos3k.sip", "vos3k.h323")) == [], path


def test_admin_never_reaches_into_protocols():
    for path in (PACKAGE / "admin").rglob("*.py"):
        assert offending(imports(path), ("vos3k.sip", "vos3k.h323", "vos3k.media")) == [], path


def test_nothing_uses_twisted_protocols_sip():
    for path in PACKAGE.rglob("*.py"):
        assert offending(imports(path), ("twisted.protocols.sip",)) == [], path
