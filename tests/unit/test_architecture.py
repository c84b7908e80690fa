"""Keep the layers honest: imports point down only, Starlette only at the edge, and
only the CLI reads the process environment."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bff"

LAYER0 = {
    "answers",
    "errors",
    "config",
    "tokens",
    "session",
    "compact",
    "compact_tables",
    "pkce",
    "cookies",
    "redirects",
    "headers",
    "crypto",
    "audit",
    "routes",
    "metrics",
    "lifecycle",
    "redis_url",
    "__init__",
}
LAYER2 = {
    "middleware",
    "endpoints",
    "proxy",
    "app",
    "cli",
    "listener",
    "admin_app",
    "admin_listener",
    "serve",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(rel.parts)


def layer(name: str) -> int:
    top = name.split(".")[0]
    if name.startswith("store") and name != "store":
        return 1
    if top in LAYER2:
        return 2
    if top in LAYER0 or name == "store":
        return 0
    return 1


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import inside bff
                base = "bff." + node.module
            found.add(base)
    return found


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_imports_point_down() -> None:
    problems = []
    for path in modules():
        name = module_name(path)
        mine = layer(name)
        for imported in imports(path):
            if not imported.startswith("bff."):
                continue
            target = imported.removeprefix("bff.")
            if target == "store" or target.startswith("store."):
                target_layer = 0 if target == "store" else 1
            else:
                target_layer = layer(target)
            if target_layer > mine:
                problems.append(f"{name} (layer {mine}) imports {imported} (layer {target_layer})")
    assert problems == []


def test_only_the_edge_imports_starlette_or_uvicorn() -> None:
    offenders = [
        module_name(p)
        for p in modules()
        if layer(module_name(p)) < 2
        and any(i.split(".")[0] in ("starlette", "uvicorn") for i in imports(p))
    ]
    assert offenders == []


def test_only_the_cli_reads_the_environment() -> None:
    def reads_env(path: Path) -> bool:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in ("environ", "getenv", "environb")
            ):
                return True
        return False

    offenders = [module_name(p) for p in modules() if module_name(p) != "cli" and reads_env(p)]
    assert offenders == []


def test_layer0_does_no_io() -> None:
    io_modules = {"httpx", "aiohttp", "redis", "socket", "asyncio"}
    offenders = [
        f"{module_name(p)} imports {i}"
        for p in modules()
        if layer(module_name(p)) == 0
        for i in imports(p)
        if i.split(".")[0] in io_modules
    ]
    assert offenders == []


def test_every_module_declares_its_public_surface() -> None:
    missing = [module_name(p) for p in modules() if "__all__" not in p.read_text()]
    assert missing == []
