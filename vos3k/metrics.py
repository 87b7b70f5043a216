"""Prometheus text exposition of the live figures on --metrics-listen (off by default)."""

from __future__ import annotations

from twisted.application.internet import TCPServer
from twisted.web.resource import Resource
from twisted.web.server import Site

# stats() key -> (metric name, type, help).  Counters only ever grow.
METRICS = {
    "current_calls": ("vos3k_calls_current", "gauge", "Calls from admission to their end"),
    "cps": ("vos3k_calls_per_second", "gauge", "Calls admitted in the last second"),
    "calls_total": ("vos3k_calls_total", "counter", "Calls admitted since start"),
    "cdr_pending": ("vos3k_cdr_pending", "gauge", "CDRs waiting for their commit"),
    "cdr_committed": ("vos3k_cdr_committed_total", "counter", "CDRs committed since start"),
    "feed_pending": ("vos3k_cdr_feed_pending", "gauge", "CDR lines not yet sent to the feed"),
    "feed_dropped": ("vos3k_cdr_feed_dropped_total", "counter", "Feed lines dropped (backlog)"),
    "rtp_ports_in_use": ("vos3k_rtp_ports_in_use", "gauge", "RTP and RTCP ports allocated"),
    "uptime_s": ("vos3k_uptime_seconds", "gauge", "Seconds since start"),
}


def render(stats: dict[str, int]) -> bytes:
    lines = []
    for key, value in stats.items():
        name, kind, text = METRICS.get(key, (f"vos3k_{key}", "gauge", key.replace("_", " ")))
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return ("\n".join(lines) + "\n").encode("ascii")


class MetricsResource(Resource):
    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    def __init__(self, stats):
        super().__init__()
        self._stats = stats

    def render_GET(self, request):  # noqa: N802 (Twisted's method name)
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return render(self._stats())


def install_metrics(service) -> None:
    address = service.settings.metrics_listen
    if address is None:
        return
    site = Site(MetricsResource(service.stats))
    site.noisy = False
    service.add_listener(TCPServer(address.port, site, interface=address.host))
