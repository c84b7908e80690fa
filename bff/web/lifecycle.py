"""The process's place in its life cycle, as /readyz reports it. Pure."""

from __future__ import annotations

__all__ = ["Lifecycle"]


class Lifecycle:
    """`draining` turns true when shutdown begins (SIGTERM) and never back: from then on
    /readyz answers 503 so load balancers stop sending new requests, while requests
    keep being served until the server stops accepting them."""

    __slots__ = ("draining",)

    def __init__(self) -> None:
        self.draining = False

    def drain(self) -> None:
        self.draining = True
