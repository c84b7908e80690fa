"""Bounds on pending logins (THREATS.md invariant 14; issue 11 defect 3).

A `GET /bff/login` stores a login state for 10 minutes (and, with PAR, makes a
client-authenticated call to the provider) for anyone who asks. Three bounds keep that
in check, each a group of pending `state`s in the store, kept through the session service
(`SessionService.add_pending`, which owns the store):

- per client address (after BFF_TRUSTED_PROXIES; an IPv6 /64 counts as one address):
  at most BFF_LOGIN_PENDING_MAX, checked before anything is stored or sent; and, nested,
  per IPv6 /56 at most 4x and per /48 at most 16x that (`IPV6_NESTED_CAPS`: one holder of
  a /48 - 65,536 /64s - would otherwise fill the total bound alone);
- in all, across instances: at most BFF_LOGIN_PENDING_TOTAL, the ceiling that protects
  the store (a distributed flood can delay new logins, never fill the store);
- per browser (binding cookie): at most LOGIN_PENDING_PER_BROWSER, the oldest evicted
  (its callback is then refused), so parallel tabs work and nothing piles up.

A callback that takes its state frees the state's slots, whatever its outcome.
"""

from __future__ import annotations

import ipaddress
import logging

from bff.errors import StoreUnavailable, TooManyRequests
from bff.session.service_ops import StoreOps

__all__ = ["IPV6_NESTED_CAPS", "LOGIN_PENDING_PER_BROWSER", "PendingLogins", "client_group"]

LOGIN_PENDING_PER_BROWSER = 5
# (prefix length, multiple of BFF_LOGIN_PENDING_MAX) of the groups around an IPv6 /64
IPV6_NESTED_CAPS = ((56, 4), (48, 16))
_ALL = "login:all"
_PREFIX = "login:client:"
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


def _nested(group: str, per_client: int) -> list[tuple[str, int]]:
    """(group, limit) pairs a login of `group` counts in, innermost first: the group
    itself, and for an IPv6 /64 its /56 and /48 (derived from the group's text, so login
    states stored before keep working)."""
    groups = [(group, per_client)]
    if group.startswith(_PREFIX) and group.endswith("/64"):
        try:
            net = ipaddress.IPv6Network(group[len(_PREFIX) :])
        except ValueError:
            return groups
        for length, multiple in IPV6_NESTED_CAPS:
            groups.append((f"{_PREFIX}{net.supernet(new_prefix=length)}", per_client * multiple))
    return groups


def _browser_group(binding_hash: str) -> str:
    return f"login:browser:{binding_hash}"


class PendingLogins:
    """The pending logins of one frontend, bounded per client, in all and per browser."""

    def __init__(self, sessions: StoreOps, *, per_client: int, total: int, ttl: int) -> None:
        self._sessions = sessions
        self._per_client = per_client
        self._total = total
        self._ttl = ttl

    async def admit(self, group: str, state: str) -> None:
        """Count a new login of `group` (a `client_group`), or raise TooManyRequests.
        Step by step: a refusal or a store failure undoes the steps already taken."""
        steps = [*_nested(group, self._per_client), (_ALL, self._total)]
        taken: list[str] = []
        try:
            for name, limit in steps:
                retry = await self._sessions.add_pending(name, state, limit=limit, ttl=self._ttl)
                if retry:
                    if name == _ALL:
                        _log.warning("the bound of pending logins in all (%d) is reached", limit)
                    raise TooManyRequests(
                        "too many pending logins from this address; finish one or try again later"
                        if name != _ALL
                        else "too many pending logins; try again later",
                        code="too_many_logins",
                        retry_after=retry,
                    )
                taken.append(name)
        except BaseException:
            await self._remove(taken, state, quietly=True)
            raise

    async def release(self, group: str, state: str, *, quietly: bool = False) -> None:
        """The login is no longer pending (finished, refused or failed to start)."""
        names = [name for name, _ in _nested(group, self._per_client)]
        await self._remove([*names, _ALL], state, quietly=quietly)

    async def _remove(self, names: list[str], state: str, *, quietly: bool) -> None:
        """Every removal is tried, whatever an earlier one did; unless `quietly`, the
        first store failure is raised after all of them."""
        failure: StoreUnavailable | None = None
        for name in names:
            try:
                await self._sessions.remove_pending(name, state)
            except StoreUnavailable as exc:
                failure = failure or exc
        if failure is not None and not quietly:
            raise failure

    async def track_browser(self, binding_hash: str, state: str) -> None:
        """One of this browser's pending logins; its oldest beyond the bound are evicted."""
        await self._sessions.add_pending(
            _browser_group(binding_hash),
            state,
            limit=LOGIN_PENDING_PER_BROWSER,
            ttl=self._ttl,
            evict_oldest=True,
        )

    async def still_tracked(self, binding_hash: str, state: str) -> bool:
        """Take the login off its browser's list: False when it had been evicted."""
        return await self._sessions.remove_pending(_browser_group(binding_hash), state)
