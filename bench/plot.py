"""The benchmark's picture from a results JSON: requests/s per target at 64 connections
(bars: the median over the rounds, whiskers: min-max) and the p50 each adds over direct
at 1 connection; references, peers, bff and the baseline in their own colours, skipped
peers as a labelled empty slot with the reason below.

    python bench/plot.py bench-results/results.json docs/bench.png
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["COLOURS", "labels", "main", "plot"]

COLOURS = {"reference": "#9e9e9e", "peer": "#e07b39", "bff": "#2f6db5", "baseline": "#9dbbe3"}
_SKIPPED = "#ffffff"
_OFF_SCALE = ("direct", "nginx-proxy")


def labels(results: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(target, x label, kind) in the table's order, skipped peers included."""
    base = results.get("baseline") or {}
    ref, commit = base.get("ref", ""), base.get("commit", "")[:7]
    # its commit beside a ref that names one (`main`), not beside the commit itself
    same = bool(ref) and (commit.startswith(ref) or ref.startswith(commit))
    shown = ref if same else f"{ref} {commit}".strip()
    out = []
    for name, row in results.get("summary", {}).items():
        kind = row.get("kind") or "reference"
        label = f"{name}\n({shown})" if kind == "baseline" and shown else name
        out.append((name, label, kind))
    for name in results.get("skipped", {}):
        out.append((name, f"{name}\n(skipped)", "skipped"))
    return out


def _scale(summary: Mapping[str, Mapping[str, Any]]) -> float:
    """The throughput axis' top: room for every target but the two nginx references,
    whose bars (10-30x bff's) run off the scale with their figure written on them."""
    tops = [
        row.get("rps_max") or row.get("rps") or 0
        for name, row in summary.items()
        if name not in _OFF_SCALE
    ]
    return 1.3 * max(tops, default=1) or 1


def plot(results: Mapping[str, Any], out: Path) -> Path:
    """Write the PNG to `out` (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    summary = results.get("summary", {})
    slots = labels(results)
    xs = list(range(len(slots)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5), gridspec_kw={"wspace": 0.2})
    for axis in (left, right):
        axis.set_xticks(xs, [label for _, label, _ in slots], fontsize=8, rotation=35, ha="right")
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    colours = [COLOURS.get(kind, _SKIPPED) for _, _, kind in slots]
    rows = [summary.get(name, {}) for name, _, _ in slots]
    top = _scale(summary)
    rps = [row.get("rps") or 0 for row in rows]
    low = [value - (row.get("rps_min") or value) for value, row in zip(rps, rows, strict=True)]
    high = [(row.get("rps_max") or value) - value for value, row in zip(rps, rows, strict=True)]
    shown = [min(value, top) for value in rps]
    whiskers = [
        (lo, hi) if value < top else (0, 0) for value, lo, hi in zip(rps, low, high, strict=True)
    ]
    left.bar(
        xs,
        shown,
        color=colours,
        edgecolor="#444444",
        yerr=[[w[0] for w in whiskers], [w[1] for w in whiskers]],
        capsize=4,
    )
    left.set_ylim(0, top)
    left.set_ylabel("requests/s at 64 connections (median; whiskers: min-max over rounds)")
    left.set_title("Throughput (higher is better; N.NNx: req/s over mod_auth_openidc's)")
    for x, (_, _, kind), row, value in zip(xs, slots, rows, rps, strict=True):
        if kind == "skipped":
            left.text(x, top * 0.02, "skipped", ha="center", va="bottom", rotation=90, fontsize=8)
            continue
        if value >= top:
            left.text(
                x, top * 0.97, f"{value:,.0f}\n(off scale)", ha="center", va="top", fontsize=7
            )
            continue
        ratio = row.get("x_mod_auth_openidc")
        note = f"{value:,.0f}"
        if ratio and kind != "reference":
            note += f"\n{ratio:.2f}x"
        left.text(x, row.get("rps_max") or value, note, ha="center", va="bottom", fontsize=7)
    added = [row.get("added_c1_p50_ms") for row in rows]
    right.bar(xs, [a or 0 for a in added], color=colours, edgecolor="#444444")
    right.set_ylabel("p50 added over direct at 1 connection (ms)")
    right.set_title("Added latency (lower is better)")
    for x, value, (_, _, kind) in zip(xs, added, slots, strict=True):
        text = "skipped" if kind == "skipped" else ("-" if value is None else f"{value:.3f}")
        right.text(x, max(value or 0, 0), text, ha="center", va="bottom", fontsize=7)
    kinds = [k for k in COLOURS if any(kind == k for _, _, kind in slots)]
    handles = [Patch(color=COLOURS[k], label=k) for k in kinds]
    right.legend(handles=handles, fontsize=8, loc="upper left")
    meta = results.get("meta", {})
    fig.suptitle(
        f"bff benchmark {meta.get('started', '')}: {meta.get('rounds', '?')} interleaved rounds, "
        f"wrk {meta.get('connections', 64)} connections, {meta.get('cpus', '?')} CPUs shared by all"
    )
    notes = [f"{name} skipped: {reason}" for name, reason in results.get("skipped", {}).items()]
    if notes:
        wrapped = "\n".join(textwrap.fill(n, 200) for n in notes)
        fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom")
    fig.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.2 + 0.02 * len(notes))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python bench/plot.py RESULTS.json OUT.png", file=sys.stderr)
        return 2
    results = json.loads(Path(args[0]).read_text())
    print(plot(results, Path(args[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
