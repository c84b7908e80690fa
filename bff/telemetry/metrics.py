"""Prometheus metrics an operator alerts on. Labels come from small fixed sets, never from
user or provider input (a hostile provider must not explode cardinality), and no label
carries a user, a session or a token.

    bff_requests_total{route,status_class}    every HTTP request; route = a configured
                                              route prefix, a bff endpoint path, or
                                              "other"; status_class = 1xx..5xx
    bff_request_duration_seconds{route}       histogram, until the last body byte
    bff_upstream_duration_seconds{route}      histogram, until the upstream's headers
    bff_refresh_total{outcome}                refresh attempts by outcome
    bff_refresh_lock_wait_seconds             histogram, waiting for the refresh lock
    bff_refresh_coalesced_total               requests that joined another's refresh
    bff_store_errors_total{operation}         store calls that failed
    bff_store_duration_seconds{operation}     histogram of store calls
    bff_events_total{event,outcome}           audit events (login, logout, ...)
    bff_inflight_requests                     gauge (summed over live workers)
    bff_live_connections                      gauge: streamed responses still open

With several workers every process writes its own files under PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, chosen at import from that variable) and
`render` merges them.

The per-request metrics (requests, durations, store calls, in-flight) cost the hot path
almost nothing: their label children are resolved once, and a request only adds to plain
numbers in this process (no lock, no mmap write: one event loop per process).
`flush_metrics` moves them into prometheus_client: every second (the app's lifespan runs
it), before a `render` on the serving thread (the admin listener's thread reads what was
flushed), and at shutdown. Rare events (refreshes, audit events, streams) go to
prometheus_client directly.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "FLUSH_INTERVAL",
    "INFLIGHT",
    "LIVE_CONNECTIONS",
    "OTHER_ROUTE",
    "REFRESH_COALESCED",
    "REFRESH_LOCK_WAIT",
    "RequestMetrics",
    "STORE_OPERATIONS",
    "StoreMetrics",
    "count_event",
    "count_refresh",
    "flush_metrics",
    "render",
    "track_inflight",
]

_OUTCOMES = frozenset(
    {
        "success",
        "deleted",
        "deleted_and_revoked",
        "deleted_revocation_failed",
        "invalid_grant",
        "invalid_client",
        "idp_unavailable",
        "no_refresh_token",
        # login_failed reasons (bff's own; a provider's error codes count as "other")
        "invalid_issuer",
        "invalid_state",
        "state_missing",
        "state_unknown",
        "state_unreadable",
        "state_expired",
        "binding_missing",
        "binding_mismatch",
        "issuer_changed",
        "login_replaced",
        "wrong_host",
        "invalid_id_token",
        "access_denied",
    }
)
REFRESH_OUTCOMES: Final = frozenset(
    {
        "success",  # new tokens stored
        "not_needed",  # another instance had refreshed already (seen under the lock)
        "session_ended",  # invalid_grant / no refresh token / logged out meanwhile
        "idp_unavailable",  # provider down, or refused our client (invalid_client ...)
        "store_unavailable",
        "lock_busy",  # the lock stayed held past the wait bound
        "timeout",  # the refresh outlived its lock lease
    }
)
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
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

EVENTS = Counter(
    "bff_events_total",
    "Audit events: login, login_failed, refresh, refresh_failed, logout, "
    "backchannel_logout, revoke",
    ["event", "outcome"],
)
REQUESTS = Counter(
    "bff_requests_total", "HTTP requests by route and status class", ["route", "status_class"]
)
REQUEST_DURATION = Histogram(
    "bff_request_duration_seconds", "Request duration, to the last byte", ["route"], buckets=_FAST
)
UPSTREAM_DURATION = Histogram(
    "bff_upstream_duration_seconds",
    "Upstream latency, until its response headers",
    ["route"],
    buckets=_FAST,
)
REFRESH = Counter("bff_refresh_total", "Token refreshes by outcome", ["outcome"])
REFRESH_LOCK_WAIT = Histogram(
    "bff_refresh_lock_wait_seconds",
    "Time spent waiting for a session's refresh lock",
    buckets=_FAST,
)
REFRESH_COALESCED = Counter(
    "bff_refresh_coalesced_total", "Requests served by a refresh another request started"
)
STORE_ERRORS = Counter("bff_store_errors_total", "Failed session store calls", ["operation"])
STORE_DURATION = Histogram(
    "bff_store_duration_seconds", "Session store call duration", ["operation"], buckets=_FAST
)
INFLIGHT = Gauge("bff_inflight_requests", "Requests being served", multiprocess_mode="livesum")
LIVE_CONNECTIONS = Gauge(
    "bff_live_connections", "Streamed responses still open", multiprocess_mode="livesum"
)


FLUSH_INTERVAL = 1.0  # seconds between two flushes of the batched per-request metrics


class _Count:
    """A counter child's increments, not yet flushed."""

    __slots__ = ("child", "pending")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.pending = 0

    def inc(self) -> None:
        self.pending += 1

    def flush(self) -> None:
        if self.pending:
            pending, self.pending = self.pending, 0
            self.child.inc(pending)


class _Observe:
    """A histogram child's observations, not yet flushed: counts per bucket and the sum,
    added to the child's bucket values as `Histogram.observe` would have (its buckets are
    stored per bucket, cumulated when exposed)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        counts = self.counts
        if not any(counts):
            return
        self.counts = [0] * len(counts)
        total, self.total = self.total, 0.0
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
        self.child._sum.inc(total)


class _Inflight:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


# One batch per label child (children live as long as their metric: ids stay unique).
_BATCHED: dict[int, _Count | _Observe] = {}
_INFLIGHT = _Inflight()
# The thread whose event loop adds to the batches: only it flushes them (the admin
# listener renders on a thread of its own and reads what was flushed, at most 1 s old).
_OWNER: list[int] = []


def _count(child: Any) -> _Count:
    _OWNER[:] = _OWNER or [threading.get_ident()]
    batched = _BATCHED.setdefault(id(child), _Count(child))
    assert isinstance(batched, _Count)
    return batched


def _observe(child: Any) -> _Observe:
    _OWNER[:] = _OWNER or [threading.get_ident()]
    batched = _BATCHED.setdefault(id(child), _Observe(child))
    assert isinstance(batched, _Observe)
    return batched


def track_inflight(delta: int) -> None:
    _INFLIGHT.value += delta


def flush_metrics() -> None:
    """Move the batched per-request numbers of this process into prometheus_client."""
    for batched in _BATCHED.values():
        batched.flush()
    INFLIGHT.set(_INFLIGHT.value)


def count_event(event: str, outcome: str) -> None:
    EVENTS.labels(event, outcome if outcome in _OUTCOMES else "other").inc()


def count_refresh(outcome: str) -> None:
    REFRESH.labels(outcome if outcome in REFRESH_OUTCOMES else "other").inc()


class RequestMetrics:
    """Per-request counters with their label children resolved once per (route, class):
    `routes` is the fixed set of route labels; anything else counts as "other"."""

    __slots__ = ("_durations", "_requests", "_upstream")

    def __init__(self, routes: tuple[str, ...]) -> None:
        labels = (*dict.fromkeys(routes), OTHER_ROUTE)
        self._requests = {
            (r, status // 100): _count(REQUESTS.labels(r, c))
            for r in labels
            for status, c in zip(range(100, 600, 100), _STATUS_CLASSES, strict=True)
        }
        self._durations = {r: _observe(REQUEST_DURATION.labels(r)) for r in labels}
        self._upstream = {r: _observe(UPSTREAM_DURATION.labels(r)) for r in labels}

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
        self.durations = {op: _observe(STORE_DURATION.labels(op)) for op in STORE_OPERATIONS}
        self.errors = {op: _count(STORE_ERRORS.labels(op)) for op in STORE_OPERATIONS}


def render(multiprocess_dir: str | None) -> bytes:
    """The exposition text; with several workers, merged from every worker's files."""
    if _OWNER and _OWNER[0] == threading.get_ident():
        flush_metrics()
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
