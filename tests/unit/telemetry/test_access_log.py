"""The access log's own path: the same lines as the logging module writes, buffered, in
order with bff's other lines, and nothing lost when the process ends."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bff.cli.logging_setup import configure_logging
from bff.telemetry.access_log import (
    FLUSH_DELAY,
    MAX_PENDING,
    AccessLogHandler,
    flush_access_logs,
    log_access,
)

REQUEST = {
    "method": "GET",
    "path": '/api/caf\\xe9/"q"',  # as the middleware escapes it
    "status": 200,
    "elapsed": 0.00234,
    "request_id": "rid-1",
    "route": "/api",
    "upstream": 0.0012,
    "session": "abcdef012345",
}
LEFT = {**REQUEST, "status": 0, "upstream": None, "session": None}  # the client left


@pytest.fixture
def configured() -> Iterator[None]:
    try:
        yield
    finally:  # as before any configuration
        for name in ("bff", "bff.audit", "bff.access"):
            logging.getLogger(name).propagate = True
            logging.getLogger(name).handlers.clear()


def access_handler(log_format: str, out: io.StringIO) -> AccessLogHandler:
    configure_logging(log_format)
    handler = logging.getLogger("bff.access").handlers[0]
    assert isinstance(handler, AccessLogHandler)
    handler.setStream(out)
    return handler


def without_time(line: str, log_format: str) -> object:
    if log_format == "json":
        return {k: v for k, v in json.loads(line).items() if k != "time"}
    stamp, _, rest = line.partition(" INFO ")
    assert len(stamp) == len("2026-01-31 12:00:00,123") and stamp[-4] == ","
    return rest


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_lines_are_those_of_the_logging_module(configured: None, log_format: str) -> None:
    out = io.StringIO()
    handler = access_handler(log_format, out)
    for fields in (REQUEST, LEFT):
        log_access(**fields)  # type: ignore[arg-type]
        handler.addFilter(lambda record: True)  # a filter: the logging module's path
        log_access(**fields)  # type: ignore[arg-type]
        handler.filters.clear()
    flush_access_logs()
    fast, slow, fast_left, slow_left = out.getvalue().splitlines()
    assert without_time(fast, log_format) == without_time(slow, log_format)
    assert without_time(fast_left, log_format) == without_time(slow_left, log_format)
    if log_format == "text":
        assert fast.endswith(' INFO bff.access: GET /api/caf\\xe9/"q" 200 2.3ms rid=rid-1')
        assert " - 2.3ms" in fast_left
    else:
        line = json.loads(fast)
        assert line["time"].endswith("+00:00") and line["upstream_ms"] == 1.2
        assert "upstream_ms" not in json.loads(fast_left)


@pytest.mark.anyio
async def test_lines_wait_at_most_the_flush_delay(configured: None) -> None:
    out = io.StringIO()
    access_handler("text", out)
    log_access(**REQUEST)  # type: ignore[arg-type]
    log_access(**REQUEST)  # type: ignore[arg-type]
    assert out.getvalue() == ""  # buffered
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert len(out.getvalue().splitlines()) == 2


@pytest.mark.anyio
async def test_a_full_buffer_is_written_at_once(configured: None) -> None:
    out = io.StringIO()
    access_handler("text", out)
    for _ in range(MAX_PENDING):
        log_access(**REQUEST)  # type: ignore[arg-type]
    assert len(out.getvalue().splitlines()) == MAX_PENDING


@pytest.mark.anyio
async def test_other_lines_come_after_the_access_lines_before_them(configured: None) -> None:
    out = io.StringIO()
    access_handler("text", out)
    logging.getLogger("bff").handlers[0].setStream(out)  # type: ignore[attr-defined]
    log_access(**REQUEST)  # type: ignore[arg-type]
    logging.getLogger("bff.proxy").warning("the upstream is slow")
    first, second = out.getvalue().splitlines()
    assert "bff.access" in first and "the upstream is slow" in second


def test_elsewhere_the_logging_module_writes_them(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bff.access"):
        log_access(**REQUEST)  # type: ignore[arg-type]
    (record,) = [r for r in caplog.records if r.name == "bff.access"]
    assert record.getMessage() == 'GET /api/caf\\xe9/"q" 200 2.3ms rid=rid-1'
    assert (record.route, record.upstream_ms, record.session) == ("/api", 1.2, "abcdef012345")  # type: ignore[attr-defined]


def test_buffered_lines_are_written_when_the_process_exits() -> None:
    # A process that logs and ends without flushing (as uvicorn's worker returns from
    # its loop): logging's exit hook writes what waits.
    code = (
        "import asyncio\n"
        "from bff.cli.logging_setup import configure_logging\n"
        "from bff.telemetry.access_log import log_access\n"
        "configure_logging('text')\n"
        "async def main():\n"
        "    for n in range(5):\n"
        "        log_access(method='GET', path=f'/x{n}', status=200, elapsed=0.001,\n"
        "                   request_id='r', route='other', upstream=None, session=None)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    lines = [line for line in done.stderr.splitlines() if "bff.access" in line]
    assert [line.split()[5] for line in lines] == [f"/x{n}" for n in range(5)]
