"""`twistd vos3k`: command-line options and makeService (the only global-reactor user)."""

from __future__ import annotations

import sys

from twisted.python import usage

from vos3k.config import KEYS, ConfigError, load_settings

_HELP = {
    "data-dir": "Data directory: SQLite db, cdr/ text files, SSH host key [var]",
    "timezone": "Time zone of CDR text times (default: the server's local time)",
    "sip-listen": "SIP address HOST:PORT, UDP and TCP (repeatable) [0.0.0.0:5060]",
    "sip-realm": "Digest realm [vos3k]",
    "sip-domains": "Comma list of domain names this server answers for",
    "h323-listen": "H.323 Q.931/H.225 TCP address HOST:PORT or off [0.0.0.0:1720]",
    "ras-listen": "H.323 RAS UDP address HOST:PORT or off [0.0.0.0:1719]",
    "rtp-ports": "RTP port range LOW-HIGH [10000-20000]",
    "media-ip": "IP address written into SDP/H.245 for proxied media",
    "ssh-listen": "Admin shell SSH address HOST:PORT or off [127.0.0.1:2222]",
    "telnet-listen": "Admin shell Telnet address HOST:PORT (off unless given) [off]",
    "manhole": "Python manhole for role super over SSH: on/off [off]",
    "metrics-listen": "Prometheus metrics HTTP address HOST:PORT (off unless given)",
}


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the vos3k softswitch: SIP and H.323 signalling, RTP proxy, routing, billing, "
        "CDRs and the SSH admin shell, on one SQLite store. Options override the config file."
    )
    optParameters = [["config", "c", None, "Configuration file (ini), e.g. etc/vos3k.conf"]] + [
        [option, None, None, _HELP[option]] for option in KEYS if option != "sip-listen"
    ]

    def __init__(self):
        super().__init__()
        self["sip-listen"] = []

    def opt_sip_listen(self, address: str) -> None:
        """SIP address HOST:PORT, UDP and TCP (repeatable) [0.0.0.0:5060]"""
        self["sip-listen"].append(address)


def makeService(options: Options):
    from twisted.internet import reactor

    from vos3k.admin.hostkey import HostKeyError
    from vos3k.params import ParamError
    from vos3k.service import build_service
    from vos3k.store.db import StoreError

    try:
        settings = load_settings(options)
        return build_service(settings, reactor)
    except (ConfigError, StoreError, ParamError, HostKeyError) as exc:
        # One line, no traceback, non-zero exit, nothing bound (INTERFACE.md §1).
        sys.stderr.write(f"vos3k: error: {exc}\n")
        raise SystemExit(1) from None
