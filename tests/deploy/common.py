"""Helpers shared by the deploy-file tests: paths, YAML loading, and the external tools
(hadolint, helm, checkov) that `make tools` installs."""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "DEPLOY",
    "PARALLEL_CONTRACT_NAMES",
    "REPO",
    "TOOLS_BIN",
    "check_env_names",
    "known_env_names",
    "load_yaml_docs",
    "tool",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
TOOLS_BIN = REPO / ".venv-tools" / "bin"


def tool(name: str) -> str:
    """The path of an external tool: our venv's bin, then `.venv-tools/bin` (`make tools`).
    Missing: a failure in CI (which installs them) and a skip, with the reason, elsewhere."""
    for folder in (Path(sys.executable).parent, TOOLS_BIN):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed: run `make tools`"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a YAML file."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


# Names of the issue-13 contract that another branch adds to bff (JSON logs, tracing,
# graceful shutdown): the deploy files set them already. Drop each once bff reads it.
PARALLEL_CONTRACT_NAMES = frozenset(
    {
        "BFF_LOG_FORMAT",
        "BFF_TRACING",
        "BFF_SHUTDOWN_DRAIN_DELAY",
        "BFF_SHUTDOWN_TIMEOUT",
    }
)
# Environment variables of the libraries bff runs on.
LIBRARY_NAMES = frozenset({"PROMETHEUS_MULTIPROC_DIR", "SSL_CERT_FILE"})
_SETTING_READERS = {"raw", "text", "required", "number", "seconds", "optional_flag", "label"}


def known_env_names() -> set[str]:
    """Every BFF_* name bff's source reads: the settings read through the config
    collector (`c.text("public_url")` is BFF_PUBLIC_URL, `secret=True` adds _FILE) and
    every string constant that is exactly such a name."""
    names: set[str] = set()
    for path in (REPO / "bff").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"BFF_[A-Z0-9_]+", node.value):
                    names.add(node.value)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _SETTING_READERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                name = "BFF_" + node.args[0].value.upper()
                names.add(name)
                if any(
                    k.arg == "secret" and getattr(k.value, "value", None) for k in node.keywords
                ):
                    names.add(name + "_FILE")
    return names


def check_env_names(names: set[str]) -> None:
    """Every name is one bff (or a library it runs on) reads: a typo sets nothing."""
    known = known_env_names() | PARALLEL_CONTRACT_NAMES | LIBRARY_NAMES
    unknown = {n for n in names if n not in known and not n.startswith("OTEL_")}
    assert not unknown, f"names bff does not read: {sorted(unknown)}"
