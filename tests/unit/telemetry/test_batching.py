"""The batches of the hot path's metrics: what a flush adds equals what prometheus_client's
own calls would have recorded (the batch writes bucket values directly)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from bff.telemetry.batching import Count, Observe

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
    observe, count = Observe(batched_h), Count(batched_c)
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
