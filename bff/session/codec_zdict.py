"""The preset dictionary of record format 2. Deflate matches what a record shares with it,
so besides common strings (`codec_tables.ZDICT_TEXT`) it holds whole record bodies
(`Writer` output) of the token layouts common providers issue, with made-up values
(`codec_tables.TEMPLATES`): a record of the same layout then costs little more than its
own values. Deterministic and pinned by a test: a change needs a new record version. Pure."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from typing import Any

from bff.session.codec_primitives import at_hash, b64url, dumps
from bff.session.codec_tables import AT, RND, RND32, SCOPE, SID, TEMPLATES, ZDICT_TEXT, T
from bff.session.codec_writer import Writer

__all__ = ["ZDICT"]


def _template_body(tokens: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...]) -> bytes:
    """A record body as `bff.session.records` writes it: tokens, refresh token, the rest."""
    made = itertools.count(1)  # deterministic: the dictionary must never change

    def fresh(size: int) -> str:
        return b64url(hashlib.sha256(b"bff/zdict\0%d" % next(made)).digest()[:size])

    sid = fresh(16)
    out = Writer()
    first = ""
    for header, payload in tokens:
        filled = {}
        for name, value in payload.items():
            if value == AT:
                value = at_hash(first, 22)
            elif value in (RND, RND32):
                value = fresh(16 if value == RND else 32)
            filled[name] = sid if value == SID else value
        parts = (dumps(dict(header), ascii_only=True), dumps(filled, ascii_only=True))
        token = ".".join(b64url(p.encode()) for p in parts) + "." + b64url(bytes(256))
        first = first or token
        out.token(token)
    out.token(fresh(32))  # an opaque refresh token
    out.values([T, T + 86400, T + 3600, None, "Bearer", SCOPE, "Mozilla/5.0"])
    return out.body()


ZDICT = ZDICT_TEXT + b"".join(_template_body(t) for t in TEMPLATES)
