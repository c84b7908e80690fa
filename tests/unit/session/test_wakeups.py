"""RefreshWakeups: the per-worker waits for another refresh of a session, woken by the
lock's release or the session's end."""

from __future__ import annotations

import pytest

from bff.session.wakeups import RefreshWakeups

pytestmark = pytest.mark.anyio
HASH, OTHER = "0123456789abcdef0123456789abcdef", "f" * 32


async def test_a_wake_sets_every_wait_of_that_session_only() -> None:
    wakeups = RefreshWakeups()
    with wakeups.watch(HASH) as one, wakeups.watch(HASH) as two, wakeups.watch(OTHER) as other:
        assert len(wakeups) == 3
        assert wakeups.wake(HASH) == 2
        assert one.is_set() and two.is_set() and not other.is_set()
        one.clear()
        assert wakeups.wake(HASH) == 2  # set again: the waiter looks again
        assert one.is_set()
    assert len(wakeups) == 0  # forgotten with their blocks
    assert wakeups.wake(HASH) == 0


async def test_a_wait_ends_with_its_block_even_on_an_error() -> None:
    wakeups = RefreshWakeups()
    with pytest.raises(RuntimeError), wakeups.watch(HASH):
        raise RuntimeError
    assert len(wakeups) == 0
    assert wakeups._waiting == {}  # no empty entry left behind
