"""bff.upstream.framing: the request head as it goes on the wire, and what an answer's
headers say about its body (pure rules; both transports apply them)."""

from __future__ import annotations

import pytest

from bff.upstream.framing import InvalidRequest, RequestHead, framed_by_close, promises_body

HOST = "Host: api.example:8080\r\n"


def encode(method: str, headers: list[tuple[str, str]], has_body: bool = False) -> bytes:
    data, _ = RequestHead(HOST).encode(method, "/a?b=1", headers, has_body)
    return data


def test_host_first_then_the_callers_headers_in_order() -> None:
    assert encode("GET", [("x-b", "2"), ("X-A", "1")]) == (
        b"GET /a?b=1 HTTP/1.1\r\n" + HOST.encode() + b"x-b: 2\r\nX-A: 1\r\n\r\n"
    )


def test_a_callers_host_replaces_the_origins() -> None:
    assert encode("GET", [("host", "other")]) == b"GET /a?b=1 HTTP/1.1\r\nhost: other\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "has_body", "headers", "added", "length"),
    [
        ("GET", False, [], b"", None),
        ("POST", False, [], b"Content-Length: 0\r\n", None),
        ("POST", True, [], b"Transfer-Encoding: chunked\r\n", None),
        ("PUT", True, [("Content-Length", "5")], b"", 5),
        ("PUT", False, [("Content-Length", "0")], b"", 0),
    ],
)
def test_body_framing_is_added_as_aiohttp_does(
    method: str, has_body: bool, headers: list[tuple[str, str]], added: bytes, length: int | None
) -> None:
    data, declared = RequestHead(HOST).encode(method, "/", headers, has_body)
    assert data.endswith(added + b"\r\n")
    assert declared == length


@pytest.mark.parametrize(
    ("method", "target", "headers", "has_body"),
    [
        ("GET", "/", [("x", "a\r\nb: c")], False),
        ("GET", "/", [("x", "a\x00")], False),
        ("GET", "/", [("x y", "1")], False),
        ("GET", "/", [("x", "\u2028")], False),
        ("GET", "/", [("Transfer-Encoding", "chunked")], True),
        ("GET", "/", [("Content-Length", "1"), ("content-length", "1")], True),
        ("GET", "/", [("Content-Length", "+1")], True),
        ("GET", "/", [("Content-Length", "3")], False),
        ("GET", "http://evil/", [], False),
        ("GET", "/ HTTP/1.1", [], False),
    ],
)
def test_what_would_change_the_framing_is_refused(
    method: str, target: str, headers: list[tuple[str, str]], has_body: bool
) -> None:
    with pytest.raises(InvalidRequest):
        RequestHead(HOST).encode(method, target, headers, has_body)


@pytest.mark.parametrize(
    ("status", "headers", "promised"),
    [
        (204, [], False),
        (304, [(b"Content-Length", b"0")], False),
        (304, [(b"Content-Length", b"1000")], True),
        (204, [(b"Transfer-Encoding", b"chunked")], True),
        (103, [(b"content-length", b"5")], True),
        (200, [(b"Content-Length", b"1000")], False),  # a body that is expected
    ],
)
def test_a_bodiless_answer_promising_a_body_is_noticed(
    status: int, headers: list[tuple[bytes, bytes]], promised: bool
) -> None:
    assert promises_body(status, headers) is promised


@pytest.mark.parametrize(
    ("headers", "by_close"),
    [
        ([], True),
        ([(b"Transfer-Encoding", b"gzip")], True),
        ([(b"Content-Length", b"3")], False),
        ([(b"transfer-encoding", b"gzip, Chunked ")], False),
    ],
)
def test_a_body_without_length_or_final_chunked_ends_with_the_connection(
    headers: list[tuple[bytes, bytes]], by_close: bool
) -> None:
    assert framed_by_close(headers) is by_close
