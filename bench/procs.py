"""What only a benchmark run starts on top of the tests' `Stack`: nginx (the direct upstream
and the nginx-proxy target) and the ceiling app; the tools it needs, and a process's RSS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.procs import free_port, wait_listening
from tests.support.stack import BIN, ROOT, Stack

__all__ = ["BenchStack", "ensure_tools", "rss_kib"]

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


class BenchStack(Stack):
    """A `Stack` that can also start nginx and the ceiling app."""

    def nginx(self) -> tuple[int, int]:
        """(direct port, nginx-proxy port)."""
        direct, proxy = free_port(), free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(dir=self.dir, direct=direct, proxy=proxy))
        nginx = _which("nginx") or "nginx"
        process = self.start("nginx", [nginx, "-p", str(self.dir), "-c", str(conf)])
        wait_listening(direct, process, "nginx", 10)
        wait_listening(proxy, process, "nginx", 10)
        return direct, proxy

    def ceiling(self, *, upstream: str, redis_url: str) -> int:
        """bench/ceiling.py: uvicorn + one GETEX + one aiohttp hop, nothing else."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(BENCH_UPSTREAM=upstream, BENCH_REDIS=redis_url)
        argv = [str(BIN / "python"), str(ROOT / "bench" / "ceiling.py"), str(port)]
        process = self.start("ceiling", argv, env=env)
        wait_listening(port, process, "ceiling", 20)
        return port
