"""Records of a school whose round submission is submitted or approved are locked for staff."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ReportingRound, RoundStatus, RoundSubmission, SubmissionStatus, SubmissionTrack

LOCKING_STATUSES = (SubmissionStatus.SUBMITTED, SubmissionStatus.APPROVED)


async def locking_submission(
    session: AsyncSession, school_id: int, track: SubmissionTrack
) -> RoundSubmission | None:
    """The open round's submission that locks this school's records of `track`, if any."""
    return await session.scalar(
        select(RoundSubmission)
        .join(ReportingRound, ReportingRound.id == RoundSubmission.round_id)
        .where(
            RoundSubmission.school_id == school_id,
            RoundSubmission.track == track,
            RoundSubmission.status.in_(LOCKING_STATUSES),
            ReportingRound.status == RoundStatus.OPEN,
        )
        .limit(1)
    )
