"""bench/live.py (`make bench-live`) in quick mode, so it cannot rot: it starts its own
redis-server, provider, echo upstream and two `bff serve`, and its figures are sane.
Needs `redis-server` on PATH, as the other tests that start a private one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import ROOT


@pytest.mark.redis  # a private redis-server of its own
def test_bench_live_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "LIVE_"))}
    env["LIVE_QUICK"] = "1"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "live.py"), "--json", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(out.read_text())
    closes = results["close_on_logout"]
    assert closes["close_codes"] == {"4401 logout": closes["trials"]}
    assert closes["max_ms"] < 2000  # the bound, on loopback far below it
    for key in ("throughput_c1", f"throughput_c{results['options']['connections']}"):
        assert results[key]["direct"] > 0 and results[key]["bff"] > 0
    trip = results["round_trip"]
    assert trip["bff"]["samples"] == trip["direct"]["samples"] == results["options"]["roundtrips"]
    assert "close on logout" in done.stdout and "added by bff" in done.stdout
