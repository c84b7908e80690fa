"""The browser's side of an upstream exchange: its request body streamed from ASGI
`receive` (each chunk bounded in time), and a watch that cancels the exchange when the
browser disconnects while the upstream is still answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyStream", "ClientGone", "DisconnectWatch", "LateWatches", "Message", "Receive"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class ClientGone(Exception):
    """The browser went away (or stalled) while its request body was being sent."""


class BodyStream:
    """The browser's request body, streamed from ASGI `receive` to the upstream.

    Each chunk must arrive within `timeout` (a stalled upload must not hold an upstream
    connection forever). `on_done` runs once the whole body has been received, so the
    caller knows `receive` is free for disconnect detection.
    """

    __slots__ = ("_on_done", "_receive", "_timeout", "client_gone", "done", "stalled")

    def __init__(self, receive: Receive, *, timeout: float, on_done: Callable[[], None]) -> None:
        self._receive = receive
        self._timeout = timeout
        self._on_done = on_done
        self.done = False
        self.client_gone = False
        self.stalled = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    message = await self._receive()
            except TimeoutError:
                self.stalled = True
                raise ClientGone("request body stalled") from None
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ClientGone("client disconnected")
            body = message.get("body", b"")
            if body:
                yield body
            if not message.get("more_body", False):
                self.done = True
                self._on_done()
                return


class LateWatches:
    """Starts the watches of exchanges still running `delay` seconds after they asked
    (`DisconnectWatch.later`), with one timer for all of them: a timer armed and
    cancelled per request cost ~2 µs, more than the rest of the watch. A watch starts
    between `delay` and 1.25 x `delay` after it asked."""

    __slots__ = ("_delay", "_due", "_loop", "_timer")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._due: dict[DisconnectWatch, float] = {}  # in the order they asked: by time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def add(self, watch: DisconnectWatch) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # (a test's next event loop: the last one's are gone)
            self._loop, self._timer = loop, None
            self._due.clear()
        if watch in self._due:
            return
        self._due[watch] = loop.time() + self._delay
        if self._timer is None:
            self._timer = loop.call_later(self._delay / 4, self._sweep)

    def discard(self, watch: DisconnectWatch) -> None:
        self._due.pop(watch, None)

    def _sweep(self) -> None:
        self._timer = None
        loop, due = self._loop, self._due
        if loop is None:
            return
        now = loop.time()
        ready = []
        for watch, when in due.items():
            if when > now:
                break
            ready.append(watch)
        for watch in ready:
            del due[watch]
            watch.start()
        if due:
            self._timer = loop.call_later(self._delay / 4, self._sweep)


class DisconnectWatch:
    """Notices a browser that disconnects while its upstream exchange runs, and cancels
    that exchange (the upstream response is released on the way out)."""

    __slots__ = ("_done", "_late", "_receive", "_task", "_watcher", "gone")

    def __init__(
        self, receive: Receive, task: asyncio.Task[Any] | None, *, late: LateWatches
    ) -> None:
        self._receive = receive
        self._late = late
        self._task = task
        self._watcher: asyncio.Task[None] | None = None
        self._done = False
        self.gone = False

    def later(self) -> None:
        """Start watching if the exchange is still running after a short while."""
        if not self._done and self._watcher is None:
            self._late.add(self)

    def start(self) -> None:
        if self._done or self._watcher is not None or self._task is None:
            return
        self._late.discard(self)
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if not self._done and self._task is not None:
            self.gone = True
            self._task.cancel()

    def stop(self) -> None:
        self._done = True
        self._late.discard(self)
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()
