from __future__ import annotations

import pytest

from bff.oidc.redirects import is_local_path


@pytest.mark.parametrize("url", ["/", "/app", "/app/orders?id=3#x", "/a%20b", "/%7Euser"])
def test_local_paths_allowed(url: str) -> None:
    assert is_local_path(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/%2fevil.example",
        "/%2Fevil.example",
        "/%5cevil.example",
        "/%5Cevil.example",
        "/\tevil",
        "/\n/evil.example",
        "/\x00",
        "/a\\b",
        " /app",
        "/" + "a" * 5000,
    ],
)
def test_non_local_refused(url: str) -> None:
    assert not is_local_path(url)
