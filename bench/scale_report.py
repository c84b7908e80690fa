"""The leak check's and the session scale's lines in the report and their target checks
(bench/scale.py measures them). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SCALE_SESSIONS", "scale_checks", "scale_lines"]

SCALE_SESSIONS = 1_000_000  # the session-scale targets hold at this many sessions


def scale_checks(results: Mapping[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met?, figure): memory per session, many sessions vs one, RSS flat."""
    checks: list[tuple[str, bool | None, str]] = []
    scale = results.get("session_scale") or {}
    if scale:
        # With fewer sessions (BENCH_QUICK) the index's shared buckets and Redis' hash
        # tables weigh differently per session: not the figure.
        at_scale = scale["sessions"] >= SCALE_SESSIONS
        checks.append(
            (
                "Redis memory per session <= 900 B, Keycloak-size tokens (1,000,000 sessions)",
                scale["bytes_per_session"] <= 900 if at_scale else None,
                f"{scale['bytes_per_session']} B (development provider's tokens "
                f"{scale.get('bytes_per_session_dev')} B) at {scale['sessions']:,} sessions",
            )
        )
        no_id_token = scale.get("bytes_per_session_no_id_token")
        if no_id_token is not None:
            checks.append(
                (
                    "... the same, BFF_LOGOUT_ID_TOKEN_HINT=false (the ID token not stored)",
                    no_id_token <= 900 if at_scale else None,
                    f"{no_id_token} B at {scale['sessions']:,} sessions",
                )
            )
        ratio = scale["many_vs_one"]
        checks.append(
            (
                "req/s cycling many of 1,000,000 sessions >= 0.95x one session",
                None if ratio is None or not at_scale else ratio >= 0.95,
                f"{ratio}x over {scale['distinct']:,} sessions "
                f"({scale.get('cached_vs_one')}x over {scale.get('cached_distinct')})",
            )
        )
    leak = results.get("leak")
    if leak:
        many = scale.get("leak_many") or {}
        growths = [leak["rss_after_kib"] - leak["rss_before_kib"]]
        if many:
            growths.append(many["rss_after_kib"] - many["rss_before_kib"])
        checks.append(
            (
                "RSS flat after the warm-up (< 2 MiB growth), one session and many",
                max(growths) < 2048,
                " / ".join(f"{g:+,} KiB" for g in growths) + f" over {leak['requests']:,} requests",
            )
        )
    return checks


def scale_lines(results: Mapping[str, Any]) -> list[str]:
    """The session scale's figures (memory per token shape, req/s) and the leak checks'."""
    lines = []
    scale = results.get("session_scale") or {}
    for shape, row in scale.get("memory", {}).items():
        tokens = row.get("token_bytes")
        sizes = (
            f", tokens {tokens['access']}/{tokens['id']}/{tokens['refresh']} B" if tokens else ""
        )
        lines.append(
            f"session scale, {shape} tokens{sizes}: {row['sessions']:,} sessions written in "
            f"{row['create_s']} s ({row.get('layout', 'after')}), sealed record "
            f"{row['record_bytes_median']} B (median), {row['bytes_per_session']} B of Redis "
            "memory per session"
        )
    if scale:
        cpu = scale.get("cpu_us_per_request") or {}
        lines.append(
            f"session scale ({scale['target']}, {scale.get('layout', 'after')}): req/s cycling "
            f"{scale['distinct']:,} sessions {scale['many_rps']:,.0f}, "
            f"{scale.get('cached_distinct')} sessions {scale.get('cached_rps', 0):,.0f}, one "
            f"session {scale['one_rps']:,.0f} ({scale['many_vs_one']}x, "
            f"{scale.get('cached_vs_one')}x); bff CPU µs per request "
            f"{cpu.get('many')}, {cpu.get('cached')}, {cpu.get('one')}"
        )
    for label, leak in (
        ("one session", results.get("leak")),
        ("many sessions", scale.get("leak_many")),
    ):
        if leak:
            series = " -> ".join(f"{kib:,}" for kib in leak.get("rss_series_kib", []))
            lines.append(
                f"leak check ({label}): RSS {leak['rss_before_kib']:,} KiB after the warm-up -> "
                f"{leak['rss_after_kib']:,} KiB over {leak['requests']:,} requests "
                f"({leak['growth_kib_per_100k']} KiB per 100k; {series})"
            )
    return lines
