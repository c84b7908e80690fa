"""`make chaos`: a primary killed under load, on Redis Sentinel and on Redis Cluster.

Per topology: two `bff serve` instances share the store; logged-in sessions are read at a
fixed rate through both (`GET /bff/user`: one GETEX each); a primary is SIGKILLed a few
seconds in; the run measures what users saw. Then the hot path's throughput on each
topology against a single Redis, interleaved in the same run (wrk, as `make bench`).

Figures: sessions lost (all, and on the shards that survived), logouts caused (a 401
during or after the failover), 503 count and the longest run of 503s, 5xx other than 503,
time from the kill to full recovery (every answer 200 from then on), and req/s.
`CHAOS_QUICK=1` shortens everything (a smoke run). The failover sequence itself is
`tests.support.failover.failover_run`, which tests/integration/test_ha_store.py runs
with a short, bounded load.
"""

from __future__ import annotations

import asyncio
import collections
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python bench/chaos.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import BenchStack, ensure_tools
from tests.support.failover import failover_run
from tests.support.procs import free_port
from tests.support.redis_ha import SentinelGroup, running_cluster, running_sentinel

__all__ = ["main", "store_costs"]

CLIENT_ID, CLIENT_SECRET = "bff-demo", "bff-demo-secret-not-for-production"  # the dev provider's


# --- make chaos -------------------------------------------------------------------------
async def store_costs(
    url: str, *, sessions: int, loads: int, acks: tuple[int, ...] = (0, 50)
) -> dict[str, float]:
    """The store alone: a login's write (`create_session`) p50 / p95 with each `WAIT 1`
    bound in `acks` (0: none), interleaved, and `load_session` (the hot path's GETEX)
    calls per second from 64 concurrent tasks."""
    from bff.store import IndexEntry
    from bff.store.redis import RedisStore

    prefix = f"chaos-{secrets.token_hex(4)}"
    stores = {ack: RedisStore.from_url(url, prefix=prefix, replica_ack_ms=ack) for ack in acks}
    spans: dict[int, list[float]] = {ack: [] for ack in acks}
    hashes = [secrets.token_hex(32) for _ in range(sessions)]
    expires = int(time.time()) + 600
    try:
        for i, session_hash in enumerate(hashes):
            ack = acks[i % len(acks)]
            t = time.perf_counter()
            await stores[ack].create_session(
                session_hash, b"x" * 742, ttl=600, index=IndexEntry(f"u{i}", f"s{i}", expires)
            )
            spans[ack].append(time.perf_counter() - t)
        store = stores[0]

        async def reader(k: int) -> None:
            for j in range(loads // 64):
                await store.load_session(hashes[(k + j) % len(hashes)], ttl=600)

        t = time.perf_counter()
        await asyncio.gather(*(reader(k) for k in range(64)))
        per_second = (loads // 64 * 64) / (time.perf_counter() - t)
        for session_hash in hashes:
            await store.delete_session(session_hash, index=None)
    finally:
        for each in stores.values():
            await each.aclose()
    out = {"getex/s": per_second}
    for ack, values in spans.items():
        values.sort()
        out[f"write p50 ack={ack}"] = values[len(values) // 2] * 1000
        out[f"write p95 ack={ack}"] = values[int(len(values) * 0.95)] * 1000
    return out


def _log(message: str) -> None:
    print(f"chaos: {message}", file=sys.stderr, flush=True)


def _table(rows: list[dict[str, object]]) -> str:
    heads = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in heads]
    line = " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    out = [line, "-|-".join("-" * w for w in widths)]
    out += [
        " | ".join(str(r[h]).ljust(w) for h, w in zip(heads, widths, strict=True)) for r in rows
    ]
    return "\n".join(out)


def main() -> int:
    from bench.wrk import run_wrk
    from tests.support.sessions import login

    quick = os.environ.get("CHAOS_QUICK") == "1"
    ensure_tools()
    rate, seconds, kill_after = (50.0, 8.0, 2.0) if quick else (200.0, 20.0, 5.0)
    users = 12 if quick else 48
    wrk_seconds, rounds = (3, 1) if quick else (8, 3)
    with (
        tempfile.TemporaryDirectory(prefix="bff-chaos-") as tmp,
        running_sentinel() as sentinel,
        running_cluster() as cluster,
    ):
        stack = BenchStack(Path(tmp))
        try:
            direct, _ = stack.nginx()
            single_port = stack.redis()
            # the same Redis with two replicas: what replicating every GETEX's new expiry
            # costs on this machine, apart from the Sentinel / Cluster client
            replicated = stack.redis("replicated")
            for n in (1, 2):
                stack.redis(f"replica-{n}", ["--replicaof", "127.0.0.1", str(replicated)])
            stores = {
                "single": f"redis://127.0.0.1:{single_port}/0",
                "replicated": f"redis://127.0.0.1:{replicated}/0",  # single + 2 replicas
                "sentinel": sentinel.url,
                "cluster": cluster.url,
            }
            ports = {f"{name}-{n}": free_port() for name in stores for n in (1, 2)}
            provider = stack.provider(
                redirect_uris=[f"http://127.0.0.1:{p}/bff/callback" for p in ports.values()],
                token_latency_ms=0,
            )
            secret_key = secrets.token_urlsafe(32)
            for name, port in ports.items():
                stack.bff(
                    name,
                    port=port,
                    workers=1,
                    env={
                        "BFF_ISSUER": provider,
                        "BFF_CLIENT_ID": CLIENT_ID,
                        "BFF_CLIENT_SECRET": CLIENT_SECRET,
                        "BFF_SECRET_KEY": secret_key,
                        "BFF_SESSION_STORE": stores[name.rsplit("-", 1)[0]],
                        "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
                        "BFF_ROUTES": f"/api=http://127.0.0.1:{direct}",
                        "BFF_ACCESS_LOG": "false",
                    },
                )
            base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            _log("hot path: wrk, interleaved rounds (single Redis, Sentinel, Cluster)")
            cookies = {name: login(base[f"{name}-1"], "chaos-wrk") for name in stores}
            rps: dict[str, list[float]] = {name: [] for name in stores}
            for name in stores:
                run_wrk(
                    f"{base[name + '-1']}/api/bench",
                    connections=64,
                    seconds=2,
                    cookie=cookies[name],
                )
            for _ in range(rounds):
                for name in stores:
                    result = run_wrk(
                        f"{base[name + '-1']}/api/bench",
                        connections=64,
                        seconds=wrk_seconds,
                        cookie=cookies[name],
                    )
                    rps[name].append(result.rps)
            _log("store alone: login write with / without WAIT 1, GETEX calls per second")
            costs = {
                name: asyncio.run(
                    store_costs(
                        url,
                        sessions=200 if quick else 1000,
                        loads=5000 if quick else 40000,
                        # a single Redis has no replica to wait for: WAIT would always
                        # block for its whole bound
                        acks=(0,) if name == "single" else (0, 50),
                    )
                )
                for name, url in stores.items()
            }
            rows = []
            for topology, group in (("sentinel", sentinel), ("cluster", cluster)):
                bases = [base[f"{topology}-1"], base[f"{topology}-2"]]
                _log(f"{topology}: {users} logins")
                logged = [login(bases[i % 2], f"chaos-user-{i}") for i in range(users)]
                figures = failover_run(
                    topology,
                    group,
                    bases,
                    logged,
                    prefix="bff",
                    secret_key=secret_key,
                    rate=rate,
                    seconds=seconds,
                    kill_after=kill_after,
                    log=_log,
                )
                samples, killed_at = figures.samples, figures.killed_at
                early = [s for s in samples if s.status == 503 and s.at < killed_at]
                if early:  # the load generator's own queueing on a busy machine
                    _log(
                        f"{len(early)} 503s sent before the kill (at {killed_at:.2f} s) and "
                        "answered after it; sent at / answered at: "
                        + ", ".join(f"{s.at:.2f}/{s.done:.2f}" for s in early[:8])
                    )
                if isinstance(group, SentinelGroup):
                    events = group.events()
                    _log(f"sentinel events so far: {len(events)}")
                    for line in events[-12:]:
                        print(f"  {line}", file=sys.stderr)
                rows.append(figures.row())
            print("\nFailover under load (a primary SIGKILLed mid-run)")
            print(_table(rows))
            single = statistics.median(rps["single"])
            print(
                "\nHot path (GET /api/bench through bff, 1 worker, wrk -c64), median of rounds;"
                " replicated: the single Redis with 2 replicas of its own"
            )
            print(
                _table(
                    [
                        {
                            "store": name,
                            "req/s": f"{statistics.median(values):,.0f}",
                            "x single": f"{statistics.median(values) / single:.3f}",
                            "rounds": ", ".join(f"{v:,.0f}" for v in values),
                        }
                        for name, values in rps.items()
                    ]
                )
            )
            heads = list(costs["sentinel"])
            print(
                "\nThe store alone (bff.store.redis.RedisStore, 64 tasks for GETEX; ms per write)"
            )
            print(
                _table(
                    [
                        {
                            "store": name,
                            **{k: f"{figures[k]:,.2f}" if k in figures else "n/a" for k in heads},
                        }
                        for name, figures in costs.items()
                    ]
                )
            )
            reasons = collections.Counter(
                line.split("-> 503 (", 1)[1].strip()
                for log in Path(tmp).glob("*-[12].log")
                for line in log.read_text(errors="replace").splitlines()
                if "-> 503 (" in line
            )
            print("\n503 reasons in the bff logs (all topologies)")
            for reason, count in reasons.most_common():
                print(f"{count:6d}  {reason}")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
