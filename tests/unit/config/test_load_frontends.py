"""`[[frontends]]` tables: each read under BFF_FRONTEND_<NAME>_* (env wins), its secret
from the environment or `client_secret_file`, its own routes; checked together with
every problem reported at once; the flat frontend settings refused beside them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from bff.config.load import load_settings
from bff.config.report import masked_config
from tests.unit.config.env import KEY, problems

ENV = {
    "BFF_SECRET_KEY": KEY,
    "BFF_FRONTEND_SHOP_CLIENT_SECRET": "shop-secret",
    "BFF_FRONTEND_BLOG_CLIENT_SECRET": "blog-secret",
}


def table(name: str, public_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "public_url": public_url,
        "issuer": f"https://idp.example/{name}",
        "client_id": f"{name}-client",
        **extra,
    }


def two(**blog: Any) -> dict[str, Any]:
    return {
        "frontends": [
            table(
                "shop",
                "https://shop.example",
                routes=[{"prefix": "/api", "upstream": "http://orders:8080"}],
                scopes="openid shop",
                resource="https://api.shop.example",
                session_idle_timeout=600,
                session_max_lifetime=7200,
            ),
            table("blog", "https://blog.example", **blog),
        ]
    }


def test_two_frontends_each_with_its_own_client_routes_and_timeouts() -> None:
    s = load_settings(ENV, two())
    shop, blog = s.frontends
    assert s.frontend is shop  # the first is the default
    assert (shop.name, shop.public_url, shop.issuer) == (
        "shop",
        "https://shop.example",
        "https://idp.example/shop",
    )
    assert (shop.client_id, shop.client_secret) == ("shop-client", "shop-secret")
    assert (blog.client_id, blog.client_secret) == ("blog-client", "blog-secret")
    assert [r.prefix for r in shop.routes] == ["/api"] and blog.routes == ()
    assert shop.scopes == "openid shop" and shop.resource == "https://api.shop.example"
    assert (shop.idle_timeout, shop.max_lifetime) == (600, 7200)
    assert (blog.idle_timeout, blog.max_lifetime) == (1800, 86400)
    assert shop.cookie_name == blog.cookie_name == "__Host-bff-session"  # other hosts: fine
    assert (shop.session_namespace, blog.session_namespace) == ("shop", "blog")


def test_environment_wins_over_a_table_and_sources_are_kept() -> None:
    env = {**ENV, "BFF_FRONTEND_BLOG_CLIENT_ID": "from-env"}
    s = load_settings(env, two())
    assert s.frontends[1].client_id == "from-env"
    sources = dict(s.sources)
    assert sources["frontends.blog.client_id"] == "BFF_FRONTEND_BLOG_CLIENT_ID"
    assert sources["frontends.shop.client_id"] == "config file"


def test_client_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "blog"
    secret.write_text("from-a-file\n")
    env = {k: v for k, v in ENV.items() if "BLOG" not in k}
    s = load_settings(env, two(client_secret_file=str(secret)))
    assert s.frontends[1].client_secret == "from-a-file"
    missing = problems(env, two(client_secret_file=str(tmp_path / "nope")))
    assert any(p.startswith("[[frontends]] blog: client_secret_file: cannot read") for p in missing)


def test_a_missing_secret_names_its_environment_variable() -> None:
    env = {k: v for k, v in ENV.items() if "BLOG" not in k}
    assert problems(env, two()) == [
        "[[frontends]] blog: BFF_FRONTEND_BLOG_CLIENT_SECRET: required "
        "(or BFF_FRONTEND_BLOG_CLIENT_SECRET_FILE)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    toml = {
        "frontends": [
            table("shop", "https://app.example"),
            table("shop", "https://other.example"),
            table("Bad-Name", "https://x.example"),
            table("blog", "https://app.example", cookie_name="__Host-bff-session"),
            table("docs", "https://docs.example", colour="blue"),
        ]
    }
    env = {**ENV, "BFF_FRONTEND_DOCS_CLIENT_SECRET": "d"}
    found = problems(env, toml)
    assert "frontends: the name 'shop' is given 2 times" in found
    assert any(p.startswith("frontends[2].name: 'Bad-Name' is not a frontend name") for p in found)
    assert any("'shop' and 'blog' both serve app.example (no path base)" in p for p in found)
    assert any(
        "'shop' and 'blog' both use the cookie '__Host-bff-session' on app.example" in p
        for p in found
    )
    assert "[[frontends]] docs: colour: unknown frontend setting" in found


def test_one_host_several_path_bases_with_their_own_cookies() -> None:
    toml = {
        "frontends": [
            table("shop", "https://app.example/shop", cookie_name="__Host-shop"),
            table("blog", "https://app.example/blog/", cookie_name="__Host-blog"),
            table("home", "https://app.example", cookie_name="__Host-home"),
        ]
    }
    env = {**ENV, "BFF_FRONTEND_HOME_CLIENT_SECRET": "h"}
    shop, blog, home = load_settings(env, toml).frontends
    assert (shop.path_base, blog.path_base, home.path_base) == ("/shop", "/blog", "")
    assert blog.redirect_uri == "https://app.example/blog/bff/callback"
    assert blog.post_logout_redirect == "/blog/"
    assert blog.post_logout_redirect_uri == "https://app.example/blog/"
    same_cookie = {"frontends": [{**t, "cookie_name": "__Host-x"} for t in toml["frontends"]]}
    assert len(problems(env, same_cookie)) == 2  # blog and home each clash with shop


@pytest.mark.parametrize("base", ["/a/../b", "/a/./b", "/a%2fb", "/a b", "/a?x=1"])
def test_a_path_base_must_be_plain_segments(base: str) -> None:
    toml = {"frontends": [table("shop", f"https://app.example{base}")]}
    found = problems(ENV, toml)
    assert found and all(
        p.startswith("[[frontends]] shop: BFF_FRONTEND_SHOP_PUBLIC_URL") for p in found
    )


def test_flat_frontend_settings_beside_tables_are_refused() -> None:
    env = {**ENV, "BFF_ISSUER": "https://idp.example", "BFF_CLIENT_SECRET_FILE": "/run/s"}
    found = problems(env, {**two(), "client_id": "spa"})
    assert sorted(p.split(":")[0] for p in found) == [
        "BFF_CLIENT_SECRET_FILE",
        "BFF_ISSUER",
        "client_id",
    ]
    assert all("cannot be combined with [[frontends]]" in p for p in found)


@pytest.mark.parametrize("value", [[], {}, "shop", [1]])
def test_frontends_must_be_an_array_of_tables(value: Any) -> None:
    assert problems(ENV, {"frontends": value})


def test_masked_config_lists_every_frontend_and_no_flat_one() -> None:
    report = masked_config(load_settings(ENV, two()))
    assert "issuer" not in report and "client_secret" not in report
    assert [f["name"] for f in report["frontends"]] == ["shop", "blog"]
    assert report["frontends"][0]["client_secret"] == "****"
    assert report["frontends"][0]["routes"][0]["upstream"] == "http://orders:8080"
    assert "shop-secret" not in repr(report)


def test_without_tables_the_flat_settings_are_the_one_default_frontend() -> None:
    env = {
        "BFF_SECRET_KEY": KEY,
        "BFF_ISSUER": "https://idp.example",
        "BFF_CLIENT_ID": "spa",
        "BFF_CLIENT_SECRET": "x",
    }
    s = load_settings(env)
    assert [f.name for f in s.frontends] == ["default"]
    assert s.frontend.session_namespace == ""  # the keys and salts sessions always had
    report = masked_config(s)
    assert report["issuer"] == "https://idp.example"
    assert [f["name"] for f in report["frontends"]] == ["default"]


def test_the_readme_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("### Several frontends", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    env = {
        "BFF_SECRET_KEY": KEY,
        "BFF_FRONTEND_SHOP_CLIENT_SECRET": "s",
        "BFF_FRONTEND_SHOP_STATIC_DIR": str(tmp_path),  # the environment wins
        "BFF_FRONTEND_ADMIN_CLIENT_SECRET": "a",  # over client_secret_file too
    }
    s = load_settings(env, tomllib.loads(example))
    assert [(f.name, f.path_base) for f in s.frontends] == [("shop", ""), ("admin", "/admin")]
    assert s.frontends[1].client_secret == "a"
