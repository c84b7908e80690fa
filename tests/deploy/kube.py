"""The Kubernetes objects under test: the plain manifests (as kustomization.yaml lists
them), the Helm chart rendered by `helm template`, and the checks both must pass."""

from __future__ import annotations

import subprocess
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.common import DEPLOY, load_yaml_docs, tool

__all__ = [
    "CHART",
    "KUBE",
    "by_kind",
    "config_toml",
    "container",
    "parse_toml",
    "plain_objects",
    "render_chart",
    "write_objects",
]

KUBE = DEPLOY / "kubernetes"
CHART = DEPLOY / "helm" / "bff"
PLAIN_VALUES = CHART / "ci" / "plain-manifests-values.yaml"

Obj = dict[str, Any]


def plain_objects() -> list[Obj]:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    objects: list[Obj] = []
    for name in kustomization["resources"]:
        objects += load_yaml_docs(KUBE / name)
    return objects


def config_toml(objects: Iterable[Obj]) -> str:
    (configmap,) = by_kind(objects, "ConfigMap")
    text: str = configmap["data"]["bff.toml"]
    return text


def render_chart(*extra: str, namespace: str = "bff") -> list[Obj]:
    """`helm template bff` with the values that reproduce the plain manifests (and the
    plain ConfigMap's bff.toml), plus `extra` arguments."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as toml:
        toml.write(config_toml(plain_objects()))
        toml.flush()
        argv = [tool("helm"), "template", "bff", str(CHART), "--namespace", namespace]
        argv += ["-f", str(PLAIN_VALUES), "--set-file", f"config={toml.name}", *extra]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def container(deployment: Obj) -> Obj:
    (bff,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "bff"]
    return bff


def parse_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def write_objects(objects: Iterable[Obj], path: Path) -> None:
    path.write_text(yaml.safe_dump_all(list(objects), sort_keys=False))
