"""Settings: defaults, the config file, option precedence and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from vos3k.config import Address, ConfigError, load_settings, read_config_file


def test_defaults_match_interface_section_1(tmp_path):
    s = load_settings({}, cwd=tmp_path)
    assert s.sip_listen == (Address("0.0.0.0", 5060),)
    assert s.h323_listen == Address("0.0.0.0", 1720)
    assert s.ras_listen == Address("0.0.0.0", 1719)
    assert s.rtp_ports == (10000, 20000)
    assert s.ssh_listen == Address("127.0.0.1", 2222)
    assert s.telnet_listen is None and s.metrics_listen is None
    assert s.data_dir == tmp_path / "var"
    assert s.manhole is False


def test_shipped_config_keeps_telnet_and_metrics_off():
    s = load_settings({"config": str(REPO / "etc/vos3k.conf")}, cwd=REPO)
    assert s.telnet_listen is None and s.metrics_listen is None and not s.manhole
    assert s.ssh_listen == Address("127.0.0.1", 2222)


def test_shipped_config_sets_every_key():
    from vos3k.config import KEYS

    values = read_config_file(REPO / "etc/vos3k.conf")
    assert set(values) == set(KEYS)


def test_options_override_the_file(tmp_path):
    conf = tmp_path / "v.conf"
    conf.write_text("[sip]\nlisten = 127.0.0.1:5070\n[media]\nrtp_ports = 20000-20099\n")
    s = load_settings(
        {"config": str(conf), "sip-listen": ["127.0.0.2:5080", "[::1]:5080"]}, cwd=tmp_path
    )
    assert s.sip_listen == (Address("127.0.0.2", 5080), Address("::1", 5080))
    assert s.rtp_ports == (20000, 20099)
    assert s.media_ip == "127.0.0.2"
    assert str(s.sip_listen[1]) == "[::1]:5080"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sip-listen": ["127.0.0.1:70000"]}, "--sip-listen: port '70000' is out of range"),
        ({"sip-listen": ["localhost:5060"]}, "--sip-listen: 'localhost' is not an IP address"),
        ({"ssh-listen": "2222"}, "--ssh-listen: '2222' is not HOST:PORT"),
        ({"rtp-ports": "20000-10000"}, "--rtp-ports"),
        ({"rtp-ports": "100-200"}, "--rtp-ports"),
        ({"media-ip": "media.example"}, "--media-ip"),
        ({"manhole": "perhaps"}, "--manhole"),
        ({"timezone": "Mars/Olympus"}, "--timezone"),
        ({"config": "/nonexistent/vos3k.conf"}, "--config: cannot read"),
    ],
)
def test_bad_options_give_one_line_naming_the_option(options, message, tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(options, cwd=tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_file_values_name_the_key(tmp_path):
    conf = tmp_path / "v.conf"
    conf.write_text("[admin]\nssh_listen = 127.0.0.1:99999\n")
    with pytest.raises(ConfigError, match=r"\[admin\] ssh_listen"):
        load_settings({"config": str(conf)}, cwd=tmp_path)
    conf.write_text("[admin]\nssh_port = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key \[admin\] ssh_port"):
        load_settings({"config": str(conf)}, cwd=tmp_path)
    conf.write_text("not an ini file\n")
    with pytest.raises(ConfigError, match="not a valid ini file"):
        load_settings({"config": str(conf)}, cwd=tmp_path)


def test_off_disables_optional_listeners(tmp_path):
    s = load_settings(
        {"h323-listen": "off", "ras-listen": "off", "ssh-listen": "off"}, cwd=tmp_path
    )
    assert (s.h323_listen, s.ras_listen, s.ssh_listen) == (None, None, None)
    assert isinstance(s.data_dir, Path)
