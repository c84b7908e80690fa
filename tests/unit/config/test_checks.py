"""The value rules: listen addresses, loopback hosts, acceptable URLs."""

from __future__ import annotations

import pytest

from bff.config.checks import is_loopback_host, split_host_port, url_problems, web_origin


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.9.0.1", True),
        ("[::1]", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.0.2.10", False),
        ("app.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:9091") == ("127.0.0.1", 9091)
    assert split_host_port("[::1]:1") == ("::1", 1)
    for bad in ("9091", "host:", ":9091", "host:0", "host:65536", "[::1:9", "a b:1", "a/b:1"):
        with pytest.raises(ValueError, match="is not HOST:PORT"):
            split_host_port(bad)


def test_url_problems_name_the_source() -> None:
    assert url_problems("https://idp.example.com/realm", "BFF_ISSUER") == []
    assert url_problems("ftp://x", "S") == ["S: not an http(s) URL: 'ftp://x'"]
    assert url_problems("https://u:p@h/?q#f", "S") == [
        "S: must not carry credentials",
        "S: must not have a query or fragment",
    ]
    assert url_problems("https://h/app", "S", allow_path=False) == [
        "S: must be an origin without a path, got 'https://h/app'"
    ]
    assert url_problems("http://h", "S", https_unless_loopback=True) == [
        "S: plain http is allowed only for localhost and loopback addresses"
    ]
    assert url_problems("http://127.0.0.1:8000", "S", https_unless_loopback=True) == []


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://app.example", "https://app.example"),
        ("HTTPS://APP.example:443/", "https://app.example"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://[::1]:80", "http://[::1]"),
        ("https://app.example/x", None),
        ("https://user@app.example", None),
        ("null", None),
        ("ftp://app.example", None),
        ("https://app.example:99999", None),
    ],
)
def test_web_origin(value: str, origin: str | None) -> None:
    assert web_origin(value) == origin
