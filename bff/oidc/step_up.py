"""Step-up authentication (RFC 9470): reading an upstream's `WWW-Authenticate` challenges
(RFC 9110 §11.6.1, the auth-param grammar of §11.2), the bounds on the `acr_values` and
`max_age` a login may ask for, and the local login URL that asks for them. Pure.

    challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    auth-param = token BWS "=" BWS ( token / quoted-string )

Several challenges may share one header, separated by commas like the parameters: after
a comma, `token BWS "="` starts a parameter, anything else the next challenge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "MAX_ACR_VALUES",
    "MAX_AGE_LIMIT",
    "Challenge",
    "StepUp",
    "check_acr_values",
    "check_max_age",
    "check_step_up_claims",
    "login_url",
    "parse_challenges",
    "step_up_from",
]

INSUFFICIENT = "insufficient_user_authentication"  # RFC 9470 §3
MAX_ACR_VALUES = 512  # characters of acr_values, all values together
MAX_AGE_LIMIT = 366 * 86400  # seconds: max_age asks for a login no older than this
_MAX_HEADER = 8192  # characters of challenges looked at
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x09\x20-\x7e\x80-\xff])*)"')
_WS = re.compile(r"[ \t]*")
_COMMA = re.compile(r"[ \t]*,")
_SPACES = re.compile(r" +")
# An ACR value: a URI or a short name (OIDC Core §2): URI characters, no space.
_ACR = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]{1,256}")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case
    params: dict[str, str] = field(default_factory=dict)  # names lower case
    token68: str | None = None


@dataclass(frozen=True, slots=True)
class StepUp:
    """What an upstream asked the user's login to satisfy."""

    acr_values: str | None = None
    max_age: int | None = None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        found = pattern.match(self.text, self.pos)
        if found is not None:
            self.pos = found.end()
        return found

    def peek(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def param(self) -> tuple[str, str] | None:
        """`token BWS "=" BWS (token / quoted-string)` at the cursor, or None (cursor kept)."""
        start = self.pos
        name = self.match(_TOKEN)
        if name is not None:
            self.ws()
            if self.peek("=") and not self.text.startswith("==", self.pos):
                self.pos += 1
                self.ws()
                value = self.match(_TOKEN)
                if value is not None:
                    return name.group().lower(), value.group()
                quoted = self.match(_QUOTED)
                if quoted is not None:
                    return name.group().lower(), re.sub(r"\\(.)", r"\1", quoted.group(1))
        self.pos = start
        return None


def parse_challenges(value: str) -> tuple[Challenge, ...]:
    """The challenges of one `WWW-Authenticate` field value; ValueError if malformed."""
    if len(value) > _MAX_HEADER:
        raise ValueError("WWW-Authenticate is too long")
    r, found = _Reader(value), list[Challenge]()
    while True:
        while r.match(_COMMA):  # empty list elements (RFC 9110 §5.6.1)
            pass
        r.ws()
        if r.done():
            return tuple(found)
        scheme = r.match(_TOKEN)
        if scheme is None:
            raise ValueError("a challenge does not start with an auth-scheme")
        challenge = Challenge(scheme.group().lower())
        found.append(challenge)
        if not r.match(_SPACES):
            continue
        start = r.pos
        if r.param() is None:
            if r.match(_TOKEN68) is not None:
                r.ws()
                if r.done() or r.peek(","):
                    found[-1] = Challenge(challenge.scheme, token68=value[start : r.pos].strip())
                    continue
            r.pos = start
            continue
        r.pos = start
        r.pos = _params(r, challenge)


def _params(r: _Reader, challenge: Challenge) -> int:
    """Read `challenge`'s parameters (the cursor on its first); the cursor after them."""
    while True:
        pair = r.param()
        if pair is None:
            if r.done() or r.peek(","):
                return r.pos
            raise ValueError("malformed auth-param")
        name, text = pair
        if name in challenge.params:
            raise ValueError("an auth-param is repeated")  # RFC 9110 §11.2
        challenge.params[name] = text
        r.ws()
        if r.done():
            return r.pos
        if not r.peek(","):
            raise ValueError("auth-params are not comma-separated")
        after_comma = r.pos
        while r.match(_COMMA):
            pass
        r.ws()
        mark = r.pos
        if r.param() is None:  # the next challenge starts here
            return after_comma
        r.pos = mark


def check_acr_values(value: str) -> str:
    """Space-separated ACR values of a bounded charset and length; ValueError otherwise."""
    values = value.split(" ")
    if not value or len(value) > MAX_ACR_VALUES or not all(_ACR.fullmatch(v) for v in values):
        raise ValueError(
            f"acr_values must be space-separated values (URI characters) of at most "
            f"{MAX_ACR_VALUES} characters"
        )
    return value


def check_max_age(value: str | int) -> int:
    """A non-negative number of seconds, at most MAX_AGE_LIMIT; ValueError otherwise."""
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 9:
            raise ValueError("max_age must be a non-negative integer")
        value = int(value)
    if isinstance(value, bool) or not 0 <= value <= MAX_AGE_LIMIT:
        raise ValueError(f"max_age must be between 0 and {MAX_AGE_LIMIT}")
    return value


def check_step_up_claims(
    claims: Mapping[str, Any], step: StepUp, *, now: float, leeway: int = 60
) -> None:
    """The new login's ID token reached what was asked (OIDC Core §2, §3.1.2.1): `acr`
    is one of `acr_values`; `auth_time` is present and at most `max_age` seconds old.
    ValueError otherwise."""
    if step.acr_values is not None and claims.get("acr") not in step.acr_values.split(" "):
        raise ValueError("acr is not one of the acr_values asked for")
    if step.max_age is not None:
        auth_time = claims.get("auth_time")
        if isinstance(auth_time, bool) or not isinstance(auth_time, (int, float)):
            raise ValueError("auth_time is missing although max_age was asked for")
        if now - auth_time > step.max_age + leeway:
            raise ValueError("auth_time is older than the max_age asked for")


def step_up_from(values: Iterable[str]) -> StepUp | None:
    """The step-up an upstream's 401 asks for (its `WWW-Authenticate` values): a Bearer
    (to a DPoP-bound token, a DPoP: RFC 9449 §7.1) challenge with
    `error="insufficient_user_authentication"` and valid `acr_values` / `max_age` when
    present; None for any other 401 (or a malformed challenge)."""
    for value in values:
        try:
            challenges = parse_challenges(value)
        except ValueError:
            continue
        for c in challenges:
            if c.scheme not in ("bearer", "dpop") or c.params.get("error") != INSUFFICIENT:
                continue
            try:
                acr = c.params.get("acr_values")
                age = c.params.get("max_age")
                return StepUp(
                    acr_values=check_acr_values(acr) if acr is not None else None,
                    max_age=check_max_age(age) if age is not None else None,
                )
            except ValueError:
                return None
    return None


def login_url(step: StepUp, return_url: str) -> str:
    """The local `/bff/login` URL that asks the provider for `step`, then returns to
    `return_url` (a local path, checked by the caller)."""
    params = [("returnUrl", return_url)]
    if step.acr_values is not None:
        params.append(("acr_values", step.acr_values))
    if step.max_age is not None:
        params.append(("max_age", str(step.max_age)))
    return "/bff/login?" + urlencode(params)
