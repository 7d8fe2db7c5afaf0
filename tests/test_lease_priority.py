"""The leader lease's renewal never queues behind this process's own writers (issue 17/18: at 200 staff
with no think time the renewal waited over 3 s for the writers' turn and the leader gave itself up)."""

from __future__ import annotations

import asyncio

from storage.services import Services
from storage.services.lease import Fence


async def test_the_renewal_goes_ahead_of_the_queued_writers(services: Services) -> None:
    state = await services.lease.acquire("node-a", 10)
    assert state is not None and state.ours
    fence = Fence("node-a", state.term)
    writers_turn = getattr(services.sessionmaker, "writers_turn", None)
    if writers_turn is None:  # PostgreSQL: no in-process queue of writers
        assert await services.lease.renew(fence, 10) is not None
        return
    held, release = asyncio.Event(), asyncio.Event()

    async def busy_writer() -> None:
        async with writers_turn():
            held.set()
            await release.wait()

    writer = asyncio.create_task(busy_writer())
    await held.wait()
    # Held by another writer for as long as the test likes: the renewal must not wait for it (the
    # timeout only turns a deadlock into a failure; it measures nothing).
    renewed = await asyncio.wait_for(services.lease.renew(fence, 10), 10)
    release.set()
    await writer
    assert renewed is not None
    assert (await services.lease.current(holder="node-a")).ours
