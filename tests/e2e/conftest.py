"""Fixtures for the browser suite (the parts live in harness.py): the stack of services
for the module, Debian's Chromium through Playwright's sync API, a per-test harness, and a
hook that saves screenshots and logs when a test fails and names them in its message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    E2E,
    INSTALL_HINT,
    Stack,
    start_stack,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("e2e-services"), redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing: {INSTALL_HINT}")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    manager = sync_playwright()
    driver = manager.start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    # Debian's Chromium, never a downloaded one (`playwright install` cannot work here).
    instance = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def e2e(
    stack: Stack, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[E2E]:
    dead = [s.name for s in stack.services if not s.alive()]
    if dead:
        pytest.fail(f"e2e services died: {dead}; see {[str(s.log_path) for s in stack.services]}")
    harness = E2E(stack, browser, tmp_path, request.node.name)
    try:
        yield harness
    finally:
        harness.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """On failure: save screenshots and logs, and name the files in the failure message."""
    try:
        return (yield)
    except (Exception, pytest.fail.Exception) as exc:
        harness = getattr(item, "funcargs", {}).get("e2e")
        if isinstance(harness, E2E):
            files = harness.save_artifacts()
            note = "e2e evidence saved:\n" + "\n".join(f"  {p}" for p in files)
            if isinstance(exc, AssertionError) and exc.args:
                exc.args = (f"{exc.args[0]}\n{note}", *exc.args[1:])
            else:
                exc.add_note(note)
        raise
