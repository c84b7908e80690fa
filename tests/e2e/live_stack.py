"""The services of the live-connections and token-policy browser tests
(test_live_and_tokens.py), built from harness.py's parts: panva's oidc-provider with five
resource servers, client credentials and token exchange (provider.mjs's opt-in flags); one
JWT-verifying API per route audience (api_server.py); a WebSocket echo upstream that
verifies the bearer (ws_upstream.py); two `bff serve` instances on the shared test Redis
(localhost:A and localhost:B, one cookie jar) with a TOML route table; the other-origin page
server (127.0.0.1:P is another site, localhost:P the same site on another origin).

Access tokens live 60 s here: no refresh of the session's own token happens during a test,
so every grant the provider counts is one a route asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    E2E_DIR,
    INSTALL_HINT,
    RESOURCE,
    ROOT,
    SECRET_KEY,
    STATIC_DIR,
    Api,
    Attacker,
    Bff,
    Provider,
    Service,
    _attacker_server,
    _drop_store_keys,
    _read_port_file,
    _spawn,
    _start_bff,
    _wait_for,
)
from tests.support.procs import free_port

TOKEN_TTL = 60
ORDERS = "https://orders.e2e.bff.test"  # token = "user", resource: a refresh narrows it
INVENTORY = "urn:e2e:inventory"  # token = "user", resource and scopes
REPORTS = "urn:e2e:reports"  # token = "client"
PARTNER = "https://partner.e2e.bff.test"  # token = "exchange"
SCOPES = {
    ORDERS: "orders:read",
    INVENTORY: "inventory:read",
    REPORTS: "reports:read",
    PARTNER: "partner:read",
}
LOGIN_SCOPES = "openid profile email offline_access api:read orders:read inventory:read"


@dataclass
class WsApi:
    service: Service
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connections(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/_test/connections", timeout=5)
        r.raise_for_status()
        return list(r.json()["connections"])


@dataclass
class LiveStack:
    provider: Provider
    api: Api  # the session's own audience (RESOURCE): route /api
    apis: dict[str, Api]  # per route audience: ORDERS, INVENTORY, REPORTS, PARTNER
    ws: WsApi
    bff_a: Bff
    bff_b: Bff
    attacker: Attacker
    redis_url: str
    store_prefix: str

    @property
    def services(self) -> list[Service]:
        apis = [a.service for a in self.apis.values()]
        bffs = [self.bff_a.service, self.bff_b.service]
        return [self.provider.service, self.api.service, *apis, self.ws.service, *bffs]

    def grants(self, sub: str) -> list[dict[str, Any]]:
        """What provider.mjs recorded for `sub` (a user, or the client for its own grants)."""
        r = httpx.get(f"{self.provider.issuer}/_test/grants", params={"sub": sub}, timeout=5)
        r.raise_for_status()
        return list(r.json()["grants"])


def _provider(log_dir: Path, bff_ports: list[int]) -> Provider:
    node = shutil.which("node")
    if node is None or not (E2E_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"node or tests/e2e/node_modules is missing: {INSTALL_HINT}")
    port_file = log_dir / "provider.port"
    cmd = [node, str(E2E_DIR / "provider.mjs"), "--port-file", str(port_file)]
    cmd += ["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--resource", RESOURCE]
    cmd += ["--access-token-ttl", str(TOKEN_TTL), "--client-credentials", "--token-exchange"]
    for uri, scope in SCOPES.items():
        cmd += ["--resource-server", f"{uri}={scope}"]
    for port in bff_ports:
        cmd += ["--redirect-uri", f"http://localhost:{port}/bff/callback"]
        cmd += ["--post-logout-redirect-uri", f"http://localhost:{port}/"]
    service = _spawn("provider", cmd, log_dir, cwd=E2E_DIR)
    provider = Provider(service, f"http://127.0.0.1:{_read_port_file(port_file, service)}")
    _wait_for(
        service,
        lambda: httpx.get(f"{provider.issuer}/.well-known/openid-configuration").is_success,
        "discovery",
    )
    return provider


def _python_service(
    name: str, module: str, log_dir: Path, issuer: str, audience: str
) -> tuple[Service, int]:
    port_file = log_dir / f"{name}.port"
    cmd = [sys.executable, "-m", module, "--issuer", issuer, "--audience", audience]
    cmd += ["--port-file", str(port_file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    service = _spawn(name, cmd, log_dir, env=env, cwd=ROOT)
    return service, _read_port_file(port_file, service)


def _api(name: str, log_dir: Path, issuer: str, audience: str) -> Api:
    service, port = _python_service(name, "tests.e2e.api_server", log_dir, issuer, audience)
    api = Api(service, f"http://127.0.0.1:{port}")
    _wait_for(service, lambda: httpx.get(f"{api.url}/_test/calls").is_success, "calls")
    return api


def _ws(log_dir: Path, issuer: str) -> WsApi:
    service, port = _python_service(
        "ws-upstream", "tests.e2e.ws_upstream", log_dir, issuer, RESOURCE
    )
    ws = WsApi(service, port)
    _wait_for(service, lambda: isinstance(ws.connections(), list), "connections")
    return ws


def _routes_toml(api: Api, apis: dict[str, Api], ws: WsApi) -> str:
    def route(prefix: str, upstream: str, **extra: Any) -> str:
        lines = [
            "[[routes]]",
            f"prefix = {json.dumps(prefix)}",
            f"upstream = {json.dumps(upstream)}",
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    return "\n".join(
        [
            route("/api", api.url + "/api"),
            route("/live", ws.url, websocket=True),
            route("/orders", apis[ORDERS].url + "/api", resource=ORDERS),
            route(
                "/inventory",
                apis[INVENTORY].url + "/api",
                resource=INVENTORY,
                scopes=[SCOPES[INVENTORY]],
            ),
            route(
                "/reports",
                apis[REPORTS].url + "/api",
                token="client",
                resource=REPORTS,
                scopes=[SCOPES[REPORTS]],
            ),
            route("/partner", apis[PARTNER].url + "/api", token="exchange", resource=PARTNER),
        ]
    )


@contextlib.contextmanager
def start_live_stack(log_dir: Path, redis_url: str) -> Iterator[LiveStack]:
    ports = [free_port() for _ in range(2)]
    store_prefix = f"bffe2elive-{uuid.uuid4().hex[:10]}"
    started: list[Service] = []
    try:
        with _attacker_server() as attacker:
            provider = _provider(log_dir, ports)
            started.append(provider.service)
            api = _api("api", log_dir, provider.issuer, RESOURCE)
            started.append(api.service)
            apis: dict[str, Api] = {}
            for name, audience in zip(
                ("orders", "inventory", "reports", "partner"), SCOPES, strict=True
            ):
                apis[audience] = _api(f"api-{name}", log_dir, provider.issuer, audience)
                started.append(apis[audience].service)
            ws = _ws(log_dir, provider.issuer)
            started.append(ws.service)
            config = log_dir / "bff.toml"
            config.write_text(_routes_toml(api, apis, ws))
            base_env = {
                "BFF_CONFIG": str(config),
                "BFF_ISSUER": provider.issuer,
                "BFF_CLIENT_ID": CLIENT_ID,
                "BFF_CLIENT_SECRET": CLIENT_SECRET,
                "BFF_SECRET_KEY": SECRET_KEY,
                "BFF_SESSION_STORE": redis_url,
                "BFF_STORE_PREFIX": store_prefix,
                "BFF_STATIC_DIR": str(STATIC_DIR),
                "BFF_RESOURCE": RESOURCE,
                "BFF_SCOPES": LOGIN_SCOPES,
                "BFF_REFRESH_SKEW": "5",
                "BFF_SESSION_IDLE_TIMEOUT": "600",  # leftovers in the shared Redis expire
                "BFF_UPSTREAM_TIMEOUT": "10",
            }
            bffs = []
            for name, port in zip(("bff-a", "bff-b"), ports, strict=True):
                env = {**base_env, "BFF_PUBLIC_URL": f"http://localhost:{port}"}
                bff = _start_bff(name, port, log_dir, env, "bff-session")
                started.append(bff.service)
                bffs.append(bff)
            yield LiveStack(provider, api, apis, ws, *bffs, attacker, redis_url, store_prefix)
    finally:
        for service in reversed(started):
            service.stop()
        _drop_store_keys(redis_url, store_prefix)
