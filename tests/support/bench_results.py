"""Benchmark figures without a run: one wrk result, and a results dict shaped as
bench/run.py writes it (the tests of bench's report, table, plot and outputs)."""

from __future__ import annotations

from typing import Any

from bench.report import summarise
from bench.wrk import WrkResult

__all__ = ["result", "sample_results"]


def result(rps: float, p50: float, errors: int = 0) -> WrkResult:
    return WrkResult(
        requests=int(rps),
        seconds=1.0,
        rps=rps,
        p50_ms=p50,
        p90_ms=p50 * 2,
        p99_ms=p50 * 4,
        max_ms=p50 * 8,
        errors=errors,
        non_2xx=0,
    )


def _record(rps: float, cpu_us: float, share: float) -> dict[str, Any]:
    return {"rps": rps, "cpu_us_per_request": cpu_us, "cpu_share": share, "preempted_per_s": 100}


def sample_results() -> dict[str, Any]:
    loaded = {
        "direct": [result(100_000, 0.5)] * 3,
        "nginx-proxy": [result(50_000, 1.0)] * 3,
        "stack-ceiling": [result(5_000, 10.0)] * 3,
        "mod_auth_openidc": [result(3_000, 20.0), result(2_800, 21.0), result(3_200, 19.0)],
        "bff-1w": [result(3_600, 17.0), result(4_500, 14.0), result(4_000, 15.0)],
        "bff-2w": [result(6_000, 10.0)] * 3,
        "base-1w": [result(3_000, 20.0)] * 3,
        "base-2w": [result(5_000, 12.0)] * 3,
    }
    single = {name: [result(2_000, 0.3)] * 3 for name in loaded}
    single["direct"] = [result(10_000, 0.05)] * 3
    single["mod_auth_openidc"] = [result(1_500, 0.75)] * 3
    kinds = {
        "direct": "reference",
        "nginx-proxy": "reference",
        "stack-ceiling": "reference",
        "mod_auth_openidc": "peer",
        "bff-1w": "bff",
        "bff-2w": "bff",
        "base-1w": "baseline",
        "base-2w": "baseline",
    }
    records = {
        "bff-1w": {
            "c64": [
                _record(3_600, 250.0, 0.9),
                _record(4_500, 220.0, 0.99),
                _record(4_000, 230.0, 0.95),
            ]
        }
    }
    summary = summarise(loaded, single, kinds=kinds, records=records)
    summary["bff-1w"]["redis_per_request"] = 1.0
    summary["mod_auth_openidc"]["redis_per_request"] = 2.0
    return {
        "meta": {"started": "2026-12-06T08:00:00", "rounds": 3, "connections": 64, "cpus": 2},
        "summary": summary,
        "skipped": {"oauth2-proxy": "oauth2-proxy is not on PATH and cannot be built here"},
        "baseline": {"ref": "main", "commit": "835b4e13e78b4726f9a4bfa164c155a3c1fa8f78"},
        "store_commands": {
            "mod_auth_openidc": {
                "per_request": 2.0,
                "requests": 500,
                "failed": 0,
                "by_command": {"get": 1000},
            },
            "bff-1w": {
                "per_request": 1.0,
                "requests": 500,
                "failed": 0,
                "by_command": {"getex": 500},
            },
        },
    }
