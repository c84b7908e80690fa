"""Records of the development OpenID provider: configuration, clients, sessions, codes
and refresh token families. The `*Mixin` bases are what authlib's grants call."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin

__all__ = [
    "AUTH_METHODS",
    "AuthCode",
    "Client",
    "ClientConfig",
    "Family",
    "ProviderConfig",
    "RefreshRecord",
    "Reply",
    "Session",
    "User",
    "digest",
]

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def digest(token: str) -> str:
    """Tokens are stored and reported only as sha256 hex (stats show 16-char prefixes)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ClientConfig:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str
    clients: tuple[ClientConfig, ...]
    access_token_ttl: int = 60
    id_token_ttl: int = 300
    refresh_token_ttl: int = 8 * 3600
    code_ttl: int = 60
    token_latency_ms: int = 0
    backchannel_timeout: float = 2.0


@dataclass
class Reply:
    """What authlib's `handle_response` produces; `location` is what RFC 9207's hook edits."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)

    @location.setter
    def location(self, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != "location"]
        self.headers.append(("Location", value))


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.client_id = config.client_id
        # EndSessionEndpoint reads the registered post-logout URIs from here.
        self.client_metadata = {"post_logout_redirect_uris": list(config.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is always required and matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""  # dev provider: any scope is granted

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.config.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.config.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS  # confidential clients only

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class User:
    sub: str
    sid: str
    auth_time: int


@dataclass
class Session:
    """A provider (single sign-on) session, bound to the browser by a cookie."""

    sid: str
    sub: str
    auth_time: int
    cookie: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    clients: set[str] = field(default_factory=set)  # who to notify on logout


@dataclass
class AuthCode(AuthorizationCodeMixin):  # type: ignore[misc]
    key: str  # sha256 of the code
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    resources: list[str]
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.user.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Family:
    """All refresh tokens descended from one authorization code (RFC 9700 §4.14.2)."""

    client_id: str
    user: User
    scope: str
    resources: list[str]
    digests: list[str] = field(default_factory=list)
    revoked: bool = False


@dataclass
class RefreshRecord(TokenMixin):  # type: ignore[misc]
    family: Family
    expires_at: float
    rotated: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.family.client_id

    def get_scope(self) -> str:
        return self.family.scope

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.rotated or self.family.revoked

    @property
    def active(self) -> bool:
        return not self.is_revoked() and not self.is_expired()
