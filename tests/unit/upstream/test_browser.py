"""The disconnect watch of a slow exchange: started late, by one timer for all of them."""

from __future__ import annotations

import asyncio

import pytest

from bff.upstream.browser import DisconnectWatch, LateWatches, Message

DELAY = 0.2


async def gone() -> Message:
    return {"type": "http.disconnect"}  # the browser has left


@pytest.mark.anyio
async def test_a_watch_starts_only_once_its_exchange_ran_for_the_delay() -> None:
    late = LateWatches(DELAY)
    exchanges = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    watches = [DisconnectWatch(gone, task, late=late) for task in exchanges]
    for watch in watches:
        watch.later()
    watches[1].stop()  # answered in time: never watched
    await asyncio.sleep(DELAY * 0.6)
    assert not any(task.cancelled() or task.done() for task in exchanges)
    await asyncio.sleep(DELAY * 1.2)  # by 1.25 x the delay at the latest
    await asyncio.sleep(0)
    assert [task.cancelled() for task in exchanges] == [True, False, True]
    assert (watches[0].gone, watches[1].gone, watches[2].gone) == (True, False, True)
    exchanges[1].cancel()


def test_each_event_loop_gets_its_own_sweep() -> None:
    late = LateWatches(DELAY)

    async def first() -> None:  # asks, and its event loop ends before the watch is due
        DisconnectWatch(gone, asyncio.current_task(), late=late).later()

    async def second() -> bool:
        task = asyncio.create_task(asyncio.sleep(10))
        DisconnectWatch(gone, task, late=late).later()
        await asyncio.sleep(DELAY * 1.5)
        await asyncio.sleep(0)
        return task.cancelled()

    asyncio.run(first())
    assert asyncio.run(second())
