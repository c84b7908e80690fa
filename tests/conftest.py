"""Shared fixtures: anyio on asyncio, and the test Redis URL."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis (never stopped or broken by tests)."""
    return os.environ.get("BFF_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
