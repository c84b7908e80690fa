"""A primary killed under load, and what users saw: the fixed-rate load loop, the figures
it counts (logouts, 503s, other errors, recovery, sessions lost) and `failover_run`, the
whole sequence `make chaos` and tests/integration/test_ha_store.py both run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from bff.store.redis import RedisStore
from tests.support.redis_ha import ClusterGroup, SentinelGroup
from tests.support.sessions import service

__all__ = ["Figures", "Sample", "failover_load", "failover_run", "kill_target", "still_logged_in"]


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


def failover_run(
    topology: str,
    group: SentinelGroup | ClusterGroup,
    bases: Sequence[str],
    cookies: Sequence[str],
    *,
    prefix: str,
    secret_key: str,
    rate: float,
    seconds: float,
    kill_after: float,
    log: Callable[[str], None] = lambda _message: None,
) -> Figures:
    """Kill the primary holding most of the logged-in `cookies`' sessions (stored under
    `prefix` in `group`) `kill_after` seconds into a `failover_load`, heal the group
    (the killed node back as a replica), then count the sessions lost."""
    store = RedisStore.from_url(group.url, prefix=prefix)
    sessions = service(store, secret_key)
    keys = []
    for cookie in cookies:
        ref = sessions.ref_from_cookie(cookie.partition("=")[2])
        assert ref is not None
        keys.append(f"{prefix}:{{{ref.hash}}}:s")
    asyncio.run(store.aclose())
    port, on_killed_shard = kill_target(group, keys)
    log(f"{topology}: {rate:.0f} req/s for {seconds:.0f} s, killing :{port} at {kill_after:.0f} s")
    try:
        samples, killed_at = asyncio.run(
            failover_load(
                bases,
                cookies,
                rate=rate,
                seconds=seconds,
                kill_after=kill_after,
                kill=lambda: group.kill(port),
            )
        )
    finally:
        group.heal()  # the killed node back as a replica, for what follows
    lost = asyncio.run(still_logged_in(bases, cookies))
    return Figures(topology, samples, killed_at, lost, [i for i in lost if i in on_killed_shard])
