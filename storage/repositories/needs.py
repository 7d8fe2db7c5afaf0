"""A need's history: every state a student's need had, from which day (storage.models.NeedHistory).

Written by every writer of needs (the needs service, the Excel import, the demo district), so the
reports can count needs as they stood at a period's end (storage.repositories.reports.needs_as_of).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import NeedHistory, NeedRecord


async def latest_state(session: AsyncSession, student_id: int) -> NeedHistory | None:
    return await session.scalar(
        select(NeedHistory)
        .where(NeedHistory.student_id == student_id)
        .order_by(NeedHistory.changed_on.desc(), NeedHistory.id.desc())
        .limit(1)
    )


async def record_state(
    session: AsyncSession,
    need: NeedRecord,
    day: date,
    *,
    actor_id: int | None,
    at: datetime,
    closed: bool = False,
) -> NeedHistory:
    """The need's state from `day` on: a new history row, or the latest one corrected when it is of
    the same day (a correction the same day is not a change)."""
    latest = await latest_state(session, need.student_id)
    if latest is None or latest.changed_on != day:
        latest = NeedHistory(student_id=need.student_id, changed_on=day)
        session.add(latest)
    latest.category = need.category
    latest.needs_device = need.needs_device
    latest.needs_connectivity = need.needs_connectivity
    latest.closed = closed
    latest.entered_by_id = actor_id
    latest.entered_at = at
    await session.flush()
    return latest


async def forget(session: AsyncSession, student_id: int, since: date) -> None:
    """A need recorded by mistake, seen by no locked period: its history from `since` goes with it."""
    rows = await session.scalars(
        select(NeedHistory).where(NeedHistory.student_id == student_id, NeedHistory.changed_on >= since)
    )
    for row in rows:
        await session.delete(row)
    await session.flush()
