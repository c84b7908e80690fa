"""bench/baseline.py: BENCH_BASELINE, the archived tree, and that its bff is the one
imported (not this checkout's editable install)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.baseline import baseline_ref, extract, imported_from


def test_the_ref_comes_from_the_environment() -> None:
    assert baseline_ref({}) is None
    assert baseline_ref({"BENCH_BASELINE": "  "}) is None
    assert baseline_ref({"BENCH_BASELINE": " main "}) == "main"


def test_the_tree_of_a_ref_is_extracted_and_imported_from(tmp_path: Path) -> None:
    tree = tmp_path / "baseline"
    commit = extract("HEAD", tree)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert (tree / "bff" / "cli" / "main.py").is_file()
    assert not (tree / ".git").exists()
    assert Path(imported_from(tree)) == (tree / "bff" / "__init__.py")


def test_an_unknown_ref_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="rev-parse"):
        extract("no-such-ref-anywhere", tmp_path / "x")


def test_a_tree_without_bff_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not from"):
        imported_from(tmp_path)
