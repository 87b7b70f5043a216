"""The shell's grammar, exit codes, roles, formats and completion (INTERFACE.md §2, §6)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vos3k.admin.shell import (
    NOUNS,
    Session,
    UsageError,
    build_shell,
    parse,
    parse_time,
    split_line,
)

P = "SERVER_BILLING_HOLD_TIME_PRECISION"


@pytest.mark.parametrize(
    ("line", "code", "stderr"),
    [
        pytest.param("frobnicate everything", 2, "unknown command", id="INTERFACE-6-unknown-noun"),
        pytest.param("param frobnicate", 2, "unknown verb", id="INTERFACE-6-unknown-verb"),
        pytest.param("parm list", 2, "did you mean param", id="INTERFACE-6-noun-suggestion"),
        pytest.param("param shwo X", 2, "did you mean show", id="INTERFACE-6-verb-suggestion"),
        pytest.param("param", 2, "a verb is needed", id="INTERFACE-6-missing-verb"),
        pytest.param("param show", 2, "usage: param show NAME", id="INTERFACE-6-missing-arg"),
        pytest.param("param show A B", 2, "too many", id="INTERFACE-6-extra-arg"),
        pytest.param("param list --xml", 2, "unknown option", id="INTERFACE-6-bad-flag"),
        pytest.param("param set 'unbalanced", 2, "cannot parse", id="INTERFACE-2-quoting"),
        pytest.param("rate add T 1 fe=1", 2, "did you mean fee", id="INTERFACE-6-key-suggestion"),
        pytest.param("rate add T 1 period=60", 2, "fee= needed", id="INTERFACE-6-required-key"),
        pytest.param("param set NO_SUCH_PARAM 1", 1, "no such parameter", id="INTERFACE-6-unknown"),
        pytest.param(
            "param set SS_SIP_TIMEOUT_INVIT 3",
            1,
            "did you mean SS_SIP_TIMEOUT_INVITE",
            id="INTERFACE-6-param-suggestion",
        ),
        pytest.param(f"param set {P} 1000", 1, "out of range 0..999", id="SPEC-9-out-of-range"),
        pytest.param(f"param set {P} abc", 1, "not an integer", id="SPEC-9-wrong-type"),
        pytest.param("account show NOBODY", 1, "no such account", id="INTERFACE-6-not-found"),
        pytest.param("account add A balance=1.00001", 1, "more than 4 decimals", id="SPEC-1-money"),
        pytest.param("", 0, "", id="empty-line"),
    ],
)
def test_exit_codes_and_one_line_errors(run, line, code, stderr):
    outcome = run(line)
    assert outcome.code == code, outcome
    assert stderr in outcome.err
    if code:
        assert outcome.err.startswith("error: ")
        assert outcome.out == ""


def test_error_keeps_old_value(run):
    assert run(f"param set {P} 100").code == 0
    assert run(f"param set {P} 5000").code == 1
    shown = json.loads(run(f"param show {P} --json").out)
    assert shown["value"] == "100"


@pytest.mark.parametrize(
    ("user", "line", "code"),
    [
        pytest.param("viewer", "param list", 0, id="INTERFACE-2-viewer-lists"),
        pytest.param("viewer", f"param set {P} 100", 1, id="INTERFACE-2-viewer-no-param"),
        pytest.param("viewer", "account add X", 1, id="INTERFACE-2-viewer-no-account"),
        pytest.param("operator", "account add X", 0, id="INTERFACE-2-operator-accounts"),
        pytest.param("operator", "rate add T 1 fee=0.1", 0, id="INTERFACE-2-operator-rates"),
        pytest.param("operator", f"param set {P} 100", 1, id="INTERFACE-2-operator-no-param"),
        pytest.param("operator", "user add x role=viewer", 1, id="INTERFACE-2-operator-no-users"),
        pytest.param("admin", f"param set {P} 100", 0, id="INTERFACE-2-admin-params"),
        pytest.param("admin", "user add x role=super", 1, id="admin-cannot-grant-super"),
        pytest.param("super", "user add x role=super", 0, id="super-grants-super"),
        pytest.param("nobody", "param list", 1, id="deleted-user-has-no-role"),
    ],
)
def test_roles(run, user, line, code):
    outcome = run(line, user=user)
    assert outcome.code == code, outcome
    if code == 1:
        assert "permission denied" in outcome.err


def test_viewer_denied_changes_nothing(run, service):
    before = service.params.snapshot[P]
    assert "permission denied" in run(f"param set {P} 100", user="viewer").err
    assert service.params.snapshot[P] == before
    assert service.store.audit.recent(10) == [] or all(
        e.object != P for e in service.store.audit.recent(10)
    )


def test_help_names_every_noun(run):
    outcome = run("help")
    assert outcome.code == 0
    for noun in NOUNS:
        assert noun in outcome.out.split()


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        pytest.param("help param", "param set NAME VALUE", id="help-noun"),
        pytest.param("help rate import", "rate import TABLE FILE.csv", id="help-verb"),
    ],
)
def test_help_command(run, line, expect):
    outcome = run(line)
    assert outcome.code == 0
    assert expect in outcome.out


def test_help_unknown_is_usage_error(run):
    assert run("help frob").code == 2


def test_every_command_has_help(run):
    shell = build_shell()
    for command in shell.registry:
        outcome = run(f"help {command.noun} {command.verb}".strip())
        assert outcome.code == 0, command.name
        assert command.usage in outcome.out


def test_formats(run):
    run("account add ACME balance=999.94")
    text = run("account list").out
    assert text.splitlines()[0].split()[:3] == ["name", "type", "balance"]
    rows = json.loads(run("account list --json").out)
    assert rows[0]["balance"] == "999.94"
    csv_lines = run("account list --csv").out.splitlines()
    assert csv_lines[0].startswith("name,type,balance")
    assert csv_lines[1].startswith("ACME,prepaid,999.94")


def test_quoted_values(run):
    assert run("account add ACME").code == 0
    assert run("account topup ACME 5 reason='customer paid cash'").code == 0
    entry = run("audit list limit=1 --json")
    assert json.loads(entry.out)[0]["reason"] == "customer paid cash"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        pytest.param("2026-05-01", True, id="date"),
        pytest.param("2026-05-01 10:00", True, id="minutes"),
        pytest.param("2026-05-01 10:00:05", True, id="seconds"),
        pytest.param("2026-13-01", False, id="bad-month"),
        pytest.param("yesterday", False, id="words"),
    ],
)
def test_parse_time(text, ok):
    if ok:
        ms, date_only = parse_time(text, None)
        assert date_only == (len(text) == 10)
        assert ms > 0
    else:
        with pytest.raises(UsageError):
            parse_time(text, None)


def test_parse_splits_positionals_keys_and_format():
    shell = build_shell()
    parsed = parse(shell.registry, split_line("rate add T1 100 fee=0.06 area='New York' --json"))
    assert parsed.command.name == "rate add"
    assert parsed.args == ["T1", "100"]
    assert parsed.keys == {"fee": "0.06", "area": "New York"}
    assert parsed.fmt == "json"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=60))
def test_any_line_is_an_outcome(run, line):
    outcome = run(line, user="viewer")
    assert outcome.code in (0, 1, 2)
    if outcome.code:
        assert outcome.err.startswith("error: ")
        assert "Traceback" not in outcome.err


@pytest.mark.parametrize(
    ("before", "expect"),
    [
        pytest.param("par", ["param"], id="noun"),
        pytest.param("param s", ["set", "show"], id="verb"),
        pytest.param("param show SS_SIP_TIMEOUT_INV", ["SS_SIP_TIMEOUT_INVITE"], id="param-name"),
        pytest.param("account show AC", ["ACME"], id="entity-name"),
        pytest.param("rate add T1 1 fe", ["fee="], id="key"),
        pytest.param("help ga", ["gateway"], id="help-noun"),
    ],
)
def test_completion(run, service, before, expect):
    run("account add ACME")
    shell = build_shell()
    session = Session(service, "admin", "test")
    assert shell.complete(session, before) == expect
