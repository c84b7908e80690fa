"""Private highly available Redis topologies on loopback, for the tests and `make chaos`:
a Redis Cluster of 3 primaries + 3 replicas, and a Sentinel group (1 primary, 2 replicas,
3 sentinels). Every server runs on a free port in a temp folder of its own, with a
password, and is stopped by its PID (never the shared server on 6379).

Timeouts are short (cluster-node-timeout and down-after-milliseconds of 1 s) so a
failover completes in a few seconds; the defaults are 15 s and 30 s.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis

from tests.support.procs import free_port
from tests.support.redis_servers import Servers, running_servers

__all__ = ["PASSWORD", "ClusterGroup", "SentinelGroup", "running_cluster", "running_sentinel"]

PASSWORD = "ha-test-password"  # the data nodes' (and the sentinels') password
SERVICE = "bffprimary"
_NODE_TIMEOUT_MS = 1000


def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not reached within {timeout}s")


def _client(port: int, password: str | None = PASSWORD) -> redis.Redis:
    return redis.Redis(port=port, password=password, socket_timeout=2, socket_connect_timeout=2)


_AUTH = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]


@dataclass
class ClusterGroup:
    """3 primaries + 3 replicas; `url` is the bff store URL (password included)."""

    servers: Servers
    ports: list[int]

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])
        return f"redis+cluster://:{PASSWORD}@{nodes}"

    def client(self) -> redis.RedisCluster:
        alive = [p for p in self.ports if p in self.servers.procs]
        return redis.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", p) for p in alive],
            password=PASSWORD,
            socket_timeout=2,
        )

    def roles(self) -> dict[int, str]:
        """port -> "master" / "slave" as each live node reports itself."""
        out = {}
        for port in self.servers.procs:
            with contextlib.suppress(redis.RedisError), _client(port) as c:
                out[port] = str(c.info("replication")["role"])
        return out

    def primary_of_key(self, key: str) -> int:
        with self.client() as c:
            return int(c.get_node_from_key(key).port)

    def kill(self, port: int) -> None:
        self.servers.kill(port)

    def heal(self) -> None:
        """Restart every killed node (it rejoins as a replica) and wait until healthy."""
        for port in self.ports:
            if port not in self.servers.procs:
                self.servers.restart(port)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every live node says cluster_state:ok and 3 primaries cover the slots."""

        def ok() -> bool:
            for port in self.servers.procs:
                with _client(port) as c:
                    if c.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                        return False
            return list(self.roles().values()).count("master") == 3

        _wait(ok, "cluster_state:ok on every node", timeout)


def _start_cluster(servers: Servers) -> ClusterGroup:
    ports = [free_port() for _ in range(6)]
    for port in ports:
        servers.start(
            port,
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",  # the bus port (else port + 10000)
                str(free_port()),
                "--cluster-node-timeout",
                str(_NODE_TIMEOUT_MS),
                # a replica always stands in, however long it was cut off
                "--cluster-replica-validity-factor",
                "0",
                *_AUTH,
            ],
        )
    subprocess.run(
        [
            "redis-cli",
            "-a",
            PASSWORD,
            "--no-auth-warning",
            "--cluster",
            "create",
            *[f"127.0.0.1:{p}" for p in ports],
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    group = ClusterGroup(servers, ports)
    group.wait_healthy()

    def replicas_synced() -> bool:
        for port, role in group.roles().items():
            if role == "slave":
                with _client(port) as c:
                    if c.info("replication")["master_link_status"] != "up":
                        return False
        return True

    _wait(replicas_synced, "every cluster replica in sync", 30)
    return group


@dataclass
class SentinelGroup:
    """1 primary, 2 replicas, 3 sentinels; `url` is the bff store URL."""

    servers: Servers
    data_ports: list[int]
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{nodes}/{SERVICE}?sentinel_password={PASSWORD}"

    def primary_port(self) -> int:
        """The primary as the sentinels' majority sees it."""
        seen = []
        for port in self.sentinel_ports:
            if port not in self.servers.procs:
                continue
            with contextlib.suppress(redis.RedisError), _client(port) as c:
                _host, p = c.sentinel_get_master_addr_by_name(SERVICE)
                seen.append(int(p))
        return max(set(seen), key=seen.count)

    def kill(self, port: int) -> None:
        self.servers.kill(port)

    def events(self) -> list[str]:
        """What the sentinels logged about the primary: down flags, TILT, switches."""
        marks = ("+sdown master", "-sdown master", "+odown", "+tilt", "-tilt", "+switch-master")
        out = []
        for port in self.sentinel_ports:
            log = self.servers.dir / str(port) / "server.log"
            for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
                if any(mark in line for mark in marks):
                    out.append(f":{port} {line.split(' ', 1)[-1]}")
        return out

    def heal(self) -> None:
        """Restart every killed node (the sentinels turn an old primary into a replica)
        and wait until healthy."""
        primary = self.primary_port()
        for port in [*self.data_ports, *self.sentinel_ports]:
            if port not in self.servers.procs:
                # as an operator would: straight back as a replica of the current primary
                # (the sentinels would convert it too, at their next INFO, up to 10 s later)
                to_primary = port in self.data_ports and primary != port
                more = ["--replicaof", "127.0.0.1", str(primary)] if to_primary else []
                self.servers.restart(port, more)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every sentinel agrees on a live primary with its replicas in sync."""

        def ok() -> bool:
            primaries = set()
            for port in self.sentinel_ports:
                with _client(port) as c:
                    state = c.sentinel_master(SERVICE)
                    if state["num-other-sentinels"] < 2 or "s_down" in state["flags"]:
                        return False
                    primaries.add(int(state["port"]))
            if len(primaries) != 1:
                return False
            (primary,) = primaries
            with _client(primary) as c:
                info = c.info("replication")
                live_replicas = len(
                    [p for p in self.data_ports if p in self.servers.procs and p != primary]
                )
                return bool(info["role"] == "master" and info["connected_slaves"] >= live_replicas)

        _wait(ok, "a sentinel-agreed primary with its replicas", timeout)


def _start_sentinel(servers: Servers) -> SentinelGroup:
    data = [free_port() for _ in range(3)]
    servers.start(data[0], _AUTH)
    for port in data[1:]:
        servers.start(port, [*_AUTH, "--replicaof", "127.0.0.1", str(data[0])])
    sentinels = [free_port() for _ in range(3)]
    for port in sentinels:
        conf = servers.dir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {servers.dir}\n"
            f"requirepass {PASSWORD}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {data[0]} 2\n"
            f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} {_NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
            f"sentinel parallel-syncs {SERVICE} 2\n"
        )
        servers.start(port, [], config=conf)
    group = SentinelGroup(servers, data, sentinels)
    group.wait_healthy()
    return group


@contextlib.contextmanager
def running_cluster() -> Iterator[ClusterGroup]:
    with running_servers(_start_cluster) as group:
        yield group


@contextlib.contextmanager
def running_sentinel() -> Iterator[SentinelGroup]:
    with running_servers(_start_sentinel) as group:
        yield group
