"""The drafts' cache (issue 17, item 3): while this process leads, `DraftService.get` and `of_person`
answer from memory, and the cache never answers something the database would not — after the
service's own writes, a record's save that ends its draft in its own transaction (`finish_sync`),
a suspend, a failed write, a read and a write overlapping, and across a leader change while another
process wrote. Both databases (the one-hop paths of each)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from storage.clock import Clock
from storage.db import create_engine, write_core
from storage.models import ConversationDraft
from storage.services import Services, build_services
from storage.services.drafts import Draft, DraftService, finish_sync

USER = 4242


def shape(drafts: list[Draft]) -> list[tuple[str, int | None, dict[str, Any], bool]]:
    return [(d.flow, d.step, d.data, d.suspended) for d in drafts]


async def from_database(
    services: Services, user: int = USER
) -> list[tuple[str, int | None, dict[str, Any], bool]]:
    """What the database says, through a service that does not cache."""
    return shape(await DraftService(services.sessionmaker, services.clock).of_person(user))


async def agrees(services: Services, user: int = USER) -> list[tuple[str, int | None, dict[str, Any], bool]]:
    """The cached answers equal the database's, for the person and each of their flows."""
    drafts = services.drafts
    truth = await from_database(services, user)
    assert shape(await drafts.of_person(user)) == truth
    for flow in ("handover", "vaccine", "sample", "none"):
        got = await drafts.get(user, flow)
        expected = [d for d in truth if d[0] == flow]
        assert (shape([got]) if got is not None else []) == expected
    return truth


@pytest.fixture
def cached(services: Services) -> DraftService:
    services.drafts.use_cache(True)
    assert services.drafts.cache.enabled  # both backends have a one-hop path
    return services.drafts


async def test_own_writes_are_followed_and_answers_are_copies(
    services: Services, cached: DraftService
) -> None:
    await cached.save(USER, "handover", {"request_key": "a1", "students": [1, 2], "_v": 1}, 2)
    await agrees(services)
    hits = cached.cache.hits
    draft = await cached.get(USER, "handover")
    assert draft is not None and cached.cache.hits == hits + 1  # answered from memory
    draft.data["students"].append(3)  # a caller changing what it got changes nothing else
    draft.data["new"] = True
    again = await cached.get(USER, "handover")
    assert again is not None and again.data == {"request_key": "a1", "students": [1, 2], "_v": 1}
    await cached.save(USER, "vaccine", {"request_key": "b2", "_suspended": True}, 1)
    await cached.save(USER, "handover", {"request_key": "a1", "_v": 2}, 3)
    truth = await agrees(services)
    assert [d[0] for d in truth] == ["vaccine", "handover"]  # the clock is frozen: the row ids order
    await cached.suspend(USER, "vaccine")
    assert [(d[0], d[3]) for d in await agrees(services)] == [("vaccine", True), ("handover", False)]
    assert await cached.discard(USER, "handover") == 1
    assert [d[0] for d in await agrees(services)] == ["vaccine"]
    assert await cached.discard(USER) == 1
    assert await agrees(services) == []


async def test_same_moment_order_is_the_databases(
    services: Services, clock: Clock, cached: DraftService
) -> None:
    # A frozen clock: equal updated_at, so the row ids decide (an update keeps its row's id).
    for flow in ("vaccine", "handover", "sample"):
        await cached.save(USER, flow, {"request_key": flow}, 1)
    await cached.save(USER, "vaccine", {"request_key": "again"}, 2)
    assert [d[0] for d in await agrees(services)] == ["sample", "handover", "vaccine"]


async def test_a_save_ending_its_draft_in_its_transaction(services: Services, cached: DraftService) -> None:
    await cached.save(USER, "handover", {"request_key": "a1"}, 5)
    await cached.save(USER, "vaccine", {"request_key": "b1"}, 2)
    await agrees(services)

    def save_record(session: Any) -> None:
        finish_sync(session, USER, "handover")

    await write_core(services.sessionmaker, save_record)
    assert [d[0] for d in await agrees(services)] == ["vaccine"]
    # The same inside a session's own transaction (a handover creating its student, PostgreSQL).
    async with services.sessionmaker.begin() as session:
        await session.run_sync(finish_sync, USER, "vaccine")
    assert await agrees(services) == []

    # Refused: rolled back, the draft stays, and the cache says so.
    await cached.save(USER, "handover", {"request_key": "a2"}, 5)
    await agrees(services)

    def refused(session: Any) -> None:
        finish_sync(session, USER, "handover")
        raise ValueError("refused")

    with pytest.raises(ValueError):
        await write_core(services.sessionmaker, refused)
    assert [d[0] for d in await agrees(services)] == ["handover"]


async def test_a_read_overlapping_a_write_does_not_fill(
    services: Services, cached: DraftService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cached.save(USER, "handover", {"request_key": "a1"}, 5)
    cached.use_cache(True)  # forgotten: the next read fills
    read = cached._person_rows
    gate, reading = asyncio.Event(), asyncio.Event()

    async def slow_read(user: int) -> Any:
        rows = await read(user)  # the old state: the draft is there
        reading.set()
        await gate.wait()
        return rows

    monkeypatch.setattr(cached, "_person_rows", slow_read)
    pending = asyncio.create_task(cached.get(USER, "handover"))
    await reading.wait()
    await write_core(services.sessionmaker, lambda session: finish_sync(session, USER, "handover"))
    gate.set()
    assert (await pending) is not None  # it began before the save: either answer was right then
    monkeypatch.setattr(cached, "_person_rows", read)
    assert cached.cache.person(USER) is None  # but it did not stay
    assert await agrees(services) == []

    # The same with the service's own write in the middle.
    cached.use_cache(True)
    reading.clear()
    gate.clear()
    monkeypatch.setattr(cached, "_person_rows", slow_read)
    pending = asyncio.create_task(cached.get(USER, "vaccine"))
    await reading.wait()
    await cached.save(USER, "vaccine", {"request_key": "b1"}, 1)
    gate.set()
    await pending
    monkeypatch.setattr(cached, "_person_rows", read)
    assert [d[0] for d in await agrees(services)] == ["vaccine"]


async def test_a_failed_write_drops_the_person(
    services: Services, cached: DraftService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await cached.save(USER, "handover", {"request_key": "a1"}, 5)
    await agrees(services)
    with pytest.raises(TypeError):  # not JSON: refused before anything is written
        await cached.save(USER, "handover", {"request_key": object()}, 6)
    assert [d[1] for d in await agrees(services)] == [5]
    # Written, but the caller hears of a failure (a connection lost after the commit): not known.
    direct = getattr(services.sessionmaker, "direct", None) or services.sessionmaker.pg_direct  # type: ignore[attr-defined]
    name = "write" if hasattr(direct, "write") else "run"
    original = getattr(direct, name)

    async def lost(*args: Any, **kwargs: Any) -> Any:
        await original(*args, **kwargs)
        raise ConnectionError("lost after the commit")

    monkeypatch.setattr(direct, name, lost)
    with pytest.raises(ConnectionError):
        await cached.save(USER, "handover", {"request_key": "a1"}, 7)
    monkeypatch.setattr(direct, name, original)
    assert cached.cache.person(USER) is None
    assert [d[1] for d in await agrees(services)] == [7]


async def test_leader_change_with_another_process_writing(
    services: Services, db_url: str, cached: DraftService
) -> None:
    """Instance A leads and caches; it loses the lease; B (another engine, as another process)
    leads and writes; A leads again and answers what B wrote, never its own old memory."""
    await cached.save(USER, "handover", {"request_key": "a1", "by": "A"}, 2)
    await agrees(services)
    cached.use_cache(False)  # A is a standby now (bot/leader.py: the end of its term)
    engine = create_engine(db_url)
    try:
        other = build_services(engine, Clock())
        other.drafts.use_cache(True)
        await other.drafts.save(USER, "handover", {"request_key": "a1", "by": "B"}, 3)
        await other.drafts.save(USER, "vaccine", {"request_key": "b1", "by": "B"}, 1)
        # And a write B makes behind any cache (a row changed directly).
        async with other.sessionmaker.begin() as session:
            await session.execute(
                update(ConversationDraft)
                .where(ConversationDraft.flow == "vaccine")
                .values(data={"request_key": "b1", "by": "B2"})
            )
        other.drafts.use_cache(False)
    finally:
        await engine.dispose()
    cached.use_cache(True)  # A leads again
    truth = await agrees(services)
    assert {d[0]: d[2]["by"] for d in truth} == {"handover": "B", "vaccine": "B2"}


async def test_the_leader_caches_only_while_it_leads(services: Services, db_url: str) -> None:
    from bot.leader import Node
    from tests.chat import make_settings

    seen: list[bool] = []

    def build(settings: Any, services_: Services) -> Any:
        seen.append(services_.drafts.cache.enabled)
        raise RuntimeError("stop here")  # starting the term failed: it stands by again

    node = Node(make_settings(db_url), services, build=build)
    node.keeper.fence = None
    stop = asyncio.Event()
    await services.drafts.save(USER, "handover", {"request_key": "a1"}, 1)
    with pytest.raises(RuntimeError):
        await node._lead(stop)
    assert seen == [True] and not services.drafts.cache.enabled
    assert services.drafts.cache.person(USER) is None


async def test_rows_in_the_database_match_after_cached_steps(
    services: Services, cached: DraftService
) -> None:
    for step in range(1, 6):
        await cached.save(USER, "handover", {"request_key": "k", "_v": step}, step)
        draft = await cached.get(USER, "handover")
        assert draft is not None and draft.step == step
    async with services.sessionmaker() as session:
        row = (await session.scalars(select(ConversationDraft))).one()
    assert (row.step, row.data) == (5, {"request_key": "k", "_v": 5})


async def test_a_read_between_the_finish_and_its_commit_does_not_stay(
    services: Services, cached: DraftService
) -> None:
    """A read that began after `finish_sync` and saw the state before the commit (the draft still
    there) may fill the cache; the cache is told again once the transaction ended, so it does not stay."""
    await cached.save(USER, "handover", {"request_key": "a1"}, 5)
    await agrees(services)
    before_commit = await cached._person_rows(USER)  # what such a read would bring back

    def save_record(session: Any) -> None:
        finish_sync(session, USER, "handover")
        cached.cache.fill(USER, cached.cache.token(USER), before_commit)  # the read, landing now

    await write_core(services.sessionmaker, save_record)
    assert cached.cache.person(USER) is None
    assert await agrees(services) == []

    await cached.save(USER, "vaccine", {"request_key": "b1"}, 2)
    before_commit = await cached._person_rows(USER)

    def in_session(session: Any) -> None:
        finish_sync(session, USER, "vaccine")
        cached.cache.fill(USER, cached.cache.token(USER), before_commit)

    async with services.sessionmaker.begin() as session:
        await session.run_sync(in_session)
    assert cached.cache.person(USER) is None
    assert await agrees(services) == []


async def test_the_cache_is_bounded(services: Services, cached: DraftService) -> None:
    cached.cache.MAX_PEOPLE = 3
    for user in range(1, 6):
        await cached.save(user, "handover", {"request_key": str(user)}, 1)
        assert await cached.get(user, "handover") is not None
    assert len(cached.cache._people) == 3
    for user in range(1, 6):  # the ones let go are read again, the same
        await agrees(services, user)
