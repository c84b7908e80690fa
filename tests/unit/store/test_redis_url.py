"""The Sentinel and Cluster store URLs: parsed the same way by check-config and the store
factory, refused with a reason that never quotes a password, and masked for display."""

from __future__ import annotations

import pytest

from bff.config.load import load_settings
from bff.config.report import masked_config
from bff.errors import ConfigError
from bff.store.redis_url import mask_store_url, parse_ha_url

BASE = {
    "BFF_ISSUER": "https://idp.example.com",
    "BFF_CLIENT_ID": "spa",
    "BFF_CLIENT_SECRET": "s3cret-value",
    "BFF_SECRET_KEY": "k" * 32,
}


def test_sentinel_url_with_everything() -> None:
    spec = parse_ha_url(
        "redis+sentinel://app:p%40ss@10.0.0.1:26379,sentinel-2,[::1]:26380/mymaster"
        "?db=3&sentinel_password=sp&sentinel_username=su"
    )
    assert spec.kind == "sentinel" and not spec.tls
    assert spec.nodes == (("10.0.0.1", 26379), ("sentinel-2", 26379), ("::1", 26380))
    assert (spec.username, spec.password) == ("app", "p@ss")
    assert (spec.service, spec.db) == ("mymaster", 3)
    assert (spec.sentinel_username, spec.sentinel_password) == ("su", "sp")
    assert "p@ss" not in repr(spec) and "sp" not in repr(spec).replace("sentinel", "")


def test_cluster_url_and_tls() -> None:
    spec = parse_ha_url("rediss+cluster://:pw@n1:7000,n2:7001")
    assert spec.kind == "cluster" and spec.tls
    assert spec.nodes == (("n1", 7000), ("n2", 7001))
    assert (spec.username, spec.password, spec.db) == (None, "pw", 0)
    assert parse_ha_url("redis+cluster://n1").nodes == (("n1", 6379),)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://h:1", "/SERVICE"),
        ("redis+sentinel://h:1/a b", "/SERVICE"),
        ("redis+sentinel://h:1/m?db=x", "db must"),
        ("redis+sentinel://h:1/m?password=x", "unknown or repeated"),
        ("redis+sentinel://h:1/m?db=1&db=2", "unknown or repeated"),
        ("redis+cluster://h:1/0", "no path"),
        ("redis+cluster://h:1?db=2", "unknown"),
        ("redis+cluster://:secret@", "at least one"),
        ("redis+cluster://h:1,,h:2", "comma-separated"),
        ("redis+cluster://h:99999", "port"),
        ("redis+cluster://h:x", "port"),
        ("redis+cluster://bad_host!:1", "host:port"),
        ("redis+cluster://h:1#frag", "fragment"),
        ("redis+shards://h:1", "not one of"),
    ],
)
def test_bad_urls_are_refused_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        parse_ha_url(url)
    assert "secret" not in str(info.value)


def test_masking_hides_both_passwords() -> None:
    masked = mask_store_url("redis+sentinel://u:topsecret@h:1,h:2/m?db=1&sentinel_password=sp1")
    assert masked == "redis+sentinel://u:****@h:1,h:2/m?db=1&sentinel_password=****"
    assert mask_store_url("redis://h:6379/0") == "redis://h:6379/0"
    assert mask_store_url("memory://") == "memory://"


def test_config_accepts_every_ha_scheme_and_masks_it() -> None:
    for scheme in ("redis+sentinel", "rediss+sentinel"):
        url = f"{scheme}://:pw1@h:26379/m?sentinel_password=pw2"
        settings = load_settings({**BASE, "BFF_SESSION_STORE": url})
        shown = masked_config(settings)["session_store"]
        assert "pw1" not in shown and "pw2" not in shown
    for scheme in ("redis+cluster", "rediss+cluster"):
        load_settings({**BASE, "BFF_SESSION_STORE": f"{scheme}://h:7000,h:7001"})


def test_config_refuses_a_bad_ha_url_with_a_masked_reason() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {**BASE, "BFF_SESSION_STORE": "redis+sentinel://:pw1@h:1?sentinel_password=pw2"}
        )
    (problem,) = [p for p in info.value.problems if "BFF_SESSION_STORE" in p]
    assert "/SERVICE" in problem and "pw1" not in problem and "pw2" not in problem
