"""bench/plot.py: the PNG from a results dict (and from a results file, as the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.plot import labels, main, plot
from tests.support.bench_results import sample_results

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot(sample_results(), tmp_path / "docs" / "bench.png")
    data = out.read_bytes()
    assert data.startswith(PNG)
    assert len(data) > 20_000  # two panels of bars, not an empty canvas


def test_peers_baseline_and_skipped_are_labelled() -> None:
    shown = {name: (label, kind) for name, label, kind in labels(sample_results())}
    assert shown["base-1w"] == ("base-1w\n(main 835b4e1)", "baseline")
    by_commit = sample_results()
    by_commit["baseline"] = {**by_commit["baseline"], "ref": "835b4e1"}
    shown_once = {name: label for name, label, _ in labels(by_commit)}
    assert shown_once["base-1w"] == "base-1w\n(835b4e1)"  # not "(835b4e1 835b4e1)"
    assert shown["mod_auth_openidc"][1] == "peer"
    assert shown["oauth2-proxy"] == ("oauth2-proxy\n(skipped)", "skipped")
    assert list(shown)[-1] == "oauth2-proxy"


def test_the_command_line_reads_a_results_file(tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(sample_results()))
    assert main([str(source), str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png").read_bytes().startswith(PNG)
    assert main([str(source)]) == 2
