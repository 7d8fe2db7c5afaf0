"""When the district reported a batch upward (the 5-day rule, issue 15): `batch_report` rows.

Recorded by `/compile` for the batches of the round's period at the schools the compiled report holds,
or by the statistics officer's "đã báo cáo Sở" for chosen batches. A batch reported once keeps its
first day: reporting it again changes nothing (the deadline was met, or missed, then)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import BatchReport, DonationBatch, School


async def record(
    session: AsyncSession,
    batch_ids: Sequence[int],
    at: datetime,
    *,
    reported_by_id: int | None,
    round_id: int | None = None,
) -> list[int]:
    """Mark the batches reported at `at`; returns the ids newly marked."""
    if not batch_ids:
        return []
    known = set(
        await session.scalars(select(BatchReport.batch_id).where(BatchReport.batch_id.in_(list(batch_ids))))
    )
    fresh = [batch_id for batch_id in dict.fromkeys(batch_ids) if batch_id not in known]
    session.add_all(
        BatchReport(batch_id=batch_id, reported_at=at, reported_by_id=reported_by_id, round_id=round_id)
        for batch_id in fresh
    )
    await session.flush()
    return fresh


async def batches_of_period(
    session: AsyncSession, school_ids: Sequence[int], start: date, end: date
) -> list[int]:
    """The batches the schools received within the period."""
    if not school_ids:
        return []
    return list(
        await session.scalars(
            select(DonationBatch.id).where(
                DonationBatch.school_id.in_(list(school_ids)), DonationBatch.received_on.between(start, end)
            )
        )
    )


async def unreported(
    session: AsyncSession, district_id: int, limit: int = 50
) -> list[tuple[DonationBatch, School]]:
    """The district's batches not yet reported upward, oldest first (the "đã báo cáo Sở" list)."""
    rows = await session.execute(
        select(DonationBatch, School)
        .join(School, School.id == DonationBatch.school_id)
        .outerjoin(BatchReport, BatchReport.batch_id == DonationBatch.id)
        .where(School.district_id == district_id, School.active, BatchReport.batch_id.is_(None))
        .order_by(DonationBatch.received_on, DonationBatch.id)
        .limit(limit)
    )
    return [(batch, school) for batch, school in rows]
