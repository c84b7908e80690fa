"""`make bench`: the bff's proxy hop measured side by side with nginx and the peers, in
one run.

Starts (on free loopback ports, and stops only these; bench/targets.py): nginx (the
trivial upstream "direct" and the "nginx-proxy" floor), private redis-servers, the
development OpenID provider, the stack-ceiling app, Apache with mod_auth_openidc, `bff
serve` with 1 and 2 workers, and with BENCH_BASELINE the bff of that git ref likewise.
Then, all with wrk and bench.lua: interleaved rounds (A B C D A B C D ...) at 64
connections and at 1 connection, medians; store commands per proxied request; a refresh
storm; session scale; a leak check. Prints a table and writes
bench-results/bench-<time>.json, bench-results/results.json and docs/bench.png. See
bench/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import redis.asyncio  # noqa: E402

from bench import baseline  # noqa: E402
from bench.baseline import baseline_ref  # noqa: E402
from bench.outputs import log_sizes, write_outputs  # noqa: E402
from bench.procs import BenchStack, ensure_tools  # noqa: E402
from bench.report import build_table, summarise  # noqa: E402
from bench.rounds import side_by_side  # noqa: E402
from bench.scale import ScaleRun, leak_check, session_scale  # noqa: E402
from bench.storm import refresh_storm  # noqa: E402
from bench.targets import Started, start_targets  # noqa: E402
from tests.support.sessions import login  # noqa: E402


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: float  # per wrk run at 64 connections
    seconds_single: float  # per wrk run at 1 connection
    connections: int
    warmup: float
    sessions: int  # session scale: how many to create
    distinct: int  # ... and how many of them the wrk script cycles through
    leak_requests: int
    command_requests: int
    storm: int
    token_latency_ms: int
    only: str  # BENCH_ONLY=storm / scale: start everything, run that section alone

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Options:
        quick = env.get("BENCH_QUICK", "") not in ("", "0")

        def num(name: str, full: float, fast: float) -> float:
            return float(env.get(name, fast if quick else full))

        return cls(
            rounds=int(num("BENCH_ROUNDS", 5, 3)),
            seconds=num("BENCH_SECONDS", 5, 1),
            seconds_single=num("BENCH_SECONDS_SINGLE", 3, 1),
            connections=int(num("BENCH_CONNECTIONS", 64, 64)),
            warmup=num("BENCH_WARMUP", 2, 1),
            sessions=int(num("BENCH_SESSIONS", 1_000_000, 20_000)),
            distinct=int(num("BENCH_DISTINCT", 10_000, 2000)),
            leak_requests=int(num("BENCH_LEAK_REQUESTS", 1_000_000, 20_000)),
            command_requests=int(num("BENCH_COMMAND_REQUESTS", 2000, 500)),
            storm=int(num("BENCH_STORM", 1000, 1000)),
            token_latency_ms=int(num("BENCH_TOKEN_LATENCY_MS", 50, 50)),
            only=env.get("BENCH_ONLY", ""),
        )


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def check_200(url: str, cookie: str | None) -> None:
    headers = {"x-csrf": "1", **({"cookie": cookie} if cookie else {})}
    answer = httpx.get(url, headers=headers, timeout=5)
    if answer.status_code != 200:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")


# --- further figures ----------------------------------------------------------------
def _commandstats(info: dict[str, Any]) -> dict[str, int]:
    return {
        key.removeprefix("cmdstat_"): int(value["calls"])
        for key, value in info.items()
        if key.startswith("cmdstat_")
    }


async def store_commands(redis_url: str, url: str, cookie: str, requests: int) -> dict[str, Any]:
    """Redis commands per proxied request: INFO commandstats before and after exactly
    `requests` requests (16 at a time), after a warm-up that fills every pool."""
    client = redis.asyncio.Redis.from_url(redis_url)
    headers = {"cookie": cookie, "x-csrf": "1"}
    failed = 0

    async def fire(http: aiohttp.ClientSession, count: int) -> int:
        bad = 0
        for _ in range(count):
            async with http.get(url, headers=headers) as answer:
                await answer.read()
                bad += answer.status != 200
        return bad

    try:
        connector = aiohttp.TCPConnector(limit=16)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(fire(http, 20) for _ in range(16)))  # warm-up
            before = _commandstats(await client.info("commandstats"))
            share = [requests // 16 + (i < requests % 16) for i in range(16)]
            failed = sum(await asyncio.gather(*(fire(http, n) for n in share)))
            after = _commandstats(await client.info("commandstats"))
    finally:
        await client.aclose()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta.pop("info", None)  # ours
    delta = {k: v for k, v in delta.items() if v}
    return {
        "requests": requests,
        "failed": failed,
        "by_command": delta,
        "per_request": round(sum(delta.values()) / requests, 3),
    }


def storm_section(
    options: Options,
    results: dict[str, Any],
    started: Started,
    warm_cookie: str,
) -> None:
    """The refresh storm (`bench.storm`) on bff-1w, bff-2w and the baseline's 2 workers,
    a fresh login for each (the baseline's expiry written by its own code)."""
    log(f"refresh storm: {options.storm} concurrent requests")
    results["refresh_storm"] = []
    tree = Path(started.baseline["tree"]) if started.baseline else None
    for name in ("bff-1w", "bff-2w", "base-2w"):
        target = started.targets.get(name)
        if target is None:
            continue
        storm_cookie = login(target.base_url, f"storm-user-{name}")
        # The main session of the same version warms the connections.
        warm = warm_cookie if target.kind == "bff" else (target.cookie or "")
        redis_url, secret_key = target.redis_url or "", target.secret_key or ""

        async def expire_old(
            cookie: str = storm_cookie, url: str = redis_url, key: str = secret_key
        ) -> None:
            assert tree is not None
            await asyncio.to_thread(
                baseline.expire_access_token_in, tree, redis_url=url, secret_key=key, cookie=cookie
            )

        results["refresh_storm"].append(
            asyncio.run(
                refresh_storm(
                    target=name,
                    url=target.url,
                    cookie=storm_cookie,
                    warm_cookie=warm,
                    provider=started.provider,
                    redis_url=redis_url,
                    secret_key=secret_key,
                    concurrency=options.storm,
                    latency_ms=options.token_latency_ms,
                    pid=target.pid,
                    expire=expire_old if target.kind == "baseline" else None,
                )
            )
        )


def bench(
    options: Options,
    stack: BenchStack,
    results: dict[str, Any],
    skipped: dict[str, str] | None = None,
) -> None:
    started = start_targets(
        stack,
        token_latency_ms=options.token_latency_ms,
        baseline_ref=baseline_ref(os.environ),
        skipped=skipped or {},
        log=log,
    )
    targets = started.targets  # name -> url, cookie, pid, Redis, secret key (bench/targets.py)
    results["targets"] = {name: t.describe() for name, t in targets.items()}
    results["skipped"] = started.skipped
    if started.baseline:
        results["baseline"] = started.baseline
    # The names the sections below use: bff-1w's (the other targets' are in `targets`).
    procs = started.procs
    urls = {name: t.url for name, t in targets.items()}
    cookie = targets["bff-1w"].cookie or ""
    redis_url = targets["bff-1w"].redis_url or ""
    secret_key = targets["bff-1w"].secret_key or ""

    def storm() -> None:
        storm_section(options, results, started, cookie)

    scale_run = ScaleRun(
        url=urls["bff-1w"],
        pid=procs["bff-1w"].pid,
        redis_url=redis_url,
        secret_key=secret_key,
        cookie=cookie,
        workdir=stack.dir,
    )
    if options.only == "storm":
        storm()
        return
    if options.only == "scale":  # the leak check and the session scale alone
        leak_section(options, results, scale_run)
        scale_section(options, stack, results, scale_run)
        return
    conns = options.connections
    rounds = side_by_side(
        targets,
        rounds=options.rounds,
        seconds=options.seconds,
        seconds_single=options.seconds_single,
        connections=conns,
        warmup=options.warmup,
        log=log,
    )
    results["rounds"] = rounds.records
    results["summary"] = summarise(
        rounds.loaded,
        rounds.single,
        kinds={name: t.kind for name, t in targets.items()},
        records=rounds.records,
    )

    results["store_commands"] = {}
    for name, target in targets.items():
        # one per Redis and version: a 2-worker instance shares its 1-worker twin's
        if target.redis_url and target.kind != "reference" and not name.endswith("-2w"):
            log(f"store commands per proxied request ({name})")
            measured = asyncio.run(
                store_commands(
                    target.redis_url, target.url, target.cookie or "", options.command_requests
                )
            )
            results["store_commands"][name] = measured
            results["summary"][name]["redis_per_request"] = measured["per_request"]

    leak_section(options, results, scale_run)

    storm()

    scale_section(options, stack, results, scale_run)


def leak_section(options: Options, results: dict[str, Any], run: ScaleRun) -> None:
    log("leak check")
    results["leak"] = leak_check(
        run,
        requests=options.leak_requests,
        connections=options.connections,
        warmup=max(5000, options.leak_requests // 20),
    )


def scale_section(
    options: Options, stack: BenchStack, results: dict[str, Any], run: ScaleRun
) -> None:
    log(f"session scale: {options.sessions:,} sessions of each token shape")
    results["session_scale"] = session_scale(
        run,
        sessions=options.sessions,
        distinct=options.distinct,
        rounds=options.rounds,
        seconds=options.seconds,
        warmup=options.warmup,
        connections=options.connections,
        # Memory: a second private redis-server that only the writer connects to.
        scratch_url=f"redis://127.0.0.1:{stack.redis('redis-memory')}/0",
        leak_requests=options.leak_requests,
        # BENCH_BEFORE=1: the bulk sessions as releases before record format 3 wrote them
        before=os.environ.get("BENCH_BEFORE", "") not in ("", "0"),
    )


def main() -> int:
    options = Options.from_env(dict(os.environ))
    skipped = ensure_tools()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    results: dict[str, Any] = {
        "meta": {
            "started": started,
            "rounds": options.rounds,
            "seconds_loaded": options.seconds,
            "seconds_single": options.seconds_single,
            "connections": options.connections,
            "cpus": os.cpu_count(),
            "options": options.__dict__,
        }
    }
    began = time.monotonic()
    failed: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="bff-bench-") as workdir:
        stack = BenchStack(Path(workdir))
        try:
            bench(options, stack, results, skipped)
        except BaseException as exc:  # report what was measured, then fail
            failed = exc
            results["error"] = f"{type(exc).__name__}: {exc}"
            for name in ("bff-1w", "bff-2w", "base-1w", "apache/apache-error", "provider", "nginx"):
                with contextlib.suppress(OSError):
                    tail = stack.log_tail(name)
                    if tail:
                        log(f"--- {name} log tail ---\n{tail}")
        finally:
            results["meta"]["logs"] = log_sizes(Path(workdir))
            stack.stop()
    results["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)
    written = write_outputs(results, ROOT, started)
    print(build_table(results))
    print(f"results: {', '.join(str(p) for p in written)} ({results['meta']['elapsed_s']} s)")
    if failed is not None:
        log(f"failed: {results['error']}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
