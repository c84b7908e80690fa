"""Prometheus metrics an operator alerts on. Labels come from small fixed sets, never from
user or provider input (a hostile provider must not explode cardinality), and no label
carries a user, a session or a token.

    bff_requests_total, bff_request_duration_seconds, bff_upstream_duration_seconds,
    bff_store_errors_total, bff_store_duration_seconds, bff_inflight_requests
                                              per request, batched: see
                                              `bff.telemetry.request_metrics`
    bff_refresh_total{outcome}                refresh attempts by outcome
    bff_refresh_lock_wait_seconds             histogram, waiting for the refresh lock
    bff_refresh_coalesced_total               requests that joined another's refresh
    bff_events_total{event,outcome}           audit events (login, logout, ...)
    bff_live_connections                      gauge: streamed responses still open

These rare events go to prometheus_client directly. With several workers every process
writes its own files under PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess
mode, chosen at import from that variable) and `render` merges them.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from bff.telemetry.batching import owns_batches
from bff.telemetry.request_metrics import FAST_BUCKETS, flush_metrics

__all__ = [
    "CONTENT_TYPE_LATEST",
    "LIVE_CONNECTIONS",
    "REFRESH_COALESCED",
    "REFRESH_LOCK_WAIT",
    "REFRESH_OUTCOMES",
    "count_event",
    "count_refresh",
    "render",
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

EVENTS = Counter(
    "bff_events_total",
    "Audit events: login, login_failed, refresh, refresh_failed, logout, "
    "backchannel_logout, revoke",
    ["event", "outcome"],
)
REFRESH = Counter("bff_refresh_total", "Token refreshes by outcome", ["outcome"])
REFRESH_LOCK_WAIT = Histogram(
    "bff_refresh_lock_wait_seconds",
    "Time spent waiting for a session's refresh lock",
    buckets=FAST_BUCKETS,
)
REFRESH_COALESCED = Counter(
    "bff_refresh_coalesced_total", "Requests served by a refresh another request started"
)
LIVE_CONNECTIONS = Gauge(
    "bff_live_connections", "Streamed responses still open", multiprocess_mode="livesum"
)


def count_event(event: str, outcome: str) -> None:
    EVENTS.labels(event, outcome if outcome in _OUTCOMES else "other").inc()


def count_refresh(outcome: str) -> None:
    REFRESH.labels(outcome if outcome in REFRESH_OUTCOMES else "other").inc()


def render(multiprocess_dir: str | None) -> bytes:
    """The exposition text; with several workers, merged from every worker's files."""
    if owns_batches():
        flush_metrics()
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
