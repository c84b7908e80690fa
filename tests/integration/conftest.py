"""Every integration test's in-process log lines (bff's application, access and audit
logs and uvicorn's, at INFO, rendered as BFF_LOG_FORMAT=json writes them) go through a
secret detector: a line holding a known test secret, a JWT, a bearer token, an
authorization code in a query or a session cookie value fails the test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bff.telemetry.logs import JsonFormatter
from tests.secret_shapes import secret_shapes_in

_LOGGERS = ("", "bff", "bff.audit", "bff.access", "uvicorn", "uvicorn.error")


class _Net(logging.Handler):
    """Keeps the records (one entry per record, however many loggers saw it; kept alive,
    so ids stay unique) and renders them after the test: no formatting work while a
    timing-sensitive test runs."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.records: dict[int, logging.LogRecord] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.records.setdefault(id(record), record)

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records.values()]


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    net = _Net()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = {lg.name: lg.level for lg in loggers}
    for lg in loggers:
        lg.addHandler(net)
        if lg.name in ("bff", "uvicorn") and lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeHandler(net)
            lg.setLevel(levels[lg.name])
    leaks = [(found, line[:300]) for line in net.lines() if (found := secret_shapes_in(line))]
    assert not leaks, f"a log line holds a secret: {leaks[:3]}"
