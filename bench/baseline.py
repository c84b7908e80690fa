"""`BENCH_BASELINE=<git ref>`: bff of another version measured in the same rounds (targets
base-1w and base-2w), e.g. today's main before a change. Its tree is `git archive`d into
the run's temp folder and served from there with this checkout's venv (Python and
libraries): `PYTHONPATH` and the working directory are that tree, so `import bff` finds
the old version (checked before it starts)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

from tests.support.stack import BIN, ROOT

__all__ = ["baseline_ref", "expire_access_token_in", "extract", "imported_from"]


def baseline_ref(env: Mapping[str, str]) -> str | None:
    """The git ref to compare with, or None (unset or empty: no baseline)."""
    ref = env.get("BENCH_BASELINE", "").strip()
    return ref or None


def _git(*args: str) -> bytes:
    done = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), *args],  # noqa: S607
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def extract(ref: str, into: Path) -> str:
    """`git archive <ref> | tar -x` into `into`; the commit it resolved to."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit)
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def imported_from(tree: Path) -> str:
    """Where `import bff` resolves with the baseline's environment (it must be `tree`:
    this checkout's editable install must not win)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # noqa: S603
        [str(BIN / "python"), "-c", "import bff; print(bff.__file__)"],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        check=True,
        timeout=60,
    )
    where = done.stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the baseline imports bff from {where}, not from {tree}")
    return where


_EXPIRE = """
import asyncio, sys
from bff.store.redis import RedisStore
from tests.support.sessions import expire_access_token, service

async def main() -> None:
    store = RedisStore.from_url(sys.argv[1])
    try:
        key, cookie = sys.stdin.readline().strip(), sys.stdin.readline().strip()
        await expire_access_token(service(store, key), cookie)
    finally:
        await store.aclose()

asyncio.run(main())
"""


def expire_access_token_in(tree: Path, *, redis_url: str, secret_key: str, cookie: str) -> None:
    """The refresh storm's expiry, done by the baseline's own code (its record format may
    differ from this checkout's). Secret key and cookie go through stdin, not argv."""
    subprocess.run(  # noqa: S603
        [str(BIN / "python"), "-c", _EXPIRE, redis_url],
        input=f"{secret_key}\n{cookie}\n",
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        timeout=60,
    )
