"""Replica acknowledgement of the writes that start, change or end a session.

On Sentinel and Cluster those writes are followed by `WAIT 1 <ms>` on the connection that
made them (on Cluster, one per node written), so they reach a replica before the answer:
a failover right after a login, a refresh token rotation or a logout does not undo it.
Best effort, bounded by `REPLICA_ACK_MS`: with no replica in sync the write still counts
(the primary has it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

__all__ = ["REPLICA_ACK_MS", "ReplicaAcks"]

REPLICA_ACK_MS = 50  # WAIT's bound on Sentinel and Cluster (measured: see README)


class ReplicaAcks:
    """Queues the WAITs behind a pipeline's writes; `ms` 0 queues none."""

    __slots__ = ("_cluster", "ms")

    def __init__(self, cluster: RedisCluster | None, ms: int) -> None:
        self._cluster = cluster
        self.ms = ms

    async def queue(self, pipe: Any, keys: Sequence[str]) -> int:
        """Queue `WAIT 1 <ms>` behind the writes to `keys` in `pipe`, on the connection
        that made them: once, or once per node written on Cluster. The number queued
        (their replies end the pipeline's results)."""
        if not self.ms:
            return 0
        if self._cluster is None:
            pipe.execute_command("WAIT", 1, self.ms)
            return 1
        await self._cluster.initialize()  # at once when the slot map is known
        nodes = {}
        for key in keys:
            node = self._cluster.get_node_from_key(key)
            if node is not None:
                nodes[node.name] = node
        for node in nodes.values():
            pipe.execute_command("WAIT", 1, self.ms, target_nodes=node)
        return len(nodes)
