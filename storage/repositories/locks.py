"""Locks scoped to a round's period (as DHIS2's data approval): a school's submission of a part that is
submitted or approved locks that school's records of the part **of that period**, nothing else.

- A record with an event day (a batch received, a handover, a return, a dose given) is locked when its
  day falls inside a locked period: `event_lock`.
- A need has no event day: it stands from a day on. A change dated `day` alters the stock of every
  period ending on or after `day`, so it is locked when a locked period ends on or after it:
  `standing_lock`.

A lock lasts while the submission is submitted or approved, whether the round is open or compiled:
what was reported stays as reported. A send-back (before approval) or a reopen (after it) lifts it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypedDict

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.enums import SubmissionStatus, SubmissionTrack
from storage.models import ReportingRound, RoundSubmission
from storage.repositories import core
from storage.rules import round_label
from storage.rules.dates import show_date
from storage.schemas.vaccines import Finding

LOCKING_STATUSES = (SubmissionStatus.SUBMITTED, SubmissionStatus.APPROVED)
# The catalogue area of each kind of record (errors.<area>.locked…) and the part it belongs to.
AREA_TRACK = {
    "devices": SubmissionTrack.PROGRAM,
    "needs": SubmissionTrack.PROGRAM,
    "vaccines": SubmissionTrack.VACCINE,
}


@dataclass(frozen=True)
class PeriodLock:
    """One locked period of one school's part."""

    round_id: int
    round_name: str
    school_id: int
    track: SubmissionTrack
    period_start: date
    period_end: date
    status: SubmissionStatus  # submitted (the reviewer can send back) or approved (only a reopen)

    def holds_event(self, day: date) -> bool:
        return self.period_start <= day <= self.period_end

    def holds_standing(self, day: date) -> bool:
        return day <= self.period_end


async def period_locks(
    session: AsyncSession, school_ids: Iterable[int], track: SubmissionTrack
) -> dict[int, list[PeriodLock]]:
    """school id -> its locked periods of `track`, the latest period first."""
    return await session.run_sync(period_locks_sync, school_ids, track)


def period_locks_sync(
    session: Session, school_ids: Iterable[int], track: SubmissionTrack
) -> dict[int, list[PeriodLock]]:
    ids = sorted(set(school_ids))
    found: dict[int, list[PeriodLock]] = {school_id: [] for school_id in ids}
    if not ids:
        return found
    if len(ids) == 1:  # a record's own school (the hot path): no list to expand into the statement
        rows = core.execute(
            session, _locks_query(False), {"school_id": ids[0], "track": SubmissionTrack(track)}
        )
    else:
        rows = core.execute(session, _locks_query(True), {"ids": ids, "track": SubmissionTrack(track)})
    for school_id, track_, status, round_id, name, start, end in rows:
        found[school_id].append(
            PeriodLock(
                round_id=round_id,
                round_name=name,
                school_id=school_id,
                track=track_,
                period_start=start,
                period_end=end,
                status=status,
            )
        )
    return found


@functools.cache
def _locks_query(many: bool) -> Select[Any]:
    """Built once (every record's save and a flow's date step ask it): plain columns, bound values."""
    submission, rnd = RoundSubmission.__table__.c, ReportingRound.__table__.c
    return (
        select(
            submission.school_id,
            submission.track,
            submission.status,
            rnd.id,
            rnd.name,
            rnd.period_start,
            rnd.period_end,
        )
        .join_from(RoundSubmission.__table__, ReportingRound.__table__, rnd.id == submission.round_id)
        .where(
            submission.school_id.in_(bindparam("ids", expanding=True))
            if many
            else submission.school_id == bindparam("school_id"),
            submission.track == bindparam("track"),
            submission.status.in_(LOCKING_STATUSES),
        )
        .order_by(rnd.period_end.desc(), rnd.id.desc())
    )


async def school_locks(session: AsyncSession, school_id: int, track: SubmissionTrack) -> list[PeriodLock]:
    return (await period_locks(session, [school_id], track))[school_id]


def event_lock(locks: Sequence[PeriodLock], *days: date | None) -> PeriodLock | None:
    """The locked period holding any of `days` (an edit checks the old day and the new one)."""
    for lock in locks:
        if any(day is not None and lock.holds_event(day) for day in days):
            return lock
    return None


def standing_lock(locks: Sequence[PeriodLock], *days: date | None) -> PeriodLock | None:
    """The locked period whose stock a need change dated any of `days` would alter."""
    for lock in locks:
        if any(day is not None and lock.holds_standing(day) for day in days):
            return lock
    return None


def refusal(lock: PeriodLock, area: str) -> Finding:
    """The refusal of a change to a locked period: which round and period, who can reopen it (the
    reviewer while submitted: `<area>.locked`; after approval the statistics officer or an admin:
    `<area>.locked_approved`), and from which day records are accepted again."""
    code = f"{area}.locked_approved" if lock.status is SubmissionStatus.APPROVED else f"{area}.locked"
    return Finding(
        code=code,
        params={
            "round": round_label(lock.round_name),
            "start": show_date(lock.period_start),
            "end": show_date(lock.period_end),
            "after": show_date(lock.period_end + timedelta(days=1)),
        },
    )


async def event_refusal(
    session: AsyncSession, school_id: int, area: str, *days: date | None
) -> Finding | None:
    """The refusal of a record of `area` dated any of `days`, if a locked period holds one."""
    lock = event_lock(await school_locks(session, school_id, AREA_TRACK[area]), *days)
    return refusal(lock, area) if lock else None


async def refuse_event(session: AsyncSession, school_id: int, area: str, *days: date | None) -> None:
    found = await event_refusal(session, school_id, area, *days)
    if found is not None:
        raise found.as_error()


def event_refusal_sync(session: Session, school_id: int, area: str, *days: date | None) -> Finding | None:
    lock = event_lock(period_locks_sync(session, [school_id], AREA_TRACK[area])[school_id], *days)
    return refusal(lock, area) if lock else None


def refuse_event_sync(session: Session, school_id: int, area: str, *days: date | None) -> None:
    found = event_refusal_sync(session, school_id, area, *days)
    if found is not None:
        raise found.as_error()


def standing_refusal_sync(session: Session, school_id: int, *days: date | None) -> Finding | None:
    lock = standing_lock(period_locks_sync(session, [school_id], SubmissionTrack.PROGRAM)[school_id], *days)
    return refusal(lock, "needs") if lock else None


async def standing_refusal(session: AsyncSession, school_id: int, *days: date | None) -> Finding | None:
    """The refusal of a need change dated any of `days`, if it would alter a locked period's stock."""
    lock = standing_lock(await school_locks(session, school_id, SubmissionTrack.PROGRAM), *days)
    return refusal(lock, "needs") if lock else None


async def refuse_standing(session: AsyncSession, school_id: int, *days: date | None) -> None:
    found = await standing_refusal(session, school_id, *days)
    if found is not None:
        raise found.as_error()


async def entry_locks(
    session: AsyncSession, area: str, entries: Sequence[tuple[int, date | None]], *, standing: bool = False
) -> list[PeriodLock | None]:
    """For (school id, day) pairs: the locked period each one is in (a need's: whose stock it is in)."""
    found = await period_locks(session, {school_id for school_id, _ in entries}, AREA_TRACK[area])
    pick = standing_lock if standing else event_lock
    return [pick(found[school_id], day) if day is not None else None for school_id, day in entries]


class EntryMarks(TypedDict):
    """RecentEntry's lock fields, spread into it."""

    editable: bool
    locked_round: str | None
    refusal: Finding | None


def entry_marks(lock: PeriodLock | None, area: str) -> EntryMarks:
    """The fields of a recent entry (/my) that say whether and why it is locked."""
    if lock is None:
        return {"editable": True, "locked_round": None, "refusal": None}
    return {"editable": False, "locked_round": lock.round_name, "refusal": refusal(lock, area)}
