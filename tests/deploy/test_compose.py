"""The compose stack (deploy/docker): valid against the Compose Specification's schema
(vendored; `docker compose config` cannot run here), every cross-reference resolves, the
bff services' environment is a configuration bff accepts, the Keycloak realm registers
the URIs bff uses, and the development certificate is generated, never committed."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from bff.config.load import load_settings
from tests.deploy import dockerfile
from tests.deploy.common import DEPLOY, REPO, check_env_names, load_yaml_docs

DOCKER = DEPLOY / "docker"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text())
GENERATED = ("certs/", "secrets/")  # written by gen-dev-secrets.sh, ignored by git
STACKS = {"redis": ["compose.yml"], "sentinel": ["compose.yml", "compose.sentinel.yml"]}


def _load(name: str) -> dict[str, Any]:
    (doc,) = load_yaml_docs(DOCKER / name)
    return doc


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge, as far as these files need it: mappings merge key by key,
    anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _stack(variant: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in STACKS[variant]:
        merged = _merge(merged, _load(name))
    return merged


@pytest.fixture(params=sorted(STACKS))
def stack(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _stack(request.param)


def _bff_services(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in stack["services"].items()
        if svc.get("image") == "bff:dev" and "entrypoint" not in svc
    }


def _image_env() -> dict[str, str]:
    stages = dockerfile.stages(dockerfile.parse((DOCKER / "Dockerfile").read_text()))
    return dockerfile.runtime_env(stages[-1])


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


@pytest.mark.parametrize("name", ["compose.yml", "compose.sentinel.yml"])
def test_each_file_is_valid_against_the_compose_schema(name: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(_load(name))


def test_the_schema_catches_a_broken_file() -> None:
    broken = _load("compose.yml")
    broken["services"]["redis"]["stop_grace_periode"] = "45s"  # a misspelt key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_references_resolve(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for secret in svc.get("secrets", []):
            assert secret in stack["secrets"], (name, secret)
        for network in svc.get("networks", []):
            assert network in stack["networks"], (name, network)
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            relative = source.removeprefix("./")
            if not relative.startswith(GENERATED):
                assert (DOCKER / source).exists(), (name, source)
    for secret in stack["secrets"].values():
        assert secret["file"].removeprefix("./").startswith(GENERATED)


def test_two_bff_replicas_run_as_the_image_runs_them(stack: dict[str, Any]) -> None:
    bffs = _bff_services(stack)
    assert len(bffs) >= 2
    image_env = _image_env()
    for name, svc in bffs.items():
        env = svc["environment"]
        check_env_names(set(env))
        assert svc["user"] == "10001:10001" and svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        tmpfs = {t.split(":", 1)[0] for t in svc["tmpfs"]}
        assert {"/tmp", image_env["PROMETHEUS_MULTIPROC_DIR"]} <= tmpfs, name
        budget = int(env["BFF_SHUTDOWN_DRAIN_DELAY"]) + int(env["BFF_SHUTDOWN_TIMEOUT"])
        assert _seconds(svc["stop_grace_period"]) > budget
        assert "ports" not in svc  # reached through the ingress only
        assert env["BFF_CLIENT_SECRET_FILE"] == f"/run/secrets/{svc['secrets'][0]}"
        assert env["BFF_SECRET_KEY_FILE"] == f"/run/secrets/{svc['secrets'][1]}"


def test_the_bff_environment_is_a_configuration_bff_accepts(stack, tmp_path: Path) -> None:
    """bff's own loader reads each replica's environment (secret files stood in for)."""
    for svc in _bff_services(stack).values():
        env = dict(svc["environment"])
        for name in ("BFF_CLIENT_SECRET_FILE", "BFF_SECRET_KEY_FILE"):
            stand_in = tmp_path / name
            stand_in.write_text("x" * 43)
            env[name] = str(stand_in)
        settings = load_settings(env)
        assert settings.frontend.secure and settings.frontend.cookie_name == "__Host-bff-session"
        assert settings.workers == 1


def test_hosts_urls_and_the_ingress_fit_together(stack: dict[str, Any]) -> None:
    services = stack["services"]
    ingress = services["ingress"]["networks"]["edge"]
    aliases = set(ingress["aliases"])
    for name, svc in _bff_services(stack).items():
        env = svc["environment"]
        assert env["BFF_TRUSTED_PROXIES"] == ingress["ipv4_address"] + "/32"
        for url in (env["BFF_ISSUER"], env["BFF_PUBLIC_URL"]):
            parts = urlsplit(url)
            assert parts.scheme == "https" and parts.hostname in aliases, url
            # Published on the host's loopback only (a development stack).
            assert services["ingress"]["ports"] == [f"127.0.0.1:{parts.port}:{parts.port}"]
        for route in env["BFF_ROUTES"].split(","):
            host = urlsplit(route.split("=", 1)[1]).hostname
            assert host in services, (name, route)
        store = env["BFF_SESSION_STORE"]
        hosts = store.split("://", 1)[1].split("/", 1)[0].split(",")
        for host in hosts:
            assert host.rsplit(":", 1)[0] in services, store
    conf = (DOCKER / "nginx" / "default.conf").read_text()
    upstream = re.search(r"upstream bff \{(.*?)\}", conf, re.S)
    assert upstream
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    assert {s for s, _ in servers} == set(_bff_services(stack)) and {p for _, p in servers} == {
        "8000"
    }
    assert re.findall(r"server_name ([\w.]+);", conf) == sorted(aliases)
    assert "proxy_pass http://keycloak:8080;" in conf
    assert "proxy_buffering off;" in conf  # streams pass unbuffered
    assert "9091" not in conf  # the admin listener is never routed
    # bff believes this proxy's X-Forwarded-Host: a fixed value, never the browser's Host,
    # and a Host the ingress does not serve is refused before it reaches bff
    assert "proxy_set_header X-Forwarded-Host app.localhost:8443;" in conf
    default = re.search(r"listen 8443 ssl default_server;(.*?)\}", conf, re.S)
    assert default and "return 421;" in default.group(1) and "proxy_pass" not in default.group(1)


def test_the_realm_registers_the_uris_bff_uses(stack: dict[str, Any]) -> None:
    realm = json.loads((DOCKER / "keycloak" / "realm-bff.json").read_text())
    services = stack["services"]
    env = next(iter(_bff_services(stack).values()))["environment"]
    assert urlsplit(env["BFF_ISSUER"]).path == f"/realms/{realm['realm']}"
    (client,) = [c for c in realm["clients"] if c["clientId"] == env["BFF_CLIENT_ID"]]
    public = env["BFF_PUBLIC_URL"]
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["redirectUris"] == [f"{public}/bff/callback"]
    attributes = client["attributes"]
    assert attributes["post.logout.redirect.uris"] == f"{public}/"  # BFF_POST_LOGOUT_REDIRECT
    assert attributes["backchannel.logout.url"] == f"{public}/bff/backchannel-logout"
    assert attributes["pkce.code.challenge.method"] == "S256"
    # The client secret: a placeholder Keycloak fills from its environment, which the
    # generated .env provides; never a literal in the file.
    assert client["secret"] == "${BFF_DEV_CLIENT_SECRET}"
    assert "BFF_DEV_CLIENT_SECRET" in services["keycloak"]["environment"]
    # The demo API checks the issuer and the audience the realm's mapper adds.
    args = dict(a.removeprefix("--").split("=", 1) for a in services["demo-api"]["command"][1:])
    assert args["issuer"] == env["BFF_ISSUER"]
    (mapper,) = client["protocolMappers"]
    assert mapper["config"]["included.custom.audience"] == args["audience"]


def test_sentinel_variant_names_its_service() -> None:
    stack = _stack("sentinel")
    for svc in _bff_services(stack).values():
        assert svc["environment"]["BFF_SESSION_STORE"].startswith("redis+sentinel://")
    store = next(iter(_bff_services(stack).values()))["environment"]["BFF_SESSION_STORE"]
    service = store.rsplit("/", 1)[1]
    sentinel = stack["services"]["sentinel-1"]
    assert f"'sentinel monitor {service} redis 6379 2'" in " ".join(sentinel["command"])
    assert len([s for s in stack["services"] if s.startswith("sentinel-")]) == 3


def test_dev_certificates_and_secrets_are_generated_not_committed(tmp_path: Path) -> None:
    script = DOCKER / "gen-dev-secrets.sh"
    result = subprocess.run(
        ["bash", str(script), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    certs = tmp_path / "certs"
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / "tls.crt")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    san = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(certs / "tls.crt")],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "DNS:app.localhost" in san and "DNS:auth.localhost" in san
    secret = (tmp_path / "secrets" / "client-secret").read_text().strip()
    assert len(secret) >= 32 and len((tmp_path / "secrets" / "secret-key").read_text()) > 32
    assert (tmp_path / ".env").read_text() == f"BFF_DEV_CLIENT_SECRET={secret}\n"
    # A second run keeps what exists (the realm was imported with that secret).
    subprocess.run(
        ["bash", str(script), str(tmp_path)], check=True, timeout=60, capture_output=True
    )
    assert (tmp_path / "secrets" / "client-secret").read_text().strip() == secret
    # Nothing of the kind is tracked by git.
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [t for t in tracked if t.endswith((".key", ".pem", ".crt", ".env"))]
    for path in tracked:
        text = (REPO / path).read_text(errors="replace")
        assert "PRIVATE KEY-----" not in text, path
    ignored = (DOCKER / ".gitignore").read_text().split()
    assert {"certs/", "secrets/", ".env"} <= set(ignored)


def test_the_demo_api_binds_beyond_loopback_only_in_a_container() -> None:
    command = _load("compose.yml")["services"]["demo-api"]["command"]
    assert "--in-container" in command and "--host=0.0.0.0" in command
    argv = [sys.executable, str(DEPLOY / "demo" / "api.py"), "--host=0.0.0.0"]
    refused = subprocess.run(
        [*argv, "--issuer=x", "--audience=y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--host must be a loopback address (or --in-container)" in refused.stderr


def test_the_ingress_config_passes_nginx_t(tmp_path: Path) -> None:
    """`nginx -t` on the ingress config, with the stack's host names pointed at loopback
    (nginx resolves upstreams while parsing) and a generated certificate. Debian's nginx
    may predate `http2 on;` (1.25.1; the image runs 1.27): that directive alone is dropped
    when the local nginx is older."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not nginx:
        pytest.skip("nginx is not installed (Debian package nginx; the bench installs it)")
    subprocess.run(
        ["bash", str(DOCKER / "gen-dev-secrets.sh"), str(tmp_path)], check=True, capture_output=True
    )
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr
    major, minor, patch = map(int, re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version).groups())
    conf = (DOCKER / "nginx" / "default.conf").read_text()
    if (major, minor, patch) < (1, 25, 1):
        conf = conf.replace("    http2 on;\n", "")
    for host in ("bff-a", "bff-b", "keycloak"):
        conf = conf.replace(f"{host}:", "127.0.0.1:")
    conf = conf.replace("/etc/nginx/certs/", f"{tmp_path}/certs/")
    (tmp_path / "default.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
        f" proxy_temp_path {tmp_path}/proxy;\n include {tmp_path}/default.conf;\n}}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
