"""The proxy hot path's cost in CPU time per request, for A/B decisions on a busy machine.

Starts (free loopback ports; stops only these) nginx as the upstream, a private
redis-server, the development provider and one `bff serve` per variant (defaults: the
access log on), logs in for real, then runs interleaved wrk rounds (variant A, B, ... then
the next round) and reads each variant's process CPU time (utime + stime of the server
and its workers, /proc/<pid>/stat) around every run: CPU µs per request moves far less
with other load on the machine than requests/s does; and the read and write system
calls per request (/proc/<pid>/io, exact: sockets written with send() not counted).
Prints per round and the medians.

    .venv/bin/python bench/hotpath.py --variant base:src=/tmp/base --variant new
    .venv/bin/python bench/hotpath.py --variant log:BFF_ACCESS_LOG=true \\
        --variant nolog:BFF_ACCESS_LOG=false --connections 64 --seconds 5 --rounds 5

A variant is `name[:key=value,...]`: `src=PATH` runs bff from another checkout
(PYTHONPATH), `workers=N` (default 1), `server=granian` the same app under granian
(`pip install granian`; GRANIAN_* variables tune it), anything else is an environment
variable of that bff. `--hold S` keeps the stack up S seconds after the rounds (for py-spy).
"""

from __future__ import annotations

import argparse
import contextlib
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

import httpx  # noqa: E402

from bench.procs import BenchStack  # noqa: E402
from bench.wrk import WrkResult, run_wrk  # noqa: E402
from tests.support.procs import free_port  # noqa: E402
from tests.support.sessions import login  # noqa: E402
from tests.support.stack import BIN  # noqa: E402

__all__ = ["Variant", "parse_variant", "usage"]

CLIENT_ID = "bff-demo"
CLIENT_SECRET = "bff-demo-secret-not-for-production"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Variant:
    name: str
    workers: int = 1
    src: str | None = None
    server: str = "bff"  # or "granian": the same app under granian (ASGI, uvloop)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    pid: int = 0
    cpu_us: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)  # read + write system calls per request
    runs: list[WrkResult] = field(default_factory=list)


def parse_variant(text: str) -> Variant:
    name, _, rest = text.partition(":")
    variant = Variant(name)
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "src":
            variant.src = value
        elif key == "server":
            variant.server = value
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


def usage(pid: int) -> tuple[float, int]:
    """(utime + stime in seconds, read + write system calls) of `pid` and its
    descendants (uvicorn's or granian's workers)."""
    seconds, calls = 0.0, 0
    for one in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            io = dict(line.split(": ") for line in Path(f"/proc/{one}/io").read_text().splitlines())
        except FileNotFoundError:
            continue
        seconds += (int(fields[11]) + int(fields[12])) / _TICK
        calls += int(io["syscr"]) + int(io["syscw"])
        if one != pid:
            for child in _children(one):
                more = usage(child)
                seconds, calls = seconds + more[0], calls + more[1]
    return seconds, calls


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
        if variant.server == "granian":
            variant.pid = _granian(stack, variant, env)
        else:
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
            before = usage(variant.pid)
            result = run_wrk(
                url.format(variant.port),
                connections=args.connections,
                seconds=args.seconds,
                cookie=cookie,
                threads=threads,
            )
            after, count = usage(variant.pid), max(1, result.requests)
            variant.cpu_us.append((after[0] - before[0]) * 1e6 / count)
            variant.calls.append((after[1] - before[1]) / count)
            variant.runs.append(result)
            line.append(
                f"{variant.name} {result.rps:8,.0f} req/s {variant.cpu_us[-1]:6.1f} µs "
                f"{variant.calls[-1]:4.2f} rw p50 {result.p50_ms:.3f} ms err {result.errors}"
            )
        print(f"round {number + 1}: " + " | ".join(line), flush=True)
    for variant in variants:
        rps = [r.rps for r in variant.runs]
        p50 = [r.p50_ms for r in variant.runs]
        print(
            f"{variant.name:12} median {statistics.median(variant.cpu_us):6.1f} µs/request "
            f"(min {min(variant.cpu_us):.1f}), {statistics.median(rps):8,.0f} req/s "
            f"(min {min(rps):,.0f} max {max(rps):,.0f}), p50 {statistics.median(p50):.3f} ms, "
            f"{statistics.median(variant.calls):.2f} read/write calls/request"
        )
    first = variants[0]
    for variant in variants[1:]:  # paired: rounds run back to back see alike machine load
        ratios = [b / a for a, b in zip(first.cpu_us, variant.cpu_us, strict=True)]
        print(
            f"{variant.name} / {first.name}: CPU per request x{statistics.median(ratios):.3f} "
            f"(median of {len(ratios)} paired rounds; quartiles "
            f"{' - '.join(f'{q:.3f}' for q in statistics.quantiles(ratios, n=4)[::2])})"
        )
    if args.hold:
        print("holding: " + ", ".join(f"{v.name} pid {v.pid} port {v.port}" for v in variants))
        print(f"cookie: {cookie}", flush=True)
        time.sleep(args.hold)


def _granian(stack: BenchStack, variant: Variant, env: dict[str, str]) -> int:
    """The app of `bff serve`'s workers under granian (GRANIAN_* variables tune it)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "PROMETHEUS"))}
    full.update(env)
    if variant.workers > 1:
        full["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(dir=stack.dir)
    argv = [
        str(BIN / "granian"),
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(variant.port),
        "--workers",
        str(variant.workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "bff.cli.factory:app_from_environment",
    ]
    process = stack.start(variant.name, argv, env=full)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{variant.name} exited: {stack.log_tail(variant.name)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{variant.port}/readyz", timeout=1).is_success:
                return process.pid
        time.sleep(0.2)
    raise RuntimeError(f"{variant.name} not ready: {stack.log_tail(variant.name)}")


if __name__ == "__main__":
    raise SystemExit(main())
