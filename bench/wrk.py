"""Running wrk with bench.lua and reading its one-line JSON summary. The parser is pure."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["LUA", "WrkResult", "parse_wrk", "run_wrk"]

LUA = Path(__file__).with_name("bench.lua")
_MARK = "BENCH_JSON "


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors (connect, read, write, timeout) + non-2xx/3xx answers
    non_2xx: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def parse_wrk(output: str) -> WrkResult:
    """The summary bench.lua's done() printed; ValueError when there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith(_MARK):
            doc = json.loads(line[len(_MARK) :])
            break
    else:
        raise ValueError("no BENCH_JSON line in wrk output")
    seconds = doc["duration_us"] / 1e6
    socket_errors = doc["connect"] + doc["read"] + doc["write"] + doc["timeout"]
    return WrkResult(
        requests=doc["requests"],
        seconds=round(seconds, 3),
        rps=round(doc["requests"] / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=doc["p50_us"] / 1000,
        p90_ms=doc["p90_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        max_ms=doc["max_us"] / 1000,
        errors=socket_errors + doc["status"],
        non_2xx=doc["status"],
    )


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    cookie: str | None = None,
    cookie_file: Path | None = None,
    limit_per_thread: int = 0,
    threads: int | None = None,
) -> WrkResult:
    """One wrk run, bounded in time (wrk's own -d plus a hard timeout)."""
    threads = threads or min(2, connections)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env["BENCH_PATH"] = "/api/bench"
    if cookie:
        env["BENCH_COOKIE"] = cookie
    if cookie_file:
        env["BENCH_COOKIE_FILE"] = str(cookie_file)
    if limit_per_thread:
        env["BENCH_LIMIT"] = str(limit_per_thread)
    duration = max(1, round(seconds))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, env=env, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return parse_wrk(done.stdout)
