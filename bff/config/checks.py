"""Value rules of the configuration: what an acceptable URL, resource indicator and
listen address are, and which hosts are loopback. Pure: each returns the problems it
finds (or raises ValueError) and the loader files them under the setting's name."""

from __future__ import annotations

import ipaddress
import re
from types import MappingProxyType
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "resource_problem", "split_host_port", "url_problems", "web_origin"]

_DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})
# RFC 3986 §3.1 scheme, then ':' and a non-empty rest of printable ASCII without spaces.
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True  # RFC 6761 §6.3: every name under .localhost is loopback (browsers agree)
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port); ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{value!r} is not HOST:PORT")
        host = host[1:-1]
    if not host or any(ch.isspace() or ch in "/[]" for ch in host):
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host, int(port_text)


def url_problems(
    value: str,
    source: str,
    *,
    allow_path: bool = True,
    https_unless_loopback: bool = False,
) -> list[str]:
    """Why `value` is not an acceptable http(s) URL for `source`, one line each."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{source}: not an http(s) URL: {value!r}"]
    problems = []
    if parts.username or parts.password:
        problems.append(f"{source}: must not carry credentials")
    if parts.query or parts.fragment:
        problems.append(f"{source}: must not have a query or fragment")
    if not allow_path and parts.path not in ("", "/"):
        problems.append(f"{source}: must be an origin without a path, got {value!r}")
    if https_unless_loopback and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        problems.append(
            f"{source}: plain http is allowed only for localhost and loopback addresses"
        )
    return problems


def resource_problem(value: str) -> str | None:
    """Why `value` is not an RFC 8707 §2 resource indicator (an absolute URI without a
    fragment: `https://api.example.com`, `urn:example:api`, `api://orders`), or None."""
    if not _ABSOLUTE_URI.fullmatch(value):
        return (
            f"{value!r} is not an absolute URI (RFC 8707 resource indicator), "
            "e.g. https://api.example.com, urn:example:api or api://orders"
        )
    if "#" in value:
        return f"{value!r} must not have a fragment (RFC 8707)"
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        return f"{value!r} has no host"
    return None


def web_origin(value: str) -> str | None:
    """`scheme://host[:port]` of an http(s) origin as browsers send it in `Origin`
    (lower case, default port dropped); None for anything else (a path, credentials,
    `null`)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = f"[{host}]" if ":" in host else host
    suffix = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{suffix}"
