"""What a provider's discovery document may say (OIDC Discovery 1.0 §3, §4.3): the
endpoints (https, or plain http to loopback for a development provider), the client
authentication methods, the ID-token algorithms bff verifies. Pure: fetching the document
is `bff.oidc.discovery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bff.config.checks import is_loopback_host
from bff.errors import IdpUnavailable
from bff.oidc.jws import SUPPORTED_ALGS

__all__ = ["ProviderMetadata", "is_allowed_endpoint"]


def is_allowed_endpoint(url: str) -> bool:
    """https, or plain http only on localhost / 127.0.0.0/8 / [::1]; no credentials or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    if not host or parts.username is not None or parts.fragment:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host))


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    pushed_authorization_request_endpoint: str | None = None
    token_endpoint_auth_methods: tuple[str, ...] = ("client_secret_basic",)
    id_token_algs: tuple[str, ...] = ("RS256",)
    iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False
    grant_types: tuple[str, ...] = ("authorization_code", "implicit")  # the default, §3

    @classmethod
    def parse(cls, doc: dict[str, Any], *, expected_issuer: str) -> ProviderMetadata:
        """Validate a discovery document (OIDC Discovery 1.0 §3, §4.3); IdpUnavailable if bad."""

        def bad(why: str) -> IdpUnavailable:
            return IdpUnavailable(f"discovery document: {why}")

        if not isinstance(doc, dict):
            raise bad("not a JSON object")
        if doc.get("issuer") != expected_issuer:  # exact match: mix-up defence
            raise bad("issuer does not match the configured issuer")

        https_issuer = expected_issuer.startswith("https://")

        def endpoint(name: str, *, required: bool) -> str | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not is_allowed_endpoint(value):
                raise bad(f"{name} missing or not an https URL")
            if https_issuer and not value.startswith("https://"):
                # Plain http to loopback is for a development provider only: an https
                # provider must not send the client secret or tokens to a local sidecar.
                raise bad(f"{name} is plain http while the issuer is https")
            return value

        def strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = doc.get(name)
            if value is None:
                return default
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad(f"{name} is not a list of strings")
            return tuple(value)

        def flag(name: str) -> bool:
            value = doc.get(name, False)
            if not isinstance(value, bool):
                raise bad(f"{name} is not a boolean")
            return value

        algs = strings("id_token_signing_alg_values_supported", ("RS256",))
        # Pinned to what the provider advertises, minus none / HMAC whatever it says.
        usable = tuple(a for a in algs if a in SUPPORTED_ALGS)
        if not usable:
            raise bad("no supported asymmetric id_token_signing_alg_values_supported")
        if not is_allowed_endpoint(expected_issuer):
            raise bad("issuer is not an https URL")
        return cls(
            issuer=expected_issuer,
            authorization_endpoint=endpoint("authorization_endpoint", required=True) or "",
            token_endpoint=endpoint("token_endpoint", required=True) or "",
            jwks_uri=endpoint("jwks_uri", required=True) or "",
            end_session_endpoint=endpoint("end_session_endpoint", required=False),
            revocation_endpoint=endpoint("revocation_endpoint", required=False),
            pushed_authorization_request_endpoint=endpoint(
                "pushed_authorization_request_endpoint", required=False
            ),
            token_endpoint_auth_methods=strings(
                "token_endpoint_auth_methods_supported", ("client_secret_basic",)
            ),
            id_token_algs=usable,
            iss_parameter_supported=flag("authorization_response_iss_parameter_supported"),
            backchannel_logout_supported=flag("backchannel_logout_supported"),
            grant_types=strings("grant_types_supported", ("authorization_code", "implicit")),
        )
