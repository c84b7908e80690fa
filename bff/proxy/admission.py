"""Which requests a route takes at all, decided before a header is filtered or a session
looked up (SPEC.md "The proxy"; THREATS.md invariant 13). Pure.

Only these methods are ever forwarded (a route's `methods` is a subset of them), compared
exactly (some servers read methods upper-cased). Never forwarded: TRACE echoes the
request, bearer included, to whoever can read the answer (cross-site tracing); TRACK is
IIS's TRACE; CONNECT would make the upstream a tunnel; WebDAV and cache methods
(PROPFIND, LOCK, PURGE) reach what a route never meant to open.
"""

from __future__ import annotations

from bff.answers import Answer
from bff.proxy.replies import NOT_ALLOWED, PATH_PARAMS
from bff.proxy.routes import CanonicalPath, Route

__all__ = ["ORDINARY_METHODS", "Refusal", "refusal"]

ORDINARY_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_ALLOW_ANY = ", ".join(sorted(ORDINARY_METHODS)).encode("ascii")  # a route without `methods`

# An answer and the one extra header it carries (the 405's Allow), if any.
Refusal = tuple[Answer, tuple[bytes, bytes] | None]


def refusal(route: Route, method: str, path: CanonicalPath) -> Refusal | None:
    """Why `route` does not take this request (its method, a `;` path parameter on a
    route without `path_params = true`); None: it does."""
    config = route.config
    if config.methods is not None and method not in config.methods:
        return NOT_ALLOWED, (b"allow", route.allow)
    if method not in ORDINARY_METHODS:  # a route without `methods`: no PROPFIND, PURGE...
        return NOT_ALLOWED, (b"allow", _ALLOW_ANY)
    if path.params and not config.path_params:
        return PATH_PARAMS, None
    return None
