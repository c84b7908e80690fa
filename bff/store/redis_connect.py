"""The client `RedisStore.from_url` builds: its own blocking pool for `redis://`,
`rediss://` and `unix://`, or redis-py's Sentinel or Cluster client (`bff.store.ha`).

The pool blocks up to `socket_timeout` for a free connection rather than failing at once
under a burst; commands are never retried (Retry with 0 retries), so `GETDEL`, `SET NX`
and friends run at most once; health checks catch dead idle connections before a command
is sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bff.store.ha import HEALTH_CHECK_INTERVAL, HaClient, connect_ha
from bff.store.redis_url import HA_SCHEMES

__all__ = ["connect"]

_SCHEMES = frozenset({"redis", "rediss", "unix"})


def connect(
    url: str, *, max_connections: int, socket_timeout: float
) -> tuple[redis.asyncio.Redis | RedisCluster, HaClient | None]:
    """The client for `url` (bytes replies) and, on Sentinel and Cluster, its `HaClient`."""
    scheme = url.partition("://")[0].lower()
    if scheme in HA_SCHEMES:
        ha = connect_ha(url, max_connections=max_connections, socket_timeout=socket_timeout)
        return ha.client, ha
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        # The URL itself is not echoed: it may hold a password.
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}; use redis, rediss or unix")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.asyncio.Redis.from_pool(pool), None
