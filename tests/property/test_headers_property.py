"""Properties of the header filters (THREATS.md invariant 2; oauth2-proxy CVE-2025-64484,
Duende GHSA-vvg7-p7jw-8qr3): whatever headers a browser sends, in any case and with `_`
for `-`, what leaves for the upstream holds no hop-by-hop, `Proxy-*`, `Authorization`,
`Host`, forwarding or routing-override header of the client's, nothing the client's
`Connection` names, no BFF cookie (look-alikes included), and exactly one bearer: ours.
Upstream answers never carry hop-by-hop headers or a Set-Cookie for a BFF cookie name."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bff.proxy.forward_rules import ForwardRules
from bff.proxy.forwarding import outbound_headers
from bff.proxy.request_headers import filter_request_headers
from bff.proxy.response_headers import filter_response_headers

MANAGED = [
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy-authorization", "proxy-authenticate", "proxy", "proxy-foo",
    "authorization", "host", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "x-forwarded-prefix", "x-real-ip", "x-original-url",
    "x-rewrite-url", "x-http-method-override", "x-request-id", "http2-settings",
]  # fmt: skip
OTHER = ["accept", "x-custom", "my-header", "content-type", "x-api-key", "user-agent"]
NEVER_FROM_CLIENT = set(MANAGED) - {"x-request-id"}  # replaced by ours, so checked apart
OURS = ("bff-session", "bff-session-login")
RULES = ForwardRules.create(OURS, ())


def spelled(name: str, case_bits: int, underscores: int) -> str:
    """The name in any case, with any of its dashes written as underscores."""
    out = []
    for i, c in enumerate(name):
        if c == "-":
            out.append("_" if underscores >> i & 1 else "-")
        else:
            out.append(c.upper() if case_bits >> i & 1 else c)
    return "".join(out)


def spellings(names: list[str]) -> st.SearchStrategy[str]:
    bits = st.integers(0, 2**32 - 1)
    return st.builds(spelled, st.sampled_from(names), bits, bits)


header_names = spellings([*MANAGED, *OTHER, "cookie", "content-length"])
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
cookie_names = st.sampled_from([*OURS, "theme", "Bff-Session", " bff-session", "bff-session\u200b"])


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    headers = [
        (draw(header_names).encode(), draw(values).encode())
        for _ in range(draw(st.integers(0, 12)))
    ]
    for _ in range(draw(st.integers(0, 3))):
        pairs = [f"{draw(cookie_names)}={draw(values)}" for _ in range(draw(st.integers(1, 3)))]
        headers.append((b"cookie", "; ".join(pairs).encode("utf-8")))
    if draw(st.booleans()):
        named = draw(st.lists(st.sampled_from(OTHER + MANAGED), max_size=3))
        headers.append((b"connection", ", ".join(named).encode()))
    return headers


def norm(name: str) -> str:
    return name.lower().replace("_", "-")


@given(requests(), st.booleans())
def test_nothing_the_client_must_not_set_reaches_the_upstream(
    raw: list[tuple[bytes, bytes]], with_bearer: bool
) -> None:
    inbound = filter_request_headers(raw, RULES, trusted=False)
    out = outbound_headers(
        inbound,
        bearer="our-token" if with_bearer else None,
        peer="203.0.113.9",
        scheme="https",
        request_id="rid-1",
    )
    client_named: set[str] = set()
    for name, value in raw:
        if norm(name.decode()) == "connection":
            client_named |= {norm(t.strip()) for t in value.decode().split(",")} - {
                "keep-alive",
                "close",
            }
    for name, _value in inbound.headers:
        n = norm(name)
        assert n not in NEVER_FROM_CLIENT and n != "x-request-id", name
        assert not n.startswith(("proxy-", "x-forwarded-")), name
        assert n not in client_named or n in ("content-length",), name
    names = [norm(n) for n, _ in out]
    assert names.count("authorization") == (1 if with_bearer else 0)
    if with_bearer:
        assert ("Authorization", "Bearer our-token") in out
    assert names.count("x-forwarded-for") == 1 and ("X-Forwarded-For", "203.0.113.9") in out
    assert names.count("x-forwarded-proto") == 1 and ("X-Forwarded-Proto", "https") in out
    assert names.count("x-request-id") == 1 and ("X-Request-ID", "rid-1") in out
    assert "host" not in names and "forwarded" not in names and "x-real-ip" not in names
    assert names.count("cookie") <= 1
    for name, value in out:
        if norm(name) == "cookie":
            for part in value.split(";"):
                key = part.partition("=")[0].encode("latin-1").decode("utf-8", "replace")
                assert key.strip().strip("\u200b").strip().lower() not in OURS, value


response_names = st.sampled_from(
    [*MANAGED, "set-cookie", "content-type", "date", "server", "clear-site-data", "x-app"]
).map(lambda n: n.title() if len(n) % 2 else n.upper()) | st.sampled_from(MANAGED)
set_cookie_values = st.sampled_from(
    [
        "bff-session=x; Path=/",
        "BFF-SESSION=x",
        "=bff-session=x",
        "bff-session-login=y",
        " bff-session =x",
        "theme=dark",
        "a=b; Domain=example",
    ]
)


@given(st.lists(st.tuples(response_names, values | set_cookie_values), max_size=12))
def test_upstream_answers_lose_hop_by_hop_headers_and_never_set_a_bff_cookie(
    raw: list[tuple[str, str]],
) -> None:
    out = filter_response_headers([(n.encode(), v.encode()) for n, v in raw], RULES)
    hop = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    hop |= {"upgrade", "proxy-authenticate", "proxy-authorization", "http2-settings"}
    for name, value in out:
        n = name.decode()
        assert n == n.lower() and n not in hop and n not in ("date", "server", "clear-site-data")
        if n == "set-cookie":
            cookie = value.decode().split(";", 1)[0].split("=", 1)[0].strip().lower()
            assert cookie and cookie not in OURS, value
