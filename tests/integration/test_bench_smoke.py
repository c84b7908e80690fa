"""The benchmark's pure parts (bench/wrk.py's parser, bench/report.py's summary, target
checks and table): always run, no nginx or wrk needed. `make bench` runs the real thing."""

from __future__ import annotations

import json

import pytest

from bench.report import build_table, check_targets, percentile, summarise
from bench.wrk import parse_wrk
from tests.integration.test_bench_scale import LEAK, MEMORY, SCALE
from tests.support.bench_results import result


def _line(**over: int) -> str:
    doc = {
        "requests": 50_000,
        "duration_us": 5_000_000,
        "bytes": 1,
        "connect": 0,
        "read": 0,
        "write": 0,
        "status": 0,
        "timeout": 0,
        "p50_us": 1200,
        "p90_us": 2500,
        "p99_us": 9000,
        "max_us": 20000,
        "mean_us": 1300.5,
    }
    doc.update(over)
    return "BENCH_JSON " + json.dumps(doc)


def test_parse_wrk_reads_the_summary_line_among_wrk_output() -> None:
    output = f"Running 5s test @ http://127.0.0.1:1/api\n  2 threads\n{_line(status=3, read=2)}\n"
    result = parse_wrk(output)
    assert result.requests == 50_000
    assert result.rps == 10_000.0
    assert (result.p50_ms, result.p99_ms) == (1.2, 9.0)
    assert result.errors == 5
    assert result.non_2xx == 3


def test_parse_wrk_without_a_summary_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_JSON"):
        parse_wrk("wrk: connection refused\n")


def test_percentile_is_nearest_rank() -> None:
    samples = list(range(1, 201))
    assert percentile(samples, 50) == 100
    assert percentile(samples, 99) == 198
    assert percentile([7.0], 99) == 7.0


def test_summary_medians_ratios_table_and_targets() -> None:
    loaded = {
        "direct": [result(100_000, 0.5), result(90_000, 0.6), result(95_000, 0.4)],
        "nginx-proxy": [result(50_000, 1.0)] * 3,
        "stack-ceiling": [result(6_000, 10.0)] * 3,
        "bff-1w": [result(3_000, 20.0), result(2_000, 30.0), result(3_500, 18.0)],
        "bff-2w": [result(4_500, 14.0, errors=1)] * 3,
    }
    single = {
        "direct": [result(10_000, 0.05)] * 3,
        "nginx-proxy": [result(8_000, 0.08)] * 3,
        "stack-ceiling": [result(3_000, 0.30)] * 3,
        "bff-1w": [result(2_000, 0.40)] * 3,
        "bff-2w": [result(2_000, 0.30)] * 3,
    }
    summary = summarise(loaded, single)
    assert summary["direct"]["rps"] == 95_000
    assert summary["bff-1w"]["rps"] == 3_000
    assert summary["bff-1w"]["x_nginx_proxy"] == 0.06
    assert summary["bff-1w"]["added_c1_p50_ms"] == 0.35
    assert summary["bff-2w"]["errors"] == 3
    results = {
        "meta": {"started": "now", "rounds": 3},
        "summary": summary,
        "store_commands": {
            "bff-1w": {
                "per_request": 1.0,
                "requests": 10,
                "failed": 0,
                "by_command": {"getex": 10},
            }
        },
        "refresh_storm": [
            {
                "target": "bff-1w",
                "requests": 200,
                "grants": 1,
                "p50_ms": 80.0,
                "p99_ms": 120.0,
                "max_ms": 130.0,
                "errors": 0,
                "provider_latency_ms": 50,
                "per_worker": [1000],
                "control": {"p50_ms": 60.0, "p99_ms": 90.0, "errors": 0},
            },
        ],
        "session_scale": SCALE,
        "leak": LEAK,
    }
    checks = {label: met for label, met, _ in check_targets(results)}
    assert checks["bff-1w >= 0.05x nginx-proxy, 0 errors"] is True
    assert checks["bff-2w >= 0.08x nginx-proxy, 0 errors"] is False  # errors
    assert checks["bff-1w added p50 at 1 connection <= 0.25 ms"] is False
    assert checks["1 store command per proxied request (bff-1w)"] is True
    assert checks["bff-1w >= 1.5x mod_auth_openidc"] is None  # no peer in these rounds
    assert checks["refresh storm (bff-1w): 1 grant, p99 <= 100 ms"] is False  # 120 ms
    added = "refresh storm (bff-1w): p99 over the same burst without a refresh <= 100 ms"
    assert checks[added] is True  # 120 - 90 ms
    slow = {**results, "refresh_storm": [{**results["refresh_storm"][0], "p99_ms": 191.0}]}
    assert {label: met for label, met, _ in check_targets(slow)}[added] is False
    assert checks[MEMORY] is False  # (the session scale's own checks: test_bench_scale.py)
    table = build_table(results)
    for text in ("nginx-proxy", "bff-2w", "0.060", "refresh storm", "session scale", "[FAIL]"):
        assert text in table
    assert "the same burst without a refresh: p50 60.0 ms" in table
    # The stack's own cost, measured beside bff, puts the added-latency figure in context.
    assert "the stack alone (uvicorn + GETEX + aiohttp) 0.250 ms; bff-1w 0.350 ms, +0.100" in table
