"""Private redis-servers started and stopped by PID (never the shared server on 6379):
the processes under a Sentinel or Cluster group (`tests.support.redis_ha`)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.support.procs import redis_server_argv, wait_listening

__all__ = ["Servers", "running_servers"]

_G = TypeVar("_G")


@dataclass
class Servers:
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
        process = subprocess.Popen(
            [*argv, *extra], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs[port] = process
        wait_listening(port, process, f"redis-server on {port}", 10)

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


@contextlib.contextmanager
def running_servers(start: Callable[[Servers], _G]) -> Iterator[_G]:
    """`start` on fresh servers in a temp folder (3 tries: a free port can be taken
    between probe and bind); every server stopped afterwards."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        raise RuntimeError("redis-server and redis-cli are needed (Debian: redis-server)")
    with tempfile.TemporaryDirectory(prefix="bff-redis-ha-") as tmp:
        for attempt in range(3):
            servers = Servers(Path(tmp) / str(attempt))
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
