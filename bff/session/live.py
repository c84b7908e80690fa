"""This worker's live connections, closed when their session ends anywhere.

`LiveSessions` is the `EndPublisher` that `SessionService.end` announces to: it tells
this worker's connections of the session at once and publishes on the `EventBus`, to
which it also listens (one subscription per worker, started by the app's lifespan), so
a logout on any instance reaches every worker within one pub/sub round trip. With several
frontends, each has its own `LiveSessions` (its window and idle timeout) over the one bus,
and `listen` holds the worker's one subscription for all of them.

A session can also end without anyone calling `end`: its absolute lifetime runs out or
it idles out in the store. Each connection therefore has a timer (`_watch`) that wakes
at the session's end as the store's TTL predicts it, reads the TTL then (one command,
never per message; WebSocket traffic does not slide the idle expiry, requests do) and
ends the connection when the session is gone; with `expiring`, it also wakes once
`window` seconds before the end (`/bff/events`).

Two ways to hold a connection: `attach` (the caller decides what ending means) and
`ending` (an async context manager that cancels its block, as `asyncio.timeout` does,
and tells the caller why in `EndScope.reason`).

The same bus wakes this worker's waits for another instance's refresh of a session
(`refresh_watch`, `refresh_released`; `bff.session.wakeups`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bff.errors import StoreUnavailable
from bff.session.events import (
    EXPIRING_WINDOW,
    BusEvent,
    EventBus,
    Live,
    LiveRegistry,
    RefreshReleased,
    SessionEnded,
    session_end,
)
from bff.session.records import short_hash
from bff.session.wakeups import RefreshWakeups
from bff.store import SessionStore

__all__ = ["Attachment", "EndScope", "LiveSessions", "listen"]

_log = logging.getLogger("bff.events")
_RETRY = 2.0  # seconds before a watch asks an unreachable store again
_MIN_STEP = 0.25  # seconds: a watch never spins on a TTL that rounds up
# Live connections (WebSockets and event streams together) one session may hold in one
# worker: each holds a socket, tasks and, for a WebSocket, an upstream connection.
MAX_PER_SESSION = 16


@dataclass(slots=True)
class Attachment:
    """A connection registered with `LiveSessions.attach`; `detach` when it closes."""

    hub: LiveSessions
    session_hash: str
    connection: Live
    watch: asyncio.Task[None] | None = field(default=None, repr=False)

    def detach(self) -> None:
        self.hub._registry.discard(self.session_hash, self.connection)
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None


class EndScope:
    """`async with hub.ending(hash, expires_at) as scope:` runs its block until the
    session ends (or `scope.end(reason)` is called): then the block is cancelled, the
    cancellation stops at the block's end, and `scope.reason` says why."""

    __slots__ = ("_attachment", "_expires_at", "_hash", "_hub", "_task", "reason")

    def __init__(self, hub: LiveSessions, session_hash: str, expires_at: float) -> None:
        self._hub = hub
        self._hash = session_hash
        self._expires_at = expires_at
        self._task: asyncio.Task[object] | None = None
        self._attachment: Attachment | None = None
        self.reason: str | None = None

    def end(self, reason: str) -> None:
        if self.reason is not None or self._task is None:
            return  # told already, or the block is over
        self.reason = reason
        self._task.cancel()

    # Neither method awaits: a cancellation from `end` can only land inside the block.
    async def __aenter__(self) -> EndScope:
        self._task = asyncio.current_task()
        self._attachment = self._hub.attach(self._hash, self._expires_at, self)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        task, self._task = self._task, None
        if self._attachment is not None:
            self._attachment.detach()
        if self.reason is None or task is None:
            return False
        return task.uncancel() == 0 and exc_type is asyncio.CancelledError


class LiveSessions:
    """The registry of this worker plus the bus that feeds it."""

    def __init__(
        self,
        bus: EventBus,
        *,
        store: SessionStore,
        clock: Callable[[], float],
        window: int = EXPIRING_WINDOW,
        idle_timeout: int | None = None,
    ) -> None:
        """`idle_timeout`: the sessions' idle timeout, when every `attach` follows a load
        that slid it (the first wake then needs no store read); None: read the TTL."""
        self._bus = bus
        self._idle = idle_timeout
        self._store = store
        self._clock = clock
        self.window = window
        self._registry = LiveRegistry()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[str, int] = {}
        self._refreshes = RefreshWakeups()
        self.max_per_session = MAX_PER_SESSION

    def __len__(self) -> int:
        return len(self._registry)

    async def publish(self, event: SessionEnded) -> None:
        """Close this worker's connections of the session, then tell the others."""
        self.deliver(event)
        try:
            await self._bus.publish(event)
        except StoreUnavailable as exc:
            # Other instances close theirs at their next TTL check or re-subscription.
            _log.warning("session %s ended, not announced: %s", short_hash(event.session_hash), exc)

    def deliver(self, event: BusEvent) -> None:
        # A released refresh lock or an ended session: its refresh waiters look again.
        self._refreshes.wake(event.session_hash)
        if isinstance(event, SessionEnded):
            self._registry.end(event)

    def refresh_watch(self, session_hash: str) -> contextlib.AbstractContextManager[asyncio.Event]:
        return self._refreshes.watch(session_hash)

    def refresh_released(self, session_hash: str) -> None:
        """Wake this worker's waiters of the session now; tell the others in the
        background (the holder's own waiters need not wait for the publish)."""
        self._refreshes.wake(session_hash)
        task = asyncio.create_task(
            self._announce(RefreshReleased(session_hash)), name="bff-refresh-released"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, event: RefreshReleased) -> None:
        try:
            await self._bus.publish(event)
        except StoreUnavailable as exc:
            # The waiters elsewhere find the new tokens at their next poll.
            _log.warning(
                "session %s refreshed, not announced: %s", short_hash(event.session_hash), exc
            )

    async def run(self) -> None:
        """Listen to the bus until cancelled (the app's lifespan runs this)."""
        await listen(self._bus, (self,))

    def close(self) -> None:
        """Stop background re-checks (the bus is its owner's to close)."""
        for task in list(self._tasks):
            task.cancel()

    def attach(
        self,
        session_hash: str,
        expires_at: float,
        connection: Live,
        *,
        expiring: Callable[[int], None] | None = None,
    ) -> Attachment:
        """Register `connection` until `detach`; its `end` is called once, with the
        reason, when the session ends (then it is no longer registered)."""
        self._registry.add(session_hash, connection)
        attachment = Attachment(self, session_hash, connection)
        attachment.watch = asyncio.create_task(
            self._watch(session_hash, expires_at, connection, expiring),
            name=f"bff-live-{short_hash(session_hash)}",
        )
        return attachment

    def admit(self, session_hash: str) -> bool:
        """Reserve one of the session's live connections in this worker; False when it
        holds `max_per_session` already. Each True is paired with one `leave`."""
        held = self._held.get(session_hash, 0)
        if held >= self.max_per_session:
            return False
        self._held[session_hash] = held + 1
        return True

    def leave(self, session_hash: str) -> None:
        held = self._held.pop(session_hash, 1) - 1
        if held > 0:
            self._held[session_hash] = held

    def ending(self, session_hash: str, expires_at: float) -> EndScope:
        return EndScope(self, session_hash, expires_at)

    async def _watch(
        self,
        session_hash: str,
        expires_at: float,
        connection: Live,
        expiring: Callable[[int], None] | None,
    ) -> None:
        warned = expiring is None
        # Attached right after a load that slid the idle expiry: the first end is known
        # without asking the store (nothing is read until then).
        ttl: int | None = self._idle
        while True:
            if ttl is None:
                try:
                    ttl = await self._store.session_ttl(session_hash)
                except StoreUnavailable:
                    await asyncio.sleep(_RETRY)  # a store outage is no end of the session
                    continue
            now = self._clock()
            end = session_end(now=now, expires_at=expires_at, store_ttl=ttl)
            if end is None:
                self._registry.discard(session_hash, connection)
                connection.end("expired")
                return
            if not warned and end - now <= self.window:
                warned = True
                assert expiring is not None
                expiring(max(1, round(end - now)))
            wake = end if warned else end - self.window
            await asyncio.sleep(max(wake - now, _MIN_STEP))
            ttl = None

    def resubscribed(self) -> None:
        """The bus subscribed again after a gap: re-check this worker's sessions."""
        task = asyncio.create_task(self._recheck(), name="bff-live-recheck")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recheck(self) -> None:
        """After a gap in the subscription: end what ended meanwhile (reason lost)."""
        for session_hash in self._registry.sessions():
            with contextlib.suppress(StoreUnavailable):
                if await self._store.session_ttl(session_hash) is None:
                    self.deliver(SessionEnded(session_hash, "ended"))


async def listen(bus: EventBus, hubs: Sequence[LiveSessions]) -> None:
    """One subscription to `bus` for several hubs (one per frontend, each with its own
    window and idle timeout), until cancelled: every event goes to each hub (a session
    hash is namespaced by its frontend, so only its own frontend's hub has connections
    of it) and each re-checks its own sessions after a gap."""

    def deliver(event: BusEvent) -> None:
        for hub in hubs:
            hub.deliver(event)

    def resubscribed() -> None:
        for hub in hubs:
            hub.resubscribed()

    await bus.listen(deliver, resubscribed)
