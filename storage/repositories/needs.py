"""A need's history: every state a student's need had, from which day (storage.models.NeedHistory).

Written by every writer of needs (the needs service, the Excel import, the demo district), so the
reports can count needs as they stood at a period's end (storage.repositories.reports.needs_as_of).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import PriorityGroup
from storage.models import NeedHistory, NeedRecord, Student
from storage.repositories.reports import ReportFilter, needs_as_of


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


async def standing_needs(session: AsyncSession, f: ReportFilter) -> list[dict[str, Any]]:
    """The needs of the school `f.school_id` as they stood at `f.date_to` (reports.needs_as_of, the
    reports' own definition), one row per student, students who left included (the summary shows
    them as inconsistencies): the student's code, name, class, active flag and listed priority group,
    the need's category, needs_device, needs_connectivity."""
    standing = needs_as_of(f)
    rows = await session.execute(
        select(
            Student.code.label("code"),
            Student.full_name.label("full_name"),
            Student.class_name.label("class_name"),
            Student.active.label("active"),
            Student.priority_group.label("priority_group"),
            standing.c.category,
            standing.c.needs_device,
            standing.c.needs_connectivity,
        )
        .select_from(standing)
        .join(Student, Student.id == standing.c.student_id)
        .where(Student.school_id == f.school_id)
    )
    return [dict(row._mapping) for row in rows]


async def listed_per_group(session: AsyncSession, school_id: int) -> dict[PriorityGroup, int]:
    """Active students of the school's list per priority group."""
    rows = await session.execute(
        select(Student.priority_group, func.count(Student.id))
        .where(Student.school_id == school_id, Student.active.is_(True))
        .group_by(Student.priority_group)
    )
    return {row[0]: row[1] for row in rows}
