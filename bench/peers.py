"""The proxies a user would pick instead of bff, as benchmark targets: mod_auth_openidc
(bench/apache.py) and oauth2-proxy. A peer that cannot run here is reported as skipped
with the reason, never stood in for."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench import apache
from bench.procs import BenchStack

__all__ = ["MOD_AUTH_OPENIDC", "OAUTH2_PROXY", "oauth2_proxy_skip_reason", "start_mod_auth_openidc"]

MOD_AUTH_OPENIDC = "mod_auth_openidc"
OAUTH2_PROXY = "oauth2-proxy"
_GO_NEEDED = (1, 22)  # oauth2-proxy v7's go.mod


def _go_version(go: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(  # noqa: S603
            [go, "version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"go(\d+)\.(\d+)", done.stdout)
    return (int(found[1]), int(found[2])) if found else None


def oauth2_proxy_skip_reason(which: Callable[[str], str | None] = shutil.which) -> str:
    """Why oauth2-proxy is not among the targets (checked at run time: `which` finds a
    program on PATH)."""
    binary = which("oauth2-proxy")
    if binary:
        return f"an oauth2-proxy binary is on PATH ({binary}), but this harness does not drive it"
    go = which("go")
    if not go:
        return (
            "oauth2-proxy is not on PATH and cannot be built here: no Go toolchain "
            "(it needs Go >= 1.22 and its modules from the Go module proxy)"
        )
    version = _go_version(go)
    if version is None or version < _GO_NEEDED:
        shown = "an unknown version" if version is None else f"Go {version[0]}.{version[1]}"
        return (
            f"oauth2-proxy is not on PATH and cannot be built here: {shown}, "
            "it needs Go >= 1.22 (and its modules from the Go module proxy)"
        )
    return (
        f"oauth2-proxy is not on PATH (Go {version[0]}.{version[1]} is: build it with "
        "`go install github.com/oauth2-proxy/oauth2-proxy/v7@latest` where the Go module "
        "proxy is reachable); the harness does not drive it yet"
    )


def start_mod_auth_openidc(
    stack: BenchStack,
    *,
    port: int,
    upstream_port: int,
    provider: str,
    redis_port: int,
    client_id: str,
    client_secret: str,
) -> tuple[apache.ApacheSite, subprocess.Popen[bytes]]:
    """Apache + mod_auth_openidc on `port` (its redirect URI must be registered at the
    provider already: `apache.ApacheSite.redirect_uri`)."""
    site = apache.ApacheSite(
        dir=Path(stack.dir) / "apache",
        port=port,
        upstream_port=upstream_port,
        provider=provider,
        redis_port=redis_port,
        client_id=client_id,
        client_secret=client_secret,
        passphrase=secrets.token_urlsafe(32),
        user=apache.child_user(),
    )
    return site, stack.apache(site)
