"""The per-request metrics, batched (`bff.telemetry.batching`) so the hot path costs
almost nothing: their label children are resolved once, and a request only adds to plain
numbers. `flush_metrics` moves them into prometheus_client: every second (the app's
lifespan runs it), before a `render` on the serving thread, and at shutdown.

    bff_requests_total{route,status_class}    every HTTP request; route = a configured
                                              route prefix, a bff endpoint path, or
                                              "other"; status_class = 1xx..5xx
    bff_request_duration_seconds{route}       histogram, until the last body byte
    bff_upstream_duration_seconds{route}      histogram, until the upstream's headers
    bff_store_errors_total{operation}         store calls that failed
    bff_store_duration_seconds{operation}     histogram of store calls
    bff_inflight_requests                     gauge (summed over live workers)
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from bff.telemetry.batching import batched_count, batched_observe, flush_batches

__all__ = [
    "FAST_BUCKETS",
    "FLUSH_INTERVAL",
    "INFLIGHT",
    "OTHER_ROUTE",
    "RequestMetrics",
    "STORE_OPERATIONS",
    "StoreMetrics",
    "flush_metrics",
    "track_inflight",
]

FLUSH_INTERVAL = 1.0  # seconds between two flushes of the batched per-request metrics
STORE_OPERATIONS: Final = (
    "create_session",
    "load_session",
    "update_session",
    "delete_session",
    "session_ttl",
    "sessions_by_sub",
    "sessions_by_idp_sid",
    "put_login_state",
    "take_login_state",
    "acquire_lock",
    "release_lock",
    "remember_once",
    "ping",
)
OTHER_ROUTE: Final = "other"  # static files, unknown paths, refused paths
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# Seconds. The hop itself is sub-millisecond; refreshes and slow upstreams take seconds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "bff_requests_total", "HTTP requests by route and status class", ["route", "status_class"]
)
REQUEST_DURATION = Histogram(
    "bff_request_duration_seconds",
    "Request duration, to the last byte",
    ["route"],
    buckets=FAST_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "bff_upstream_duration_seconds",
    "Upstream latency, until its response headers",
    ["route"],
    buckets=FAST_BUCKETS,
)
STORE_ERRORS = Counter("bff_store_errors_total", "Failed session store calls", ["operation"])
STORE_DURATION = Histogram(
    "bff_store_duration_seconds", "Session store call duration", ["operation"], buckets=FAST_BUCKETS
)
INFLIGHT = Gauge("bff_inflight_requests", "Requests being served", multiprocess_mode="livesum")


class _Inflight:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


_INFLIGHT = _Inflight()


def track_inflight(delta: int) -> None:
    _INFLIGHT.value += delta


def flush_metrics() -> None:
    """Move the batched per-request numbers of this process into prometheus_client."""
    flush_batches()
    INFLIGHT.set(_INFLIGHT.value)


class RequestMetrics:
    """Per-request counters with their label children resolved once per (route, class):
    `routes` is the fixed set of route labels; anything else counts as "other"."""

    __slots__ = ("_durations", "_requests", "_upstream")

    def __init__(self, routes: tuple[str, ...]) -> None:
        labels = (*dict.fromkeys(routes), OTHER_ROUTE)
        self._requests = {
            (r, status // 100): batched_count(REQUESTS.labels(r, c))
            for r in labels
            for status, c in zip(range(100, 600, 100), _STATUS_CLASSES, strict=True)
        }
        self._durations = {r: batched_observe(REQUEST_DURATION.labels(r)) for r in labels}
        self._upstream = {r: batched_observe(UPSTREAM_DURATION.labels(r)) for r in labels}

    def label(self, route: str) -> str:
        return route if route in self._durations else OTHER_ROUTE

    def observe(self, route: str, status: int, seconds: float) -> None:
        """`status` 0 (no response started because the client left, nginx's 499) counts
        as 4xx; the caller passes 500 when the app failed."""
        counter = self._requests.get((route, status // 100))
        if counter is None:
            route = self.label(route)
            counter = self._requests.get((route, status // 100)) or self._requests[(route, 4)]
        counter.inc()
        self._durations[route].observe(seconds)

    def upstream(self, route: str, seconds: float) -> None:
        histogram = self._upstream.get(route)
        if histogram is not None:
            histogram.observe(seconds)


class StoreMetrics:
    """Label children of the store metrics, one pair per operation."""

    __slots__ = ("durations", "errors")

    def __init__(self) -> None:
        self.durations = {op: batched_observe(STORE_DURATION.labels(op)) for op in STORE_OPERATIONS}
        self.errors = {op: batched_count(STORE_ERRORS.labels(op)) for op in STORE_OPERATIONS}
