"""Run the development OpenID provider (`deploy/demo/provider.py`) as a subprocess.

    with start_dev_provider(access_token_ttl=5, backchannel_logout_uri=URL) as op:
        op.issuer, op.port, op.stats(), op.fail("token_500"), op.stop(), ...

Options become CLI flags (`access_token_ttl=5` -> `--access-token-ttl 5`); list options
(`redirect_uris`, `post_logout_redirect_uris`) repeat their flag. The provider listens on
a free loopback port; teardown stops only the process this function started.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["PROVIDER_SCRIPT", "RunningProvider", "start_dev_provider"]

PROVIDER_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "provider.py"
DEFAULTS: dict[str, Any] = {
    "client_id": "test-client",
    "client_secret": "test-secret-0123456789",
    "redirect_uris": ["http://localhost:8000/bff/callback"],
    "post_logout_redirect_uris": ["http://localhost:8000/"],
}
_LIST_FLAGS = {
    "redirect_uris": "--redirect-uri",
    "post_logout_redirect_uris": "--post-logout-redirect-uri",
}


@dataclass
class RunningProvider:
    """A running provider: its address, the registered client, and the `/_dev/` helpers."""

    issuer: str
    port: int
    options: dict[str, Any]
    process: subprocess.Popen[bytes] = field(repr=False)
    log: IO[bytes] = field(repr=False)

    @property
    def client_id(self) -> str:
        return str(self.options["client_id"])

    @property
    def client_secret(self) -> str:
        return str(self.options["client_secret"])

    @property
    def redirect_uri(self) -> str:
        return str(self.options["redirect_uris"][0])

    @property
    def post_logout_redirect_uri(self) -> str:
        return str(self.options["post_logout_redirect_uris"][0])

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def _dev(self, method: str, path: str, **params: str) -> Any:
        response = httpx.request(method, self.url(path), params=params, timeout=5)
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._dev("GET", "/_dev/stats")  # type: ignore[no-any-return]

    def reset_stats(self) -> None:
        self._dev("POST", "/_dev/reset-stats")

    def fail(self, mode: str) -> None:
        """`token_500`, `token_down` (connection dropped) or `none`."""
        self._dev("POST", "/_dev/fail", mode=mode)

    def backchannel_logout(self, **who: str) -> Any:
        """End provider sessions by `sub=` or `sid=` and send back-channel logout tokens."""
        return self._dev("POST", "/_dev/backchannel-logout", **who)

    def refresh_token_active(self, token: str) -> bool:
        return bool(self._dev("GET", "/_dev/refresh-token-status", token=token)["active"])

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # only our own child, by its PID
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int, options: dict[str, Any]) -> list[str]:
    cmd = [sys.executable, str(PROVIDER_SCRIPT), "--host", "127.0.0.1", "--port", str(port)]
    for key, value in options.items():
        if value is None:
            continue
        if key in _LIST_FLAGS:
            for item in value:
                cmd += [_LIST_FLAGS[key], str(item)]
        else:
            cmd += ["--" + key.replace("_", "-"), str(value)]
    return cmd


def _launch(options: dict[str, Any], log: IO[bytes], timeout: float) -> RunningProvider:
    port = _free_port()
    issuer = options.get("issuer") or f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        _command(port, options), stdout=log, stderr=subprocess.STDOUT, env=env
    )
    provider = RunningProvider(issuer, port, options, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
            if httpx.get(url, timeout=1).status_code == 200:
                return provider
        except httpx.TransportError:
            time.sleep(0.05)
    provider.stop()
    raise RuntimeError(f"dev provider did not start on port {port}:\n{provider.output()}")


@contextlib.contextmanager
def start_dev_provider(*, timeout: float = 15.0, **options: Any) -> Iterator[RunningProvider]:
    """Start the provider, wait until discovery answers, and stop it afterwards."""
    merged = {**DEFAULTS, **options}
    with tempfile.TemporaryFile() as log:
        for attempt in range(3):  # the free port can be taken between probe and bind
            try:
                provider = _launch(merged, log, timeout)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        try:
            yield provider
        finally:
            provider.stop()
