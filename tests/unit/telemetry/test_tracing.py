"""Tracing is optional: bff runs, and imports none of OpenTelemetry, without it; asking
for it without the extra is a configuration error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


BLOCK_OTEL = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bff_runs_without_opentelemetry_and_imports_none_of_it_when_off() -> None:
    code = (
        BLOCK_OTEL
        + """
import asyncio, httpx
from bff.web.app import create_app
from bff.config.load import load_settings
import bff.cli.main, bff.cli.serve, bff.cli.serve_command, bff.cli.factory
env = {"BFF_ISSUER": "https://idp.example.com", "BFF_CLIENT_ID": "c",
       "BFF_CLIENT_SECRET": "s", "BFF_SECRET_KEY": "k" * 32}
app = create_app(load_settings(env), discover_on_startup=False)
async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200
asyncio.run(main())
assert not [m for m in sys.modules if m.startswith("opentelemetry")]
print("ok")
"""
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_otlp_without_the_extra_is_a_config_error() -> None:
    code = (
        BLOCK_OTEL
        + """
from bff.errors import ConfigError
from bff.telemetry.tracing import check_tracing
try:
    check_tracing("otlp")
except ConfigError as exc:
    print(exc.problems[0])
"""
    )
    result = run_python(code)
    assert "BFF_TRACING: otlp needs the otel extra" in result.stdout, result.stderr
