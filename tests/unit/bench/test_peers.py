"""bench/peers.py: why oauth2-proxy is skipped, decided at run time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.peers import oauth2_proxy_skip_reason


def _which(found: dict[str, str]) -> Callable[[str], str | None]:
    return found.get


def test_without_a_binary_or_go_it_says_it_cannot_be_built() -> None:
    reason = oauth2_proxy_skip_reason(_which({}))
    assert "not on PATH" in reason
    assert "no Go toolchain" in reason


def _go(tmp_path: Path, version: str) -> dict[str, str]:
    """A `go` on PATH that says it is `version` (a real program run by the check)."""
    go = tmp_path / "go"
    go.write_text(f"#!/bin/sh\necho 'go version go{version} linux/amd64'\n")
    go.chmod(0o755)
    return {"go": str(go)}


def test_an_old_go_is_named(tmp_path: Path) -> None:
    reason = oauth2_proxy_skip_reason(_which(_go(tmp_path, "1.19.8")))
    assert "Go 1.19" in reason
    assert ">= 1.22" in reason


def test_a_new_enough_go_still_needs_the_binary_built(tmp_path: Path) -> None:
    reason = oauth2_proxy_skip_reason(_which(_go(tmp_path, "1.23.4")))
    assert "Go 1.23 is" in reason
    assert "go install" in reason


def test_a_binary_on_path_is_named_not_faked() -> None:
    reason = oauth2_proxy_skip_reason(_which({"oauth2-proxy": "/opt/bin/oauth2-proxy"}))
    assert "/opt/bin/oauth2-proxy" in reason
    assert "does not drive it" in reason
