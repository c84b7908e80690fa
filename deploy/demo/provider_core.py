"""OAuth logic of the development OpenID provider (no HTTP framework here).

Built on authlib's framework-agnostic server classes: `AuthorizationServer` with
`AuthorizationCodeGrant` + PKCE (S256 required) + `OpenIDCode`, `RefreshTokenGrant`
with rotation and reuse detection, `RevocationEndpoint`, `EndSessionEndpoint` and
the RFC 9207 `IssuerParameter`. All JWTs are signed with joserfc. `provider.py`
adapts this to Starlette. Everything lives in plain dicts on one event loop: the
authlib calls are synchronous and never await, so no locking is needed.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from typing import Any, ClassVar
from urllib.parse import urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode, OpenIDToken
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from provider_models import (
    AUTH_METHODS,
    AuthCode,
    Client,
    Family,
    ProviderConfig,
    RefreshRecord,
    Reply,
    Session,
    User,
    digest,
)

__all__ = ["BACKCHANNEL_EVENT", "DevProvider", "display_name"]

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def display_name(sub: str) -> str:
    """The user's `name` claim, in the ID token and in access tokens alike: "alice" is
    "Alice" wherever the demo shows it."""
    return sub.title()


class _S256Required(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (authlib's `required` covers public clients only)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class _IdTokenClaims:
    """Shared ID token settings for the code grant and the refresh grant."""

    provider: DevProvider

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.provider.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        cid = client.client_id
        exp = int(time.time()) + self.provider.config.id_token_ttl
        return {"iss": self.provider.config.issuer, "aud": cid, "azp": cid, "exp": exp}

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        # auth_time here overrides authlib's "now" default on refresh (OIDC Core §12.2).
        info: dict[str, Any] = {"sub": user.sub, "sid": user.sid, "auth_time": user.auth_time}
        if "profile" in scope.split():
            info.update(name=display_name(user.sub), preferred_username=user.sub)
        if "email" in scope.split():
            info.update(email=f"{user.sub}@example.test", email_verified=True)
        return info


class _OpenIDCode(_IdTokenClaims, OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: DevProvider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return (request.payload.client_id, nonce) in self.provider.used_nonces


class _OpenIDRefresh(_IdTokenClaims, OpenIDToken):  # type: ignore[misc]
    """Refreshes return a new ID token too (no nonce), as Keycloak and Auth0 do."""

    def __init__(self, provider: DevProvider) -> None:
        self.provider = provider


class _MintMixin:
    """Both grants mint through the provider: it needs the request (resource, family)."""

    request: OAuth2Request
    server: _Server

    def generate_token(
        self,
        user: User | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        return self.server.provider.mint(self.request, user, scope or "")


class _CodeGrant(_MintMixin, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        if not self.request.payload.state:
            raise InvalidRequestError("Missing 'state'", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        self.server.provider.save_code(code, request)

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        return self.server.provider.take_code(code, client)

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        pass  # mint() consumed it once the PKCE and redirect_uri checks had passed

    def authenticate_user(self, authorization_code: AuthCode) -> User:
        return authorization_code.user


class _RefreshGrant(_MintMixin, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        return self.server.provider.check_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: RefreshRecord) -> User:
        return refresh_token.family.user

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        refresh_token.rotated = True


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS
    server: _Server

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshRecord | None:
        # JWT access tokens cannot be recalled; RFC 7009 still answers 200 for them.
        return self.server.provider.refresh_tokens.get(digest(token_string))

    def revoke_token(self, token: RefreshRecord, request: OAuth2Request) -> None:
        self.server.provider.revoke_family(token.family)


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    server: _Server

    def get_server_jwks(self) -> KeySet:
        return self.server.provider.public_jwks

    def get_algorithms(self) -> list[str]:
        return ["RS256"]

    def is_post_logout_redirect_uri_legitimate(self, request: Any, *args: Any) -> bool:
        # Without id_token_hint only the user's explicit confirmation (a POST) may redirect.
        return bool(request.method == "POST")

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        claims = end_session_request.id_token_claims or {}
        request = end_session_request.request
        sids = {s for s in (getattr(request, "session_sid", None), claims.get("sid")) if s}
        provider = self.server.provider
        # provider.py reads `ended` to send the back-channel logout tokens.
        ended = [provider.end_session(s) for s in sids if s in provider.sessions]
        end_session_request.ended = ended


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: DevProvider) -> None:
        super().__init__(scopes_supported=None)  # any scope, e.g. per-route API scopes
        self.provider = provider

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass  # mint() stores the refresh token; access tokens are self-contained JWTs

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request  # provider.py builds it, since reading the body is async

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Reply:
        return Reply(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class DevProvider:
    """Clients, keys, sessions, codes and refresh token families, plus the authlib server."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.clients = {c.client_id: Client(c) for c in config.clients}
        self.kid = secrets.token_hex(8)
        params = {"kid": self.kid, "use": "sig", "alg": "RS256"}
        self.key = RSAKey.generate_key(2048, parameters=params, private=True)  # type: ignore[arg-type]
        self.public_jwks = KeySet([RSAKey.import_key(self.key.as_dict(private=False))])
        self.sessions: dict[str, Session] = {}
        self.codes: dict[str, AuthCode] = {}
        self.used_codes: dict[str, Family] = {}
        self.used_nonces: set[tuple[str, str]] = set()
        self.refresh_tokens: dict[str, RefreshRecord] = {}
        self.stats: Counter[str] = Counter()
        self.revoked_digests: list[str] = []
        self.fail_mode = "none"
        self._mints = 0
        self.server = _Server(self)
        self.server.register_grant(_CodeGrant, [_S256Required(), _OpenIDCode(self)])
        self.server.register_grant(_RefreshGrant, [_OpenIDRefresh(self)])
        self.server.register_endpoint(_Revocation)
        self.server.register_endpoint(_EndSession)
        self.server.register_extension(_Issuer(config.issuer))

    # -- provider sessions -------------------------------------------------------
    def login(self, sub: str) -> Session:
        session = Session(sid=secrets.token_urlsafe(16), sub=sub, auth_time=int(time.time()))
        self.sessions[session.sid] = session
        return session

    def session_for_cookie(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        return next((s for s in self.sessions.values() if s.cookie == cookie), None)

    def end_session(self, sid: str) -> Session:
        return self.sessions.pop(sid)

    def find_sessions(self, sub: str | None, sid: str | None) -> list[Session]:
        return [
            s
            for s in self.sessions.values()
            if (sid is None or s.sid == sid) and (sub is None or s.sub == sub)
        ]

    # -- authorization codes -----------------------------------------------------
    def save_code(self, code: str, request: OAuth2Request) -> None:
        data, user = request.payload.data, request.user
        key = digest(code)
        self.codes[key] = AuthCode(
            key=key,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user=user,
            nonce=data.get("nonce"),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            resources=request.payload.datalist.get("resource", []),
            expires_at=time.time() + self.config.code_ttl,
        )
        if data.get("nonce"):
            self.used_nonces.add((request.client.client_id, data["nonce"]))
        if user.sid in self.sessions:
            self.sessions[user.sid].clients.add(request.client.client_id)

    def take_code(self, code: str, client: Client) -> AuthCode | None:
        key = digest(code)
        if key in self.used_codes:  # replay: RFC 6749 §4.1.2 says revoke what it issued
            self.revoke_family(self.used_codes[key])
            self.stats["code_reuse_rejected"] += 1
            return None
        record = self.codes.get(key)
        if record is None or record.client_id != client.client_id:
            return None
        if time.time() >= record.expires_at:
            del self.codes[key]
            return None
        # Consumed in mint(), i.e. only once PKCE and redirect_uri checks have passed.
        return record

    # -- tokens ------------------------------------------------------------------
    def mint(self, request: OAuth2Request, user: User, scope: str) -> dict[str, Any]:
        client = request.client
        resources = _requested_resources(request)
        if request.authorization_code is not None:
            code: AuthCode = request.authorization_code
            family = Family(client.client_id, user, code.scope, code.resources)
            del self.codes[code.key]
            self.used_codes[code.key] = family
            self.stats["authorization_code_grants"] += 1
        else:
            family = request.refresh_token.family
            self.stats["refresh_grants"] += 1
        audience = resources or family.resources[:1] or [client.client_id]
        now = int(time.time())
        claims = {
            "iss": self.config.issuer,
            "sub": user.sub,
            "aud": audience[0] if len(audience) == 1 else audience,
            "exp": now + self.config.access_token_ttl,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "scope": scope,
            "client_id": client.client_id,
            "sid": user.sid,
            "auth_time": user.auth_time,
        }
        if "profile" in scope.split():  # the same name as in the ID token, for the API
            claims.update(name=display_name(user.sub), preferred_username=user.sub)
        header = {"alg": "RS256", "kid": self.kid, "typ": "at+jwt"}  # RFC 9068
        refresh_token = secrets.token_urlsafe(32)
        self.refresh_tokens[digest(refresh_token)] = RefreshRecord(
            family, expires_at=now + self.config.refresh_token_ttl
        )
        family.digests.append(digest(refresh_token))
        self._mints += 1
        if self._mints % 1000 == 0:
            self._prune()
        return {
            "access_token": jwt.encode(header, claims, self.key, algorithms=["RS256"]),
            "token_type": "Bearer",
            "expires_in": self.config.access_token_ttl,
            "refresh_token": refresh_token,
            "scope": scope,
        }

    def _prune(self) -> None:
        """Drop expired codes and refresh tokens so long benchmarks do not grow memory."""
        now = time.time()
        self.codes = {k: c for k, c in self.codes.items() if c.expires_at > now}
        self.refresh_tokens = {k: r for k, r in self.refresh_tokens.items() if r.expires_at > now}

    def check_refresh_token(self, token: str) -> RefreshRecord | None:
        record = self.refresh_tokens.get(digest(token))
        if record is None or record.family.revoked or record.is_expired():
            return None
        if record.rotated:
            # Reuse of a rotated token means it leaked (or a client raced itself):
            # kill the whole family, as real providers do.
            self.stats["refresh_reuse_rejected"] += 1
            self.revoke_family(record.family)
            return None
        return record

    def revoke_family(self, family: Family) -> None:
        if not family.revoked:
            family.revoked = True
            self.revoked_digests.extend(d[:16] for d in family.digests)

    def refresh_token_status(self, token: str) -> dict[str, bool]:
        record = self.refresh_tokens.get(digest(token))
        if record is None:
            return {"active": False, "known": False}
        return {"active": record.active, "known": True, "rotated": record.rotated}

    def logout_token(self, session: Session, client_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.config.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "sub": session.sub,
            "sid": session.sid,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        header = {"alg": "RS256", "kid": self.kid, "typ": "logout+jwt"}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])

    def stats_snapshot(self) -> dict[str, Any]:
        names = ("authorization_code_grants", "refresh_grants", "refresh_reuse_rejected")
        more = ("revocations", "code_reuse_rejected", "backchannel_logouts_sent")
        snapshot: dict[str, Any] = {n: self.stats[n] for n in names + more}
        snapshot["backchannel_logouts_failed"] = self.stats["backchannel_logouts_failed"]
        snapshot["revoked_refresh_tokens"] = list(self.revoked_digests)
        snapshot["active_sessions"] = len(self.sessions)
        snapshot["fail_mode"] = self.fail_mode
        return snapshot

    def reset_stats(self) -> None:
        self.stats.clear()
        self.revoked_digests.clear()


def _requested_resources(request: OAuth2Request) -> list[str]:
    """RFC 8707 `resource`: absolute URIs without fragment, else `invalid_target`."""
    resources: list[str] = request.payload.datalist.get("resource", [])
    for uri in resources:
        parts = urlsplit(uri)
        if not parts.scheme or parts.fragment:
            raise OAuth2Error("'resource' must be an absolute URI", error="invalid_target")
    return resources
