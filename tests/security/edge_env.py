"""Shared by the edge modules of tests/security (login and callback, methods, resource
exhaustion, admin listener): the in-process bff of tests/unit/web/env.py on the
memory store and a fake clock, against the respx-shaped provider."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bff.store.memory import MemoryStore
from tests.fake_idp import Clock, FakeIdp
from tests.unit.web.env import Env

__all__ = ["Env", "edge_env"]


@contextlib.asynccontextmanager
async def edge_env(store: Any = None, **env: str) -> AsyncIterator[Env]:
    clock = Clock()
    e = Env(FakeIdp(clock=clock), clock, store or MemoryStore(clock=clock), **env)
    try:
        yield e
    finally:
        await e.aclose()
