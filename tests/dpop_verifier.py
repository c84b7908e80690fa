"""What a provider and a resource server check of a DPoP proof (RFC 9449 §4.3, §7.1),
and of a client assertion (RFC 7523 §3), for the fake provider and the test upstreams:
each verifies with joserfc, independently of bff's own code."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

__all__ = ["ProofChecker", "verify_client_assertion"]


class ProofChecker:
    """Verifies proofs and refuses a replayed `jti`."""

    def __init__(self, *, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self.seen: set[str] = set()

    def verify(
        self,
        proof: str | None,
        *,
        htm: str,
        htu: str,
        now: float,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """The proof key's RFC 7638 thumbprint; ValueError naming what is wrong."""
        if not proof:
            raise ValueError("no DPoP proof")
        header = jws.extract_compact(proof.encode()).headers()
        if header.get("typ") != "dpop+jwt":
            raise ValueError("typ is not dpop+jwt")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk:
            raise ValueError("jwk missing or private")
        key = ECKey.import_key(jwk)
        token = jwt.decode(proof, key, algorithms=["ES256"])  # the signature
        claims = token.claims
        if claims.get("htm") != htm:
            raise ValueError(f"htm {claims.get('htm')!r} is not {htm!r}")
        if claims.get("htu") != htu:
            raise ValueError(f"htu {claims.get('htu')!r} is not {htu!r}")
        iat = claims.get("iat")
        if not isinstance(iat, int) or abs(now - iat) > self.max_age:
            raise ValueError("iat not fresh")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise ValueError("no jti")
        if jti in self.seen:
            raise ValueError("replayed jti")
        if nonce is not None and claims.get("nonce") != nonce:
            raise ValueError("use_dpop_nonce")
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode()).digest()
            if claims.get("ath") != base64.urlsafe_b64encode(digest).rstrip(b"=").decode():
                raise ValueError("ath does not match the access token")
        elif "ath" in claims:
            raise ValueError("ath on a token request")
        self.seen.add(jti)
        return str(key.thumbprint())


def verify_client_assertion(
    form: Mapping[str, list[str]],
    *,
    jwks: dict[str, Any],
    client_id: str,
    audience: str,
    now: float,
    seen: set[str],
) -> dict[str, Any]:
    """The assertion's claims once the provider would accept it; ValueError otherwise."""
    if form.get("client_assertion_type") != [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]:
        raise ValueError("no client assertion")
    if "client_secret" in form:
        raise ValueError("a secret besides the assertion")
    [assertion] = form["client_assertion"]
    header = jws.extract_compact(assertion.encode()).headers()
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    key = keys.get_by_kid(header["kid"])
    assert isinstance(key, (RSAKey, ECKey))
    claims = jwt.decode(assertion, key, algorithms=[header["alg"]]).claims
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise ValueError("iss/sub is not the client")
    if claims.get("aud") != audience:
        raise ValueError("aud is not the provider")
    if not claims.get("exp", 0) > now or claims["exp"] - now > 300:
        raise ValueError("exp")
    if claims.get("jti") in seen or not claims.get("jti"):
        raise ValueError("replayed jti")
    seen.add(claims["jti"])
    return claims
