"""Free loopback ports, a private redis-server's command line, and waiting for a process
started here to listen."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time

__all__ = ["free_port", "redis_server_argv", "wait_listening"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_argv(port: int, directory: str) -> list[str]:
    """A private redis-server on loopback that keeps nothing on disk (the benchmark's and
    the tests' own, never the shared one)."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        directory,
    ]


def wait_listening(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 10
) -> None:
    """Until `process` accepts connections on loopback `port` (a Redis server, nginx, a
    provider); RuntimeError when it exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")
