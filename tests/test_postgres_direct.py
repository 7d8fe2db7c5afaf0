"""The hot path on PostgreSQL (issue 17): plain asyncpg calls (`storage.db.PostgresDirect`) and no
pre-ping. A connection the server ended (`pg_terminate_backend`, as a restart does) is replaced and the
next update works; one lost midway is retried when the call may be made twice; a refused statement or a
cancelled call leaves the pool sound. The inbox's one-statement receive and marks keep their rules
(on both databases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage.db import direct_postgres
from storage.enums import InboxStatus
from storage.models import UpdateInbox
from storage.services import Services
from storage.services.inbox import Received
from storage.services.lease import Fence, LeaseLost
from tests.chat import TODAY_BUTTON, running_harness
from tests.factories import make_world
from tests.sample_flow import SampleFlow

POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def terminate_others(db_url: str) -> int:
    """End every other server process of this database, as a restart would; wait until they are gone."""
    admin = create_async_engine(db_url, poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            others = (
                "datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            ended = await connection.scalar(
                text(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {others}")
            )
            for _ in range(100):
                await connection.commit()
                if not await connection.scalar(text(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")):
                    break
                await asyncio.sleep(0.05)
    finally:
        await admin.dispose()
    await asyncio.sleep(0.05)  # the event loop reads the closed sockets
    return int(ended or 0)


@POSTGRES_ONLY
async def test_the_next_update_works_after_the_server_ended_every_connection(
    services: Services, db_url: str
) -> None:
    world = await make_world(services)
    direct = direct_postgres(services.sessionmaker)
    assert direct is not None
    SampleFlow.saved = []
    async with running_harness(services, db_url, SampleFlow()) as harness:
        teacher = harness.person("teacher")
        await teacher.send("/sample")
        await teacher.send("Trần Thị Bình")
        assert await terminate_others(db_url) >= 1
        services.staff.forget()  # the look-up goes to the database too
        await teacher.tap(TODAY_BUTTON)  # a staff look-up, a draft read and write, on new connections
        assert teacher.last_text().startswith("Step 3")
        await terminate_others(db_url)
        await teacher.send("12")
        await terminate_others(db_url)
        await teacher.tap(teacher.buttons()[0])  # confirm
        assert teacher.last_text() == "Saved."
        # Nothing failed and was retried: every ended connection was replaced at its checkout.
        assert direct.lost == 0
    assert SampleFlow.saved[0]["quantity"] == 12
    # The services' own sessions (a read, a write transaction) as the next update would use them.
    await terminate_others(db_url)
    assert (await services.staff.get(world.staff_ids["teacher"])).full_name
    await terminate_others(db_url)
    assert (await services.staff.set_language(world.staff_ids["teacher"], "en")).language == "en"


@POSTGRES_ONLY
async def test_a_call_that_loses_its_connection_midway_is_retried_when_it_may_be(services: Services) -> None:
    direct = direct_postgres(services.sessionmaker)
    assert direct is not None
    calls: list[int] = []

    async def ended_on_first_call(connection: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return int(await connection.fetchval("SELECT 41 + 1"))

    assert await direct.run(ended_on_first_call, retry=True) == 42 and len(calls) == 2
    calls.clear()
    with pytest.raises(Exception) as raised:
        await direct.run(ended_on_first_call)  # a write that must not be made twice: the error
    assert "connection" in str(raised.value).lower() or "terminat" in str(raised.value).lower()
    assert len(calls) == 1
    # The sessions' path meets a fresh connection too.
    async with services.sessionmaker() as session:
        assert await session.scalar(text("SELECT 1")) == 1


@POSTGRES_ONLY
async def test_a_refused_statement_and_a_cancelled_call_leave_the_pool_sound(services: Services) -> None:
    direct = direct_postgres(services.sessionmaker)
    assert direct is not None
    pool = services.sessionmaker.kw["bind"].sync_engine.pool

    async def two_rows_one_refused(connection: Any) -> None:
        insert = (
            "INSERT INTO update_inbox (update_id, status, attempts, received_at) "
            "VALUES ($1, 'pending', 0, now())"
        )
        await connection.execute(insert, 5)
        await connection.execute(insert, 5)  # the primary key refuses it: the first is rolled back too

    with pytest.raises(Exception, match="duplicate key"):
        await direct.run(two_rows_one_refused, transaction=True)
    assert await direct.run(lambda c: c.fetchval("SELECT count(*) FROM update_inbox")) == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(direct.run(lambda c: c.execute("SELECT pg_sleep(5)")), 0.2)
    assert await direct.run(lambda c: c.fetchval("SELECT 7")) == 7
    assert pool.checkedout() == 0


async def test_fenced_receive_in_one_statement_keeps_the_lease_rules(services: Services) -> None:
    inbox, lease = services.inbox, services.lease
    state = await lease.acquire("a", 30)
    assert state is not None and state.ours
    fence = Fence("a", state.term)
    ids = await inbox.receive(
        [Received(1, 5, {"update_id": 1, "text": "xin chào"}), Received(2, 5, {})], fence
    )
    assert ids == [1, 2]
    assert await inbox.receive([Received(2, 5, {}), Received(3, None, {"update_id": 3})], fence) == [3]
    for stale in (Fence("b", state.term), Fence("a", state.term + 1)):
        with pytest.raises(LeaseLost):
            await inbox.receive([Received(4, 5, {"update_id": 4})], stale)
    async with services.sessionmaker.begin() as session:
        await session.execute(text("UPDATE leader_lease SET expires_at = acquired_at"))
    with pytest.raises(LeaseLost):
        await inbox.receive([Received(4, 5, {"update_id": 4})], fence)
    assert await inbox.receive([Received(4, 5, {"update_id": 4})]) == [4]  # unfenced (the webhook's tests)
    async with services.sessionmaker() as session:
        rows = {r.update_id: r for r in await session.scalars(select(UpdateInbox))}
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1].payload == {"update_id": 1, "text": "xin chào"} and rows[3].chat_id is None
    assert all(r.status == InboxStatus.PENDING and r.attempts == 0 for r in rows.values())
    assert rows[1].received_at.tzinfo is not None


async def test_marks_in_one_statement_as_two_in_turn(services: Services, clock: Any) -> None:
    inbox = services.inbox
    await inbox.receive([Received(i, 5, {"update_id": i}) for i in (1, 2, 3)])
    await inbox.mark(started=[1, 2])
    clock.frozen_at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    await inbox.mark(started=[3], handled=[2, 3])  # 3 in both: handled, its attempt counted
    async with services.sessionmaker() as session:
        rows = {r.update_id: r for r in await session.scalars(select(UpdateInbox))}
    assert (rows[1].status, rows[1].attempts, rows[1].payload) == (InboxStatus.HANDLING, 1, {"update_id": 1})
    assert (rows[2].status, rows[2].attempts, rows[2].payload) == (InboxStatus.HANDLED, 1, None)
    assert (rows[3].status, rows[3].attempts, rows[3].payload) == (InboxStatus.HANDLED, 1, None)
    assert rows[3].handled_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC) and rows[1].handled_at is None


@POSTGRES_ONLY
async def test_a_connection_unused_for_a_while_is_pinged_at_checkout(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    import storage.db

    direct = direct_postgres(services.sessionmaker)
    assert direct is not None
    assert await direct.run(lambda c: c.fetchval("SELECT 1")) == 1
    pings: list[object] = []
    original = AsyncAdapt_asyncpg_connection.ping

    def ping(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        original(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", ping)
    assert await direct.run(lambda c: c.fetchval("SELECT 2")) == 2
    assert pings == []  # used a moment ago: no round trip before the statement
    monkeypatch.setattr(storage.db, "PING_IDLE_SECONDS", 0.0)  # now every connection has been idle long
    await asyncio.sleep(0.01)
    assert await direct.run(lambda c: c.fetchval("SELECT 3")) == 3
    async with services.sessionmaker() as session:
        assert await session.scalar(text("SELECT 4")) == 4
    assert len(pings) == 2
