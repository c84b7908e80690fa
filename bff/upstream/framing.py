"""HTTP/1.1 framing rules for the upstream hop, as pure functions of methods, header lists
and bytes (no I/O, no clock): the request head as it goes on the wire (what is refused
before sending, which body framing is added) and what an answer's headers say about its
body. The lean client writes its requests with `RequestHead`; the aiohttp transport runs
the same checks so that both refuse exactly the same requests and answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "IDEMPOTENT",
    "InvalidRequest",
    "RequestHead",
    "framed_by_close",
    "promises_body",
]

# RFC 9110 §9.2.2; aiohttp's set. Only these are ever sent twice.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# aiohttp adds `Content-Length: 0` to a bodiless request of any other method.
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])  # all but HTAB
_DIGITS = re.compile(r"[0-9]{1,18}")
_PLAIN, _HOST, _LENGTH, _FRAMING = range(4)
_NAMES_KEPT = 4096  # header names remembered per origin (names repeat: the set is small)


class InvalidRequest(ValueError):
    """The caller's request cannot be sent as given (a control character in a header,
    a bad Content-Length...): a bug upstream of this module, never sent."""


class RequestHead:
    """Writes the request line and headers for one origin: exactly the caller's headers,
    latin-1 (the bytes the browser sent), plus `Host` (the origin's own, first, unless the
    caller brings one) and the body framing (the caller's `Content-Length`, else
    `Transfer-Encoding: chunked` for a body, else `Content-Length: 0` for methods that
    carry one: aiohttp's rules, kept byte for byte). Refuses (InvalidRequest) any control
    character (CR, LF, NUL...: request smuggling) and framing of the caller's own."""

    __slots__ = ("_host_line", "_names")

    def __init__(self, host_line: str) -> None:
        self._host_line = host_line  # "Host: example.org\r\n"
        # Header names already checked against _TOKEN, with what they mean here: one dict
        # lookup a header on the hot path.
        self._names: dict[str, int] = {}

    def _kind(self, name: str) -> int:
        kind = self._names.get(name)
        if kind is None:
            if not _TOKEN.fullmatch(name):
                raise InvalidRequest(f"invalid header name {name!r}")
            lower = name.lower()
            if lower == "host":
                kind = _HOST
            elif lower == "content-length":
                kind = _LENGTH
            elif lower == "transfer-encoding":
                kind = _FRAMING
            else:
                kind = _PLAIN
            if len(self._names) < _NAMES_KEPT:
                self._names[name] = kind
        return kind

    def encode(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], has_body: bool
    ) -> tuple[bytes, int | None]:
        """The request line and headers as bytes, and the body's length if declared."""
        if " " in method or " " in target or not target.startswith("/"):
            raise InvalidRequest("invalid request line")
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        host = True
        length: int | None = None
        names = self._names
        for name, value in headers:
            kind = names.get(name)
            if kind is None:
                kind = self._kind(name)
            if kind:
                if kind == _HOST:
                    host = False
                elif kind == _FRAMING:
                    raise InvalidRequest("Transfer-Encoding is this client's to set")
                elif length is not None or not _DIGITS.fullmatch(value):
                    raise InvalidRequest("invalid Content-Length")
                else:
                    length = int(value)
            lines.append(f"{name}: {value}\r\n")
        if host:
            lines.insert(1, self._host_line)
        if has_body:
            if length is None:
                lines.append("Transfer-Encoding: chunked\r\n")
        elif length is None:
            if method not in _NO_BODY_METHODS:
                lines.append("Content-Length: 0\r\n")
        elif length:
            raise InvalidRequest("Content-Length without a body")
        lines.append("\r\n")
        try:
            data = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest("header text outside latin-1") from None
        # Each line ends in our CR LF; any other control character (CR, LF, NUL...) in a
        # name, value, method or target would change the message's framing: refuse it.
        if len(data) - len(data.translate(None, _CONTROLS)) != 2 * len(lines):
            raise InvalidRequest("control character in the request line or a header")
        return data, length


def promises_body(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A bodiless answer (1xx, 204, 304) whose framing promises a body anyway.

    RFC 9110 §8.6, RFC 9112 §6.1: never Content-Length or Transfer-Encoding on a 1xx or
    204, never Transfer-Encoding on a 304 (a Content-Length there is legal, but names the
    body a 200 would have had). Should the upstream send that body anyway, late, those
    bytes would be taken for the next request's answer: such a connection is never reused
    (response queue poisoning; any doubt closes it)."""
    if status >= 200 and status not in (204, 304):
        return False
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding" or (lower == b"content-length" and value.strip(b" 0")):
            return True
    return False


def framed_by_close(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A body without Content-Length or final chunked coding ends with the connection
    (RFC 9112 §6.3): complete at a clean EOF; any other body was cut short."""
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            return False
        if lower == b"transfer-encoding" and value.lower().rstrip().endswith(b"chunked"):
            return False
    return True
