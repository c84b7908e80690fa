"""The Redis store's failure boundary: every redis-py or socket error becomes
`StoreUnavailable`, with a message that names the operation only (never a key, a value
or the URL: redis error texts carry addresses)."""

from __future__ import annotations

from redis.exceptions import RedisClusterException, RedisError

from bff.errors import StoreUnavailable

__all__ = ["BACKEND_ERRORS", "Boundary"]

# OSError covers TimeoutError and raw socket failures; RedisClusterException (not a
# RedisError) is what redis-py raises when no node of a cluster can be reached.
BACKEND_ERRORS = (RedisError, RedisClusterException, OSError)


class Boundary:
    """`with Boundary(op):` maps backend failures to `StoreUnavailable` (no generator: cheap)."""

    __slots__ = ("_op",)

    def __init__(self, op: str) -> None:
        self._op = op

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, BACKEND_ERRORS):
            raise StoreUnavailable(
                f"session store failed during {self._op} ({type(exc).__name__})"
            ) from exc
