"""The one exception tree of bff.

    BffError
    ├── ConfigError                 operator input is invalid (carries every problem)
    ├── StoreUnavailable            the session store cannot be reached      -> 503
    ├── IdpError                    the OpenID provider failed us            -> 502
    │   ├── IdpUnavailable          unreachable, timed out, 5xx, garbage
    │   └── IdpRejected             a definitive OAuth error answer (carries `error`)
    ├── TokenValidationError        an ID / logout token failed validation   -> 400 / 502
    └── RequestRejected             the browser's request is refused         -> 4xx
        ├── CsrfRejected            missing X-CSRF or cross-site             -> 403
        ├── NotAuthenticated        no live session                          -> 401
        ├── TooManyRequests         a per-client bound is reached            -> 429
        └── BadRequest              malformed or forbidden input             -> 400

Third-party exceptions (httpx, redis, joserfc) are translated where they enter;
only `app.py` turns these into HTTP answers.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "BffError",
    "ConfigError",
    "CsrfRejected",
    "IdpError",
    "IdpRejected",
    "IdpUnavailable",
    "NotAuthenticated",
    "RequestRejected",
    "StoreUnavailable",
    "TokenValidationError",
    "TooManyRequests",
    "FATAL_REFRESH_ERRORS",
]

# RFC 6749 §5.2 codes after which a refresh token will never work again.
FATAL_REFRESH_ERRORS = frozenset({"invalid_grant"})


class BffError(Exception):
    """Base of every error bff raises on purpose."""


class ConfigError(BffError):
    """Invalid configuration; `problems` lists every one, each naming its setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class StoreUnavailable(BffError):
    """The session store did not answer (connection, timeout, failover)."""


class IdpError(BffError):
    """The OpenID provider did not give a usable answer."""


class IdpUnavailable(IdpError):
    """Unreachable, timed out, a 5xx, or an answer that is not what the protocol says."""


class IdpRejected(IdpError):
    """A well-formed OAuth error answer, e.g. `invalid_grant` (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error = error
        self.description = description
        super().__init__(f"provider answered {error}")


class TokenValidationError(BffError):
    """An ID token or logout token failed a validation rule; the message names the rule."""


class RequestRejected(BffError):
    """The request is refused; `status`, `code` and `description` form the JSON answer.
    `reason` is the finer, machine-readable cause for the log (default: `code`); like the
    code, it never carries a token, a code, a cookie value or a secret."""

    status = 400
    code = "invalid_request"
    retry_after: int | None = None  # seconds, sent as `Retry-After` when set

    def __init__(
        self, description: str, *, code: str | None = None, reason: str | None = None
    ) -> None:
        self.description = description
        if code is not None:
            self.code = code
        self.reason = reason or self.code
        super().__init__(description)


class BadRequest(RequestRejected):
    status = 400
    code = "invalid_request"


class CsrfRejected(RequestRejected):
    status = 403
    code = "csrf"


class NotAuthenticated(RequestRejected):
    status = 401
    code = "not_authenticated"


class TooManyRequests(RequestRejected):
    """A bound on what a client may make bff hold was reached; try again later."""

    status = 429
    code = "too_many_requests"

    def __init__(self, description: str, *, code: str | None = None, retry_after: int) -> None:
        super().__init__(description, code=code)
        self.retry_after = max(1, retry_after)
