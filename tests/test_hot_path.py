"""The hot path of an update (issue 17, item 3): drafts and the inbox's marks written through
`storage.db.SqliteDirect` on SQLite (one thread hop) read back exactly as the ORM writes them, on both
databases; the marks of updates handled at the same moment go into one transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select

from bot.inbox import MarkBatcher
from storage.clock import Clock
from storage.enums import InboxStatus
from storage.models import ConversationDraft, UpdateInbox
from storage.services import Services
from storage.services.inbox import Received


async def test_drafts_read_back_as_written(services: Services, clock: Clock) -> None:
    drafts = services.drafts
    clock.frozen_at = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    await drafts.save(7, "handover", {"request_key": "abc", "student": "Nguyễn Văn An", "_v": 3}, 2)
    clock.frozen_at = datetime(2026, 3, 1, 8, 31, tzinfo=UTC)
    await drafts.save(7, "vaccine", {"request_key": "def", "_suspended": True}, 1)
    await drafts.suspend(7, "vaccine")
    draft = await drafts.get(7, "handover")
    assert draft is not None and (draft.step, draft.data, draft.suspended) == (
        2,
        {"request_key": "abc", "student": "Nguyễn Văn An", "_v": 3},
        False,
    )
    assert await drafts.get(7, "nothing") is None and await drafts.get(8, "handover") is None
    async with services.sessionmaker() as session:
        rows = {r.flow: r for r in await session.scalars(select(ConversationDraft))}
    assert rows["handover"].updated_at == datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    assert rows["handover"].data["student"] == "Nguyễn Văn An"
    # Newest first; the suspended one says so; one read answers both of a flow's entry questions.
    person = await drafts.of_person(7)
    assert [(d.flow, d.suspended) for d in person] == [("vaccine", True), ("handover", False)]
    assert await drafts.active_flows(7) == ["handover"]
    assert await drafts.discard(7, "handover") == 1 and await drafts.get(7, "handover") is None
    assert await drafts.discard(7) == 1 and await drafts.of_person(7) == []


async def test_inbox_marks_read_back_and_are_grouped(services: Services) -> None:
    inbox = services.inbox
    ids = list(range(100, 110))
    assert await inbox.receive([Received(i, 5, {"update_id": i, "text": "xin chào"}) for i in ids]) == ids
    marks = MarkBatcher(inbox)
    # Ten updates starting at the same moment: their marks share transactions, each still awaited.
    await asyncio.gather(*(marks.mark(i, handled=False) for i in ids))
    assert 1 <= marks.writes < len(ids)
    async with services.sessionmaker() as session:
        rows = {r.update_id: r for r in await session.scalars(select(UpdateInbox))}
    assert all(rows[i].status == InboxStatus.HANDLING and rows[i].attempts == 1 for i in ids)
    assert rows[100].payload == {"update_id": 100, "text": "xin chào"}
    await asyncio.gather(*(marks.mark(i, handled=True) for i in ids[:5]))
    async with services.sessionmaker() as session:
        rows = {r.update_id: r for r in await session.scalars(select(UpdateInbox))}
    assert all(rows[i].status == InboxStatus.HANDLED and rows[i].payload is None for i in ids[:5])
    assert all(rows[i].handled_at is not None and rows[i].handled_at.tzinfo is not None for i in ids[:5])
    pending, failed = await inbox.recover()
    assert [u.update_id for u in pending] == ids[5:] and failed == []
