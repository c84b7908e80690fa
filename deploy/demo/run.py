"""`make run`: the development provider, the demo API and the BFF in front of the demo
SPA, on loopback ports; Ctrl-C stops all three.

NOT FOR PRODUCTION: the provider logs in any user name without a password.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BFF_PORT = int(os.environ.get("DEMO_BFF_PORT", "8000"))
PROVIDER_PORT = int(os.environ.get("DEMO_PROVIDER_PORT", "9000"))
API_PORT = int(os.environ.get("DEMO_API_PORT", "9100"))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers do: a port held only by TIME_WAIT connections is free to use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {name} exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"demo: {name} did not start on port {port}")


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a supervisor, `timeout`) stops the demo like Ctrl-C


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_term)
    busy = [p for p in (BFF_PORT, PROVIDER_PORT, API_PORT) if not port_free(p)]
    if busy:
        print(
            f"demo: port(s) {busy} already in use; stop what uses them, or set "
            "DEMO_BFF_PORT / DEMO_PROVIDER_PORT / DEMO_API_PORT",
            file=sys.stderr,
        )
        return 1
    public = f"http://localhost:{BFF_PORT}"
    issuer = f"http://localhost:{PROVIDER_PORT}"
    api_audience = f"http://localhost:{API_PORT}"
    client_secret = secrets.token_urlsafe(24)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        provider = subprocess.Popen(
            [
                str(BIN / "python"),
                str(HERE / "provider.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(PROVIDER_PORT),
                "--issuer",
                issuer,
                "--client-id",
                "bff-demo",
                "--client-secret",
                client_secret,
                "--redirect-uri",
                f"{public}/bff/callback",
                "--post-logout-redirect-uri",
                f"{public}/",
                "--backchannel-logout-uri",
                f"http://127.0.0.1:{BFF_PORT}/bff/backchannel-logout",
                "--access-token-ttl",
                "60",
            ]
        )
        procs.append(("provider", provider))
        wait_for(PROVIDER_PORT, provider, "provider")
        api = subprocess.Popen(
            [
                str(BIN / "python"),
                str(HERE / "api.py"),
                "--port",
                str(API_PORT),
                "--issuer",
                issuer,
                "--audience",
                api_audience,
            ]
        )
        procs.append(("demo API", api))
        wait_for(API_PORT, api, "demo API")
        env = {
            **os.environ,
            "BFF_ISSUER": issuer,
            "BFF_CLIENT_ID": "bff-demo",
            "BFF_CLIENT_SECRET": client_secret,
            # A fresh key per run: sessions do not survive a restart of the demo.
            "BFF_SECRET_KEY": secrets.token_urlsafe(32),
            "BFF_PUBLIC_URL": public,
            "BFF_SESSION_STORE": "memory://",
            "BFF_STATIC_DIR": str(HERE / "static"),
            "BFF_ROUTES": f"/api=http://127.0.0.1:{API_PORT}",
            "BFF_RESOURCE": api_audience,
            "BFF_REFRESH_SKEW": "10",
        }
        bff = subprocess.Popen(
            [
                str(BIN / "bff"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(BFF_PORT),
                "--workers",
                "1",
            ],
            env=env,
        )
        procs.append(("bff", bff))
        wait_for(BFF_PORT, bff, "bff")
        print(
            f"\n  bff demo ready: open {public}  (any user name logs in; Ctrl-C stops)\n",
            flush=True,
        )
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        for name, p in procs:
            if p.poll() is not None:
                print(f"demo: {name} exited with status {p.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping", file=sys.stderr)
        return 0
    finally:
        for _, p in reversed(procs):  # only what this script started, by PID
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for _, p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    raise SystemExit(main())
