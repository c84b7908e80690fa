"""Each session's share of the upstream connections (THREATS.md invariant 14): at most
`limit` exchanges of one session in flight in this process, a request past its share
waiting a bounded time for one (then UpstreamBusy, 503).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from bff.errors import UpstreamBusy

__all__ = ["SessionSlots"]


class SessionSlots:
    """At most `limit` upstream exchanges of one session in flight at once (in this
    process, whatever their origins), so that one session's slow uploads or slow reads
    cannot take every connection to an origin (THREATS.md invariant 14). A request past
    its share waits up to `wait` seconds for one of its session's exchanges to end, then
    UpstreamBusy. Keys are session hashes; a key disappears with its last exchange."""

    __slots__ = ("_held", "_limit", "_queues", "_wait")

    def __init__(self, *, limit: int, wait: float) -> None:
        self._limit = limit
        self._wait = wait
        self._held: dict[str, int] = {}
        self._queues: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def take(self, key: str) -> bool:
        """A slot now, if the session has one free: the common case, without an await."""
        held = self._held.get(key, 0)
        if held < self._limit:  # (never while others queue: `release` hands slots over)
            self._held[key] = held + 1
            return True
        return False

    async def acquire(self, key: str) -> None:
        """A slot, waiting up to `wait` seconds for one; UpstreamBusy after that."""
        if self.take(key):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, collections.deque()).append(waiter)
        try:
            async with asyncio.timeout(self._wait):
                try:
                    await waiter  # a finished exchange hands its slot over: count unchanged
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self.release(key)  # handed over, but leaving: pass it on
                    else:
                        self._forget(key, waiter)
                    raise
        except TimeoutError:
            raise UpstreamBusy(
                f"a session already has {self._limit} upstream requests in flight"
            ) from None

    def release(self, key: str) -> None:
        queue = self._queues.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not queue:
                    del self._queues[key]
                return
        if queue is not None:
            del self._queues[key]
        held = self._held[key] - 1
        if held:
            self._held[key] = held
        else:
            del self._held[key]

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(waiter)
            if not queue:
                del self._queues[key]
