"""What no log line, span or metric of a test may contain: shapes of secrets (any JWT,
bearer token, authorization code in a query, session cookie value) and the test
provider's secrets."""

from __future__ import annotations

import re

from tests.fake_idp import CLIENT_SECRET, SECRET_KEY

SECRET_SHAPES = [
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),  # a JWT (access, ID, logout token)
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)\bcode=[^&\s\"]+"),
    re.compile(r"(access|refresh)-token-\d+-XYZ"),  # the fake provider's tokens
    re.compile(r"bff-session(-login)?=[^;\s\"]{8,}"),
    re.compile(re.escape(CLIENT_SECRET)),
    re.compile(re.escape(SECRET_KEY)),
]


def secret_shapes_in(text: str) -> list[str]:
    return [shape.pattern for shape in SECRET_SHAPES if shape.search(text)]
