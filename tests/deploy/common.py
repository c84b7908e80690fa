"""Helpers shared by the deploy-file tests: paths, YAML loading, and the external tools
(hadolint, helm, checkov) that `make tools` installs."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = ["DEPLOY", "REPO", "TOOLS_BIN", "load_yaml_docs", "tool"]

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
