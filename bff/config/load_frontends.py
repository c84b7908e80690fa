"""`[[frontends]]` tables: several browser applications in one process, each read by a
collector of its own (`BFF_FRONTEND_<NAME>_<KEY>` wins over the table, as `BFF_<KEY>`
does over the top level), then checked together: unique names, one frontend per host and
path base, no cookie name shared by two frontends of one host. Every problem is filed,
prefixed with the frontend it belongs to.

The flat frontend settings (`BFF_ISSUER`, top-level `issuer`, …) describe the single
default frontend only when no `[[frontends]]` is given; combined with `[[frontends]]`
they are refused, never silently merged or ignored."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bff.config.collector import Collector
from bff.config.known import KNOWN_SETTINGS
from bff.config.load_frontend import load_frontend
from bff.config.model import Frontend

__all__ = ["FRONTEND_KEYS", "NAME_RE", "flat_frontend_problems", "load_frontends"]

# A name becomes part of environment names (BFF_FRONTEND_<NAME>_…), cookie salts and
# store keys: lower-case letters, digits and '_', starting with a letter.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
FRONTEND_KEYS = frozenset(
    {k.key for k in KNOWN_SETTINGS if k.frontend} | {"name", "client_secret_file"}
)


def env_prefix(name: str) -> str:
    return f"BFF_FRONTEND_{name.upper()}_"


def flat_frontend_problems(environ: Mapping[str, str], toml: Mapping[str, Any]) -> list[str]:
    """With `[[frontends]]`: one problem per flat frontend setting that is also given."""
    problems: list[str] = []
    for known in KNOWN_SETTINGS:
        if not known.frontend:
            continue
        given = [n for n in (known.env, f"{known.env}_FILE") if n in environ]
        if known.key in toml:
            given.append(known.key)
        problems.extend(
            f"{where}: describes the single default frontend and cannot be combined with "
            f"[[frontends]]; set {known.key} in a [[frontends]] table "
            f"(or BFF_FRONTEND_<NAME>_{known.key.upper()})"
            for where in given
        )
    return problems


def load_frontends(
    environ: Mapping[str, str], tables: Any, problems: list[str], sources: dict[str, str]
) -> tuple[Frontend, ...]:
    """The frontends of the `[[frontends]]` array; problems go to `problems`, where each
    value came from to `sources` (`frontends.<name>.<key>`)."""
    if not isinstance(tables, list) or not tables:
        problems.append("frontends: must be a non-empty array of tables ([[frontends]])")
        return ()
    frontends: list[Frontend] = []
    names: list[str] = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            problems.append(f"frontends[{i}]: must be a table")
            continue
        name = table.get("name")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(
                f"frontends[{i}].name: {name!r} is not a frontend name: 1-32 of a-z, 0-9 "
                "and '_', starting with a letter (it names BFF_FRONTEND_<NAME>_CLIENT_SECRET)"
            )
            continue
        names.append(name)
        frontend = _one(environ, table, name, problems, sources)
        if frontend is not None:
            frontends.append(frontend)
    problems.extend(
        f"frontends: the name {n!r} is given {names.count(n)} times"
        for n in sorted(set(names))
        if names.count(n) > 1
    )
    problems.extend(overlap_problems(frontends))  # of those that are valid on their own
    return tuple(frontends)


def _one(
    environ: Mapping[str, str],
    table: dict[str, Any],
    name: str,
    problems: list[str],
    sources: dict[str, str],
) -> Frontend | None:
    label = f"[[frontends]] {name}"
    values = dict(table)
    values.pop("name")
    own: list[str] = [
        f"{k}: unknown frontend setting{_suggest(k)}" for k in sorted(set(values) - FRONTEND_KEYS)
    ]
    secret_file = values.pop("client_secret_file", None)
    secret_env = f"{env_prefix(name)}CLIENT_SECRET"
    if secret_file is not None and not {secret_env, f"{secret_env}_FILE"} & set(environ):
        if not isinstance(secret_file, str):
            own.append("client_secret_file: must be a file name")
        elif "client_secret" not in values:
            try:
                values["client_secret"] = Path(secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                own.append(f"client_secret_file: cannot read {secret_file} ({exc.strerror})")
    c = Collector(environ, values, {}, env_prefix=env_prefix(name))
    frontend = load_frontend(c, name, path_base=True)
    problems.extend(f"{label}: {p}" for p in own + c.problems)
    sources.update({f"frontends.{name}.{k}": v for k, v in c.sources.items()})
    return None if own or c.problems else frontend


def _suggest(key: str) -> str:
    match = difflib.get_close_matches(key, sorted(FRONTEND_KEYS), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def overlap_problems(frontends: list[Frontend] | tuple[Frontend, ...]) -> list[str]:
    """Two frontends on one host and path base, or sharing a cookie name on one host
    (the browser would send one's cookie to the other)."""
    problems = []
    seen: dict[tuple[str, str], str] = {}
    cookies: dict[tuple[str, str], str] = {}
    for f in frontends:
        host = (urlsplit(f.public_url).hostname or "").lower()
        place = (host, f.path_base)
        if place in seen:
            problems.append(
                f"frontends: {seen[place]!r} and {f.name!r} both serve "
                f"{host}{f.path_base or ' (no path base)'}; give one another host or path base"
            )
        seen.setdefault(place, f.name)
        clash = next(
            (
                (cookies[(host, c)], c)
                for c in (f.cookie_name, f.login_cookie_name)
                if (host, c) in cookies
            ),
            None,
        )
        if clash is not None:
            problems.append(
                f"frontends: {clash[0]!r} and {f.name!r} both use the cookie {clash[1]!r} on "
                f"{host}; give each frontend of one host its own cookie_name"
            )
        for cookie in (f.cookie_name, f.login_cookie_name):
            cookies.setdefault((host, cookie), f.name)
    return problems
