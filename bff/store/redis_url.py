"""The highly available store URLs, parsed without I/O (so `check-config` and the store
factory read them the same way):

    redis+sentinel://[user:pass@]h:p[,h:p…]/SERVICE[?db=N&sentinel_password=…]
    redis+cluster://[user:pass@]h:p[,h:p…]
    rediss+sentinel://…, rediss+cluster://…   the same over TLS (to every node)

The user and password are those of the Redis data nodes; `sentinel_password` (and
`sentinel_username`) authenticate to the sentinels when they have a password of their own.
Nothing here ever echoes a password: errors name the part that is wrong, and
`mask_store_url` hides both passwords for display.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["HA_SCHEMES", "HaStoreUrl", "mask_store_url", "parse_ha_url"]

HA_SCHEMES = ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
_DEFAULT_PORT = MappingProxyType({"sentinel": 26379, "cluster": 6379})
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SERVICE_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_QUERY = MappingProxyType(
    {
        "sentinel": frozenset({"db", "sentinel_password", "sentinel_username"}),
        "cluster": frozenset(),
    }
)
_MAX_NODES = 64


@dataclass(frozen=True, slots=True)
class HaStoreUrl:
    """One parsed HA store URL; `password` and `sentinel_password` are secrets."""

    kind: str  # "sentinel" or "cluster"
    tls: bool
    nodes: tuple[tuple[str, int], ...]  # the sentinels, or the cluster's seed nodes
    username: str | None = None
    password: str | None = None
    service: str = ""  # sentinel only: the monitored primary's name
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def __repr__(self) -> str:  # never a password, in a traceback or a log line
        nodes = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return f"HaStoreUrl({self.kind}, tls={self.tls}, nodes={nodes}, service={self.service!r})"


def _node(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest else ""
        if rest and not rest.startswith(":"):
            raise ValueError("a node must be host:port")
        ipaddress.IPv6Address(host)
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
        if not _HOST_RE.fullmatch(host):
            raise ValueError("a node must be host:port")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("a node's port must be 1-65535")
    return host, int(port_text)


def parse_ha_url(url: str) -> HaStoreUrl:
    """Parse a `redis+sentinel://` or `redis+cluster://` URL (or its `rediss+` form).
    ValueError says what is wrong without quoting the URL (it may hold a password)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in HA_SCHEMES:
        raise ValueError(f"not one of {', '.join(s + '://' for s in HA_SCHEMES)}")
    kind = scheme.partition("+")[2]
    parts = urlsplit(f"x://{rest}")
    if parts.fragment:
        raise ValueError("no #fragment allowed")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user_text, has_password, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if has_password else None
    if not hosts:
        raise ValueError("at least one host:port is needed")
    texts = hosts.split(",")
    if len(texts) > _MAX_NODES or any(not t for t in texts):
        raise ValueError(f"1-{_MAX_NODES} comma-separated host:port nodes are needed")
    nodes = tuple(_node(t, _DEFAULT_PORT[kind]) for t in texts)
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key not in _QUERY[kind] or key in query:
            raise ValueError(f"unknown or repeated query parameter {key[:40]!r}")
        query[key] = value
    path = unquote(parts.path).strip("/")
    service = ""
    db = 0
    if kind == "cluster":
        if path:
            raise ValueError("a cluster URL has no path (Redis Cluster has only db 0)")
    else:
        if not _SERVICE_RE.fullmatch(path):
            raise ValueError("a sentinel URL needs /SERVICE, the monitored primary's name")
        service = path
        db_text = query.get("db", "0")
        if not db_text.isdigit() or int(db_text) > 1_000_000:
            raise ValueError("db must be a small non-negative integer")
        db = int(db_text)
    return HaStoreUrl(
        kind=kind,
        tls=scheme.startswith("rediss"),
        nodes=nodes,
        username=username,
        password=password,
        service=service,
        db=db,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def mask_store_url(url: str) -> str:
    """The URL with the password of its user info and any `*password=` parameter masked."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, qmark, query = rest.partition("?")
    userinfo, at, hosts = head.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":****"
    masked = f"{scheme}://{userinfo}{at}{hosts}"
    if qmark:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked += "?" + "&".join(
            f"{quote(k)}={'****' if 'password' in k.lower() else quote(v)}" for k, v in pairs
        )
    return masked
