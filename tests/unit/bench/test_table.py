"""bench/report.py and bench/table.py: ratios to nginx-proxy and to mod_auth_openidc,
min-max over the rounds, skipped peers, the baseline, the round-to-round lines."""

from __future__ import annotations

from bench.report import build_table, check_targets, summarise
from tests.support.bench_results import result, sample_results


def test_ratios_to_both_references_and_the_round_range() -> None:
    summary = sample_results()["summary"]
    assert summary["bff-1w"]["rps"] == 4_000
    assert (summary["bff-1w"]["rps_min"], summary["bff-1w"]["rps_max"]) == (3_600, 4_500)
    assert summary["bff-1w"]["x_nginx_proxy"] == 0.08
    assert summary["bff-1w"]["x_mod_auth_openidc"] == 1.3333
    assert summary["bff-2w"]["x_mod_auth_openidc"] == 2.0
    assert summary["mod_auth_openidc"]["x_mod_auth_openidc"] == 1.0
    assert summary["mod_auth_openidc"]["added_c1_p50_ms"] == 0.7
    assert summary["bff-1w"]["added_c1_p50_ms"] == 0.25
    assert summary["bff-1w"]["kind"] == "bff"
    assert summary["bff-1w"]["cpu_us_per_request"] == 230.0
    assert (summary["bff-1w"]["cpu_share_min"], summary["bff-1w"]["cpu_share_max"]) == (0.9, 0.99)


def test_without_the_peer_its_ratio_is_absent_not_zero() -> None:
    loaded = {"nginx-proxy": [result(50_000, 1.0)], "bff-1w": [result(4_000, 15.0)]}
    single = {"nginx-proxy": [result(8_000, 0.1)], "bff-1w": [result(2_000, 0.4)]}
    summary = summarise(loaded, single)
    assert summary["bff-1w"]["x_mod_auth_openidc"] is None
    checks = {label: met for label, met, _ in check_targets({"summary": summary})}
    assert checks["bff-1w >= 1.5x mod_auth_openidc"] is None


def test_the_issue_targets_against_the_peer() -> None:
    checks = {label: met for label, met, _ in check_targets(sample_results())}
    assert checks["bff-1w >= 1.5x mod_auth_openidc"] is False  # 1.33x
    assert checks["bff-2w >= 2.4x mod_auth_openidc"] is False  # 2.0x
    assert checks["bff-1w added p50 at 1 connection <= 0.25 ms"] is True
    assert checks["1 store command per proxied request (bff-1w)"] is True


def test_the_table_shows_every_target_the_skipped_peer_and_the_baseline() -> None:
    table = build_table(sample_results())
    rows = {line.split()[0]: line for line in table.splitlines() if line[:1].strip()}
    assert "3,600-4,500" in rows["bff-1w"]
    assert " 1.33 " in rows["bff-1w"]  # x mod_auth_openidc
    assert " 0.080 " in rows["bff-1w"]  # x nginx-proxy
    assert rows["mod_auth_openidc"].split()[1] == "peer"
    assert rows["base-1w"].split()[1] == "baseline"
    assert "skipped: oauth2-proxy is not on PATH" in rows["oauth2-proxy"]
    assert "baseline: main (835b4e13e78b)" in table
    assert "bff-1w vs base-1w: 1.333x req/s (4,000 vs 3,000)" in table
    assert "store commands per proxied request (mod_auth_openidc): 2.0" in table
    variation = next(line for line in table.splitlines() if line.split()[:2] == ["bff-1w", "req/s"])
    assert "spread 22%" in variation
    assert "CPU share 0.90-0.99 cores" in variation
    assert "CPU us/request 220-250" in variation
