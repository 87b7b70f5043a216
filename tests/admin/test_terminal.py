"""The interactive terminal: prompt, output, history file, completion, Ctrl-C, exit."""

from __future__ import annotations

from twisted.conch.insults import insults
from twisted.internet.testing import StringTransport

from vos3k.admin.shell import build_shell
from vos3k.admin.terminal import ShellTerminal


def _connect(service, user="admin"):
    transport = StringTransport()
    server = insults.ServerProtocol(ShellTerminal, build_shell(), service, user, "192.0.2.1")
    server.makeConnection(transport)
    return server, transport


def test_prompt_command_output_and_history(service, tmp_path):
    server, transport = _connect(service)
    assert b"admin@vos3k> " in transport.value()
    transport.clear()
    server.dataReceived(b"account add ACME balance=5\r")
    assert b"account ACME added\r\n" in transport.value()
    assert transport.value().endswith(b"admin@vos3k> ")
    server.dataReceived(b"user passwd admin password=secret\r")
    history = (tmp_path / "history" / "admin").read_text().splitlines()
    assert history == ["account add ACME balance=5", "user passwd admin password=***"]
    # A new session starts with the stored history (up arrow recalls it).
    again, _ = _connect(service)
    assert again.terminalProtocol.historyLines[-1] == b"user passwd admin password=***"


def test_errors_go_to_the_terminal(service):
    server, transport = _connect(service, "viewer")
    server.dataReceived(b"param set SS_SIP_TIMEOUT_INVITE 3\r")
    assert b"error: permission denied" in transport.value()


def test_tab_completes_noun_and_param(service):
    server, _ = _connect(service)
    server.dataReceived(b"para\t")
    assert b"".join(server.terminalProtocol.lineBuffer) == b"param "
    server.dataReceived(b"show SS_SIP_TIMEOUT_INV\t")
    assert b"".join(server.terminalProtocol.lineBuffer) == b"param show SS_SIP_TIMEOUT_INVITE "


def test_ctrl_c_drops_the_line_and_exit_closes(service):
    server, transport = _connect(service)
    server.dataReceived(b"param set X 1\x03")
    assert server.terminalProtocol.lineBuffer == []
    assert b"^C" in transport.value()
    server.dataReceived(b"exit\r")
    assert transport.disconnecting


def test_manhole_refused_when_disabled_or_not_super(service):
    server, transport = _connect(service, "super")
    server.dataReceived(b"manhole\r")
    assert b"manhole is disabled" in transport.value()
    service.settings.manhole = True
    server, transport = _connect(service, "admin")
    server.dataReceived(b"manhole\r")
    assert b"needs role super" in transport.value()
    server, transport = _connect(service, "super")
    server.dataReceived(b"manhole\r")
    assert server.terminalProtocol.__class__.__name__ == "ColoredManhole"
