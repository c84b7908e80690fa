"""Pick the store implementation that BFF_SESSION_STORE names."""

from __future__ import annotations

import time
from collections.abc import Callable

from bff.config.model import Settings
from bff.errors import ConfigError
from bff.store import SessionStore
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from bff.store.redis_url import HA_SCHEMES

__all__ = ["create_store"]


def create_store(settings: Settings, *, clock: Callable[[], float] = time.time) -> SessionStore:
    scheme = settings.session_store.split("://", 1)[0]
    if scheme == "memory":
        return MemoryStore(clock=clock)
    if scheme in ("redis", "rediss", "unix", *HA_SCHEMES):
        return RedisStore.from_url(
            settings.session_store, prefix=settings.store_prefix, clock=clock
        )
    raise ConfigError([f"BFF_SESSION_STORE: {scheme}:// is not supported by this version yet"])
