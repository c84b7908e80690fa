"""Shared by the header tests: the rules of a frontend with the default cookie names, a
trusted 10/8, a public host; raw ASGI headers from pairs; the whole forwarding path."""

from __future__ import annotations

from bff.proxy.forward_rules import ForwardRules
from bff.proxy.forwarding import outbound_headers
from bff.proxy.request_headers import filter_request_headers

__all__ = ["RULES", "forward", "h", "names", "value"]

RULES = ForwardRules.create(
    ["bff-session", "bff-session-login"], ["10.0.0.0/8"], public_host="bff.example:8443"
)


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in pairs]


def forward(
    *pairs: tuple[str, str], trusted: bool = False, bearer: str | None = "tok"
) -> list[tuple[str, str]]:
    inbound = filter_request_headers(h(*pairs), RULES, trusted=trusted)
    return outbound_headers(
        inbound, bearer=bearer, peer="192.0.2.7", scheme="https", request_id="rid-1"
    )


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in headers]


def value(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]
