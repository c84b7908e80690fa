"""What one `make bench` run leaves behind: bench-results/bench-<time>.json (every run),
bench-results/results.json (the latest run) and the picture docs/bench.png
(bench/plot.py); and the size of each process's log in the temp folder (bff's access
log is on, as by default: a million requests write about 100 MB there)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PLOT", "log_sizes", "write_outputs"]

PLOT = Path("docs") / "bench.png"


def log_sizes(workdir: Path) -> dict[str, int]:
    """Bytes of each `<name>.log` the run's processes wrote (their stdout and stderr)."""
    return {p.stem: p.stat().st_size for p in sorted(workdir.glob("*.log"))}


def write_outputs(results: Mapping[str, Any], root: Path, started: str) -> list[Path]:
    """Write the JSON twice (timestamped, and results.json) and the plot; the paths.
    A plot that fails is reported, not fatal: the figures are in the JSON."""
    out_dir = root / "bench-results"
    out_dir.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    stamped = out_dir / f"bench-{started.replace(':', '')}.json"
    latest = out_dir / "results.json"
    stamped.write_text(text)
    latest.write_text(text)
    written = [stamped, latest]
    if results.get("summary"):
        try:
            from bench.plot import plot

            written.append(plot(results, root / PLOT))
        except Exception as exc:  # the run's figures matter more than the picture
            print(f"bench: no plot ({type(exc).__name__}: {exc})", file=sys.stderr)
    return written
