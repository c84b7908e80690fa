"""Prometheus metrics. Counters only where they are cheap; labels from small fixed sets,
never from user or provider input (a hostile provider must not explode cardinality)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "count_event", "render"]

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
    }
)

EVENTS = Counter(
    "bff_events_total",
    "Audit events: login, refresh, refresh_failed, logout, backchannel_logout, revoke",
    ["event", "outcome"],
)


def count_event(event: str, outcome: str) -> None:
    EVENTS.labels(event, outcome if outcome in _OUTCOMES else "other").inc()


def render(multiprocess_dir: str | None) -> bytes:
    """The exposition text; with several workers, merged from every worker's files."""
    if multiprocess_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
