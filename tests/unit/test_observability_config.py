"""The observability and shutdown settings, the JSON log format, `bff --version`, and
bff without OpenTelemetry installed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from bff.cli.logging_setup import configure_logging
from bff.cli.main import main, version_text
from bff.config.load import load_settings
from bff.errors import ConfigError
from bff.telemetry.logs import REQUEST_ID, JsonFormatter

BASE = {
    "BFF_ISSUER": "https://idp.example.com",
    "BFF_CLIENT_ID": "spa",
    "BFF_CLIENT_SECRET": "s3cret-value",
    "BFF_SECRET_KEY": "k" * 32,
}
ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = load_settings(BASE)
    assert (s.log_format, s.tracing) == ("text", "off")
    assert (s.shutdown_drain_delay, s.shutdown_timeout) == (5.0, 30.0)


def test_environment_and_toml() -> None:
    env = {
        **BASE,
        "BFF_LOG_FORMAT": "JSON",
        "BFF_TRACING": "otlp",
        "BFF_SHUTDOWN_DRAIN_DELAY": "0",
        "BFF_SHUTDOWN_TIMEOUT": "12.5",
    }
    s = load_settings(env)
    assert (s.log_format, s.tracing, s.shutdown_drain_delay, s.shutdown_timeout) == (
        "json",
        "otlp",
        0.0,
        12.5,
    )
    toml = {"log_format": "json", "tracing": "off", "shutdown_drain_delay": 2}
    s = load_settings(BASE, toml)
    assert (s.log_format, s.tracing, s.shutdown_drain_delay) == ("json", "off", 2.0)


def test_invalid_values_are_named() -> None:
    env = {
        **BASE,
        "BFF_LOG_FORMAT": "xml",
        "BFF_TRACING": "jaeger",
        "BFF_SHUTDOWN_DRAIN_DELAY": "-1",
        "BFF_SHUTDOWN_TIMEOUT": "soon",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    found = " ".join(info.value.problems)
    for name in (
        "BFF_LOG_FORMAT",
        "BFF_TRACING",
        "BFF_SHUTDOWN_DRAIN_DELAY",
        "BFF_SHUTDOWN_TIMEOUT",
    ):
        assert name in found


def test_json_lines_carry_the_request_fields() -> None:
    record = logging.LogRecord("bff.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.route, record.status, record.session = "/api", 200, "abcdef012345"
    token = REQUEST_ID.set("rid-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "GET /x" and line["request_id"] == "rid-1"
    assert (line["route"], line["status"], line["session"]) == ("/api", 200, "abcdef012345")
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
    assert "upstream_ms" not in line  # absent fields stay out


def test_configure_logging_picks_the_format() -> None:
    try:
        config = configure_logging("json")
        assert config["handlers"]["stderr"]["formatter"] == "json"
        assert config["handlers"]["audit"]["formatter"] == "bare"  # audit: JSON already
        assert configure_logging()["handlers"]["stderr"]["formatter"] == "plain"
    finally:
        logging.getLogger("bff").propagate = True  # as before any configuration
        logging.getLogger("bff.audit").propagate = True
        logging.getLogger("bff").handlers.clear()
        logging.getLogger("bff.audit").handlers.clear()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out == version_text()
    assert out.startswith(f"bff {metadata.version('bff')} (python ")
    for name in ("starlette", "uvicorn", "redis", "authlib", "joserfc"):
        assert f"{name} {metadata.version(name)}" in out


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


def test_serve_starts_with_an_empty_metrics_folder(tmp_path) -> None:
    # A restarted container keeps its tmp volume: a dead process's counter and gauge
    # files would be summed into /metrics for ever.
    from bff.cli.serve_command import fresh_metrics_dir

    folder = tmp_path / "metrics"
    fresh_metrics_dir(str(folder))  # created when missing (read-only root, tmp volume)
    (folder / "counter_123.db").write_bytes(b"x")
    (folder / "gauge_livesum_123.db").write_bytes(b"x")
    (folder / "keep.txt").write_text("not prometheus_client's")
    fresh_metrics_dir(str(folder))
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
