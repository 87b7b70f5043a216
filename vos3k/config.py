"""Reads etc/vos3k.conf and the command line into one frozen, validated Settings value.

Precedence: command-line option > config file > built-in default (INTERFACE.md §1).
Every problem is a ConfigError whose message is one line naming the option or key.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

DEFAULT_CONFIG = "etc/vos3k.conf"


class ConfigError(ValueError):
    """A bad option or config value; the message names it."""


@frozen
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def interface(self) -> str:
        """The host as Twisted's listen calls want it ('' never: explicit wildcard)."""
        return self.host


@frozen
class Settings:
    config_file: Path | None
    data_dir: Path
    sip_listen: tuple[Address, ...]
    h323_listen: Address | None
    ras_listen: Address | None
    rtp_ports: tuple[int, int]
    media_ip: str
    ssh_listen: Address | None
    telnet_listen: Address | None
    metrics_listen: Address | None
    sip_realm: str
    sip_domains: tuple[str, ...]
    manhole: bool
    timezone: str

    @property
    def db_path(self) -> Path:
        return self.data_dir / "vos3k.db"

    @property
    def cdr_dir(self) -> Path:
        return self.data_dir / "cdr"


# option name -> (config section, key, default).  Option names are the CLI spelling.
KEYS: dict[str, tuple[str, str, str]] = {
    "data-dir": ("server", "data_dir", "var"),
    "timezone": ("server", "timezone", ""),
    "sip-listen": ("sip", "listen", "0.0.0.0:5060"),
    "sip-realm": ("sip", "realm", "vos3k"),
    "sip-domains": ("sip", "domains", ""),
    "h323-listen": ("h323", "listen", "0.0.0.0:1720"),
    "ras-listen": ("h323", "ras_listen", "0.0.0.0:1719"),
    "rtp-ports": ("media", "rtp_ports", "10000-20000"),
    "media-ip": ("media", "media_ip", ""),
    "ssh-listen": ("admin", "ssh_listen", "127.0.0.1:2222"),
    "telnet-listen": ("admin", "telnet_listen", ""),
    "manhole": ("admin", "manhole", "off"),
    "metrics-listen": ("metrics", "listen", ""),
}

_OFF = {"", "off", "no", "none", "disabled"}


def parse_address(text: str, option: str, allow_off: bool = False) -> Address | None:
    """`HOST:PORT` or `[IPv6]:PORT`; `off` (when allowed) disables the listener."""
    text = text.strip()
    if allow_off and text.lower() in _OFF:
        return None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{option}: {text!r} is not HOST:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{option}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: port {port!r} is out of range 0-65535")
    return Address(host, int(port))


def parse_port_range(text: str, option: str = "--rtp-ports") -> tuple[int, int]:
    low, sep, high = text.strip().partition("-")
    if not sep or not low.isdigit() or not high.isdigit():
        raise ConfigError(f"{option}: {text!r} is not LOW-HIGH")
    lo, hi = int(low), int(high)
    if not (1024 <= lo < hi <= 65535):
        raise ConfigError(f"{option}: {text!r} must satisfy 1024 <= LOW < HIGH <= 65535")
    if hi - lo + 1 < 4:
        raise ConfigError(f"{option}: {text!r} holds fewer than two RTP/RTCP port pairs")
    return lo, hi


def _flag(text: str, option: str) -> bool:
    low = text.strip().lower()
    if low in {"1", "on", "yes", "true"}:
        return True
    if low in {"0", "off", "no", "false", ""}:
        return False
    raise ConfigError(f"{option}: {text!r} is not on/off")


def read_config_file(path: Path) -> dict[str, str]:
    """The file's values keyed by option name; unknown sections/keys are errors."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"--config: {path} is not a valid ini file: {first}") from None
    by_key = {(section, key): option for option, (section, key, _) in KEYS.items()}
    values: dict[str, str] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            option = by_key.get((section, key))
            if option is None:
                raise ConfigError(f"{path}: unknown key [{section}] {key}")
            values[option] = value
    return values


def load_settings(options: Mapping[str, Any], cwd: Path | None = None) -> Settings:
    """Merge defaults, the config file and command-line options; validate everything.

    `options` maps option names (`data-dir`, `sip-listen`, ...) to command-line values
    (None when not given; `sip-listen` is a list) plus `config` (path or None).
    """
    cwd = cwd or Path.cwd()
    config_file: Path | None = None
    file_values: dict[str, str] = {}
    if options.get("config"):
        config_file = (cwd / options["config"]).resolve()
        file_values = read_config_file(config_file)

    def raw(option: str) -> str:
        given = options.get(option)
        if given is not None and given != []:
            return ",".join(given) if isinstance(given, list | tuple) else str(given)
        if option in file_values:
            return file_values[option]
        return KEYS[option][2]

    def name(option: str) -> str:
        given = options.get(option)
        if given is not None and given != []:
            return f"--{option}"
        section, key, _ = KEYS[option]
        return f"[{section}] {key}" if option in file_values else f"--{option}"

    data_dir = (cwd / raw("data-dir")).resolve()
    sip = tuple(
        parse_address(part, name("sip-listen")) for part in raw("sip-listen").split(",") if part
    )
    if not sip:
        raise ConfigError(f"{name('sip-listen')}: at least one address is needed")
    media_ip = raw("media-ip").strip()
    if media_ip:
        try:
            ipaddress.ip_address(media_ip)
        except ValueError:
            raise ConfigError(f"{name('media-ip')}: {media_ip!r} is not an IP address") from None
    else:
        # SDP needs a concrete address: the first specific SIP address, else loopback.
        specific = [a.host for a in sip if not ipaddress.ip_address(a.host).is_unspecified]
        media_ip = specific[0] if specific else "127.0.0.1"
    timezone = raw("timezone").strip()
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name('timezone')}: unknown time zone {timezone!r}") from None
    return Settings(
        config_file=config_file,
        data_dir=data_dir,
        sip_listen=sip,
        h323_listen=parse_address(raw("h323-listen"), name("h323-listen"), allow_off=True),
        ras_listen=parse_address(raw("ras-listen"), name("ras-listen"), allow_off=True),
        rtp_ports=parse_port_range(raw("rtp-ports"), name("rtp-ports")),
        media_ip=media_ip,
        ssh_listen=parse_address(raw("ssh-listen"), name("ssh-listen"), allow_off=True),
        telnet_listen=parse_address(raw("telnet-listen"), name("telnet-listen"), allow_off=True),
        metrics_listen=parse_address(raw("metrics-listen"), name("metrics-listen"), True),
        sip_realm=raw("sip-realm").strip() or "vos3k",
        sip_domains=tuple(d.strip() for d in raw("sip-domains").split(",") if d.strip()),
        manhole=_flag(raw("manhole"), name("manhole")),
        timezone=timezone,
    )


def check_data_dir(settings: Settings, must_exist: bool = True) -> None:
    """The data dir exists, is writable and holds an initialised database."""
    directory = settings.data_dir
    if not directory.is_dir():
        raise ConfigError(
            f"--data-dir: {directory} does not exist (create it with "
            f"'vos3k init --data-dir {directory}')"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--data-dir: {directory} is not writable")
    if must_exist and not settings.db_path.exists():
        raise ConfigError(
            f"--data-dir: {directory} has no vos3k.db (run 'vos3k init --data-dir {directory}')"
        )
