"""Properties of the return-URL rule (THREATS.md invariant 4, SPEC `returnUrl`): any value
accepted as a local path stays on this origin however a browser reads it (the WHATWG
parser drops tabs and newlines and reads `\\` as `/`) and after any number of further
percent-decodings by an app server; anything that starts an absolute or
protocol-relative URL is refused."""

from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from bff.oidc.redirects import MAX_RETURN_URL, is_local_path

PIECES = [
    "/", "/", "\\", "%2f", "%2F", "%5c", "%5C", "%25", "%252f", "%255c", "%", "2", "5", "f",
    "c", "%09", "%0a", "%0d", "%00", "\t", "\n", "\r", " ", "\x00", "\x7f", ":", "@", ".",
    "..", "evil.example", "http", "https:", "javascript:", "?", "#", "a", "é", "\u3002",
]  # fmt: skip
candidates = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def browser_reading(value: str) -> str:
    """What the WHATWG URL parser makes of a path-ish string, roughly: C0 controls and
    spaces trimmed at the ends, tab and newlines removed, backslashes read as slashes."""
    text = value.strip("".join(chr(c) for c in range(0x21)))
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    return text.replace("\\", "/")


def same_origin(value: str) -> bool:
    base = "https://bff.example/"
    url = urlsplit(urljoin(base, browser_reading(value)))
    return url.scheme == "https" and url.netloc == "bff.example"


@given(candidates)
def test_an_accepted_return_url_stays_on_this_origin_after_any_decoding(value: str) -> None:
    if not is_local_path(value):
        return
    assert len(value) <= MAX_RETURN_URL and value.startswith("/")
    text = value
    for _ in range(4):
        assert same_origin(text), (value, text)
        assert not browser_reading(text).startswith("//")
        text = unquote(text)


@given(
    st.sampled_from(["//", "\\\\", "/\\", "\\/", "/\t/", "/\n/", "%2f%2f", "/%2f", "/%5c"]),
    candidates,
)
def test_protocol_relative_openers_are_always_refused(opener: str, rest: str) -> None:
    assert not is_local_path(opener + rest)


@given(
    st.sampled_from(["http:", "https:", "javascript:", "data:", "HTTPS:", "evil.example"]),
    candidates,
)
def test_anything_not_starting_with_a_slash_is_refused(scheme: str, rest: str) -> None:
    assert not is_local_path(scheme + rest)
