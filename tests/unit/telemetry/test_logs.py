"""Log lines as JSON objects carrying the request's fields, and the request id."""

from __future__ import annotations

import json
import logging

from bff.telemetry.logs import REQUEST_ID, JsonFormatter, new_request_id


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


def test_a_fresh_request_id_is_random_hex() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
