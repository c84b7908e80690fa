"""The audit trail: one JSON object per line on the `bff.audit` logger.

Fields are fixed and never carry a token, code, cookie value or secret: sessions
appear only as a short hash of their store key.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from bff.telemetry.metrics import count_event

__all__ = ["AuditEvent", "audit"]

AuditEvent = Literal[
    "login",
    "login_failed",  # a refused or failed callback; `outcome` is the machine-readable reason
    "refresh",
    "refresh_failed",
    "logout",
    "backchannel_logout",
    "revoke",
]
_logger = logging.getLogger("bff.audit")
_MAX_FIELD = 256


def _clip(value: str | None) -> str | None:
    if value is None:
        return None
    return value[:_MAX_FIELD]


def audit(
    event: AuditEvent,
    *,
    outcome: str,
    now: float,
    sub: str | None = None,
    session: str | None = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> None:
    record = {
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "event": event,
        "sub": _clip(sub),
        "session": session,
        "client_ip": client_ip,
        "user_agent": _clip(user_agent),
        "outcome": outcome,
    }
    _logger.info(json.dumps(record, separators=(",", ":"), ensure_ascii=True))
    count_event(event, outcome)
