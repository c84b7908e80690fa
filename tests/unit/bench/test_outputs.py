"""bench/outputs.py: every run's JSON, results.json (the latest) and the plot."""

from __future__ import annotations

import json
from pathlib import Path

from bench.outputs import log_sizes, write_outputs
from tests.support.bench_results import sample_results


def test_a_run_writes_both_jsons_and_the_plot(tmp_path: Path) -> None:
    written = write_outputs(sample_results(), tmp_path, "2026-12-06T08:00:00")
    assert written == [
        tmp_path / "bench-results" / "bench-2026-12-06T080000.json",
        tmp_path / "bench-results" / "results.json",
        tmp_path / "docs" / "bench.png",
    ]
    assert json.loads(written[1].read_text()) == json.loads(written[0].read_text())
    assert json.loads(written[1].read_text())["skipped"]["oauth2-proxy"]
    assert written[2].read_bytes().startswith(b"\x89PNG")


def test_a_failed_run_without_figures_still_writes_its_json(tmp_path: Path) -> None:
    written = write_outputs({"meta": {}, "error": "RuntimeError: x"}, tmp_path, "t")
    assert [p.name for p in written] == ["bench-t.json", "results.json"]


def test_log_sizes(tmp_path: Path) -> None:
    (tmp_path / "bff-1w.log").write_text("GET /api/bench 200\n" * 3)
    (tmp_path / "other.txt").write_text("not a log")
    assert log_sizes(tmp_path) == {"bff-1w": 57}
