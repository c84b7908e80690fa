"""`make chaos`: a primary killed under load, on Redis Sentinel and on Redis Cluster.

Per topology: two `bff serve` instances share the store; logged-in sessions are read at a
fixed rate through both (`GET /bff/user`: one GETEX each); a primary is SIGKILLed a few
seconds in; the run measures what users saw. Then the hot path's throughput on each
topology against a single Redis, interleaved in the same run (wrk, as `make bench`).

Figures: sessions lost (all, and on the shards that survived), logouts caused (a 401
during or after the failover), 503 count and the longest run of 503s, 5xx other than 503,
time from the kill to full recovery (every answer 200 from then on), and req/s.
`CHAOS_QUICK=1` shortens everything (a smoke run). The tests import `failover_load` and
`Figures` from here with a short, bounded load.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

if __package__ in (None, ""):  # `python bench/chaos.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import Stack, ensure_tools, free_port
from bench.redis_ha import ClusterGroup, SentinelGroup, running_cluster, running_sentinel

__all__ = ["Figures", "Sample", "failover_load", "kill_target"]

CLIENT_ID, CLIENT_SECRET = "bff-demo", "bff-demo-secret-not-for-production"  # the dev provider's


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the load started, when the request was sent
    status: int  # 0: no HTTP answer at all
    code: str  # the JSON `error` of a non-200 answer
    retry_after: bool
    session: int  # index of the cookie used
    took: float = 0.0  # seconds until the answer

    @property
    def done(self) -> float:
        """When the answer came (seconds since the load started): what a user saw."""
        return self.at + self.took


@dataclass
class Figures:
    topology: str
    samples: list[Sample]
    killed_at: float
    lost: list[int] = field(default_factory=list)  # sessions gone after the run
    lost_on_killed_shard: list[int] = field(default_factory=list)

    @property
    def logouts(self) -> int:
        return sum(1 for s in self.samples if s.status == 401)

    @property
    def unavailable(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 503]

    @property
    def other_errors(self) -> list[Sample]:
        """Anything but 200 and 503 session_store_unavailable with Retry-After."""
        return [
            s
            for s in self.samples
            if s.status != 200
            and not (s.status == 503 and s.code == "session_store_unavailable" and s.retry_after)
        ]

    @property
    def other_5xx(self) -> int:
        return sum(
            1 for s in self.samples if (s.status >= 500 and s.status != 503) or s.status == 0
        )

    @property
    def longest_503_window(self) -> float:
        """The longest stretch (answer times) in which every answer was a 503."""
        longest, start = 0.0, None
        for s in sorted(self.samples, key=lambda s: s.done):
            if s.status == 503:
                start = s.done if start is None else start
                longest = max(longest, s.done - start)
            else:
                start = None
        return longest

    @property
    def span_503(self) -> float:
        """From the first 503 answer to the last."""
        times = [s.done for s in self.unavailable]
        return max(times) - min(times) if times else 0.0

    @property
    def recovery(self) -> float | None:
        """Seconds from the kill to the last answer that was not a 200 (None: never
        recovered within the run, i.e. the last answer was not a 200)."""
        ordered = sorted(self.samples, key=lambda s: s.done)
        if not ordered or ordered[-1].status != 200:
            return None
        bad = [s.done for s in ordered if s.status != 200]
        return max(0.0, max(bad) - self.killed_at) if bad else 0.0

    def row(self) -> dict[str, object]:
        recovery = self.recovery
        return {
            "topology": self.topology,
            "requests": len(self.samples),
            "sessions lost": len(self.lost),
            "lost on killed shard": len(self.lost_on_killed_shard),
            "logouts caused": self.logouts,
            "503": len(self.unavailable),
            "503 answered before the kill": sum(
                1 for s in self.unavailable if s.done < self.killed_at
            ),
            "longest 503 window": f"{self.longest_503_window:.2f} s",
            "first to last 503": f"{self.span_503:.2f} s",
            "5xx other than 503": self.other_5xx,
            "recovery after kill": "never" if recovery is None else f"{recovery:.2f} s",
        }


async def _one(client: httpx.AsyncClient, url: str, cookie: str, index: int, t0: float) -> Sample:
    at = time.monotonic() - t0
    try:
        r = await client.get(url, headers={"Cookie": cookie, "X-CSRF": "1"})
    except httpx.HTTPError:
        return Sample(at, 0, "no answer", False, index, time.monotonic() - t0 - at)
    code = ""
    if r.status_code != 200:
        try:
            code = str(r.json().get("error", ""))
        except ValueError:
            code = "not json"
    took = time.monotonic() - t0 - at
    return Sample(at, r.status_code, code, "retry-after" in r.headers, index, took)


async def failover_load(
    bases: Sequence[str],
    cookies: Sequence[str],
    *,
    rate: float,
    seconds: float,
    kill_after: float,
    kill: Callable[[], None],
    path: str = "/bff/user",
) -> tuple[list[Sample], float]:
    """`rate` requests a second for `seconds` (round robin over `bases` and `cookies`),
    at most 64 in flight; `kill()` runs (in a thread) `kill_after` seconds in. The
    samples and when the kill happened (seconds since the start)."""
    total = int(rate * seconds)
    gate = asyncio.Semaphore(64)
    killed_at = 0.0
    async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_connections=64)) as client:
        t0 = time.monotonic()

        async def send(i: int) -> Sample:
            async with gate:
                base = bases[i % len(bases)]
                return await _one(
                    client, base + path, cookies[i % len(cookies)], i % len(cookies), t0
                )

        async def killer() -> None:
            nonlocal killed_at
            await asyncio.sleep(kill_after)
            killed_at = time.monotonic() - t0
            await asyncio.to_thread(kill)

        tasks = []
        kill_task = asyncio.create_task(killer())
        for i in range(total):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        samples = list(await asyncio.gather(*tasks))
        await kill_task
    return samples, killed_at


def kill_target(
    group: SentinelGroup | ClusterGroup, session_keys: Sequence[str]
) -> tuple[int, set[int]]:
    """The primary to kill (Sentinel: the primary; Cluster: the one holding the most of
    `session_keys`) and the indexes of the sessions it holds."""
    if isinstance(group, SentinelGroup):
        return group.primary_port(), set(range(len(session_keys)))
    owners = [group.primary_of_key(key) for key in session_keys]
    port = max(set(owners), key=owners.count)
    return port, {i for i, owner in enumerate(owners) if owner == port}


async def still_logged_in(bases: Sequence[str], cookies: Sequence[str]) -> list[int]:
    """Indexes of the cookies whose session no instance finds any more (retrying 503s
    for a few seconds: a store still settling is not a lost session)."""
    lost = []
    async with httpx.AsyncClient(timeout=10) as client:
        for i, cookie in enumerate(cookies):
            for _attempt in range(50):
                r = await client.get(
                    bases[i % len(bases)] + "/bff/user", headers={"Cookie": cookie, "X-CSRF": "1"}
                )
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            if r.status_code != 200:
                lost.append(i)
    return lost


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
    from bench.sessions import login, service
    from bench.wrk import run_wrk
    from bff.store.redis import RedisStore

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
        stack = Stack(Path(tmp))
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
                store = RedisStore.from_url(stores[topology], prefix="bff")
                sessions = service(store, secret_key)
                keys = []
                for cookie in logged:
                    ref = sessions.ref_from_cookie(cookie.partition("=")[2])
                    assert ref is not None
                    keys.append(f"bff:{{{ref.hash}}}:s")
                asyncio.run(store.aclose())
                port, on_shard = kill_target(group, keys)
                _log(
                    f"{topology}: {rate:.0f} req/s for {seconds:.0f} s,"
                    f" killing :{port} at {kill_after:.0f} s"
                )
                samples, killed_at = asyncio.run(
                    failover_load(
                        bases,
                        logged,
                        rate=rate,
                        seconds=seconds,
                        kill_after=kill_after,
                        kill=functools.partial(group.kill, port),
                    )
                )
                lost = asyncio.run(still_logged_in(bases, logged))
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
                figures = Figures(
                    topology, samples, killed_at, lost, [i for i in lost if i in on_shard]
                )
                rows.append(figures.row())
                group.heal()
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
