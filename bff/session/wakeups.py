"""This worker's waits for other refreshes: session hash -> the events of the tasks
waiting for that session's refresh lock (`bff.tokens.refresh`, at most one task per
session and audience per worker), set when the lock's release (`RefreshReleased`) or
the session's end arrives from the bus or from this worker.

A waiter registers *before* it first tries the lock, and the holder announces the
release only *after* releasing: a waiter that found the lock taken is therefore always
registered when the release is announced (pub/sub delivers at most once: a lost
announcement costs one poll interval, never the refresh).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

__all__ = ["RefreshWakeups"]


class RefreshWakeups:
    """Session hash -> the events of this worker's refresh waits."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, session_hash: str) -> Iterator[asyncio.Event]:
        """An event set by every `wake` of `session_hash` while the block runs."""
        event = asyncio.Event()
        waiting = self._waiting.setdefault(session_hash, set())
        waiting.add(event)
        try:
            yield event
        finally:
            waiting.discard(event)
            if not waiting and self._waiting.get(session_hash) is waiting:
                del self._waiting[session_hash]

    def wake(self, session_hash: str) -> int:
        """Set the events of `session_hash`'s waits; how many."""
        waiting = self._waiting.get(session_hash, ())
        for event in waiting:
            event.set()
        return len(waiting)

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())
