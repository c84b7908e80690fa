"""Metric updates batched in plain numbers, for the hot path: a request adds to a counter
or a histogram's buckets in this process (no lock, no mmap write: one event loop per
process), and `flush_batches` moves the sums into prometheus_client's children.

Only the thread whose event loop adds to the batches flushes them: the admin listener
renders on a thread of its own and reads what was flushed (at most a second old).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

__all__ = ["Count", "Observe", "batched_count", "batched_observe", "flush_batches", "owns_batches"]


class Count:
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


class Observe:
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


# One batch per label child (children live as long as their metric: ids stay unique).
_BATCHED: dict[int, Count | Observe] = {}
# The thread whose event loop adds to the batches: only it flushes them.
_OWNER: list[int] = []


def batched_count(child: Any) -> Count:
    _OWNER[:] = _OWNER or [threading.get_ident()]
    batched = _BATCHED.setdefault(id(child), Count(child))
    assert isinstance(batched, Count)
    return batched


def batched_observe(child: Any) -> Observe:
    _OWNER[:] = _OWNER or [threading.get_ident()]
    batched = _BATCHED.setdefault(id(child), Observe(child))
    assert isinstance(batched, Observe)
    return batched


def owns_batches() -> bool:
    """Is this the thread that adds to the batches (and may flush them)?"""
    return bool(_OWNER) and _OWNER[0] == threading.get_ident()


def flush_batches() -> None:
    for batched in _BATCHED.values():
        batched.flush()
