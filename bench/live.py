"""`make bench-live`: live connections on loopback, in one run (issue 16, "Done when").

Starts, on free loopback ports, and stops again only these: a private redis-server, the
development provider (deploy/demo/provider.py), a WebSocket echo upstream (this file with
`--echo-server PORT`, the `websockets` library) and two `bff serve` instances (A and B, one
worker each) sharing that Redis, with the route `/live` (`websocket = true`) to the echo
upstream. Then measures:

1. **Close on logout**: per trial a fresh login (the provider's form, tests/support/sessions.py),
   a WebSocket held through instance B, `POST /bff/logout` on instance A; the time from
   sending the logout to the socket's close frame (4401) on B: median and max over
   LIVE_TRIALS trials (every close code is checked).
2. **Echo throughput**: LIVE_MESSAGES messages of LIVE_SIZE bytes, pipelined, on one
   connection and spread over LIVE_CONNECTIONS connections; messages/s through bff and
   directly to the echo upstream, interleaved, LIVE_ROUNDS rounds (median).
3. **Added latency**: LIVE_ROUNDTRIPS sequential round trips of LIVE_SIZE bytes on one
   connection: p50/p99 through bff and directly, and the difference.

The load generator is this one Python process (uvloop when installed): it shares the
machine's two cores with bff and the echo server, so the figures compare within a run.
LIVE_QUICK=1 shortens everything (the smoke test). `--json PATH` also writes the figures
there; they always go to bench-results/live-<time>.json. The load itself: bench/ws_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/live.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import percentile
from bench.ws_load import close_on_logout, echo_server, opener, round_trips, throughput
from tests.support.procs import free_port, wait_listening
from tests.support.sessions import login
from tests.support.stack import BIN, ROOT, Stack

__all__ = ["Options", "main"]

CLIENT_ID, CLIENT_SECRET = "bff-demo", "bff-demo-secret-not-for-production"  # the dev provider's


@dataclass(frozen=True)
class Options:
    trials: int
    messages: int
    size: int
    connections: int
    roundtrips: int
    rounds: int

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Options:
        quick = env.get("LIVE_QUICK", "") not in ("", "0")

        def num(name: str, full: int, fast: int) -> int:
            return int(env.get(name, fast if quick else full))

        return cls(
            trials=num("LIVE_TRIALS", 60, 5),
            messages=num("LIVE_MESSAGES", 20_000, 800),
            size=num("LIVE_SIZE", 100, 100),
            connections=num("LIVE_CONNECTIONS", 16, 4),
            roundtrips=num("LIVE_ROUNDTRIPS", 2_000, 100),
            rounds=num("LIVE_ROUNDS", 3, 1),
        )


def log(message: str) -> None:
    print(f"bench-live: {message}", file=sys.stderr, flush=True)


async def measure(opts: Options, url_a: str, url_b: str, echo_url: str) -> dict[str, Any]:
    cookie = await asyncio.to_thread(login, url_a, "live-bench-load")
    via_bff = opener(
        "ws" + url_a.removeprefix("http") + "/live/echo", {"Cookie": cookie, "Origin": url_a}
    )
    direct = opener(echo_url + "/live/echo", {})
    targets = {"direct": direct, "bff": via_bff}
    results: dict[str, Any] = {}

    log(f"close on logout: {opts.trials} trials")
    results["close_on_logout"] = await close_on_logout(url_a, url_b, opts.trials)

    for conns in sorted({1, opts.connections}):
        rates: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(opts.rounds):
            for name, open_one in targets.items():
                log(f"throughput {name}, {conns} connection(s)")
                rates[name].append(await throughput(open_one, opts.messages, conns, opts.size))
        results[f"throughput_c{conns}"] = {
            name: round(statistics.median(values)) for name, values in rates.items()
        }
        row = results[f"throughput_c{conns}"]
        row["bff_vs_direct"] = round(row["bff"] / row["direct"], 3)

    latency: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(opts.rounds):
        for name, open_one in targets.items():
            log(f"round trips {name}")
            latency[name] += await round_trips(open_one, opts.roundtrips, opts.size)
    results["round_trip"] = {
        name: {
            "p50_ms": round(percentile(values, 50), 3),
            "p99_ms": round(percentile(values, 99), 3),
            "samples": len(values),
        }
        for name, values in latency.items()
    }
    trip = results["round_trip"]
    trip["added_p50_ms"] = round(trip["bff"]["p50_ms"] - trip["direct"]["p50_ms"], 3)
    trip["added_p99_ms"] = round(trip["bff"]["p99_ms"] - trip["direct"]["p99_ms"], 3)
    return results


# --- the run --------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    o, m = results["options"], results["close_on_logout"]
    lines = [
        f"close on logout (A -> 4401 on B), {m['trials']} trials: median {m['median_ms']} ms, "
        f"p90 {m['p90_ms']} ms, max {m['max_ms']} ms; close codes {m['close_codes']} "
        f"(the logout's own answer: median {m['logout_answer_median_ms']} ms)",
        f"echo throughput, {o['messages']} messages of {o['size']} B (median of {o['rounds']}):",
    ]
    for key in sorted(k for k in results if k.startswith("throughput_c")):
        row = results[key]
        lines.append(
            f"  {key.removeprefix('throughput_c'):>3} connection(s): "
            f"direct {row['direct']:>7} msg/s   bff {row['bff']:>7} msg/s   "
            f"({row['bff_vs_direct']}x)"
        )
    trip = results["round_trip"]
    lines.append(f"round trip, {trip['bff']['samples']} sequential on one connection:")
    for name in ("direct", "bff"):
        lines.append(f"  {name:>6}: p50 {trip[name]['p50_ms']} ms   p99 {trip[name]['p99_ms']} ms")
    lines.append(f"  added by bff: p50 +{trip['added_p50_ms']} ms   p99 +{trip['added_p99_ms']} ms")
    return "\n".join(lines)


def _routes(echo_port: int) -> str:
    return (
        f'[[routes]]\nprefix = "/live"\nupstream = "http://127.0.0.1:{echo_port}"\n'
        "websocket = true\n"
    )


def run(opts: Options, workdir: Path) -> dict[str, Any]:
    stack = Stack(workdir)
    try:
        redis_port = stack.redis()
        echo_port = free_port()
        echo = stack.start(
            "echo",
            [str(BIN / "python"), str(Path(__file__).resolve()), "--echo-server", str(echo_port)],
        )
        wait_listening(echo_port, echo, "echo upstream", 20)
        ports = {"bff-a": free_port(), "bff-b": free_port()}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        provider = stack.provider(
            redirect_uris=[f"{u}/bff/callback" for u in urls.values()], token_latency_ms=0
        )
        config = workdir / "bff.toml"
        config.write_text(_routes(echo_port))
        secret_key = secrets.token_urlsafe(32)
        for name, port in ports.items():
            env = {
                "BFF_CONFIG": str(config),
                "BFF_ISSUER": provider,
                "BFF_CLIENT_ID": CLIENT_ID,
                "BFF_CLIENT_SECRET": CLIENT_SECRET,
                "BFF_SECRET_KEY": secret_key,
                "BFF_SESSION_STORE": f"redis://127.0.0.1:{redis_port}/0",
                "BFF_PUBLIC_URL": urls[name],
                "BFF_ACCESS_LOG": "false",
            }
            stack.bff(name, port=port, workers=1, env=env)
        log(f"started: redis :{redis_port}, echo :{echo_port}, provider {provider}, bff {urls}")
        runner: Callable[[Any], Any] = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
        results = runner(measure(opts, urls["bff-a"], urls["bff-b"], f"ws://127.0.0.1:{echo_port}"))
        return {"options": asdict(opts), **results}
    except BaseException:
        for name in ("bff-a", "bff-b", "echo", "provider"):
            tail = stack.log_tail(name)
            if tail:
                log(f"--- {name} log tail ---\n{tail}")
        raise
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bff live connections: close on logout, echo")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--echo-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        asyncio.run(echo_server(args.echo_server))
        return 0
    opts = Options.from_env(dict(os.environ))
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        results = run(opts, Path(tmp))
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(table(results))
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (out / f"live-{stamp}.json", args.json):
        if path is not None:
            path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
