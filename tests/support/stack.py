"""The processes a test or a benchmark run starts (and only those are stopped): private
redis-servers, the development provider and `bff serve` instances, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.procs import free_port, redis_server_argv, wait_listening

__all__ = ["BIN", "ROOT", "Stack"]

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
_MAIN = "from bff.cli.main import main; raise SystemExit(main())"


class Stack:
    """Everything started by one run; `stop()` ends exactly these processes."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> subprocess.Popen[bytes]:
        """`argv` in its own session, its output in `<dir>/<name>.log`."""
        log = (self.dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        log.close()
        self._procs.append((name, process))
        return process

    def log_tail(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def redis(self, name: str = "redis", extra: list[str] | None = None) -> int:
        port = free_port()
        workdir = self.dir / name
        workdir.mkdir(exist_ok=True)
        process = self.start(name, [*redis_server_argv(port, str(workdir)), *(extra or [])])
        wait_listening(port, process, "redis-server", 10)
        return port

    def provider(self, *, redirect_uris: list[str], token_latency_ms: int) -> str:
        port = free_port()
        argv = [
            str(BIN / "python"),
            str(ROOT / "deploy" / "demo" / "provider.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--access-token-ttl",
            "86400",
            "--refresh-token-ttl",
            "86400",
            "--token-latency-ms",
            str(token_latency_ms),
        ]
        for uri in redirect_uris:
            argv += ["--redirect-uri", uri]
        process = self.start("provider", argv)
        wait_listening(port, process, "provider", 20)
        return f"http://127.0.0.1:{port}"

    def bff(
        self,
        name: str,
        *,
        port: int,
        workers: int,
        env: dict[str, str],
        source: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """`bff serve`; with `source`, the bff of that source tree (another version, e.g.
        the benchmark's baseline) run from it with this venv's Python and libraries."""
        full = {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "PROMETHEUS"))}
        full.update(env)
        command = [str(BIN / "bff")]
        if source is not None:
            full["PYTHONPATH"] = str(source)
            command = [str(BIN / "python"), "-c", _MAIN]
        argv = [
            *command,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        process = self.start(name, argv, env=full, cwd=source or ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log_tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if ready.status_code == 200:
                    return process
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready: {self.log_tail(name)}")

    def stop(self) -> None:
        for name, process in reversed(self._procs):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    print(f"stack: {name} did not stop, killing it", file=sys.stderr)
                    process.kill()
                    process.wait(5)
        self._procs.clear()
