"""Properties of the one canonical path and the route table (THREATS.md invariant 1):
whatever raw request target arrives, an accepted path has no dot segment, no encoded or
raw slash/backslash inside a segment, no byte a request line may not carry, and is its own
canonical form; the outbound URL is always the configured upstream + a validated path
under the route's base (never above it, never another host); the longest whole-segment
prefix wins."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from bff.config.model import RouteConfig
from bff.errors import PathRejected
from bff.proxy.routes import RouteTable, canonical_path

PIECES = [
    "/", "/", "/", "\\", ".", "..", "...", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25",
    "%252e", "%252f", "%", "%0", "%00", "%09", "%7f", ";", ";x", "?", "#", "a", "api",
    "admin", "v1", " ", "\t", "~", "%41", "%7E", "%20", "%c0%ae", "%ff", "\x00", "\x7f",
    "é", "@", ":", "+", "=", "&",
]  # fmt: skip
raw_paths = st.lists(st.sampled_from(PIECES), max_size=14).map(lambda p: "/" + "".join(p))
api_paths = st.lists(st.sampled_from(PIECES), max_size=14).map(lambda p: "/api/" + "".join(p))

TABLE = RouteTable(
    [
        RouteConfig(prefix="/api", upstream="http://orders.internal:8080/base"),
        RouteConfig(prefix="/api/admin", upstream="http://admin.internal:9090"),
        RouteConfig(prefix="/files", upstream="http://files.internal"),
    ]
)
ORIGINS = {"http://orders.internal:8080", "http://admin.internal:9090", "http://files.internal"}


def is_dot(segment: str) -> bool:
    head = segment.partition(";")[0]
    return "." in head and not head.strip(". ")


@given(raw_paths)
def test_an_accepted_path_is_canonical_and_has_no_dot_or_hidden_separator(raw: str) -> None:
    try:
        path = canonical_path(raw.encode("utf-8"))
    except PathRejected:
        return
    assert path.encoded.startswith("/")
    assert path.encoded.isascii()
    assert not any(ch in path.encoded for ch in " \t\\#?") and path.encoded.isprintable()
    for segment in path.segments:
        assert "/" not in segment and "\\" not in segment
        assert not is_dot(segment)
        assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment)
    # one decode only: nothing left that a second decode would turn into a dot or slash
    for segment in path.encoded_segments:
        again = unquote(segment)
        assert "/" not in again and "\\" not in again and not is_dot(again)
    # canonical: the canonical form maps to itself
    again = canonical_path(path.encoded.encode("ascii"))
    assert again == path


@given(api_paths | raw_paths)
@example("/api/admin;")  # found by the fuzz run: refused by the proxy, never a target
def test_the_outbound_url_is_a_configured_upstream_plus_a_path_under_its_base(raw: str) -> None:
    try:
        path = canonical_path(raw.encode("utf-8"))
    except PathRejected:
        return
    route = TABLE.match(path)
    if route is None:
        assert path.segments[0] not in ("api", "files")
        return
    if path.params and not route.config.path_params:
        return  # the proxy refuses it (400 invalid_path) before any target is built
    target = route.target(path)
    url = route.origin + target
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" in ORIGINS
    assert f"{parts.scheme}://{parts.netloc}" == route.origin
    assert target.startswith("/") and not target.startswith("//")
    outbound = canonical_path(target.encode("ascii"))  # still canonical, nothing escaped
    if route.config.prefix == "/api":
        assert outbound.segments[0] == "base"
        assert outbound.segments[1:] == path.segments[1:] or path.segments[1:] == ("",)
    else:
        assert outbound.segments[: len(route.prefix)] == route.prefix


@given(
    st.lists(st.sampled_from(["api", "admin", "apix", "files", "x", "Api", "%61pi"]), min_size=1),
    st.booleans(),
)
def test_the_longest_whole_segment_prefix_wins(segments: list[str], slash: bool) -> None:
    path = canonical_path(("/" + "/".join(segments) + ("/" if slash else "")).encode("ascii"))
    route = TABLE.match(path)
    candidates = [r for r in TABLE.routes if path.segments[: len(r.prefix)] == r.prefix]
    if not candidates:
        assert route is None
    else:
        assert route is max(candidates, key=lambda r: len(r.prefix))
