"""README and man pages stay true: parameters, options and the two first commands."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO
from vos3k.config import KEYS
from vos3k.params import PARAMS


def test_readme_opens_with_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]


def test_daemon_man_page_documents_every_parameter_and_option():
    page = (REPO / "man/vos3k.8").read_text(encoding="utf-8")
    for param in PARAMS:
        assert f".B {param.name}" in page, param.name
    for option in KEYS:
        assert "\\-\\-" + option.replace("-", "\\-") in page, option


def test_conf_man_page_documents_every_key():
    page = (REPO / "man/vos3k.conf.5").read_text(encoding="utf-8")
    for section, key, _ in KEYS.values():
        assert f".SS [{section}]" in page and f".B {key}\n" in page, key


@pytest.mark.skipif(shutil.which("man") is None, reason="man is not installed")
@pytest.mark.parametrize("page", sorted(p.name for p in (REPO / "man").iterdir()))
def test_man_pages_render_without_warnings(page):
    result = subprocess.run(
        ["man", "--warnings", "-l", str(REPO / "man" / page)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert result.returncode == 0
    assert result.stderr == ""
