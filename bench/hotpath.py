"""The proxy hot path's cost in CPU time per request, for A/B decisions on a busy machine.

Starts (free loopback ports; stops only these) nginx as the upstream, a private
redis-server, the development provider and one `bff serve` per variant (defaults: the
access log on), logs in for real, then runs interleaved wrk rounds (variant A, B, ... then
the next round) and reads each variant's process CPU time (utime + stime of the server
and its workers, /proc/<pid>/stat) around every run: CPU µs per request moves far less
with other load on the machine than requests/s does. Prints per round and the medians.

    .venv/bin/python bench/hotpath.py --variant base:src=/tmp/base --variant new
    .venv/bin/python bench/hotpath.py --variant log:BFF_ACCESS_LOG=true \\
        --variant nolog:BFF_ACCESS_LOG=false --connections 64 --seconds 5 --rounds 5

A variant is `name[:key=value,...]`: `src=PATH` runs bff from another checkout
(PYTHONPATH), `workers=N` (default 1), anything else is an environment variable of that
bff. `--hold S` keeps the stack up S seconds after the rounds (for py-spy).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.procs import BenchStack  # noqa: E402
from bench.wrk import WrkResult, run_wrk  # noqa: E402
from tests.support.procs import free_port  # noqa: E402
from tests.support.sessions import login  # noqa: E402

__all__ = ["Variant", "cpu_seconds", "parse_variant"]

CLIENT_ID = "bff-demo"
CLIENT_SECRET = "bff-demo-secret-not-for-production"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Variant:
    name: str
    workers: int = 1
    src: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    pid: int = 0
    cpu_us: list[float] = field(default_factory=list)
    runs: list[WrkResult] = field(default_factory=list)


def parse_variant(text: str) -> Variant:
    name, _, rest = text.partition(":")
    variant = Variant(name)
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "src":
            variant.src = value
        elif key == "workers":
            variant.workers = int(value)
        else:
            variant.env[key] = value
    return variant


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with_children = task / "children"
        if with_children.exists():
            found += [int(c) for c in with_children.read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its live descendants (uvicorn's workers)."""
    total = 0.0
    for one in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
        if one != pid:
            total += sum(cpu_seconds(c) for c in _children(one))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--hold", type=float, default=0, help="seconds to keep the stack up")
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variant or ["default"]]
    with tempfile.TemporaryDirectory(prefix="bff-hotpath-") as workdir:
        stack = BenchStack(Path(workdir))
        try:
            _run(stack, variants, args)
        finally:
            stack.stop()
    return 0


def _run(stack: BenchStack, variants: list[Variant], args: argparse.Namespace) -> None:
    direct, _ = stack.nginx()
    redis_url = f"redis://127.0.0.1:{stack.redis()}/0"
    for variant in variants:
        variant.port = free_port()
    provider = stack.provider(
        redirect_uris=[f"http://127.0.0.1:{v.port}/bff/callback" for v in variants],
        token_latency_ms=0,
    )
    secret_key = secrets.token_urlsafe(32)
    for variant in variants:
        env = {
            "BFF_ISSUER": provider,
            "BFF_CLIENT_ID": CLIENT_ID,
            "BFF_CLIENT_SECRET": CLIENT_SECRET,
            "BFF_SECRET_KEY": secret_key,
            "BFF_SESSION_STORE": redis_url,
            "BFF_PUBLIC_URL": f"http://127.0.0.1:{variant.port}",
            "BFF_ROUTES": f"/api=http://127.0.0.1:{direct}",
            **variant.env,
        }
        if variant.src:
            env["PYTHONPATH"] = variant.src
        process = stack.bff(variant.name, port=variant.port, workers=variant.workers, env=env)
        variant.pid = process.pid
    cookie = login(f"http://127.0.0.1:{variants[0].port}", "hotpath-user")
    url = "http://127.0.0.1:{}/api/bench"
    threads = args.threads or None
    for variant in variants:  # warm-up
        run_wrk(url.format(variant.port), connections=args.connections, seconds=2, cookie=cookie)
    for number in range(args.rounds):
        line = []
        for variant in variants:
            before = cpu_seconds(variant.pid)
            result = run_wrk(
                url.format(variant.port),
                connections=args.connections,
                seconds=args.seconds,
                cookie=cookie,
                threads=threads,
            )
            used = cpu_seconds(variant.pid) - before
            variant.cpu_us.append(used * 1e6 / max(1, result.requests))
            variant.runs.append(result)
            line.append(
                f"{variant.name} {result.rps:8,.0f} req/s {variant.cpu_us[-1]:6.1f} µs "
                f"p50 {result.p50_ms:.3f} ms err {result.errors}"
            )
        print(f"round {number + 1}: " + " | ".join(line), flush=True)
    for variant in variants:
        rps = [r.rps for r in variant.runs]
        p50 = [r.p50_ms for r in variant.runs]
        print(
            f"{variant.name:12} median {statistics.median(variant.cpu_us):6.1f} µs/request "
            f"(min {min(variant.cpu_us):.1f}), {statistics.median(rps):8,.0f} req/s "
            f"(min {min(rps):,.0f} max {max(rps):,.0f}), p50 {statistics.median(p50):.3f} ms"
        )
    if args.hold:
        print("holding: " + ", ".join(f"{v.name} pid {v.pid} port {v.port}" for v in variants))
        print(f"cookie: {cookie}", flush=True)
        time.sleep(args.hold)


if __name__ == "__main__":
    raise SystemExit(main())
