"""The per-request metrics: route and status labels stay within their fixed sets."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from bff.telemetry.request_metrics import RequestMetrics, flush_metrics


def value(name: str, **labels: str) -> float:
    flush_metrics()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_request_labels_stay_in_their_sets() -> None:
    m = RequestMetrics(("/unit-api",))
    before = {
        key: value("bff_requests_total", route=key[0], status_class=key[1])
        for key in [("/unit-api", "2xx"), ("other", "5xx"), ("/unit-api", "4xx")]
    }
    m.observe("/unit-api", 204, 0.001)
    m.observe("/not-a-route", 503, 0.001)  # unknown labels fold into "other"
    m.observe("/unit-api", 0, 0.001)  # the client left before any answer: 4xx (499)
    m.observe("/unit-api", 999, 0.001)  # no such class: 4xx rather than a new label
    after = {key: value("bff_requests_total", route=key[0], status_class=key[1]) for key in before}
    assert {k: after[k] - before[k] for k in before} == {
        ("/unit-api", "2xx"): 1,
        ("other", "5xx"): 1,
        ("/unit-api", "4xx"): 2,
    }
    assert b'route="/not-a-route"' not in generate_latest()
