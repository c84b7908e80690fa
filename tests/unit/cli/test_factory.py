"""The worker's app factory: the start-up heap settled for the garbage collector."""

from __future__ import annotations

import os
import subprocess
import sys

from bff.cli.factory import GEN0_THRESHOLD


def test_the_factory_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    # In a process of its own, as a uvicorn worker: freezing is for the whole process.
    code = (
        "import gc\n"
        "from bff.cli.factory import app_from_environment\n"
        "before = gc.get_threshold()[0]\n"
        "app_from_environment()\n"
        "print(before, gc.get_freeze_count(), *gc.get_threshold())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BFF_", "PROMETHEUS"))}
    env.update(
        BFF_ISSUER="https://idp.example",
        BFF_CLIENT_ID="c",
        BFF_CLIENT_SECRET="s",
        BFF_SECRET_KEY="factory-test-secret-key-0123456789-abcdef",
        BFF_ROUTES="/api=http://127.0.0.1:9",
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    before, frozen, gen0, gen1, gen2 = map(int, done.stdout.split())
    assert before == 700  # CPython's default, until the app is built
    assert frozen > 10_000  # the modules, the settings, the app
    assert (gen0, gen1, gen2) == (GEN0_THRESHOLD, 10, 10)
