"""The Prometheus text rendering of the live figures."""

from vos3k.metrics import render


def test_render_names_types_and_values():
    text = render({"current_calls": 3, "cdr_committed": 10, "signalling_dropped": 2}).decode()
    assert "# TYPE vos3k_calls_current gauge\nvos3k_calls_current 3\n" in text
    assert "# TYPE vos3k_cdr_committed_total counter\nvos3k_cdr_committed_total 10\n" in text
    assert "vos3k_signalling_dropped 2\n" in text
