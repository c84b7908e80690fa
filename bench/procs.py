"""The processes a benchmark run starts (and only those are stopped): nginx, a private
redis-server, the development provider and `bff serve` instances, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["Stack", "ensure_tools", "free_port", "rss_kib"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

_NGINX_CONF = """
worker_processes 2;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    upstream bench_upstream {{
        server 127.0.0.1:{direct};
        keepalive 128;
    }}
    # direct: the trivial upstream every target ends at
    server {{
        listen 127.0.0.1:{direct} backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{{"ok":true,"items":[1,2,3],"service":"bench-upstream"}}';
        }}
    }}
    # nginx-proxy: one proxy hop with keep-alive and a static Authorization header
    server {{
        listen 127.0.0.1:{proxy} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer static-benchmark-token";
        }}
    }}
}}
"""


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


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("VmRSS")


def ensure_tools() -> None:
    """nginx and wrk are Debian packages: install them when missing (needs root)."""
    missing = [tool for tool in ("nginx", "wrk") if not _which(tool)]
    if not missing:
        return
    print(f"bench: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=300)  # noqa: S607
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx", "wrk"],  # noqa: S607
        env=env,
        check=True,
        timeout=300,
    )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or next(
        (str(p) for p in (Path("/usr/sbin") / tool, Path("/sbin") / tool) if p.exists()), None
    )


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


class Stack:
    """Everything started by one run; `stop()` ends exactly these processes."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.dir / f"{name}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        log.close()
        self._procs.append((name, process))
        return process

    def log_tail(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def nginx(self) -> tuple[int, int]:
        """(direct port, nginx-proxy port)."""
        direct, proxy = free_port(), free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(dir=self.dir, direct=direct, proxy=proxy))
        nginx = _which("nginx") or "nginx"
        process = self._start("nginx", [nginx, "-p", str(self.dir), "-c", str(conf)])
        _wait_port(direct, process, "nginx", 10)
        _wait_port(proxy, process, "nginx", 10)
        return direct, proxy

    def redis(self, name: str = "redis", extra: list[str] | None = None) -> int:
        port = free_port()
        workdir = self.dir / name
        workdir.mkdir(exist_ok=True)
        process = self._start(name, [*redis_server_argv(port, str(workdir)), *(extra or [])])
        _wait_port(port, process, "redis-server", 10)
        return port

    def ceiling(self, *, upstream: str, redis_url: str) -> int:
        """bench/ceiling.py: uvicorn + one GETEX + one aiohttp hop, nothing else."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(BENCH_UPSTREAM=upstream, BENCH_REDIS=redis_url)
        argv = [str(BIN / "python"), str(ROOT / "bench" / "ceiling.py"), str(port)]
        process = self._start("ceiling", argv, env=env)
        _wait_port(port, process, "ceiling", 20)
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
        process = self._start("provider", argv)
        _wait_port(port, process, "provider", 20)
        return f"http://127.0.0.1:{port}"

    def bff(
        self, name: str, *, port: int, workers: int, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "PROMETHEUS"))}
        full.update(env)
        argv = [
            str(BIN / "bff"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        process = self._start(name, argv, env=full)
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
                    print(f"bench: {name} did not stop, killing it", file=sys.stderr)
                    process.kill()
                    process.wait(5)
        self._procs.clear()
