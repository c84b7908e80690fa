"""`make bench`'s cost-as-work-grows figures (bench/run.py's "leak check" and "session
scale" sections; `BENCH_ONLY=scale` runs just these, on a stack of their own):

- leak check: bff-1w's RSS after a warm-up and then every quarter of `leak_requests`
  requests, of one session and, after the session scale, of many distinct sessions (the
  per-session memo tables must stop growing at their bounds);
- session scale: Redis memory per session with the development provider's tokens and
  with Keycloak-size tokens, with and without the ID token (BFF_LOGOUT_ID_TOKEN_HINT=false
  stores none; a private redis-server only the writer uses), the sealed
  record sizes, the time to write them; then requests/s cycling `distinct` sessions spread
  over all of them in bff's own Redis (more than the in-process memo tables hold) and a
  thousand (which they do hold), against one of those sessions, interleaved rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio

from bench.cpu import tree_cpu_s
from bench.keycloak_tokens import keycloak_template
from bench.procs import rss_kib
from bench.sessions import bulk_create
from bench.wrk import WrkResult, run_wrk
from bff.store.redis import RedisStore
from tests.support.sessions import service

__all__ = ["CACHED", "ScaleRun", "leak_check", "session_scale"]

CACHED = 1000  # distinct sessions the in-process memo tables hold (bff.session.service)


@dataclass(frozen=True)
class ScaleRun:
    """Where the section runs: bff-1w's URL and PID, its Redis, the login cookie."""

    url: str
    pid: int
    redis_url: str
    secret_key: str
    cookie: str
    workdir: Path


def _rss_series(
    run: ScaleRun, requests: int, connections: int, rate: float, **wrk: Any
) -> tuple[list[int], list[WrkResult]]:
    """RSS (KiB) before and after each quarter of `requests` requests. wrk stops sending
    after its limit but waits out its whole -d: the duration comes from the warm-up's
    `rate` (req/s), with a margin."""
    series = [rss_kib(run.pid)]
    results = []
    quarter = max(1, requests // 4)
    for _ in range(4):
        results.append(
            run_wrk(
                run.url,
                connections=connections,
                seconds=_seconds_for(quarter, rate),
                limit_per_thread=max(1, quarter // 2),
                **wrk,
            )
        )
        time.sleep(0.5)
        series.append(rss_kib(run.pid))
    return series, results


def _seconds_for(requests: int, rate: float) -> float:
    return min(900.0, requests / max(rate, 50.0) * 1.3 + 1)


def _leak_figures(series: list[int], results: list[WrkResult]) -> dict[str, Any]:
    requests = sum(r.requests for r in results)
    return {
        "requests": requests,
        "errors": sum(r.errors for r in results),
        "rss_before_kib": series[0],  # after the warm-up
        "rss_after_kib": series[-1],
        "rss_series_kib": series,
        "growth_kib_per_100k": round((series[-1] - series[0]) * 100_000 / max(1, requests)),
    }


def leak_check(run: ScaleRun, *, requests: int, connections: int, warmup: int) -> dict[str, Any]:
    """One session: RSS after a warm-up of about `warmup` requests, then over `requests`
    more. The warm-up runs for a time, no limit: its rate sizes the later runs."""
    warm = run_wrk(
        run.url, connections=connections, seconds=max(3.0, warmup / 3000), cookie=run.cookie
    )
    rate = warm.rps
    series, results = _rss_series(run, requests, connections, rate, cookie=run.cookie)
    return {"target": "bff-1w", "warmup_requests": warmup, **_leak_figures(series, results)}


async def _memory(
    url: str,
    run: ScaleRun,
    count: int,
    shape: str,
    *,
    into_bff: bool,
    cookies_wanted: int,
    before: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Sessions of `shape` written into the private Redis at `url` (and, `into_bff`, into
    bff's own, the same ones): its `used_memory` growth per session, read with no other
    client connected; cookies of `cookies_wanted` of them, spread over all."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushall()
        await asyncio.sleep(1)  # any rehashing of the emptied tables done
        used_before = int((await client.info("memory"))["used_memory"])
        source = RedisStore.from_url(run.redis_url)
        try:
            cookies, made = await bulk_create(
                service(source, run.secret_key),
                run.cookie,
                count,
                urls=[url, run.redis_url] if into_bff else [url],
                cookies_wanted=cookies_wanted,
                secret_key=run.secret_key,
                shape=shape,
                before=before,
            )
        finally:
            await source.aclose()  # (its writes are closed before measuring: not sessions)
        await asyncio.sleep(1)  # incremental rehashing of the grown tables done
        used_after = int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()
    if made["layout"] != ("before" if before else "after"):
        raise RuntimeError(f"sessions written in the {made['layout']} layout")
    return {**made, "bytes_per_session": round((used_after - used_before) / count)}, cookies


def _median_rps(results: list[WrkResult]) -> float:
    ordered = sorted(r.rps for r in results)
    return ordered[len(ordered) // 2]


def session_scale(
    run: ScaleRun,
    *,
    sessions: int,
    distinct: int,
    rounds: int,
    seconds: float,
    warmup: float,
    connections: int,
    scratch_url: str,
    leak_requests: int,
    before: bool = False,
) -> dict[str, Any]:
    """The figures described in the module doc, and the leak check of many sessions.
    `before`: the bulk sessions as releases before record format 3 wrote them, in their
    2,048 index buckets (the before figures; bff reads both)."""

    def memory_only(shape: str) -> dict[str, Any]:
        """Memory per session of `shape`, written into the scratch Redis alone."""
        made, _ = asyncio.run(
            _memory(
                scratch_url, run, sessions, shape, into_bff=False, cookies_wanted=0, before=before
            )
        )
        return made

    dev = memory_only("dev")
    keycloak, cookies = asyncio.run(
        _memory(
            scratch_url,
            run,
            sessions,
            "keycloak",
            into_bff=True,
            cookies_wanted=distinct,
            before=before,
        )
    )
    # Keycloak's shape as stored with BFF_LOGOUT_ID_TOKEN_HINT=false (no ID token kept)
    no_id_token = memory_only("keycloak-no-id-token")
    access, id_token, refresh = keycloak_template(int(time.time()))
    keycloak["token_bytes"] = {"access": len(access), "id": len(id_token), "refresh": len(refresh)}
    files = {
        "one": [cookies[0]],
        "cached": cookies[: min(CACHED, len(cookies))],
        "many": cookies,
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = run.workdir / f"cookies-{name}.txt"
        paths[name].write_text("\n".join(lines) + "\n")
    runs: dict[str, list[WrkResult]] = {name: [] for name in files}
    cpu: dict[str, list[float]] = {name: [] for name in files}  # bff-1w's µs per request
    run_wrk(run.url, connections=connections, seconds=warmup, cookie_file=paths["many"])
    for _ in range(rounds):
        for name in files:  # interleaved: one, cached, many, one, ...
            began = tree_cpu_s(run.pid)
            result = run_wrk(
                run.url, connections=connections, seconds=seconds, cookie_file=paths[name]
            )
            runs[name].append(result)
            cpu[name].append((tree_cpu_s(run.pid) - began) * 1e6 / max(1, result.requests))
    rps = {name: _median_rps(results) for name, results in runs.items()}
    cpu_us = {name: round(statistics.median(values), 1) for name, values in cpu.items()}
    # The memo tables full of distinct sessions: RSS must stay where it is from here on.
    rate = rps["many"]
    run_wrk(
        run.url,
        connections=connections,
        seconds=_seconds_for(2 * len(cookies), rate),
        cookie_file=paths["many"],
        limit_per_thread=len(cookies),
    )
    series, results = _rss_series(run, leak_requests, connections, rate, cookie_file=paths["many"])
    return {
        "target": "bff-1w",
        "sessions": sessions,
        "layout": "before" if before else "after",
        "memory": {"dev": dev, "keycloak": keycloak, "keycloak-no-id-token": no_id_token},
        "bytes_per_session": keycloak["bytes_per_session"],
        "bytes_per_session_dev": dev["bytes_per_session"],
        "bytes_per_session_no_id_token": no_id_token["bytes_per_session"],
        "create_s": keycloak["create_s"],
        "distinct": len(cookies),
        "cached_distinct": len(files["cached"]),
        "one_rps": rps["one"],
        "many_rps": rps["many"],
        "cached_rps": rps["cached"],
        "many_vs_one": round(rps["many"] / rps["one"], 3) if rps["one"] else None,
        "cached_vs_one": round(rps["cached"] / rps["one"], 3) if rps["one"] else None,
        "errors": sum(r.errors for results in runs.values() for r in results),
        # bff-1w's own CPU per request (all its threads): what a shared machine disturbs less
        "cpu_us_per_request": cpu_us,
        "leak_many": {"distinct": len(cookies), **_leak_figures(series, results)},
    }
