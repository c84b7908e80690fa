"""Highly available Redis for `RedisStore`: redis-py's own Sentinel and Cluster clients
(no routing of ours), built from a `redis+sentinel://` or `redis+cluster://` URL, and the
topology each one sees, for `check-config` and `/readyz`.

The clients keep the store's rules (see `bff.store.redis`): no command is ever re-sent
after an error (Retry with 0 retries), every failure surfaces as `StoreUnavailable`, and
recovery needs no restart:
- Sentinel: every new connection asks the sentinels for the current primary; a connection
  to a dead primary fails, is dropped, and the next one reaches the promoted replica; a
  demoted primary's READONLY answer drops the connection too (redis-py's
  `SentinelManagedConnection`).
- Cluster: a MOVED answer is followed (the command was not run), and a connection error
  marks the slot map for a refresh, which the next command performs.
A topology report never holds a password: addresses, roles and reachability only.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from bff.store.redis_boundary import BACKEND_ERRORS
from bff.store.redis_url import HaStoreUrl, parse_ha_url

__all__ = ["HEALTH_CHECK_INTERVAL", "HaClient", "StandaloneTopology", "connect_ha"]

HEALTH_CHECK_INTERVAL = 30  # seconds a pooled connection may idle before a PING vets it


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel pool that waits up to `timeout` for a free connection under a burst
    (as the standalone store's pool does) instead of failing at once."""


def _address(host: object, port: object) -> str:
    text = host.decode() if isinstance(host, bytes) else str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _tls(spec: HaStoreUrl) -> dict[str, Any]:
    return {"ssl": True} if spec.tls else {}


class HaClient:
    """A Sentinel- or Cluster-backed client for the store, plus what it needs to close
    and to describe the topology."""

    def __init__(
        self, spec: HaStoreUrl, client: Any, sentinel: Sentinel | None, timeout: float
    ) -> None:
        self.spec = spec
        self.client = client
        self._sentinel = sentinel
        self._timeout = timeout

    @property
    def kind(self) -> str:
        return self.spec.kind

    async def topology(self) -> dict[str, Any]:
        """Primaries, replicas (and sentinels) with whether each is reachable."""
        try:
            async with asyncio.timeout(self._timeout * 2):
                if self._sentinel is not None:
                    return await self._sentinel_topology(self._sentinel)
                return await self._cluster_topology()
        except (*BACKEND_ERRORS, TimeoutError) as exc:
            return {
                "kind": self.kind,
                "seeds": [_address(h, p) for h, p in self.spec.nodes],
                "error": f"no answer ({type(exc).__name__})",
            }

    async def _sentinel_topology(self, sentinel: Sentinel) -> dict[str, Any]:
        service = self.spec.service
        sentinels = []
        primary: dict[str, Any] | None = None
        replicas: list[dict[str, Any]] = []
        for (host, port), node in zip(self.spec.nodes, sentinel.sentinels, strict=True):
            try:
                state = await node.sentinel_master(service)
            except BACKEND_ERRORS:
                sentinels.append({"address": _address(host, port), "reachable": False})
                continue
            sentinels.append({"address": _address(host, port), "reachable": True})
            if primary is None and isinstance(state, dict):
                flags = str(state.get("flags", ""))
                primary = {
                    "address": _address(state["ip"], state["port"]),
                    "reachable": "s_down" not in flags and "o_down" not in flags,
                }
                for replica in await node.sentinel_slaves(service):
                    flags = str(replica.get("flags", ""))
                    replicas.append(
                        {
                            "address": _address(replica["ip"], replica["port"]),
                            "reachable": "s_down" not in flags and "disconnected" not in flags,
                        }
                    )
        return {
            "kind": "sentinel",
            "service": service,
            "sentinels": sentinels,
            "primaries": [primary] if primary else [],
            "replicas": replicas,
        }

    async def _cluster_topology(self) -> dict[str, Any]:
        client: RedisCluster = self.client
        nodes: dict[str, dict[str, Any]] = await client.cluster_nodes()
        by_id = {info["node_id"]: address for address, info in nodes.items()}
        primaries, replicas = [], []
        for address, info in sorted(nodes.items()):
            flags = str(info.get("flags", ""))
            if "noaddr" in flags or "handshake" in flags:
                continue
            reachable = bool(info.get("connected")) and "fail" not in flags
            if "master" in flags:
                # a failed primary whose slots moved to its replica shows 0 slots
                slots = sum(int(b) - int(a) + 1 for a, b, *_ in _slot_ranges(info))
                primaries.append({"address": address, "reachable": reachable, "slots": slots})
            else:
                replicas.append(
                    {
                        "address": address,
                        "reachable": reachable,
                        "primary": by_id.get(info.get("master_id", "")),
                    }
                )
        state = await client.cluster_info()
        return {
            "kind": "cluster",
            "state": str(state.get("cluster_state", "unknown")),
            "primaries": primaries,
            "replicas": replicas,
        }

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._sentinel is not None:
            for node in self._sentinel.sentinels:
                with contextlib.suppress(*BACKEND_ERRORS):
                    await node.aclose()


def _slot_ranges(info: dict[str, Any]) -> list[list[str]]:
    ranges = info.get("slots") or []
    return [list(r) if len(r) > 1 else [r[0], r[0]] for r in ranges]


def connect_ha(url: str, *, max_connections: int, socket_timeout: float) -> HaClient:
    """A Sentinel-managed primary or a RedisCluster client for `url` (bytes replies,
    no retries, health checks on idle connections)."""
    spec = parse_ha_url(url)
    common: dict[str, Any] = {
        "username": spec.username,
        "password": spec.password,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": Retry(NoBackoff(), 0),
        **_tls(spec),
    }
    if spec.kind == "sentinel":
        sentinel = Sentinel(
            spec.nodes,
            sentinel_kwargs={
                "username": spec.sentinel_username,
                "password": spec.sentinel_password,
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_timeout,
                **_tls(spec),
            },
            **common,
        )
        client = sentinel.master_for(
            spec.service,
            redis_class=redis.asyncio.Redis,
            connection_pool_class=_BlockingSentinelPool,
            db=spec.db,
            max_connections=max_connections,
            timeout=socket_timeout,
        )
        return HaClient(spec, client, sentinel, socket_timeout)
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in spec.nodes],
        max_connections=max_connections,
        require_full_coverage=True,
        **common,
    )
    return HaClient(spec, cluster, None, socket_timeout)


class StandaloneTopology:
    """The topology of one Redis: itself and the replicas it reports."""

    def __init__(self, client: redis.asyncio.Redis, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def topology(self) -> dict[str, Any]:
        kwargs = self._client.connection_pool.connection_kwargs
        address = (
            str(kwargs["path"]) if kwargs.get("path") else _address(kwargs["host"], kwargs["port"])
        )
        try:
            async with asyncio.timeout(self._timeout * 2):
                info = await self._client.info("replication")
        except (*BACKEND_ERRORS, TimeoutError):
            return {
                "kind": "standalone",
                "primaries": [{"address": address, "reachable": False}],
                "replicas": [],
            }
        replicas = [
            {
                "address": _address(value["ip"], value["port"]),
                "reachable": value.get("state") == "online",
            }
            for key, value in sorted(info.items())
            if key.startswith("slave") and isinstance(value, dict)
        ]
        return {
            "kind": "standalone",
            "role": str(info.get("role", "unknown")),
            "primaries": [{"address": address, "reachable": True}],
            "replicas": replicas,
        }
