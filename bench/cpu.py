"""Where the CPU went during one wrk run, from /proc: the target's process tree (its own
CPU time, all threads), wrk's (the finished child's rusage) and the machine's steal time
(a virtual machine's cores lent elsewhere). bench/rounds.py records them per round, so a
slow round can be told apart: less CPU for the target (scheduling, steal, the load
generator), or more CPU per request (the target's own work: GC, logging)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Sample", "descendants", "kill_leftovers", "sample", "tree_cpu_s"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (field 3 onwards), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every live descendant of `pid` (not itself)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found: list[tuple[int, str]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append((child, starts[child]))
        todo += children.get(child, [])
    return found


def kill_leftovers(processes: list[tuple[int, str]]) -> list[int]:
    """SIGKILL those of `processes` (pid, start time) still alive as the same process
    (the start time guards against a reused pid); the pids killed."""
    killed = []
    for pid, started in processes:
        fields = _stat(pid)
        if fields is not None and fields[19] == started and fields[0] != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (all their threads)."""
    return _tree(pid)[0]


def _tree(pid: int) -> tuple[float, int]:
    """(CPU seconds, involuntary context switches) of `pid` and its live descendants."""
    ticks = preempted = 0
    for member in [pid, *(p for p, _ in descendants(pid))]:
        fields = _stat(member)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        preempted += _preempted(member)
    return ticks / _TICK, preempted


def _preempted(pid: int) -> int:
    """Involuntary context switches of every thread of `pid` (an Apache child has 65)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("nonvoluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    return total


def _steal_s() -> float:
    with contextlib.suppress(OSError, IndexError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu "):
                return int(line.split()[8]) / _TICK
    return 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    target_cpu_s: float
    preempted: int  # the target's involuntary context switches: the core was taken away
    children_cpu_s: float  # finished children's (wrk's) CPU: RUSAGE_CHILDREN
    steal_s: float


def sample(pid: int | None) -> Sample:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    used, preempted = _tree(pid) if pid else (0.0, 0)
    return Sample(
        target_cpu_s=used,
        preempted=preempted,
        children_cpu_s=usage.ru_utime + usage.ru_stime,
        steal_s=_steal_s(),
    )
