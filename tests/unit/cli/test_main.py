"""`bff --version`: this package and the libraries that matter, on one line."""

from __future__ import annotations

from importlib import metadata

import pytest

from bff.cli.main import main, version_text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == version_text()
    assert out.startswith(f"bff {metadata.version('bff')} (python ")
    for name in ("starlette", "uvicorn", "redis", "authlib", "joserfc"):
        assert f"{name} {metadata.version(name)}" in out
