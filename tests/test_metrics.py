"""The Prometheus exposition: typed stats, end reasons, PDD histogram, gateway window."""

from __future__ import annotations

import re

import pytest

from vos3k.metrics import (
    CdrFigures,
    Exposition,
    Family,
    GatewayWindow,
    render,
    render_families,
)

HOUR_MS = 3_600_000
SLICE_MS = HOUR_MS // 6
T0 = 1_767_268_800_000  # 2026-01-01 12:00:00 UTC, a multiple of SLICE_MS

# One sample line of the text format 0.0.4: name, optional labels, value.
SAMPLE = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+')


def _parse(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert SAMPLE.fullmatch(line), line
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


@pytest.mark.parametrize(
    ("key", "name", "kind"),
    [
        ("current_calls", "vos3k_calls_current", "gauge"),
        ("cps", "vos3k_calls_per_second", "gauge"),
        ("cdr_committed", "vos3k_cdr_committed_total", "counter"),
        ("cdr_pending", "vos3k_cdr_pending", "gauge"),
        ("feed_pending", "vos3k_cdr_feed_pending", "gauge"),
        ("rtp_ports_in_use", "vos3k_rtp_ports_in_use", "gauge"),
        ("sip_received", "vos3k_sip_received_total", "counter"),
        ("sip_malformed", "vos3k_sip_malformed_total", "counter"),
        ("signalling_dropped", "vos3k_signalling_dropped_total", "counter"),
        ("h323_received", "vos3k_h323_received_total", "counter"),
        ("h323_calls_in", "vos3k_h323_calls_in_total", "counter"),
        ("rtp_packets_total", "vos3k_rtp_packets_total", "counter"),
        ("ras_registered", "vos3k_ras_registered", "gauge"),
        ("some_new_gauge", "vos3k_some_new_gauge", "gauge"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_stats_keys_become_typed_families(key, name, kind):
    text = render({key: 7}).decode()
    assert _types(text) == {name: kind}
    assert _parse(text) == {name: 7}


def test_drop_reasons_fold_into_one_labelled_counter():
    text = render(
        {"signalling_dropped": 5, "signalling_dropped_acl": 2, "signalling_dropped_rate": 3}
    ).decode()
    figures = _parse(text)
    assert figures["vos3k_signalling_dropped_total"] == 5
    assert figures['vos3k_signalling_dropped_by_reason_total{reason="acl"}'] == 2
    assert figures['vos3k_signalling_dropped_by_reason_total{reason="rate"}'] == 3
    assert text.count("# TYPE vos3k_signalling_dropped_by_reason_total counter") == 1


def test_label_values_and_help_are_escaped():
    family = Family("x", "gauge", "a\\b\nc", (((("gateway", 'g"w\\1\n'),), 1),))
    assert render_families([family]).decode() == (
        '# HELP x a\\\\b\\nc\n# TYPE x gauge\nx{gateway="g\\"w\\\\1\\n"} 1\n'
    )


def _row(reason=1, pdd=0, gateway="", stop=T0, hold=0):
    return {
        "end_reason": reason,
        "callee_pdd_ms": pdd,
        "callee_gateway_id": gateway,
        "stop_ms": stop,
        "hold_ms": hold,
    }


def _figures(rows, now=T0, enabled=True) -> dict[str, float]:
    cdrs = CdrFigures(GatewayWindow(HOUR_MS, 6))
    cdrs.committed(list(enumerate(rows, 1)))
    return _parse(render_families(cdrs.families(now, per_gateway=enabled)).decode())


def test_calls_by_end_reason_at_commit():
    figures = _figures([_row(1), _row(1), _row(2), _row(99)])
    assert figures['vos3k_calls_ended_total{reason="NORMAL_CLEARING",code="1"}'] == 2
    assert figures['vos3k_calls_ended_total{reason="USER_BUSY",code="2"}'] == 1
    assert figures['vos3k_calls_ended_total{reason="UNKNOWN",code="99"}'] == 1


def test_pdd_histogram_is_cumulative_in_seconds():
    figures = _figures([_row(pdd=0), _row(pdd=80), _row(pdd=250), _row(pdd=2500), _row(pdd=40_000)])
    bucket = 'vos3k_pdd_seconds_bucket{{le="{}"}}'.format
    assert figures[bucket("0.1")] == 1
    assert figures[bucket("0.25")] == 2  # le: 250 ms is in the 0.25 s bucket
    assert figures[bucket("2.0")] == 2
    assert figures[bucket("3.0")] == 3
    assert figures[bucket("30.0")] == 3
    assert figures[bucket("+Inf")] == 4  # a CDR without PDD (0) is not observed
    assert figures["vos3k_pdd_seconds_count"] == 4
    assert figures["vos3k_pdd_seconds_sum"] == pytest.approx(42.83)


# SPEC 9: the window is SS_GATEWAY_QUALITY_RESERVE_TIME (1 h) in 6 slices of 10 min.
@pytest.mark.parametrize(
    ("now", "calls", "asr", "acd"),
    [
        (T0, 4, 0.5, 90.0),  # all four CDRs in the current slice
        (T0 + 5 * SLICE_MS, 4, 0.5, 90.0),  # the slice of T0 is the oldest still in
        (T0 + 6 * SLICE_MS - 1, 4, 0.5, 90.0),
        (T0 + 6 * SLICE_MS, 2, 0.5, 120.0),  # T0's slice left; the later two stay
        (T0 + 7 * SLICE_MS, None, None, None),  # everything left the window
    ],
    ids=["SPEC9-now", "SPEC9-oldest-slice", "SPEC9-edge", "SPEC9-slid", "SPEC9-empty"],
)
def test_gateway_asr_acd_over_the_sliced_window(now, calls, asr, acd):
    rows = [
        _row(gateway="gw1", stop=T0 + 1000, hold=60_000),
        _row(gateway="gw1", stop=T0 + 2000, hold=0),
        _row(gateway="gw1", stop=T0 + SLICE_MS, hold=120_000),
        _row(gateway="gw1", stop=T0 + SLICE_MS + 1, hold=0),
        _row(gateway="", stop=T0, hold=5000),  # never reached a gateway: not counted
    ]
    figures = _figures(rows, now)
    assert figures.get('vos3k_gateway_calls{gateway="gw1"}') == calls
    assert figures.get('vos3k_gateway_asr_ratio{gateway="gw1"}') == asr
    assert figures.get('vos3k_gateway_acd_seconds{gateway="gw1"}') == acd
    assert not any('gateway=""' in name for name in figures)


def test_gateway_with_no_answered_call_has_acd_zero():
    figures = _figures([_row(gateway="gw2", hold=0)])
    assert figures['vos3k_gateway_asr_ratio{gateway="gw2"}'] == 0
    assert figures['vos3k_gateway_acd_seconds{gateway="gw2"}'] == 0


def test_quality_off_hides_the_gateway_families():
    figures = _figures([_row(gateway="gw1", hold=1000)], enabled=False)
    assert not any(name.startswith("vos3k_gateway_") for name in figures)


def test_a_live_window_change_restarts_the_window():
    window = GatewayWindow(HOUR_MS, 6)
    window.add("gw1", T0, 1000)
    window.configure(HOUR_MS, 6)
    assert window.figures(T0) == {"gw1": (1, 1, 1000)}
    window.configure(2 * HOUR_MS, 12)
    assert window.figures(T0) == {}
    window.add("gw1", T0, 0)
    assert window.figures(T0 + HOUR_MS) == {"gw1": (1, 0, 0)}


def test_exposition_reads_stats_params_and_auth_failures_at_scrape():
    cdrs = CdrFigures(GatewayWindow(HOUR_MS, 6))
    stats = {"current_calls": 1}
    exposition = Exposition(lambda: stats, cdrs, lambda: T0, lambda: (True, HOUR_MS, 6), lambda: 3)
    cdrs.committed([(1, _row(gateway="gw1", hold=30_000))])
    stats["current_calls"] = 2
    figures = _parse(exposition.render().decode())
    assert figures["vos3k_calls_current"] == 2
    assert figures["vos3k_sip_auth_failures_total"] == 3
    assert figures['vos3k_gateway_acd_seconds{gateway="gw1"}'] == 30.0
