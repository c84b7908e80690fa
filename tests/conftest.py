"""Shared fixtures: anyio on asyncio, the test Redis URL, and the private Redis Cluster
and Sentinel group (started once per session, only when a test asks for them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.redis_ha import ClusterGroup, SentinelGroup, running_cluster, running_sentinel


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis (never stopped or broken by tests)."""
    return os.environ.get("BFF_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _ha_or_skip() -> None:
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        if os.environ.get("BFF_TEST_SKIP_REDIS") == "1":
            pytest.skip("redis-server missing and BFF_TEST_SKIP_REDIS=1")
        pytest.fail("redis-server and redis-cli are needed (Debian package redis-server)")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterGroup]:
    """A private Redis Cluster (3 primaries + 3 replicas), started once per test session.
    A test that kills a node restarts it and waits for a healthy cluster (`heal`)."""
    _ha_or_skip()
    with running_cluster() as group:
        yield group


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelGroup]:
    """A private Sentinel group (1 primary, 2 replicas, 3 sentinels), once per session."""
    _ha_or_skip()
    with running_sentinel() as group:
        yield group
