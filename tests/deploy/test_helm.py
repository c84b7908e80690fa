"""The Helm chart: lint, and `helm template` rendering the same objects as the plain
manifests (same names, same specs, same security settings), plus its other switches."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy import kube
from tests.deploy.common import DEPLOY, load_yaml_docs, tool

HELM_ONLY_LABELS = {"app.kubernetes.io/managed-by", "helm.sh/chart"}


def _normalized(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what only Helm adds: its bookkeeping labels and the pod
    template's config checksum (which rolls pods when bff.toml changes)."""
    out = copy.deepcopy(obj)
    labels = out["metadata"].get("labels", {})
    for key in HELM_ONLY_LABELS:
        labels.pop(key, None)
    if out["kind"] == "Deployment":
        out["spec"]["template"]["metadata"]["annotations"].pop("checksum/config", None)
    return out


def _keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): _normalized(o) for o in objects}


def test_helm_lint_strict() -> None:
    result = subprocess.run(
        [tool("helm"), "lint", "--strict", str(kube.CHART)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_renders_the_plain_manifests() -> None:
    plain = _keyed([o for o in kube.plain_objects() if o["kind"] != "Namespace"])
    objects = kube.render_chart()
    (deployment,) = kube.by_kind(objects, "Deployment")
    assert len(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]) == 64
    rendered = _keyed(objects)
    assert sorted(rendered) == sorted(plain)  # the same objects, by kind and name
    for key, obj in plain.items():
        assert rendered[key] == obj, key  # and each the same, field by field


def test_defaults_expect_an_existing_secret_and_stay_valid() -> None:
    argv = [tool("helm"), "template", "edge", str(kube.CHART), "--namespace", "web"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    assert not kube.by_kind(objects, "Secret")  # created out of band (NOTES.txt says how)
    (deployment,) = kube.by_kind(objects, "Deployment")
    assert deployment["metadata"]["name"] == "edge-bff"
    assert {o["metadata"]["namespace"] for o in objects} == {"web"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    sources = volumes[0]["projected"]["sources"]
    assert sources[1]["secret"]["name"] == "edge-bff"
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


def test_secret_create_requires_its_values() -> None:
    argv = [tool("helm"), "template", "bff", str(kube.CHART), "--set", "secret.create=true"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "secret.clientSecret is required" in result.stderr


def test_switches_digest_fixed_replicas_and_service_monitor() -> None:
    objects = kube.render_chart(
        "--set",
        "image.digest=sha256:" + "a" * 64,
        "--set",
        "autoscaling.enabled=false,replicaCount=3,serviceMonitor.enabled=true",
    )
    (deployment,) = kube.by_kind(objects, "Deployment")
    assert kube.container(deployment)["image"] == "ghcr.io/example/bff@sha256:" + "a" * 64
    assert "checkov.io/skip1" not in deployment["metadata"].get("annotations", {})
    assert deployment["spec"]["replicas"] == 3
    assert not kube.by_kind(objects, "HorizontalPodAutoscaler")
    (monitor,) = kube.by_kind(objects, "ServiceMonitor")
    (plain,) = load_yaml_docs(DEPLOY / "monitoring" / "servicemonitor.yaml")
    assert monitor["spec"] == plain["spec"]


@pytest.mark.parametrize("margin", [0, 10])
def test_grace_period_covers_drain_and_timeout(margin: int) -> None:
    objects = kube.render_chart("--set", f"shutdown.marginSeconds={margin}")
    (deployment,) = kube.by_kind(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35 + margin


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCuont=3", "additional properties 'replicaCuont' not allowed"),
        ("env.BFF_CLIENT_SECRET=oops", "invalid propertyName 'BFF_CLIENT_SECRET'"),
        ("image.digest=latest", "image"),
    ],
)
def test_values_schema_refuses_typos_and_secrets_in_env(setting: str, complaint: str) -> None:
    argv = [tool("helm"), "template", "bff", str(kube.CHART), "--set", setting]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_values_schema_lets_the_logout_hint_switch_through_but_no_secret() -> None:
    # BFF_LOGOUT_ID_TOKEN_HINT is a switch, not a token; names that carry secrets stay out
    # of plain env (RE2-safe: Helm's validator has no look-ahead).
    schema = json.loads((kube.CHART / "values.schema.json").read_text())
    env = jsonschema.Draft202012Validator(schema["properties"]["env"])
    assert env.is_valid({"BFF_LOGOUT_ID_TOKEN_HINT": "false"})
    for name in ("BFF_CLIENT_SECRET", "BFF_ADMIN_TOKEN_FILE", "BFF_SESSION_STORE", "X_TOKEN"):
        assert not env.is_valid({name: "x"}), name
