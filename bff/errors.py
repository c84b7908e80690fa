"""The one exception tree of bff. Each class names its answer kind (`kind`, see
`bff.answers`, the one table of status, JSON code and Retry-After):

    BffError                   anything else                              -> 500
    ├── ConfigError            operator input is invalid (carries every problem)
    ├── BlobError              a sealed record cannot be opened (internal: read as "gone")
    ├── StoreUnavailable       the session store cannot be reached        -> 503
    ├── IdpError               the OpenID provider failed us              -> 502
    │   ├── IdpUnavailable     unreachable, timed out, 5xx, garbage
    │   ├── IdpRejected        a definitive OAuth error answer (carries `error`)
    │   └── TokenExchangeUnsupported  the provider offers no RFC 8693 exchange -> 502
    ├── TokenValidationError   an ID / logout token failed validation     -> 502
    ├── UpstreamUnavailable    an upstream refused, is unreachable, broke -> 502
    │   └── UpstreamBusy       its connections (or the session's share) stayed busy -> 503
    ├── UpstreamTimeout        no connection / answer / next chunk in time -> 504
    └── RequestRejected        the browser's request is refused           -> 4xx
        ├── BadRequest         malformed or forbidden input               -> 400
        │   ├── PathRejected   a path that could change meaning upstream  -> 400 invalid_path
        │   └── ProviderErrorAnswer  the provider sent the browser back with `error=`
        ├── NotAuthenticated   no live session                            -> 401
        ├── CsrfRejected       missing X-CSRF or cross-site               -> 403
        ├── NotFound           no such session (of this user)             -> 404
        └── TooManyRequests    a per-client bound is reached              -> 429

Third-party exceptions (httpx, redis, joserfc) are translated where they enter;
`bff.web.error_pages` and the proxy (`bff.proxy.replies`) render these as HTTP answers
from `bff.answers`.
"""

from __future__ import annotations

from bff.answers import TABLE, Kind

__all__ = [
    "BadRequest",
    "BffError",
    "BlobError",
    "ConfigError",
    "CsrfRejected",
    "IdpError",
    "IdpRejected",
    "IdpUnavailable",
    "NotAuthenticated",
    "NotFound",
    "PathRejected",
    "ProviderErrorAnswer",
    "RequestRejected",
    "StoreUnavailable",
    "TokenExchangeUnsupported",
    "TokenValidationError",
    "TooManyRequests",
    "UpstreamBusy",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "FATAL_REFRESH_ERRORS",
]

# RFC 6749 §5.2 codes after which a refresh token will never work again.
FATAL_REFRESH_ERRORS = frozenset({"invalid_grant"})


class BffError(Exception):
    """Base of every error bff raises on purpose."""

    kind = Kind.SERVER_ERROR


class ConfigError(BffError):
    """Invalid configuration; `problems` lists every one, each naming its setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class BlobError(BffError):
    """A sealed blob could not be opened with any configured key (tampered, truncated, or
    its key is gone). Internal: the session service and the login flow read it as "no such
    record", so it never reaches an answer."""


class StoreUnavailable(BffError):
    """The session store did not answer (connection, timeout, failover)."""

    kind = Kind.SESSION_STORE_UNAVAILABLE


class IdpError(BffError):
    """The OpenID provider did not give a usable answer."""

    kind = Kind.IDP_UNAVAILABLE


class IdpUnavailable(IdpError):
    """Unreachable, timed out, a 5xx, or an answer that is not what the protocol says."""


class TokenExchangeUnsupported(IdpError):
    """The provider's discovery document does not list the token-exchange grant: an
    `exchange` route cannot get its token (502 `token_exchange_unavailable`)."""

    kind = Kind.TOKEN_EXCHANGE_UNAVAILABLE


class IdpRejected(IdpError):
    """A well-formed OAuth error answer, e.g. `invalid_grant` (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error = error
        self.description = description
        super().__init__(f"provider answered {error}")


class TokenValidationError(BffError):
    """An ID token or logout token failed a validation rule; the message names the rule."""

    kind = Kind.IDP_INVALID_TOKEN


class UpstreamUnavailable(BffError):
    """The upstream refused the connection, could not be reached, or broke the exchange."""

    kind = Kind.UPSTREAM_UNAVAILABLE


class UpstreamBusy(UpstreamUnavailable):
    """Every connection this request may use (its origin's, or its session's share) stayed
    busy for the whole queue wait: answered at once instead of after the full timeout."""

    kind = Kind.UPSTREAM_BUSY


class UpstreamTimeout(BffError):
    """The upstream did not connect, answer or send its next chunk within the timeout."""

    kind = Kind.UPSTREAM_TIMEOUT


class RequestRejected(BffError):
    """The request is refused; `status` (from the answer table), `code` and `description`
    form the JSON answer. `reason` is the finer, machine-readable cause for the log
    (default: `code`); like the code, it never carries a token, a code, a cookie value or
    a secret."""

    kind = Kind.INVALID_REQUEST
    retry_after: int | None = None  # seconds, sent as `Retry-After` when set

    def __init__(
        self, description: str, *, code: str | None = None, reason: str | None = None
    ) -> None:
        self.description = description
        self.code = code if code is not None else TABLE[self.kind].code
        self.reason = reason or self.code
        super().__init__(description)

    @property
    def status(self) -> int:
        return TABLE[self.kind].status


class BadRequest(RequestRejected):
    kind = Kind.INVALID_REQUEST


class PathRejected(BadRequest):
    """The request path could change meaning between here and the upstream (THREATS.md
    invariant 1: dot segments, encoded slashes, ...); the message names the rule."""

    kind = Kind.INVALID_PATH


class ProviderErrorAnswer(BadRequest):
    """The provider sent the browser back with `error=` (e.g. the user cancelled)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description or f"the provider refused the login ({error})", code=error)


class CsrfRejected(RequestRejected):
    kind = Kind.CSRF


class NotAuthenticated(RequestRejected):
    kind = Kind.NOT_AUTHENTICATED


class NotFound(RequestRejected):
    kind = Kind.NOT_FOUND


class TooManyRequests(RequestRejected):
    """A bound on what a client may make bff hold was reached; try again later."""

    kind = Kind.TOO_MANY_REQUESTS

    def __init__(self, description: str, *, code: str | None = None, retry_after: int) -> None:
        super().__init__(description, code=code)
        self.retry_after = max(1, retry_after)
