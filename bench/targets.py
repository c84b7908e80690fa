"""The side-by-side targets of one `make bench` run: started, logged into (each bff, each
baseline bff and each peer through the provider's real form, for itself), checked (a 200
and the Authorization header the upstream receives), and described for the results.

Every other section of bench/run.py reads a target's url, cookie, pid, Redis and secret
key from here, so it can run against the baseline (or a peer) as well as against bff."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import apache, baseline
from bench.peers import (
    MOD_AUTH_OPENIDC,
    OAUTH2_PROXY,
    oauth2_proxy_skip_reason,
    start_mod_auth_openidc,
)
from bench.procs import BenchStack
from tests.support.procs import free_port
from tests.support.sessions import login

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ORDER",
    "Started",
    "Target",
    "bff_env",
    "start_targets",
    "upstream_bearer",
]

CLIENT_ID = "bff-demo"  # the development provider's default client
CLIENT_SECRET = "bff-demo-secret-not-for-production"
# The order of every round and of the table: references, peers, bff, the baseline.
ORDER = (
    "direct",
    "nginx-proxy",
    "stack-ceiling",
    MOD_AUTH_OPENIDC,
    OAUTH2_PROXY,
    "bff-1w",
    "bff-2w",
    "base-1w",
    "base-2w",
)
_JWT = re.compile(r"Bearer [\w-]+\.[\w-]+\.[\w-]+")


@dataclass
class Target:
    name: str
    kind: str  # "reference", "peer", "bff" or "baseline"
    port: int
    pid: int  # the process whose tree serves it (CPU per request is read from it)
    cookie: str | None = None  # `name=value`; never written to the results
    redis_url: str | None = None  # where its sessions live (store commands per request)
    secret_key: str | None = None  # bff and baseline: BFF_SECRET_KEY (to rewrite sessions)
    workers: int | None = None
    bearer: str = "unchecked"  # what the upstream received: jwt, static, none, other

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What wrk requests (bench.lua: GET /api/bench, the cookie, X-CSRF: 1)."""
        return f"{self.base_url}/api/bench"

    def describe(self) -> dict[str, Any]:
        """For the results: no cookie value, no secret."""
        return {
            "kind": self.kind,
            "port": self.port,
            "pid": self.pid,
            "workers": self.workers,
            "redis": self.redis_url,
            # references get bff-1w's cookie: the same request bytes, no session
            "cookie": None
            if self.cookie is None
            else ("sent" if self.kind == "reference" else "own login"),
            "bearer_upstream": self.bearer,
        }


@dataclass
class Started:
    provider: str
    direct_port: int
    targets: dict[str, Target] = field(default_factory=dict)  # in ORDER
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, str] | None = None  # ref, commit, tree, imports


def bff_env(
    *, provider: str, secret_key: str, redis_url: str, port: int, upstream: str
) -> dict[str, str]:
    """A bff with its defaults (the access log on: to its log file in the temp folder)."""
    return {
        "BFF_ISSUER": provider,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": secret_key,
        "BFF_SESSION_STORE": redis_url,
        "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BFF_ROUTES": f"/api={upstream}",
    }


def upstream_bearer(target: Target) -> str:
    """Which Authorization header reached the upstream through `target` (nginx's
    /_bench_auth location echoes it): "jwt", "static", "none" or "other"."""
    headers = {"x-csrf": "1", **({"cookie": target.cookie} if target.cookie else {})}
    answer = httpx.get(f"{target.base_url}/api/_bench_auth", headers=headers, timeout=5)
    if answer.status_code != 200:
        raise RuntimeError(f"{target.name}: /api/_bench_auth answered {answer.status_code}")
    text = answer.text.strip()
    if _JWT.fullmatch(text):
        return "jwt"
    if text == "Bearer static-benchmark-token":
        return "static"
    return "none" if not text else "other"


def _check(target: Target) -> None:
    headers = {"x-csrf": "1", **({"cookie": target.cookie} if target.cookie else {})}
    answer = httpx.get(target.url, headers=headers, timeout=5)
    if answer.status_code != 200:
        raise RuntimeError(f"{target.name} answered {answer.status_code}: {answer.text[:200]}")
    target.bearer = upstream_bearer(target)
    if target.kind in ("bff", "baseline", "peer") and target.bearer != "jwt":
        raise RuntimeError(f"{target.name}: the upstream got no access token ({target.bearer})")


def start_targets(
    stack: BenchStack,
    *,
    token_latency_ms: int,
    baseline_ref: str | None,
    skipped: Mapping[str, str],
    log: Callable[[str], None],
) -> Started:
    """Start every target (skipping those in `skipped`: name -> reason), log in, check."""
    direct_port, proxy_port = stack.nginx()
    nginx_pid = stack.process("nginx").pid
    redis_url = f"redis://127.0.0.1:{stack.redis()}/0"
    bffs = {"bff-1w": 1, "bff-2w": 2} | ({"base-1w": 1, "base-2w": 2} if baseline_ref else {})
    ports = {name: free_port() for name in bffs}
    want_apache = MOD_AUTH_OPENIDC not in skipped
    if want_apache:
        ports[MOD_AUTH_OPENIDC] = free_port()
    redirects = [f"http://127.0.0.1:{ports[name]}/bff/callback" for name in bffs]
    if want_apache:
        redirects.append(apache.callback_uri(ports[MOD_AUTH_OPENIDC]))
    provider = stack.provider(redirect_uris=redirects, token_latency_ms=token_latency_ms)
    upstream = f"http://127.0.0.1:{direct_port}"
    ceiling_port = stack.ceiling(upstream=upstream, redis_url=redis_url)
    run = Started(provider=provider, direct_port=direct_port, skipped=dict(skipped))
    found: dict[str, Target] = {
        "direct": Target("direct", "reference", direct_port, nginx_pid),
        "nginx-proxy": Target("nginx-proxy", "reference", proxy_port, nginx_pid),
        "stack-ceiling": Target(
            "stack-ceiling", "reference", ceiling_port, stack.process("ceiling").pid
        ),
    }
    if want_apache:
        apache_redis = stack.redis("redis-apache")
        try:
            site, process = start_mod_auth_openidc(
                stack,
                port=ports[MOD_AUTH_OPENIDC],
                upstream_port=direct_port,
                provider=provider,
                redis_port=apache_redis,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
            )
        except RuntimeError as exc:  # reported as skipped, with the reason
            run.skipped[MOD_AUTH_OPENIDC] = f"Apache did not start: {str(exc)[-300:]}"
        else:
            run.procs[MOD_AUTH_OPENIDC] = process
            found[MOD_AUTH_OPENIDC] = Target(
                MOD_AUTH_OPENIDC,
                "peer",
                site.port,
                process.pid,
                redis_url=f"redis://127.0.0.1:{apache_redis}/0",
                workers=site.processes,
            )
    run.skipped.setdefault(OAUTH2_PROXY, oauth2_proxy_skip_reason())
    # (version, Redis, secret key): the baseline never shares bff's Redis or sessions
    ours = (None, redis_url, secrets.token_urlsafe(32))
    theirs = ours
    if baseline_ref:
        tree = stack.dir / "baseline"
        commit = baseline.extract(baseline_ref, tree)
        imports = baseline.imported_from(tree)
        run.baseline = {
            "ref": baseline_ref,
            "commit": commit,
            "imports": imports,
            "tree": str(tree),
        }
        base_redis = f"redis://127.0.0.1:{stack.redis('redis-base')}/0"
        theirs = (tree, base_redis, secrets.token_urlsafe(32))
    for name, workers in bffs.items():
        is_base = name.startswith("base-")
        source, store, key = theirs if is_base else ours
        env = bff_env(
            provider=provider, secret_key=key, redis_url=store, port=ports[name], upstream=upstream
        )
        process = stack.bff(
            name,
            port=ports[name],
            workers=workers,
            env=env,
            source=source,
        )
        run.procs[name] = process
        kind = "baseline" if is_base else "bff"
        found[name] = Target(name, kind, ports[name], process.pid, None, store, key, workers)
    log("everything started; logging in through the provider")
    for target in found.values():
        if target.kind in ("bff", "baseline"):
            target.cookie = login(target.base_url, f"bench-user-{target.name}")
        elif target.kind == "peer":
            target.cookie = apache.login(target.base_url, f"bench-user-{target.name}")
        _check(target)
    for target in found.values():  # the same request bytes as bff's (bench.lua)
        if target.kind == "reference":
            target.cookie = found["bff-1w"].cookie
    run.targets = {name: found[name] for name in ORDER if name in found}
    return run
