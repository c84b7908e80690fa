"""What a session costs a proxied request when it is not in the process's memo tables, in
CPU µs (issue 18, "cost as work grows").

The whole bff ASGI stack is driven in-process, as bench/observability.py does (a memory
store, an in-memory upstream, no sockets, the access log off), with `--sessions` sessions
of Keycloak's token shape (bench/keycloak_tokens.py; `--shape dev` for the development
provider's) stored as a login would. Rounds interleave: requests of one session, then
requests cycling through all of them (more than the memo tables hold: every request
opens and decodes its record), timed in CPU seconds of this process; and the cost of
`ref_from_cookie` + `SessionService.load` alone on a miss. By default for records of
format 3 and of format 2 (as releases before format 3 wrote them), interleaved.

    .venv/bin/python bench/session_cost.py
    .venv/bin/python bench/session_cost.py --profile   # cProfile's top of the many-session round
    PYTHONPATH=/other/checkout .venv/bin/python bench/session_cost.py   # another version
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench.observability import _Pool, _round, in_process_stack  # noqa: E402
from bench.sessions import user_session  # noqa: E402
from bff.session import records  # noqa: E402
from bff.session.service import SessionRef, SessionService  # noqa: E402
from bff.tokens.records import TokenSet  # noqa: E402
from bff.web.app import create_app  # noqa: E402


async def _setup(count: int, shape: str, record_format: int) -> tuple[Any, list[bytes], Any]:
    settings, store, keys, sessions = in_process_stack()
    now = int(time.time())
    dev = _dev_template(now)
    _ref, template = await sessions.create(
        tokens=dev.tokens, claims=dev.claims, user_agent="Mozilla/5.0 (X11; Linux x86_64)"
    )
    cookies = []
    for user in range(count):
        session = user_session(template, user, shape)
        new, _ = await sessions.create(
            tokens=session.tokens, claims=session.claims, user_agent=session.user_agent
        )
        if record_format == 2:  # rewritten as releases before format 3 wrote it
            stored = await sessions.load(new)
            assert stored is not None
            blob = keys.seal(records.encode_session(stored, 2), aad=new.hash.encode())
            await store.update_session(new.hash, blob, ttl=1800)
        cookies.append(f"bff-session={sessions.cookie_value(new)}".encode())
    app = create_app(settings, store=store, upstreams=_Pool(), discover_on_startup=False)
    return app, cookies, sessions


def _dev_template(now: int) -> Any:
    """A session with the development provider's token shape (tests' `dev_tokens`)."""
    from joserfc.jwk import RSAKey

    from tests.unit.session.test_records import dev_tokens, login_session

    tokens = dev_tokens(RSAKey.generate_key(2048, parameters={"kid": "9aeed9c97ef3874a"}))
    session = login_session(tokens)
    fresh = TokenSet(
        access_token=session.tokens.access_token,
        expires_at=now + 86400,
        refresh_token=session.tokens.refresh_token,
        id_token=session.tokens.id_token,
        scope=session.tokens.scope,
    )
    return dataclasses.replace(session, tokens=fresh)


async def _cycling(app: Any, cookies: list[bytes], n: int) -> float:
    """CPU µs per request, request i with cookie i mod len(cookies)."""
    total = 0.0
    chunk = max(1, n // len(cookies)) if len(cookies) < n else 1
    done = 0
    while done < n:
        for cookie in cookies:
            total += await _round(app, cookie, chunk) * chunk
            done += chunk
            if done >= n:
                break
    return total / done


async def _load_cost(sessions: SessionService, cookies: list[bytes]) -> float:
    """CPU µs of `ref_from_cookie` + `load` per session, every one a memo miss."""
    refs: list[SessionRef] = []
    for cookie in cookies:
        ref = sessions.ref_from_cookie(cookie.decode().partition("=")[2])
        assert ref is not None
        refs.append(ref)
    sessions._opened.clear()
    sessions._refs.clear()
    began = time.process_time()
    for cookie in cookies:
        ref = sessions.ref_from_cookie(cookie.decode().partition("=")[2])
        assert ref is not None
        assert await sessions.load(ref) is not None
    return (time.process_time() - began) / len(cookies) * 1e6


async def main(args: argparse.Namespace) -> None:
    formats = (2, 3) if args.format == "both" else (int(args.format),)
    setups = {f: await _setup(args.sessions, args.shape, f) for f in formats}
    for app, cookies, _ in setups.values():
        await _cycling(app, cookies, args.requests // 5)  # warm-up
    labels = {
        "one": "request, one session",
        "many": "request, many sessions",
        "load": "cookie + load, a miss",
    }
    results = {(f, name): [] for f in formats for name in labels}
    for _ in range(args.rounds):  # interleaved: the formats take turns
        for f, (app, cookies, sessions) in setups.items():
            results[f, "one"].append(await _round(app, cookies[0], args.requests))
            results[f, "many"].append(await _cycling(app, cookies, args.requests))
            results[f, "load"].append(await _load_cost(sessions, cookies[:2000]))
    print(f"{args.sessions:,} sessions, {args.shape} tokens; CPU µs")
    for (f, name), values in results.items():
        print(
            f"  format {f}, {labels[name]:24} median {statistics.median(values):6.1f}, "
            f"best {min(values):6.1f} (rounds: {', '.join(f'{v:.1f}' for v in values)})"
        )
    if args.profile:
        app, cookies, _ = setups[formats[-1]]
        profile = cProfile.Profile()
        profile.enable()
        await _cycling(app, cookies, args.requests)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shape", choices=["keycloak", "dev"], default="keycloak")
    parser.add_argument("--format", choices=["2", "3", "both"], default="both")
    parser.add_argument("--profile", action="store_true")
    asyncio.run(main(parser.parse_args()))
