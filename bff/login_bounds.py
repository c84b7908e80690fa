"""Bounds on pending logins (THREATS.md invariant 14; issue 11 defect 3).

A `GET /bff/login` stores a login state for 10 minutes (and, with PAR, makes a
client-authenticated call to the provider) for anyone who asks. Three bounds keep that
in check, each a group of pending `state`s in the store (`SessionStore.add_pending`):

- per client address (after BFF_TRUSTED_PROXIES; an IPv6 /64 counts as one address):
  at most BFF_LOGIN_PENDING_MAX, checked before anything is stored or sent;
- in all, across instances: at most BFF_LOGIN_PENDING_TOTAL, the ceiling that protects
  the store (a distributed flood can delay new logins, never fill the store);
- per browser (binding cookie): at most LOGIN_PENDING_PER_BROWSER, the oldest evicted
  (its callback is then refused), so parallel tabs work and nothing piles up.

A callback that takes its state frees the state's slots, whatever its outcome.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging

from bff.errors import StoreUnavailable, TooManyRequests
from bff.store import SessionStore

__all__ = ["LOGIN_PENDING_PER_BROWSER", "PendingLogins", "client_group"]

LOGIN_PENDING_PER_BROWSER = 5
_ALL = "login:all"
_log = logging.getLogger("bff.auth")


def client_group(address: str | None) -> str:
    """The pending-login group of a client address: the address itself, or its /64 for
    IPv6 (one subscriber usually holds a whole /64, so single addresses would not bound it)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "login:client:unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"login:client:{ip.ipv4_mapped}"
        return f"login:client:{ipaddress.ip_network((ip, 64), strict=False)}"
    return f"login:client:{ip}"


def _browser_group(binding_hash: str) -> str:
    return f"login:browser:{binding_hash}"


class PendingLogins:
    def __init__(self, store: SessionStore, *, per_client: int, total: int, ttl: int) -> None:
        self._store = store
        self._per_client = per_client
        self._total = total
        self._ttl = ttl

    async def admit(self, group: str, state: str) -> None:
        """Count a new login of `group` (a `client_group`), or raise TooManyRequests."""
        retry = await self._store.add_pending(group, state, limit=self._per_client, ttl=self._ttl)
        if retry:
            raise TooManyRequests(
                "too many pending logins from this address; finish one or try again later",
                code="too_many_logins",
                retry_after=retry,
            )
        retry = await self._store.add_pending(_ALL, state, limit=self._total, ttl=self._ttl)
        if retry:
            await self._store.remove_pending(group, state)
            _log.warning("the bound of pending logins in all (%d) is reached", self._total)
            raise TooManyRequests(
                "too many pending logins; try again later",
                code="too_many_logins",
                retry_after=retry,
            )

    async def release(self, group: str, state: str, *, quietly: bool = False) -> None:
        """The login is no longer pending (finished, refused or failed to start)."""
        with contextlib.suppress(*((StoreUnavailable,) if quietly else ())):
            await self._store.remove_pending(group, state)
            await self._store.remove_pending(_ALL, state)

    async def track_browser(self, binding_hash: str, state: str) -> None:
        """One of this browser's pending logins; its oldest beyond the bound are evicted."""
        await self._store.add_pending(
            _browser_group(binding_hash),
            state,
            limit=LOGIN_PENDING_PER_BROWSER,
            ttl=self._ttl,
            evict_oldest=True,
        )

    async def still_tracked(self, binding_hash: str, state: str) -> bool:
        """Take the login off its browser's list: False when it had been evicted."""
        return await self._store.remove_pending(_browser_group(binding_hash), state)
