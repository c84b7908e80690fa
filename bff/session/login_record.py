"""The pending-login record: what `/bff/login` stores (sealed) under its `state` and the
callback takes back, and its versioned JSON (de)serialisation. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["LoginState", "decode_login_state", "encode_login_state"]

_VERSION = 1


@dataclass(frozen=True, slots=True)
class LoginState:
    """A pending login, stored server-side under its `state`."""

    code_verifier: str = field(repr=False)
    nonce: str = field(repr=False)
    return_url: str
    binding: str = field(repr=False)  # hash of the browser-binding cookie value
    issuer: str
    created_at: int
    # The session this browser had when the login started (its hash): the provider's
    # cross-site redirect back carries no SameSite=Strict cookie, so the callback would
    # otherwise never learn which session the new one replaces.
    previous: str | None = None
    # The pending-login group (client address) this login is counted in, released on
    # the callback even when the browser comes back from another address.
    client_group: str | None = field(default=None, repr=False)
    # A step-up login (RFC 9470): what the ID token's `acr` / `auth_time` must satisfy.
    acr_values: str | None = None
    max_age: int | None = None
    # DPoP: the key the session will hold (its thumbprint went out as `dpop_jkt`).
    dpop_key: str | None = field(default=None, repr=False)


def encode_login_state(s: LoginState) -> bytes:
    doc = {
        "v": _VERSION,
        "cv": s.code_verifier,
        "n": s.nonce,
        "r": s.return_url,
        "b": s.binding,
        "iss": s.issuer,
        "ca": s.created_at,
        "p": s.previous,
        "cg": s.client_group,
    }
    if s.acr_values is not None:
        doc["acr"] = s.acr_values
    if s.max_age is not None:
        doc["ma"] = s.max_age
    if s.dpop_key is not None:
        doc["dk"] = s.dpop_key
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def decode_login_state(data: bytes) -> LoginState:
    try:
        doc = json.loads(data)
        if doc.get("v") != _VERSION:
            raise ValueError("unknown login state version")
        return LoginState(
            code_verifier=doc["cv"],
            nonce=doc["n"],
            return_url=doc["r"],
            binding=doc["b"],
            issuer=doc["iss"],
            created_at=doc["ca"],
            previous=doc.get("p"),
            client_group=doc.get("cg"),
            acr_values=doc.get("acr"),
            max_age=doc.get("ma"),
            dpop_key=doc.get("dk"),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError("malformed login state") from exc
