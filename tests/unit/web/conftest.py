"""The fixtures of the /bff endpoint tests: a clock and a fresh in-process bff."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bff.store.memory import MemoryStore
from tests.fake_idp import Clock, FakeIdp
from tests.unit.web.env import Env


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def env(clock: Clock) -> AsyncIterator[Env]:
    e = Env(FakeIdp(clock=clock), clock, MemoryStore(clock=clock))
    yield e
    await e.aclose()
