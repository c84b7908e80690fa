"""The side-by-side rounds: every target in turn at 64 connections, then every target at
1 connection, next round (A B C D A B C D ...), with each run's figures recorded: wrk's,
and where the CPU went meanwhile (bench/cpu.py): the target's own CPU seconds, CPU
microseconds per request, its share of one core, wrk's CPU and the machine's steal."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import cpu
from bench.targets import Target
from bench.wrk import WrkResult, run_wrk

__all__ = ["Rounds", "measure", "side_by_side"]


@dataclass
class Rounds:
    loaded: dict[str, list[WrkResult]] = field(default_factory=dict)  # 64 connections
    single: dict[str, list[WrkResult]] = field(default_factory=dict)  # 1 connection
    # per target, "c64" and "c1": each run's record, in round order (the JSON's "rounds")
    records: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)


def measure(
    target: Target, *, connections: int, seconds: float
) -> tuple[WrkResult, dict[str, Any]]:
    """One wrk run against `target`, and its record (wrk's figures + CPU)."""
    before = cpu.sample(target.pid)
    result = run_wrk(target.url, connections=connections, seconds=seconds, cookie=target.cookie)
    after = cpu.sample(target.pid)
    used = after.target_cpu_s - before.target_cpu_s
    record: dict[str, Any] = result.as_dict()
    record.update(
        target_cpu_s=round(used, 3),
        cpu_us_per_request=round(used * 1e6 / result.requests, 1) if result.requests else None,
        cpu_share=round(used / result.seconds, 3) if result.seconds else None,
        preempted_per_s=round((after.preempted - before.preempted) / result.seconds)
        if result.seconds
        else None,
        wrk_cpu_s=round(after.children_cpu_s - before.children_cpu_s, 3),
        steal_s=round(after.steal_s - before.steal_s, 3),
    )
    return result, record


def side_by_side(
    targets: Mapping[str, Target],
    *,
    rounds: int,
    seconds: float,
    seconds_single: float,
    connections: int,
    warmup: float,
    log: Callable[[str], None],
) -> Rounds:
    """A warm-up of every target, then `rounds` interleaved rounds."""
    for target in targets.values():  # pools, caches
        run_wrk(target.url, connections=connections, seconds=warmup, cookie=target.cookie)
    out = Rounds()
    for name in targets:
        out.loaded[name], out.single[name] = [], []
        out.records[name] = {"c64": [], "c1": []}
    for number in range(rounds):
        for phase, conns, secs, into in (
            ("c64", connections, seconds, out.loaded),
            ("c1", 1, seconds_single, out.single),
        ):
            for name, target in targets.items():
                result, record = measure(target, connections=conns, seconds=secs)
                into[name].append(result)
                out.records[name][phase].append(record)
        log(
            f"round {number + 1}/{rounds}: "
            + ", ".join(f"{n} {out.loaded[n][-1].rps:,.0f} req/s" for n in targets)
        )
    return out
