"""Prometheus text exposition of the live figures on --metrics-listen (off by default).

What is exposed (issue 11), in the text format 0.0.4 written by hand (a dozen families
do not justify a dependency, and `service.stats()` already holds the figures):

- every `stats` figure, typed: counters end in `_total`, gauges do not;
  `signalling_dropped_REASON` becomes one counter with a `reason` label;
- calls by end reason, a PDD histogram and per-gateway ASR/ACD over the
  SS_GATEWAY_QUALITY_RESERVE_TIME window, all counted from the CDRs as the writer
  commits them (`CdrWriter.on_commit`), so they agree with `report asr|acd|pdd`;
- SIP digest authentication failures.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attrs import define, field, frozen
from twisted.application.internet import TCPServer
from twisted.web.resource import Resource
from twisted.web.server import Site

from vos3k.switch.reasons import EndReason

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

# ---------------------------------------------------------------- families


@frozen
class Family:
    """One metric family: name, type, help and its samples (label pairs, value)."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float | int], ...]
    suffixed: tuple[tuple[str, tuple[tuple[str, str], ...], float | int], ...] = ()

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{_labels(labels)} {_number(v)}" for labels, v in self.samples]
        out += [f"{self.name}{s}{_labels(labels)} {_number(v)}" for s, labels, v in self.suffixed]
        return out


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    pairs = [f'{k}="{_escape_value(v)}"' for k, v in labels]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(int(value))


def render_families(families: Iterable[Family]) -> bytes:
    lines = [line for family in families for line in family.lines()]
    return ("\n".join(lines) + "\n").encode("utf-8")


# ---------------------------------------------------------------- the stats() figures

# stats() key -> (metric name, type, help).  The SIP/H.323 message figures count
# since start, so they are counters (and get `_total`).
METRICS = {
    "current_calls": ("vos3k_calls_current", "gauge", "Calls from admission to their end"),
    "cps": ("vos3k_calls_per_second", "gauge", "Calls admitted in the last second"),
    "calls_total": ("vos3k_calls_total", "counter", "Calls admitted since start"),
    "cdr_pending": ("vos3k_cdr_pending", "gauge", "CDRs waiting for their commit"),
    "cdr_committed": ("vos3k_cdr_committed_total", "counter", "CDRs committed since start"),
    "feed_pending": ("vos3k_cdr_feed_pending", "gauge", "CDR lines not yet sent to the feed"),
    "feed_dropped": ("vos3k_cdr_feed_dropped_total", "counter", "Feed lines dropped (backlog)"),
    "rtp_ports_in_use": ("vos3k_rtp_ports_in_use", "gauge", "RTP and RTCP ports allocated"),
    "rtp_sessions": ("vos3k_rtp_sessions", "gauge", "Calls whose media is relayed now"),
    "uptime_s": ("vos3k_uptime_seconds", "gauge", "Seconds since start"),
    "sip_received": ("vos3k_sip_received_total", "counter", "SIP messages received"),
    "sip_sent": ("vos3k_sip_sent_total", "counter", "SIP messages sent"),
    "sip_malformed": ("vos3k_sip_malformed_total", "counter", "Malformed SIP messages"),
    "sip_errors": ("vos3k_sip_errors_total", "counter", "SIP messages that hit a vos3k bug"),
    "sip_transactions": ("vos3k_sip_transactions", "gauge", "SIP transactions alive"),
    "signalling_dropped": (
        "vos3k_signalling_dropped_total",
        "counter",
        "Signalling packets dropped before parsing (ACL, blacklist, geofence, rate limit)",
    ),
    "ras_registered": ("vos3k_ras_registered", "gauge", "H.323 endpoints registered (RAS)"),
}
# Keys whose figure only grows, when no row above names them.
_COUNTER_WORDS = ("received", "sent", "malformed", "errors", "dropped", "calls_in", "calls_out")
DROP_REASON_PREFIX = "signalling_dropped_"


def _kind_of(key: str) -> str:
    if key.endswith("_total") or key.endswith(_COUNTER_WORDS):
        return "counter"
    return "gauge"


def stats_families(stats: Mapping[str, int]) -> list[Family]:
    """`stats()` as typed families; per-reason drops fold into one labelled counter."""
    families = []
    reasons = []
    for key, value in stats.items():
        if key.startswith(DROP_REASON_PREFIX):
            reasons.append(((("reason", key[len(DROP_REASON_PREFIX) :]),), value))
            continue
        if key in METRICS:
            name, kind, text = METRICS[key]
        else:
            kind = _kind_of(key)
            base = f"vos3k_{key}"
            name = base if kind == "gauge" or base.endswith("_total") else base + "_total"
            text = key.replace("_", " ")
        families.append(Family(name, kind, text, (((), value),)))
    if reasons:
        families.append(
            Family(
                "vos3k_signalling_dropped_by_reason_total",
                "counter",
                "Signalling packets dropped before parsing, by reason (SPEC 10)",
                tuple(reasons),
            )
        )
    return families


def render(stats: Mapping[str, int]) -> bytes:
    """The stats() figures alone (what `stats` shows), in the text format."""
    return render_families(stats_families(stats))


# ---------------------------------------------------------------- figures from CDRs

# Seconds; PDD of a carrier call is 0.5-10 s, so the buckets are dense there.
PDD_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)


@define
class _Slice:
    calls: int = 0
    answered: int = 0
    hold_ms: int = 0


@define
class GatewayWindow:
    """ASR/ACD per gateway over a sliding window cut into slices (SPEC 9:
    SS_GATEWAY_QUALITY_RESERVE_TIME seconds in SS_GATEWAY_QUALITY_RESERVE_SEPARATE
    slices).  A CDR counts in the slice of its stop time; the window at `now` is the
    current slice and the `slices - 1` before it, so it slides one slice at a time and
    memory is bounded by gateways x slices.  Sans-IO: time is always an argument.
    """

    window_ms: int
    slices: int
    _data: dict[str, dict[int, _Slice]] = field(factory=dict, init=False)

    @property
    def slice_ms(self) -> int:
        return max(1, self.window_ms // max(1, self.slices))

    def configure(self, window_ms: int, slices: int) -> None:
        """A live change of the window or slice count starts the figures again: old
        slices were cut at another width and cannot be re-cut."""
        if (window_ms, slices) != (self.window_ms, self.slices):
            self.window_ms, self.slices = window_ms, slices
            self._data.clear()

    def add(self, gateway: str, stop_ms: int, hold_ms: int) -> None:
        index = stop_ms // self.slice_ms
        cell = self._data.setdefault(gateway, {}).setdefault(index, _Slice())
        cell.calls += 1
        if hold_ms > 0:  # answered: as `report asr` counts it (SPEC 7)
            cell.answered += 1
            cell.hold_ms += hold_ms

    def figures(self, now_ms: int) -> dict[str, tuple[int, int, int]]:
        """gateway -> (calls, answered, hold ms) inside the window at `now_ms`; slices
        that left the window are dropped here."""
        oldest = now_ms // self.slice_ms - self.slices + 1
        out = {}
        for gateway in list(self._data):
            cells = self._data[gateway]
            for index in [i for i in cells if i < oldest]:
                del cells[index]
            if not cells:
                del self._data[gateway]
                continue
            live = cells.values()
            out[gateway] = (
                sum(c.calls for c in live),
                sum(c.answered for c in live),
                sum(c.hold_ms for c in live),
            )
        return out


@define
class CdrFigures:
    """Counts over committed CDR rows: end reasons, PDD histogram, gateway window."""

    window: GatewayWindow
    by_reason: Counter[int] = field(factory=Counter)
    # Cumulative, as the text format wants: bucket i counts every PDD <= its bound.
    pdd_buckets: list[int] = field(factory=lambda: [0] * len(PDD_BUCKETS_S))
    pdd_count: int = 0
    pdd_sum_ms: int = 0

    def committed(self, rows: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """The CdrWriter.on_commit callback: [(id, row)] of one committed batch."""
        for _cdr_id, row in rows:
            self.by_reason[int(row.get("end_reason") or 0)] += 1
            pdd = int(row.get("callee_pdd_ms") or 0)
            if pdd > 0:  # 0 = no PDD (the call never reached a callee that rang)
                self.pdd_count += 1
                self.pdd_sum_ms += pdd
                for i, bound in enumerate(PDD_BUCKETS_S):
                    if pdd <= bound * 1000:
                        self.pdd_buckets[i] += 1
            gateway = row.get("callee_gateway_id") or ""
            if gateway:
                self.window.add(gateway, int(row.get("stop_ms") or 0), int(row.get("hold_ms") or 0))

    def families(self, now_ms: int, per_gateway: bool = True) -> list[Family]:
        families = [self._reasons(), self._pdd()]
        if per_gateway:
            families += self._gateways(now_ms)
        return families

    def _reasons(self) -> Family:
        samples = []
        for code in sorted(self.by_reason):
            try:
                name = EndReason(code).name
            except ValueError:
                name = "UNKNOWN"
            samples.append(((("reason", name), ("code", str(code))), self.by_reason[code]))
        return Family(
            "vos3k_calls_ended_total",
            "counter",
            "Calls ended, by end reason, counted as their CDR commits (SPEC 8)",
            tuple(samples),
        )

    def _pdd(self) -> Family:
        suffixed = [
            ("_bucket", (("le", _number(bound)),), count)  # already cumulative
            for bound, count in zip(PDD_BUCKETS_S, self.pdd_buckets, strict=True)
        ]
        suffixed.append(("_bucket", (("le", "+Inf"),), self.pdd_count))
        suffixed.append(("_sum", (), self.pdd_sum_ms / 1000))
        suffixed.append(("_count", (), self.pdd_count))
        return Family(
            "vos3k_pdd_seconds",
            "histogram",
            "Post-dial delay towards the callee of committed CDRs that have one",
            (),
            tuple(suffixed),
        )

    def _gateways(self, now_ms: int) -> list[Family]:
        figures = sorted(self.window.figures(now_ms).items())
        calls, asr, acd = [], [], []
        for gateway, (n, answered, hold_ms) in figures:
            label = (("gateway", gateway),)
            calls.append((label, n))
            asr.append((label, answered / n))
            acd.append((label, hold_ms / answered / 1000 if answered else 0.0))
        window_s = self.window.window_ms // 1000
        where = f"over the last {window_s} s (SS_GATEWAY_QUALITY_RESERVE_TIME)"
        return [
            Family("vos3k_gateway_calls", "gauge", f"Calls routed to a gateway {where}",
                   tuple(calls)),
            Family("vos3k_gateway_asr_ratio", "gauge", f"Answered / routed calls {where}",
                   tuple(asr)),
            Family("vos3k_gateway_acd_seconds", "gauge",
                   f"Average hold time of answered calls {where}", tuple(acd)),
        ]  # fmt: skip


# ---------------------------------------------------------------- the endpoint


class Exposition:
    """Everything one scrape shows, read from the service at scrape time."""

    def __init__(
        self,
        stats: Callable[[], Mapping[str, int]],
        cdrs: CdrFigures,
        now_ms: Callable[[], int],
        quality: Callable[[], tuple[bool, int, int]],
        auth_failures: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._stats = stats
        self._cdrs = cdrs
        self._now_ms = now_ms
        self._quality = quality  # (SS_GATEWAY_QUALITY_CALCULATE, window ms, slices)
        self._auth_failures = auth_failures

    def families(self) -> list[Family]:
        families = stats_families(self._stats())
        enabled, window_ms, slices = self._quality()
        self._cdrs.window.configure(window_ms, slices)
        families += self._cdrs.families(self._now_ms(), per_gateway=enabled)
        failures = self._auth_failures()
        if failures is not None:
            families.append(
                Family(
                    "vos3k_sip_auth_failures_total",
                    "counter",
                    "SIP digest authentications that failed (REGISTER and INVITE)",
                    (((), failures),),
                )
            )
        return families

    def render(self) -> bytes:
        return render_families(self.families())


class MetricsResource(Resource):
    isLeaf = True  # noqa: N815 (Twisted's attribute name)

    def __init__(self, render_metrics: Callable[[], bytes]):
        super().__init__()
        self._render = render_metrics

    def render_GET(self, request):  # noqa: N802 (Twisted's method name)
        request.setHeader(b"content-type", CONTENT_TYPE)
        return self._render()


def _quality_of(params: Any) -> Callable[[], tuple[bool, int, int]]:
    def quality() -> tuple[bool, int, int]:
        snap = params.snapshot
        return (
            bool(snap.routing_quality_calculate),
            int(snap.routing_quality_window_s) * 1000,
            int(snap.routing_quality_slices),
        )

    return quality


def _auth_failures_of(service: Any) -> Callable[[], int | None]:
    def failures() -> int | None:
        sip = getattr(service, "sip", None)
        stats = getattr(sip, "stats", None)
        return None if stats is None else int(stats.get("auth_failed", 0))

    return failures


def install_metrics(service: Any) -> Exposition | None:
    """Serve /metrics on --metrics-listen, counting CDRs from the writer's commits."""
    address = service.settings.metrics_listen
    if address is None:
        return None
    quality = _quality_of(service.params)
    _enabled, window_ms, slices = quality()
    cdrs = CdrFigures(GatewayWindow(window_ms, slices))
    service.cdr_writer.on_commit(cdrs.committed)
    exposition = Exposition(
        service.stats, cdrs, service.now_ms, quality, _auth_failures_of(service)
    )
    site = Site(MetricsResource(exposition.render))
    site.noisy = False
    service.add_listener(TCPServer(address.port, site, interface=address.host))
    service.metrics = exposition
    return exposition
