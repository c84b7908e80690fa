"""Two `bff serve` instances on one highly available store (Redis Sentinel, Redis Cluster;
private servers the test session starts once): login, a refresh storm, logout,
back-channel logout and `bff sessions revoke --sub` across both instances; then a
primary SIGKILLed under a bounded, fixed-rate load: only 200s and 503
`session_store_unavailable` with Retry-After, no logout, no session lost, and recovery
without a restart. The killed node is restarted afterwards (it rejoins as a replica)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bff.store import IndexEntry
from bff.store.redis import RedisStore
from tests.integration.provider_fixture import RunningProvider, start_dev_provider
from tests.integration.upstream_server import UpstreamServer, running_upstream
from tests.support.failover import failover_run
from tests.support.procs import free_port
from tests.support.redis_ha import PASSWORD, ClusterGroup, SentinelGroup
from tests.support.sessions import expire_access_token, login, service
from tests.support.stack import Stack

pytestmark = pytest.mark.redis

PORTS = (free_port(), free_port())  # the two instances (registered at the provider)
ADMIN = f"127.0.0.1:{free_port()}"  # instance A's admin listener (detailed /readyz)
BASES = [f"http://127.0.0.1:{p}" for p in PORTS]
SECRET_KEY = secrets.token_urlsafe(32)
BFF_BIN = Path(sys.executable).parent / "bff"


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_dev_provider(
        client_id="bff-demo",
        client_secret="bff-demo-secret-not-for-production",
        redirect_uris=[f"{b}/bff/callback" for b in BASES],
        post_logout_redirect_uris=[f"{b}/" for b in BASES],
        backchannel_logout_uri=f"{BASES[0]}/bff/backchannel-logout",
        access_token_ttl=3600,
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@dataclasses.dataclass
class Pair:
    group: SentinelGroup | ClusterGroup
    env: dict[str, str]
    prefix: str

    def store(self) -> RedisStore:
        return RedisStore.from_url(self.group.url, prefix=self.prefix)


@pytest.fixture(scope="module", params=["sentinel", "cluster"])
def pair(
    request: pytest.FixtureRequest,
    op: RunningProvider,
    up: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    group = request.getfixturevalue(f"redis_{request.param}")
    prefix = f"bffha-{uuid.uuid4().hex[:12]}"
    env = {
        "BFF_ISSUER": op.issuer,
        "BFF_CLIENT_ID": op.client_id,
        "BFF_CLIENT_SECRET": op.client_secret,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": group.url,
        "BFF_STORE_PREFIX": prefix,
        "BFF_ROUTES": f"/api={up.url}",
    }
    stack = Stack(tmp_path_factory.mktemp(request.param))
    try:
        for name, port in zip(("bff-a", "bff-b"), PORTS, strict=True):
            stack.bff(
                name,
                port=port,
                workers=1,
                env={
                    **env,
                    "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
                    **({"BFF_ADMIN_LISTEN": ADMIN} if name == "bff-a" else {}),
                },
            )
        yield Pair(group, env, prefix)
    finally:
        stack.stop()


async def expire(pair: Pair, cookie: str) -> None:
    store = pair.store()
    try:
        await expire_access_token(service(store, SECRET_KEY), cookie)
    finally:
        await store.aclose()


def user(base: str, cookie: str) -> httpx.Response:
    return httpx.get(f"{base}/bff/user", headers={"Cookie": cookie, "X-CSRF": "1"}, timeout=10)


async def storm(cookie: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.get(
                    f"{BASES[i % 2]}/api/storm/{i}", headers={"Cookie": cookie, "X-CSRF": "1"}
                )
                for i in range(count)
            )
        )
    return [a.status_code for a in answers]


def test_sessions_work_across_two_instances(pair: Pair, op: RunningProvider) -> None:
    alice_a, alice_b = login(BASES[0], "alice"), login(BASES[1], "alice")
    bob = login(BASES[1], "bob")
    assert user(BASES[0], alice_b).json()["sub"] == "alice"  # made on B, read on A
    assert user(BASES[1], alice_a).status_code == 200

    # a refresh storm on both instances: one refresh grant
    asyncio.run(expire(pair, alice_a))
    before = op.stats()["refresh_grants"]
    assert asyncio.run(storm(alice_a, 20)) == [200] * 20
    assert op.stats()["refresh_grants"] == before + 1

    # logout on B ends the session on A too
    logout = httpx.post(
        f"{BASES[1]}/bff/logout", headers={"Cookie": bob, "X-CSRF": "1"}, timeout=10
    )
    assert logout.status_code in (200, 302, 303)
    assert user(BASES[0], bob).status_code == 401

    # back-channel logout (sent to A) ends the sessions made on A and on B
    assert op.backchannel_logout(sub="alice")["ended_sessions"] >= 1
    assert user(BASES[0], alice_a).status_code == 401
    assert user(BASES[1], alice_b).status_code == 401

    # `bff sessions revoke --sub` finds the sessions of every instance
    carol = [login(BASES[0], "carol"), login(BASES[1], "carol")]
    dave = login(BASES[0], "dave")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    done = subprocess.run(
        [str(BFF_BIN), "sessions", "revoke", "--sub", "carol"],
        env={**clean, **pair.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [user(BASES[i], c).status_code for i, c in enumerate(carol)] == [401, 401]
    assert user(BASES[1], dave).status_code == 200


def test_check_config_reports_the_topology_without_secrets(pair: Pair) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    done = subprocess.run(
        [str(BFF_BIN), "check-config", "--format", "json"],
        env={**clean, **pair.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ha-test-password" not in done.stdout
    report: dict[str, Any] = json.loads(done.stdout)
    topology = report["session_store_topology"]
    assert topology["kind"] in ("sentinel", "cluster")
    expected = (1, 2) if topology["kind"] == "sentinel" else (3, 3)
    assert (len(topology["primaries"]), len(topology["replicas"])) == expected
    assert all(node["reachable"] for node in topology["primaries"] + topology["replicas"])
    assert "store" not in httpx.get(f"{BASES[0]}/readyz", timeout=10).json()  # public: bare
    ready = httpx.get(f"http://{ADMIN}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["store"]["kind"] == topology["kind"]
    assert "ha-test-password" not in ready.text


def test_a_primary_killed_under_load(pair: Pair) -> None:
    cookies = [login(BASES[i % 2], f"load-user-{i}") for i in range(12)]
    figures = failover_run(
        pair.group.__class__.__name__,
        pair.group,
        BASES,
        cookies,
        prefix=pair.prefix,
        secret_key=SECRET_KEY,
        rate=40,
        seconds=10,
        kill_after=2,
    )
    print(figures.row())  # shown with -s / on failure
    assert figures.other_errors == []  # 200, or 503 session_store_unavailable + Retry-After
    assert figures.logouts == 0 and figures.other_5xx == 0
    assert figures.unavailable, "the kill was not noticed: the test measured nothing"
    assert figures.recovery is not None  # the last answers were 200s, no restart
    lost, on_killed_shard = figures.lost, figures.lost_on_killed_shard
    assert [i for i in lost if i not in on_killed_shard] == []  # surviving shards: none lost
    assert lost == []  # and, written with WAIT 1, none on the killed shard either


def _waits(port: int) -> int:
    with redis.Redis(port=port, password=PASSWORD) as node:
        stats: dict[str, Any] = node.info("commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
def test_session_writes_wait_for_a_replica_on_the_node_written(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Login, refresh and logout writes are followed by WAIT on the primary that took
    them (on Cluster: the session's node), so a failover right after cannot undo them."""
    group = request.getfixturevalue(f"redis_{kind}")
    prefix = f"bffwait-{uuid.uuid4().hex[:8]}"
    session_hash = secrets.token_hex(32)
    key = f"{prefix}:{{{session_hash}}}:s"
    node = group.primary_port() if kind == "sentinel" else group.primary_of_key(key)
    index = IndexEntry(sub="u", idp_sid=None, expires_at=int(time.time()) + 60)

    async def writes() -> None:
        store = RedisStore.from_url(group.url, prefix=prefix)
        try:
            await store.create_session(session_hash, b"x", ttl=60, index=index)
            assert await store.update_session(session_hash, b"y", ttl=60)
            assert await store.delete_session(session_hash, index=index)
        finally:
            await store.aclose()

    before = _waits(node)
    asyncio.run(writes())
    assert _waits(node) - before >= 3


def test_cluster_hot_path_follows_a_slot_that_moved(redis_cluster: ClusterGroup) -> None:
    """The cluster GETEX goes straight to the node of the store's slot map; when the slot
    has moved since (resharding), the MOVED answer sends it the generic way, which
    follows the redirect: the session is found, not a 503."""
    prefix = f"bffmoved-{uuid.uuid4().hex[:8]}"
    session_hash = secrets.token_hex(32)
    key = f"{prefix}:{{{session_hash}}}:s"
    index = IndexEntry(sub="u", idp_sid=None, expires_at=int(time.time()) + 60)
    source = redis_cluster.primary_of_key(key)
    target = next(
        p for p, role in redis_cluster.roles().items() if role == "master" and p != source
    )

    def node(port: int) -> redis.Redis:
        return redis.Redis(port=port, password=PASSWORD, socket_timeout=5)

    async def scenario() -> list[bytes | None]:
        store = RedisStore.from_url(redis_cluster.url, prefix=prefix)
        try:
            await store.create_session(session_hash, b"blob", ttl=60, index=index)
            seen = [await store.load_session(session_hash, ttl=60)]  # the map is loaded
            await asyncio.to_thread(move_slot)
            seen.append(await store.load_session(session_hash, ttl=60))  # MOVED, followed
            seen.append(await store.load_session(session_hash, ttl=60))  # the new map
            return seen
        finally:
            await store.aclose()

    def move_slot() -> None:
        with node(source) as src, node(target) as dst:
            slot = int(src.execute_command("CLUSTER KEYSLOT", key))
            src_id = src.execute_command("CLUSTER MYID").decode()
            dst_id = dst.execute_command("CLUSTER MYID").decode()
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            src.execute_command(
                "MIGRATE", "127.0.0.1", target, "", 0, 5000, "AUTH", PASSWORD, "KEYS", key
            )
            for port in (source, target):
                with node(port) as each:
                    each.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)

    assert asyncio.run(scenario()) == [b"blob"] * 3
    assert redis_cluster.primary_of_key(key) == target
