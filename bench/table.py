"""The side-by-side part of the printed report: one row per target (medians, min-max over
the rounds, ratios to nginx-proxy and to mod_auth_openidc, added latency, p99 under load,
Redis commands per request, CPU per request), the skipped peers with their reasons, bff
against the baseline, and how much the rounds varied and why. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["KIND_LABELS", "fmt", "side_by_side_lines"]

KIND_LABELS = {"reference": "reference", "peer": "peer", "bff": "bff", "baseline": "baseline"}


def fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def _range(low: Any, high: Any, spec: str) -> str:
    return "-" if low is None or high is None else f"{low:{spec}}-{high:{spec}}"


def _rows(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    head = (
        f"{'target':<17} {'kind':<9} {'req/s':>8} {'min-max':>15} {'x nginx':>7} "
        f"{'x oidc':>6} {'p99 ms':>7} {'c1 p50':>7} {'+c1 p50':>7} {'redis/req':>9} "
        f"{'cpu us/req':>10} {'errors':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, row in summary.items():
        lines.append(
            f"{name:<17} {fmt(row.get('kind')):<9} {fmt(row['rps'], ',.0f'):>8} "
            f"{_range(row.get('rps_min'), row.get('rps_max'), ',.0f'):>15} "
            f"{fmt(row['x_nginx_proxy'], '.3f'):>7} {fmt(row.get('x_mod_auth_openidc'), '.2f'):>6} "
            f"{fmt(row['p99_ms'], '.2f'):>7} {fmt(row['c1_p50_ms'], '.3f'):>7} "
            f"{fmt(row['added_c1_p50_ms'], '.3f'):>7} {fmt(row.get('redis_per_request')):>9} "
            f"{fmt(row.get('cpu_us_per_request'), '.0f'):>10} {fmt(row['errors']):>6}"
        )
    return lines


def _baseline(results: Mapping[str, Any]) -> list[str]:
    base = results.get("baseline")
    summary = results.get("summary", {})
    if not base:
        return []
    lines = [f"baseline: {base['ref']} ({base['commit'][:12]}), the same rounds as bff"]
    for workers in ("1w", "2w"):
        ours, theirs = summary.get(f"bff-{workers}"), summary.get(f"base-{workers}")
        if not ours or not theirs:
            continue
        lines.append(
            f"  bff-{workers} vs base-{workers}: {ours['rps'] / theirs['rps']:.3f}x req/s "
            f"({ours['rps']:,.0f} vs {theirs['rps']:,.0f}); added p50 at 1 connection "
            f"{fmt(ours['added_c1_p50_ms'], '.3f')} vs {fmt(theirs['added_c1_p50_ms'], '.3f')} ms; "
            f"p99 at 64 connections {ours['p99_ms']:.2f} vs {theirs['p99_ms']:.2f} ms"
        )
    return lines


def _variation(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Per target: the spread of req/s over the rounds beside its CPU share (cores it got)
    and its CPU per request: a round slow with the same CPU per request but a smaller
    share lost the CPU to something else (scheduling, wrk, steal), not to its own work."""
    lines = []
    for name, row in summary.items():
        if row.get("rounds", 0) < 2 or not row.get("rps"):
            continue
        spread = (row["rps_max"] - row["rps_min"]) / row["rps"] * 100
        lines.append(
            f"  {name:<17} req/s {_range(row['rps_min'], row['rps_max'], ',.0f')} "
            f"(spread {spread:.0f}%); CPU share "
            f"{_range(row.get('cpu_share_min'), row.get('cpu_share_max'), '.2f')} cores; "
            f"CPU us/request {_range(row.get('cpu_us_min'), row.get('cpu_us_max'), '.0f')}; "
            "preempted "
            f"{_range(row.get('preempted_per_s_min'), row.get('preempted_per_s_max'), ',')}/s"
        )
    return ["round to round at 64 connections:", *lines] if lines else []


def side_by_side_lines(results: Mapping[str, Any]) -> list[str]:
    summary = results.get("summary", {})
    lines = _rows(summary)
    for name, reason in results.get("skipped", {}).items():
        lines.append(f"{name:<17} skipped: {reason}")
    lines.append(
        "x nginx / x oidc: req/s over nginx-proxy's / mod_auth_openidc's; +c1 p50: p50 at "
        "1 connection minus direct's (ms); cpu us/req: the target's own processes"
    )
    return lines + _baseline(results) + _variation(summary)
