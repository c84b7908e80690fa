"""bench/cpu.py: process trees, their CPU time, and leftover children killed by pid."""

from __future__ import annotations

import subprocess
import time

from bench.cpu import descendants, kill_leftovers, sample, tree_cpu_s


def test_descendants_and_leftovers_of_a_real_tree() -> None:
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(descendants(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        children = descendants(parent.pid)
        assert len(children) == 2
        assert tree_cpu_s(parent.pid) >= 0.0
        parent.kill()  # the shell dies; its sleeps are left behind
        parent.wait(5)
        assert sorted(kill_leftovers(children)) == sorted(pid for pid, _ in children)
        deadline = time.monotonic() + 5
        while kill_leftovers(children) and time.monotonic() < deadline:
            time.sleep(0.05)  # SIGKILL is delivered asynchronously
        assert kill_leftovers(children) == []  # gone (or zombies): nothing to kill again
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)


def test_a_reused_pid_is_not_killed() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert kill_leftovers([(child.pid, "1")]) == []  # another start time
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(5)


def test_a_sample_counts_this_process_cpu() -> None:
    import os

    before = sample(os.getpid())
    sum(i * i for i in range(300_000))
    after = sample(os.getpid())
    assert after.target_cpu_s >= before.target_cpu_s
    assert after.preempted >= before.preempted
    assert sample(None).target_cpu_s == 0.0
