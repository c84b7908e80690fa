"""Request parameters: the authorization request's (PKCE, every login resource, step-up,
`dpop_jkt`) and its query pairs, a repeated parameter repeated; the RP-initiated logout
URL's; the token-request forms
of the grants beyond code and refresh: client credentials (RFC 6749 §4.4) and token
exchange (RFC 8693), each narrowed by a `resource` (RFC 8707) and `scope`. Pure: the
adapter (`bff.oidc.client`) sends them with the client's authentication.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "authorization_params",
    "client_credentials_form",
    "end_session_params",
    "exchange_form",
    "query_pairs",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3


def authorization_params(
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    nonce: str,
    code_challenge: str,
    resources: list[str],
    prompt: str | None,
    acr_values: str | None,
    max_age: int | None,
    dpop_jkt: str | None,
) -> dict[str, str | list[str]]:
    """The authorization code request (S256 PKCE); optional parameters only when set."""
    params: dict[str, str | list[str]] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if resources:
        params["resource"] = resources
    if prompt:
        params["prompt"] = prompt
    if acr_values:
        params["acr_values"] = acr_values  # a step-up (RFC 9470, OIDC Core §3.1.2.1)
    if max_age is not None:
        params["max_age"] = str(max_age)
    if dpop_jkt is not None:
        params["dpop_jkt"] = dpop_jkt  # binds the code to the session's key (RFC 9449 §10)
    return params


def client_credentials_form(*, scope: str | None, resource: str | None) -> dict[str, str]:
    """A token for the client itself, narrowed by `resource`/`scope`."""
    return _narrowed({"grant_type": "client_credentials"}, scope, resource)


def exchange_form(subject_token: str, *, scope: str | None, resource: str | None) -> dict[str, str]:
    """The user's access token exchanged for an access token for `resource`/`scope`."""
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
    }
    return _narrowed(form, scope, resource)


def end_session_params(
    *,
    client_id: str,
    post_logout_redirect_uri: str,
    id_token_hint: str | None,
    logout_hint: str | None,
) -> list[tuple[str, str]]:
    """RP-Initiated Logout 1.0: `id_token_hint` when given, else `logout_hint` if any."""
    params = [("client_id", client_id), ("post_logout_redirect_uri", post_logout_redirect_uri)]
    if id_token_hint:
        params.insert(0, ("id_token_hint", id_token_hint))
    elif logout_hint:
        params.insert(1, ("logout_hint", logout_hint))
    return params


def query_pairs(params: Mapping[str, str | list[str]]) -> list[tuple[str, str]]:
    """(name, value) pairs, a list value as the parameter repeated."""
    return [(k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)]


def _narrowed(form: dict[str, str], scope: str | None, resource: str | None) -> dict[str, str]:
    if scope:
        form["scope"] = scope
    if resource:
        form["resource"] = resource
    return form
