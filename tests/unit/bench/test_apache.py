"""bench/apache.py: the mod_auth_openidc peer's Apache configuration, rendered and (where
Debian's apache2 is installed) checked by apache2 itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench import apache


def _site(tmp_path: Path, user: str | None = None) -> apache.ApacheSite:
    return apache.ApacheSite(
        dir=tmp_path / "apache",
        port=41001,
        upstream_port=41002,
        provider="http://127.0.0.1:41003",
        redis_port=41004,
        client_id="bff-demo",
        client_secret="client-secret-for-the-test",
        passphrase="passphrase-for-the-test",
        user=user,
    )


def _directives(conf: str) -> list[str]:
    return [line.strip() for line in conf.splitlines() if line.strip() and not line.startswith("#")]


def test_the_configuration_has_what_the_comparison_needs(tmp_path: Path) -> None:
    site = _site(tmp_path)
    lines = _directives(apache.render_conf(site))
    d = site.dir
    for needed in (
        f'ServerRoot "{d}"',
        "Listen 127.0.0.1:41001",
        f'PidFile "{d}/apache.pid"',
        f'ErrorLog "{d}/apache-error.log"',
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so",
        "LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so",
        "LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so",
        "StartServers 2",
        "ServerLimit 2",
        "ThreadsPerChild 64",
        "MaxRequestWorkers 128",
        "MaxConnectionsPerChild 0",
        "KeepAlive On",
        "OIDCProviderMetadataURL http://127.0.0.1:41003/.well-known/openid-configuration",
        "OIDCClientID bff-demo",
        "OIDCProviderTokenEndpointAuth client_secret_basic",
        "OIDCRedirectURI http://127.0.0.1:41001/oidc/callback",
        "OIDCPKCEMethod S256",
        "OIDCSessionType server-cache",
        "OIDCCacheType redis",
        "OIDCRedisCacheServer 127.0.0.1:41004",
        "OIDCPassClaimsAs environment",
        'RequestHeader set Authorization "Bearer %{OIDC_access_token}e"',
        "ProxyPass http://127.0.0.1:41002/api/",
        "AuthType openid-connect",
        "Require valid-user",
    ):
        assert needed in lines, needed
    # no access log, nothing read from /etc/apache2, no other MPM
    assert not [line for line in lines if re.match(r"(CustomLog|TransferLog|Include)", line)]
    assert not [line for line in lines if "mpm_prefork" in line or "mpm_worker" in line]
    assert not [line for line in lines if line.startswith(("User ", "Group "))]


def test_children_switch_user_only_when_started_by_root(tmp_path: Path) -> None:
    lines = _directives(apache.render_conf(_site(tmp_path, user="www-data")))
    assert "User www-data" in lines
    assert "Group www-data" in lines


def test_the_redirect_uri_is_registered_as_rendered(tmp_path: Path) -> None:
    site = _site(tmp_path)
    assert site.redirect_uri == apache.callback_uri(41001)
    assert f"OIDCRedirectURI {site.redirect_uri}" in apache.render_conf(site)


def test_apache2_accepts_the_configuration(tmp_path: Path) -> None:
    """apache2 -t: the syntax, every module loads, every directive is known to it."""
    why = apache.missing()
    if why is not None:
        pytest.skip(f"{why} (make bench installs it)")
    site = _site(tmp_path, user=apache.child_user())
    site.dir.mkdir()
    conf = apache.write_conf(site)
    binary = apache.apache_binary()
    assert binary is not None
    done = subprocess.run(
        [binary, "-t", "-d", str(site.dir), "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stderr + done.stdout
