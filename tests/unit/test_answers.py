"""The answer table (bff.answers) against SPEC.md's status codes: each kind's status,
JSON code and Retry-After, the exception tree's kinds and the token results' answers."""

from __future__ import annotations

import json

import pytest

from bff.answers import TABLE, Kind, json_answer
from bff.errors import (
    BadRequest,
    BffError,
    ConfigError,
    CsrfRejected,
    IdpRejected,
    IdpUnavailable,
    NotAuthenticated,
    NotFound,
    PathRejected,
    StoreUnavailable,
    TokenValidationError,
    TooManyRequests,
    UpstreamBusy,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bff.tokens.results import STORE_DOWN, NoToken, TokenFailure

# SPEC.md: kind -> (status, JSON code, Retry-After)
EXPECTED = {
    Kind.INVALID_REQUEST: (400, "invalid_request", None),
    Kind.INVALID_PATH: (400, "invalid_path", None),
    Kind.NOT_AUTHENTICATED: (401, "not_authenticated", None),
    Kind.SESSION_EXPIRED: (401, "session_expired", None),
    Kind.STEP_UP_REQUIRED: (401, "step_up_required", None),
    Kind.CSRF: (403, "csrf", None),
    Kind.UNKNOWN_HOST: (404, "unknown_host", None),
    Kind.NOT_FOUND: (404, "not_found", None),
    Kind.METHOD_NOT_ALLOWED: (405, "method_not_allowed", None),
    Kind.REQUEST_TIMEOUT: (408, "request_timeout", None),
    Kind.TOO_MANY_REQUESTS: (429, "too_many_requests", None),  # Retry-After: the error's
    Kind.SERVER_ERROR: (500, "server_error", None),
    Kind.IDP_UNAVAILABLE: (502, "idp_unavailable", 5),
    Kind.IDP_INVALID_TOKEN: (502, "idp_unavailable", None),
    Kind.TOKEN_EXCHANGE_UNAVAILABLE: (502, "token_exchange_unavailable", None),
    Kind.UPSTREAM_UNAVAILABLE: (502, "upstream_unavailable", 5),
    Kind.SESSION_STORE_UNAVAILABLE: (503, "session_store_unavailable", 5),
    Kind.REFRESH_IN_PROGRESS: (503, "refresh_in_progress", 1),
    Kind.REFRESH_TIMEOUT: (503, "refresh_timeout", 5),
    Kind.UPSTREAM_BUSY: (503, "upstream_busy", 1),
    Kind.NOT_READY: (503, "not_ready", 5),
    Kind.UPSTREAM_TIMEOUT: (504, "upstream_timeout", 5),
}


def test_every_kind_has_exactly_its_spec_answer() -> None:
    assert set(TABLE) == set(Kind) == set(EXPECTED)
    for kind, (status, code, retry_after) in EXPECTED.items():
        entry = TABLE[kind]
        assert (entry.status, entry.code, entry.retry_after) == (status, code, retry_after), kind
        assert entry.description


@pytest.mark.parametrize("kind", list(Kind))
def test_json_answer_renders_the_table(kind: Kind) -> None:
    status, headers, body = json_answer(kind)
    want_status, code, retry_after = EXPECTED[kind]
    assert status == want_status
    assert json.loads(body) == {"error": code, "error_description": TABLE[kind].description}
    named = dict(headers)
    assert named[b"content-type"] == b"application/json"
    assert named[b"cache-control"] == b"no-store"
    assert named[b"content-length"] == str(len(body)).encode()
    assert named.get(b"retry-after") == (None if retry_after is None else str(retry_after).encode())


def test_overrides_keep_the_status() -> None:
    status, headers, body = json_answer(
        Kind.TOO_MANY_REQUESTS, "slow down", code="too_many_logins", retry_after=7
    )
    assert status == 429
    assert json.loads(body) == {"error": "too_many_logins", "error_description": "slow down"}
    assert (b"retry-after", b"7") in headers


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (BffError("x"), 500, "server_error"),
        (ConfigError(["x"]), 500, "server_error"),
        (StoreUnavailable("x"), 503, "session_store_unavailable"),
        (IdpUnavailable("x"), 502, "idp_unavailable"),
        (IdpRejected("invalid_client"), 502, "idp_unavailable"),
        (TokenValidationError("x"), 502, "idp_unavailable"),
        (UpstreamUnavailable("x"), 502, "upstream_unavailable"),
        (UpstreamBusy("x"), 503, "upstream_busy"),
        (UpstreamTimeout("x"), 504, "upstream_timeout"),
        (BadRequest("x"), 400, "invalid_request"),
        (BadRequest("x", code="invalid_sid"), 400, "invalid_sid"),
        (PathRejected("dot segment"), 400, "invalid_path"),
        (NotAuthenticated("x"), 401, "not_authenticated"),
        (CsrfRejected("x"), 403, "csrf"),
        (NotFound("x"), 404, "not_found"),
        (TooManyRequests("x", code="too_many_logins", retry_after=3), 429, "too_many_logins"),
    ],
)
def test_each_error_names_its_kind(error: BffError, status: int, code: str) -> None:
    assert TABLE[error.kind].status == status
    finer = getattr(error, "code", None)
    assert (finer or TABLE[error.kind].code) == code
    if isinstance(error, BadRequest | NotAuthenticated | CsrfRejected | NotFound | TooManyRequests):
        assert error.status == status


def test_too_many_requests_carries_its_own_retry_after() -> None:
    assert TooManyRequests("x", retry_after=0).retry_after == 1
    assert TooManyRequests("x", retry_after=30).retry_after == 30


def test_token_results_answer_from_the_table() -> None:
    assert (STORE_DOWN.status, STORE_DOWN.code, STORE_DOWN.retry_after) == (
        503,
        "session_store_unavailable",
        5,
    )
    failure = TokenFailure(Kind.REFRESH_IN_PROGRESS)
    assert (failure.status, failure.retry_after) == (503, 1)
    expired = NoToken(Kind.SESSION_EXPIRED)
    assert (TABLE[expired.kind].status, expired.code) == (401, "session_expired")


def test_json_answer_adds_extra_members_but_never_overrides_the_code() -> None:
    status, _, body = json_answer(
        Kind.STEP_UP_REQUIRED, extra={"login_url": "/bff/login?acr_values=gold", "error": "x"}
    )
    assert status == 401
    assert json.loads(body) == {
        "error": "step_up_required",
        "error_description": TABLE[Kind.STEP_UP_REQUIRED].description,
        "login_url": "/bff/login?acr_values=gold",
    }
