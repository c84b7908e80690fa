"""Rendering the metrics: a render on the serving thread flushes the batched per-request
numbers first; one on another thread (the admin listener's) reads what was flushed."""

from __future__ import annotations

import threading

from bff.telemetry.metrics import render
from bff.telemetry.request_metrics import RequestMetrics, flush_metrics, track_inflight


def test_render_flushes_the_inflight_count() -> None:
    RequestMetrics(("/unit-api",))  # batches made on this thread: it serves
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
