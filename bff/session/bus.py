"""The `EventBus` adapters: Redis pub/sub across instances, and an in-process bus for
`memory://` (one worker, by the store's own rule).

Redis: classic `PUBLISH` / `SUBSCRIBE` on one channel, `{prefix}:session-ended` (which
also carries the release of a session's refresh lock, `RefreshReleased`). Each
worker holds ONE subscription connection whatever the number of sockets it serves, and
publishes on an ordinary pooled connection. Per topology:
- standalone (`redis://`, `rediss://`, `unix://`): that server;
- Sentinel: the current primary, found through the sentinels for every new connection,
  so after a failover the subscription is made again on the promoted replica;
- Cluster: any one node (the seeds in turn): a classic `PUBLISH` reaches the
  subscribers of every node over the cluster bus, so no slot routing (and no sharded
  pub/sub) is needed.
Pub/sub delivers at most once: events published while a subscription is being made again
are lost, so the listener calls `resubscribed` and the caller re-checks its sessions in
the store. Every failure is `StoreUnavailable`, naming the operation only (never the URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from bff.errors import StoreUnavailable
from bff.session.events import BusEvent, EventBus, decode_event, encode_event
from bff.store.ha import connect_ha
from bff.store.redis_url import HA_SCHEMES, parse_ha_url

__all__ = ["MemoryBus", "RedisBus", "create_bus"]

_log = logging.getLogger("bff.events")
_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
_PUBLISH_TIMEOUT = 2.0  # seconds a publish may hold up the end of a session
_POLL = 1.0  # seconds one read of the subscription waits for a message
_HEALTH = 30  # seconds between the subscription's PINGs (a dead peer is noticed)
_TIMEOUT = 5.0
_BACKOFF = (0.1, 0.5, 1.0, 2.0)  # seconds before subscribing again, then every 2 s


class MemoryBus:
    """In-process: a publish reaches this process's listeners at once."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[BusEvent], None]] = []

    async def publish(self, event: BusEvent) -> None:
        for deliver in list(self._listeners):
            deliver(event)

    async def listen(
        self, deliver: Callable[[BusEvent], None], resubscribed: Callable[[], None]
    ) -> None:
        self._listeners.append(deliver)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            if deliver in self._listeners:  # (aclose may have let everyone go)
                self._listeners.remove(deliver)

    async def aclose(self) -> None:
        self._listeners.clear()


class RedisBus:
    """Pub/sub on `clients` (one, or a cluster's seed nodes: tried in turn)."""

    def __init__(
        self,
        clients: list[redis.asyncio.Redis],
        channel: str,
        *,
        close: Callable[[], Any] | None = None,
    ) -> None:
        if not clients:
            raise ValueError("RedisBus needs a client")
        self._clients = clients
        self._channel = channel
        self._close = close
        self._at = 0  # the client in use: the next one after a failure

    @property
    def channel(self) -> str:
        return self._channel

    async def publish(self, event: BusEvent) -> None:
        client = self._clients[self._at % len(self._clients)]
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT):
                await client.publish(self._channel, encode_event(event))
        except _ERRORS as exc:
            self._at += 1
            raise StoreUnavailable(f"session-ended publish failed: {type(exc).__name__}") from None

    async def listen(
        self, deliver: Callable[[BusEvent], None], resubscribed: Callable[[], None]
    ) -> None:
        failures = 0
        first = True
        while True:
            client = self._clients[self._at % len(self._clients)]
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                # A pooled connection for this worker's publishes, opened now rather than
                # by the first announcement (a refresh's, in the middle of a burst).
                await client.ping()
                if not first:
                    _log.info("session-ended channel: subscribed again")
                    resubscribed()
                first, failures = False, 0
                while True:
                    message = await pubsub.get_message(timeout=_POLL)
                    if message is not None and message.get("type") == "message":
                        event = decode_event(message["data"])
                        if event is not None:
                            deliver(event)
            except _ERRORS as exc:
                self._at += 1
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                _log.warning(
                    "session-ended channel lost (%s); subscribing again in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(*_ERRORS):
                    await pubsub.aclose()

    async def aclose(self) -> None:
        with contextlib.suppress(*_ERRORS):
            if self._close is not None:
                await self._close()
            else:
                for client in self._clients:
                    await client.aclose()


def _options() -> dict[str, Any]:
    return {
        "socket_timeout": _TIMEOUT,
        "socket_connect_timeout": _TIMEOUT,
        "health_check_interval": _HEALTH,
        "retry": Retry(NoBackoff(), 0),
    }


def create_bus(store_url: str, *, prefix: str) -> EventBus:
    """The bus that goes with BFF_SESSION_STORE: in-process for `memory://`, else pub/sub
    on the same Redis deployment (its own small pool: never the store's connections)."""
    scheme = store_url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryBus()
    channel = f"{prefix}:session-ended"
    if scheme in HA_SCHEMES:
        spec = parse_ha_url(store_url)
        if spec.kind == "sentinel":
            ha = connect_ha(store_url, max_connections=8, socket_timeout=_TIMEOUT)
            return RedisBus([ha.client], channel, close=ha.aclose)
        clients = [
            redis.asyncio.Redis(
                host=host,
                port=port,
                username=spec.username,
                password=spec.password,
                ssl=spec.tls,
                max_connections=8,
                **_options(),
            )
            for host, port in spec.nodes
        ]
        return RedisBus(clients, channel)
    if urlsplit(store_url).scheme.lower() not in ("redis", "rediss", "unix"):
        raise ValueError(f"no session-ended bus for {scheme}://")
    client = redis.asyncio.Redis.from_url(store_url, max_connections=8, **_options())
    return RedisBus([client], channel)
