"""`make run`: the development provider, the demo API and the BFF in front of the demo
SPA, on loopback ports; Ctrl-C stops all three, with one line each.

The three run in sessions of their own, so a terminal's Ctrl-C reaches this script only;
it sends each one SIGTERM, once (a second signal makes uvicorn abort with a traceback),
and relays their output, prefixed with their name, without uvicorn's start-up and
shutdown chatter.

NOT FOR PRODUCTION: the provider logs in any user name without a password.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BFF_PORT = int(os.environ.get("DEMO_BFF_PORT", "8000"))
PROVIDER_PORT = int(os.environ.get("DEMO_PROVIDER_PORT", "9000"))
API_PORT = int(os.environ.get("DEMO_API_PORT", "9100"))
# Seconds an access token lives: short, so that refreshes happen while you click.
ACCESS_TOKEN_TTL = int(os.environ.get("DEMO_ACCESS_TOKEN_TTL", "60"))
_CHATTER = re.compile(
    r"Started server process|Waiting for application (startup|shutdown)|Application "
    r"(startup|shutdown) complete|Shutting down|Finished server process|Uvicorn running on"
    r"|Waiting for connections to close|Waiting for background tasks"
)


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


def _relay(name: str, stream: IO[bytes]) -> None:
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            if line and not _CHATTER.search(line):
                print(f"{name:>8} | {line}", file=sys.stderr, flush=True)


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a terminal's Ctrl-C reaches run.py only
    )
    assert proc.stdout is not None
    threading.Thread(target=_relay, args=(name, proc.stdout), daemon=True).start()
    return proc


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a supervisor, `timeout`) stops the demo like Ctrl-C


def _stop(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, p in reversed(procs):  # only what this script started, by PID, once each
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for name, p in reversed(procs):
        try:
            code = p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            code = p.wait()
        status = "" if code in (0, -signal.SIGTERM) else f" (exit status {code})"
        print(f"demo: {name} stopped{status}", file=sys.stderr, flush=True)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_term)
    # Ctrl-C, even where a parent started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
    provider_argv = [
        str(BIN / "python"),
        str(HERE / "provider.py"),
        *("--host", "127.0.0.1", "--port", str(PROVIDER_PORT), "--issuer", issuer),
        *("--client-id", "bff-demo", f"--client-secret={client_secret}"),  # may start with "-"
        *("--redirect-uri", f"{public}/bff/callback"),
        *("--post-logout-redirect-uri", f"{public}/"),
        *("--backchannel-logout-uri", f"http://127.0.0.1:{BFF_PORT}/bff/backchannel-logout"),
        *("--access-token-ttl", str(ACCESS_TOKEN_TTL)),
    ]
    api_argv = [
        str(BIN / "python"),
        str(HERE / "api.py"),
        *("--port", str(API_PORT), "--issuer", issuer, "--audience", api_audience),
    ]
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
        "BFF_REFRESH_SKEW": str(min(10, max(1, ACCESS_TOKEN_TTL // 3))),
    }
    bff_argv = [str(BIN / "bff"), "serve", "--host", "127.0.0.1", "--port", str(BFF_PORT)]
    try:
        for name, argv, port, extra in (
            ("provider", provider_argv, PROVIDER_PORT, None),
            ("api", api_argv, API_PORT, None),
            ("bff", bff_argv, BFF_PORT, env),
        ):
            procs.append((name, start(name, argv, extra)))
            wait_for(port, procs[-1][1], name)
        print(
            f"\n  bff demo ready: open {public}  (any user name logs in; Ctrl-C stops)\n",
            flush=True,
        )
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        return 1  # one of them died: _stop says which, with its status
    except KeyboardInterrupt:
        print(file=sys.stderr)  # after the terminal's ^C
        return 0
    finally:
        _stop(procs)


if __name__ == "__main__":
    raise SystemExit(main())
