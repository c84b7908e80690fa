"""Keep the layers honest. Every module of `bff` has an explicit layer in LAYERS:

0 rules        pure: no I/O, no clock, no randomness, no logging, no mutable globals
1 adapters     one I/O library each (store, provider, upstream, the OS random source, logs)
2 services     compose rules and adapters (sessions, tokens, the login flow)
3 edge         ASGI handlers and the listener: the only code that imports Starlette or uvicorn
4 composition  builds the apps and runs them: the only code that reads os.environ

Imports point down only. A module may import its own layer (helpers inside a layer;
composition composing), except at the edge: no edge module imports another. The import
graph has no cycle. Every import is absolute, so the graph read here is the whole graph.
"""

from __future__ import annotations

import ast
import statistics
from collections.abc import Iterator
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bff"

RULES, ADAPTERS, SERVICES, EDGE, COMPOSITION = range(5)

LAYERS: dict[str, int] = {
    "bff": RULES,
    "bff.errors": RULES,
    "bff.answers": RULES,
    # config: the model and its rules are pure; loading reads files (TOML, secrets)
    "bff.config": RULES,
    "bff.config.model": RULES,
    "bff.config.checks": RULES,
    "bff.config.known": RULES,
    "bff.config.report": RULES,
    "bff.config.collector": ADAPTERS,
    "bff.config.routes": ADAPTERS,
    "bff.config.load_frontend": ADAPTERS,
    "bff.config.load_frontends": ADAPTERS,  # reads client_secret_file
    "bff.config.load": ADAPTERS,
    # session: the records and their codec are pure; ids and sealing use the OS random source
    "bff.session": RULES,
    "bff.session.codec": RULES,
    "bff.session.codec_primitives": RULES,
    "bff.session.codec_tables": RULES,
    "bff.session.codec_writer": RULES,
    "bff.session.codec_zdict": RULES,
    "bff.session.codec_v3": RULES,
    "bff.session.codec_v3_writer": RULES,
    "bff.session.codec_v3_zdict": RULES,
    "bff.session.records": RULES,
    "bff.session.login_record": RULES,
    "bff.session.cookies": RULES,
    "bff.session.ids": ADAPTERS,  # the OS random source for session ids
    "bff.session.crypto": ADAPTERS,  # the OS random source for nonces
    "bff.session.service_ops": SERVICES,
    "bff.session.service": SERVICES,
    "bff.session.frontend_sessions": SERVICES,
    "bff.session.events": RULES,
    "bff.session.bus": ADAPTERS,
    "bff.session.live": SERVICES,
    "bff.session.wakeups": SERVICES,
    "bff.session.inventory": RULES,
    # store
    "bff.store": RULES,
    "bff.store.redis_url": RULES,
    "bff.store.redis_keys": RULES,
    "bff.store.redis_lua": RULES,
    "bff.store.redis_boundary": ADAPTERS,
    "bff.store.redis_acks": ADAPTERS,
    "bff.store.redis_connect": ADAPTERS,
    "bff.store.redis_index": ADAPTERS,
    "bff.store.redis_lane": ADAPTERS,
    "bff.store.memory": ADAPTERS,
    "bff.store.redis": ADAPTERS,
    "bff.store.ha": ADAPTERS,
    "bff.store.instrumented": ADAPTERS,
    "bff.store.factory": ADAPTERS,
    # oidc: the token, metadata and callback rules are pure; the provider's HTTP is an adapter
    "bff.oidc": RULES,
    "bff.oidc.redirects": RULES,
    "bff.oidc.metadata": RULES,
    "bff.oidc.jws": RULES,
    "bff.oidc.validation": RULES,
    "bff.oidc.client_assertion": RULES,
    "bff.oidc.dpop": RULES,
    "bff.oidc.grants": RULES,
    "bff.oidc.dpop_keys": ADAPTERS,  # the OS random source for session keys
    "bff.oidc.login_checks": RULES,
    "bff.oidc.step_up": RULES,
    "bff.oidc.pkce": ADAPTERS,  # the OS random source for state, nonce, verifier, binding
    "bff.oidc.provider_http": ADAPTERS,
    "bff.oidc.discovery": ADAPTERS,
    "bff.oidc.jwks": ADAPTERS,
    "bff.oidc.id_tokens": ADAPTERS,
    "bff.oidc.client": ADAPTERS,
    "bff.oidc.login_bounds": SERVICES,
    "bff.oidc.logout": SERVICES,
    "bff.oidc.login": SERVICES,
    "bff.oidc.backchannel": SERVICES,
    # tokens
    "bff.tokens": RULES,
    "bff.tokens.records": RULES,
    "bff.tokens.results": RULES,
    "bff.tokens.audience": RULES,
    "bff.tokens.client_credentials": SERVICES,
    "bff.tokens.refresh": SERVICES,
    "bff.tokens.manager": SERVICES,
    # upstream
    "bff.upstream": RULES,
    "bff.upstream.protocol": RULES,
    "bff.upstream.framing": RULES,
    "bff.upstream.exchange": ADAPTERS,
    "bff.upstream.parser": ADAPTERS,
    "bff.upstream.connection": ADAPTERS,
    "bff.upstream.pool": ADAPTERS,
    "bff.upstream.client": ADAPTERS,
    "bff.upstream.origins": ADAPTERS,
    "bff.upstream.aiohttp_transport": ADAPTERS,
    "bff.upstream.browser": ADAPTERS,
    "bff.upstream.session_slots": ADAPTERS,
    # proxy: the rules of a request (path, route, headers, answers) are pure; the
    # credentials and the upstream exchange compose sessions, tokens and the pool
    "bff.proxy": RULES,
    "bff.proxy.routes": RULES,
    "bff.proxy.admission": RULES,
    "bff.proxy.request_checks": RULES,
    "bff.proxy.forward_rules": RULES,
    "bff.proxy.request_headers": RULES,
    "bff.proxy.forwarding": RULES,
    "bff.proxy.response_headers": RULES,
    "bff.proxy.replies": RULES,
    "bff.proxy.credentials": SERVICES,
    "bff.proxy.dpop_upstream": SERVICES,
    "bff.proxy.response_stream": SERVICES,
    "bff.proxy.exchange": SERVICES,
    "bff.proxy.app": EDGE,
    "bff.proxy.ws_relay": ADAPTERS,
    "bff.proxy.websocket": EDGE,
    # telemetry
    "bff.telemetry": RULES,
    "bff.telemetry.batching": ADAPTERS,
    "bff.telemetry.request_metrics": ADAPTERS,
    "bff.telemetry.metrics": ADAPTERS,
    "bff.telemetry.audit": ADAPTERS,
    "bff.telemetry.logs": ADAPTERS,
    "bff.telemetry.access_log": ADAPTERS,
    "bff.telemetry.refusals": ADAPTERS,
    "bff.telemetry.tracing": ADAPTERS,
    # web
    "bff.web": RULES,
    "bff.web.lifecycle": RULES,
    "bff.web.inputs": RULES,
    "bff.web.runtime": SERVICES,
    "bff.web.background": SERVICES,
    "bff.web.middleware": EDGE,
    "bff.web.routing": EDGE,
    "bff.web.frontend_select": RULES,  # which frontend serves a host and path
    "bff.web.frontend_dispatch": EDGE,
    "bff.web.error_pages": EDGE,
    "bff.web.login_endpoints": EDGE,
    "bff.web.session_endpoints": EDGE,
    "bff.web.health": EDGE,
    "bff.web.events": EDGE,
    "bff.web.sessions_api": EDGE,
    "bff.web.admin_api": EDGE,
    "bff.web.listener": EDGE,
    "bff.web.paired_writes": ADAPTERS,
    "bff.web.assembly": COMPOSITION,
    "bff.web.admin_app": COMPOSITION,
    "bff.web.app": COMPOSITION,
    # cli
    "bff.cli": RULES,
    "bff.cli.main": COMPOSITION,
    "bff.cli.configuration": COMPOSITION,
    "bff.cli.logging_setup": COMPOSITION,
    "bff.cli.check_config": COMPOSITION,
    "bff.cli.serve_command": COMPOSITION,
    "bff.cli.serve": COMPOSITION,
    "bff.cli.factory": COMPOSITION,
    "bff.cli.sessions": COMPOSITION,
    "bff.cli.admin_listener": COMPOSITION,
}

# Modules that may pass 300 lines, each with its reason.
LONG_MODULES: dict[str, str] = {}

IO_MODULES = {
    "asyncio",
    "httpx",
    "aiohttp",
    "redis",
    "socket",
    "ssl",
    "subprocess",
    "logging",
    "os",
    "secrets",
    "random",
    "time",
    "uuid",
    "pathlib",
    "tempfile",
    "shutil",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "opentelemetry",
}
IO_CALLS = {"open", "print", "input"}
MUTABLE_FACTORIES = {"list", "dict", "set", "defaultdict", "OrderedDict", "Counter", "deque"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


@cache
def sources() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(sources()[name].read_text())


def imported_names(name: str) -> Iterator[tuple[str, int]]:
    """Every (module, level) an import statement of `name` names; `from a import b` also
    names `a.b`, which counts when it is a module."""
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level
            for alias in node.names:
                yield f"{node.module}.{alias.name}" if node.module else alias.name, node.level


def bff_imports(name: str) -> set[str]:
    known = sources()
    return {m for m, level in imported_names(name) if level == 0 and m in known and m != name}


def test_every_module_has_an_explicit_layer() -> None:
    modules = set(sources())
    assert sorted(modules - set(LAYERS)) == [], "modules without a layer in LAYERS"
    assert sorted(set(LAYERS) - modules) == [], "LAYERS names modules that do not exist"


def test_imports_are_absolute() -> None:
    relative = [name for name in sources() for _, level in imported_names(name) if level > 0]
    assert relative == []


def test_imports_point_down() -> None:
    problems = []
    for name in sources():
        mine = LAYERS[name]
        for target in sorted(bff_imports(name)):
            theirs = LAYERS[target]
            if theirs > mine or (theirs == mine == EDGE):
                problems.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert problems == []


def test_no_import_cycles() -> None:
    graph = {name: bff_imports(name) for name in sources()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_pure_layer_does_no_io_logging_randomness_or_clock() -> None:
    offenders = []
    for name in sources():
        if LAYERS[name] != RULES:
            continue
        for imported, level in imported_names(name):
            if level == 0 and imported.split(".")[0] in IO_MODULES:
                offenders.append(f"{name} imports {imported}")
        for node in ast.walk(tree(name)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in IO_CALLS
            ):
                offenders.append(f"{name} calls {node.func.id}()")
            if isinstance(node, ast.Global | ast.Nonlocal):
                offenders.append(f"{name} rebinds a global")
    assert offenders == []


def test_the_pure_layer_holds_no_mutable_module_state() -> None:
    offenders = []
    for name in sources():
        if LAYERS[name] != RULES:
            continue
        for node in tree(name).body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if value is None:
                continue
            mutable = isinstance(
                value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp
            ) or (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in MUTABLE_FACTORIES
            )
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            label = target.id if isinstance(target, ast.Name) else ast.unparse(target)
            if mutable and label != "__all__":
                offenders.append(f"{name}.{label}")
    assert offenders == []


def test_only_the_edge_imports_starlette_or_uvicorn() -> None:
    offenders = [
        f"{name} imports {imported}"
        for name in sources()
        if LAYERS[name] < EDGE
        for imported, _ in imported_names(name)
        if imported.split(".")[0] in ("starlette", "uvicorn")
    ]
    assert offenders == []


def test_only_the_cli_reads_the_environment() -> None:
    def reads_env(name: str) -> bool:
        return any(
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "getenv", "environb")
            for node in ast.walk(tree(name))
        )

    offenders = [name for name in sources() if not name.startswith("bff.cli") and reads_env(name)]
    assert offenders == []


def test_every_module_declares_its_public_surface_and_says_what_it_owns() -> None:
    missing_all = [
        name
        for name, path in sources().items()
        if path.name != "__init__.py" and "__all__" not in path.read_text()
    ]
    missing_doc = [name for name in sources() if not ast.get_docstring(tree(name))]
    assert missing_all == []
    assert missing_doc == []


def test_modules_are_small() -> None:
    lengths = {
        name: len(path.read_text().splitlines())
        for name, path in sources().items()
        if path.name != "__init__.py"
    }
    too_long = {n: k for n, k in lengths.items() if k > 300 and n not in LONG_MODULES}
    assert too_long == {}
    assert statistics.median(lengths.values()) < 150
