"""What only a benchmark run starts on top of the tests' `Stack`: nginx (the direct upstream
and the nginx-proxy target), the ceiling app and Apache (the mod_auth_openidc peer); the
tools they need, and a process's RSS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import apache
from bench.cpu import descendants, kill_leftovers
from tests.support.procs import free_port, wait_listening
from tests.support.stack import BIN, ROOT, Stack

__all__ = ["PEER_PACKAGES", "BenchStack", "ensure_tools", "rss_kib"]

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
        # which Authorization header a proxy passed (bench/targets.py checks each target)
        location ~ /_bench_auth$ {{
            default_type text/plain;
            return 200 "$http_authorization";
        }}
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


REQUIRED = ("nginx", "wrk")
# Debian packages of the peers: installed when missing; a failure skips that peer.
PEER_PACKAGES = ("apache2", "libapache2-mod-auth-openidc")


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(  # noqa: S603
        ["apt-get", *args],  # noqa: S607
        env=env,
        check=False,
        timeout=600,
        capture_output=True,
        text=True,
    )


def ensure_tools() -> dict[str, str]:
    """nginx and wrk (required) and the peers' packages are Debian packages: install
    what is missing (needs root; `apt-get update` first). Returns why a peer cannot run
    ({"mod_auth_openidc": reason}) when its packages could not be installed."""
    missing = [tool for tool in REQUIRED if not _which(tool)]
    if apache.missing() is not None:
        missing += PEER_PACKAGES
    skipped: dict[str, str] = {}
    if not missing:
        return skipped
    print(f"bench: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    updated = _apt(["update", "-qq"])
    required = [t for t in missing if t in REQUIRED]
    if required:
        done = _apt(["install", "-y", "-qq", *required])
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(required)}: {_last(done, updated)}")
    peers = [t for t in missing if t in PEER_PACKAGES]
    if peers:
        done = _apt(["install", "-y", "-qq", *peers])
        why = apache.missing()
        if why is not None:
            skipped["mod_auth_openidc"] = (
                f"apt-get install {' '.join(peers)} failed ({_last(done, updated)}); {why}"
            )
    return skipped


def _last(done: subprocess.CompletedProcess[str], updated: subprocess.CompletedProcess[str]) -> str:
    """The last line apt-get printed on error (the update's when the install says nothing)."""
    for text in (done.stderr, done.stdout, updated.stderr):
        lines = [line for line in text.strip().splitlines() if line.strip()]
        if lines:
            return lines[-1][-300:]
    return f"exit {done.returncode}"


def _which(tool: str) -> str | None:
    return shutil.which(tool) or next(
        (str(p) for p in (Path("/usr/sbin") / tool, Path("/sbin") / tool) if p.exists()), None
    )


class BenchStack(Stack):
    """A `Stack` that can also start nginx, the ceiling app and Apache; `stop()` also
    ends any child its processes left behind (an Apache or nginx worker, a uvicorn
    worker), by pid."""

    def stop(self) -> None:
        leftovers = [child for _, process in self._procs for child in descendants(process.pid)]
        super().stop()
        time.sleep(0.2)
        killed = kill_leftovers(leftovers)
        if killed:
            print(f"bench: killed leftover children {killed}", file=sys.stderr)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The process started as `name` (the last one of that name)."""
        for started, process in reversed(self._procs):
            if started == name:
                return process
        raise KeyError(name)

    def apache(self, site: apache.ApacheSite) -> subprocess.Popen[bytes]:
        """Apache in the foreground (`-DFOREGROUND`: the parent stays, its children are
        the workers) from the site's own config; stopped by the parent's pid."""
        site.dir.mkdir(parents=True, exist_ok=True)
        conf = apache.write_conf(site)
        argv = [apache.apache_binary() or "apache2", "-d", str(site.dir), "-f", str(conf)]
        process = self.start("apache", [*argv, "-DFOREGROUND"])
        try:
            wait_listening(site.port, process, "apache2", 15)
        except RuntimeError as exc:
            error_log = site.dir / "apache-error.log"
            tail = error_log.read_text(errors="replace")[-1500:] if error_log.exists() else ""
            raise RuntimeError(f"{exc}: {self.log_tail('apache')}{tail}") from exc
        return process

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
