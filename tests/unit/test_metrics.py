"""The batched per-request metrics: what a flush adds equals what prometheus_client's
own calls would have recorded (the batch writes bucket values directly), and route and
status labels stay within their fixed sets."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from bff.telemetry import metrics
from bff.telemetry.metrics import RequestMetrics, flush_metrics, render, track_inflight

VALUES = [0.0, 0.0004, 0.0005, 0.003, 0.2, 7.0, 31.0, 1e9]


def samples(registry: CollectorRegistry, name: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name.replace(name, ""), s.labels, s.value)
        for family in registry.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    ]


def test_a_flushed_batch_equals_direct_observations() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", registry=registry, buckets=(0.0005, 0.01, 1, 30))
    batched_h = Histogram("batch_seconds", "b", registry=registry, buckets=(0.0005, 0.01, 1, 30))
    direct_c = Counter("direct_things", "d", registry=registry)
    batched_c = Counter("batch_things", "b", registry=registry)
    observe, count = metrics._Observe(batched_h), metrics._Count(batched_c)
    for round_ in range(2):  # a second flush adds to the first
        for value in VALUES:
            direct.observe(value)
            observe.observe(value)
            direct_c.inc()
            count.inc()
        counted = [v for suffix, _, v in samples(registry, "batch_seconds") if suffix == "_count"]
        assert counted == [len(VALUES) * round_]  # nothing before the flush
        observe.flush()
        count.flush()
        assert samples(registry, "batch_seconds") == samples(registry, "direct_seconds")
        assert samples(registry, "batch_things") == samples(registry, "direct_things")


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


def test_render_flushes_the_inflight_count() -> None:
    track_inflight(3)
    try:
        assert b"bff_inflight_requests 3.0" in render(None)
    finally:
        track_inflight(-3)
    assert b"bff_inflight_requests 0.0" in render(None)


def test_only_the_serving_thread_flushes() -> None:
    """The admin listener renders on a thread of its own: it must not race the event
    loop's unlocked additions, so it reads what the serving thread flushed."""
    RequestMetrics(("/unit-api",))  # batches made on this thread: it serves
    flush_metrics()
    track_inflight(2)
    try:
        seen: list[bytes] = []
        other = threading.Thread(target=lambda: seen.append(render(None)))
        other.start()
        other.join(10)
        assert b"bff_inflight_requests 0.0" in seen[0]
        assert b"bff_inflight_requests 2.0" in render(None)
    finally:
        track_inflight(-2)
        flush_metrics()
