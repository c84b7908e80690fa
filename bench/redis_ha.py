"""Private highly available Redis topologies on loopback, for the tests and `make chaos`:
a Redis Cluster of 3 primaries + 3 replicas, and a Sentinel group (1 primary, 2 replicas,
3 sentinels). Every server runs on a free port in a temp folder of its own, with a
password, and is stopped by its PID (never the shared server on 6379).

Timeouts are short (cluster-node-timeout and down-after-milliseconds of 1 s) so a
failover completes in a few seconds; the defaults are 15 s and 30 s.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.procs import free_port, redis_server_argv

__all__ = ["ClusterGroup", "SentinelGroup", "running_cluster", "running_sentinel"]

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


@dataclass
class _Servers:
    """Processes started here, by name; only these are stopped."""

    dir: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: dict[int, tuple[list[str], Path | None]] = field(default_factory=dict)

    def restart(self, port: int, more: list[str] | None = None) -> None:
        """Start a killed server again, as it was (a cluster node keeps its nodes.conf),
        with `more` arguments."""
        extra, config = self.started[port]
        self.start(port, [*extra, *(more or [])], config)
        self.started[port] = (extra, config)

    def start(self, port: int, extra: list[str], config: Path | None = None) -> None:
        self.started[port] = (extra, config)
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        if config is None:
            argv = redis_server_argv(port, str(node_dir))
        else:
            argv = ["redis-server", str(config), "--sentinel"]
        log = (node_dir / "server.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [*argv, *extra], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[port] = process
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on {port} exited: {self.log(port)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {port}")

    def log(self, port: int) -> str:
        path = self.dir / str(port) / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self, port: int) -> None:
        """SIGKILL, as a crashed machine: no goodbye to the peers."""
        process = self.procs.pop(port)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.procs.values():
            if process.poll() is None:
                process.terminate()
        for process in self.procs.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.procs.clear()


_AUTH = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]


@dataclass
class ClusterGroup:
    """3 primaries + 3 replicas; `url` is the bff store URL (password included)."""

    servers: _Servers
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


def _start_cluster(servers: _Servers) -> ClusterGroup:
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
    subprocess.run(  # noqa: S603
        [  # noqa: S607
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

    servers: _Servers
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


def _start_sentinel(servers: _Servers) -> SentinelGroup:
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
def _running(start: Callable[[_Servers], object]) -> Iterator[object]:
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        raise RuntimeError("redis-server and redis-cli are needed (Debian: redis-server)")
    with tempfile.TemporaryDirectory(prefix="bff-redis-ha-") as tmp:
        for attempt in range(3):  # a free port can be taken between probe and bind
            servers = _Servers(Path(tmp) / str(attempt))
            servers.dir.mkdir()
            try:
                group = start(servers)
                break
            except (RuntimeError, subprocess.SubprocessError) as exc:
                logs = "\n".join(servers.log(port) for port in servers.started)
                servers.stop_all()
                if attempt == 2:
                    raise RuntimeError(f"{exc}; server logs:\n{logs[-4000:]}") from exc
        try:
            yield group
        finally:
            servers.stop_all()


@contextlib.contextmanager
def running_cluster() -> Iterator[ClusterGroup]:
    with _running(_start_cluster) as group:
        assert isinstance(group, ClusterGroup)
        yield group


@contextlib.contextmanager
def running_sentinel() -> Iterator[SentinelGroup]:
    with _running(_start_sentinel) as group:
        assert isinstance(group, SentinelGroup)
        yield group
