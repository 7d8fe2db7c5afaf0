"""Reporting rounds' queries: a school's figures, records per school, who entered what, the
submissions of a round with their first submission time, the people to remind.

A school's figures are the district report's aggregates (storage.repositories.reports) narrowed to the
one school and the round's period, so what a principal submits and a specialist approves is exactly
what the compiled district workbook shows for that school.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import NEED_GROUPS, DonationSource, Role, SubmissionStatus, SubmissionTrack
from storage.models import (
    DonationBatch,
    Handover,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    School,
    SentReminder,
    Staff,
    Student,
    SubmissionEvent,
    VaccineDose,
)
from storage.repositories import reports as report_queries
from storage.rules.dates import show_date
from storage.schemas.rounds import (
    ISSUE_AREA_TRACK,
    Inconsistency,
    SchoolFigures,
)

# Long lists of inconsistencies are cut: the reviewer sees the first ones and how many more.
MAX_LISTED_ISSUES = 50


class RoundPeriod(Protocol):
    """What a report filter needs of a round: a ReportingRound, or a row of its table (migration 0002)."""

    @property
    def district_id(self) -> int: ...
    @property
    def period_start(self) -> date: ...
    @property
    def period_end(self) -> date: ...


def report_filter(
    rnd: RoundPeriod, tz: ZoneInfo, *, school_id: int | None = None
) -> report_queries.ReportFilter:
    return report_queries.ReportFilter(
        district_id=rnd.district_id,
        school_id=school_id,
        date_from=rnd.period_start,
        date_to=rnd.period_end,
        tz=tz,
    )


def period_instants(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants the period's first local day begins and its last local day ends."""
    return (
        datetime.combine(start, time(0), tz).astimezone(UTC),
        datetime.combine(end + timedelta(days=1), time(0), tz).astimezone(UTC),
    )


async def _rows(session: AsyncSession, statement: Select[*tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await session.execute(statement)]


def _plain(value: Any) -> Any:
    """JSON-ready issue parameters: dates as people read them, enumerations as their values."""
    if isinstance(value, date):
        return show_date(value)
    return getattr(value, "value", value)


def figure_statements(f: Any, *, schema_before_0005: bool = False) -> dict[str, Select[*tuple[Any, ...]]]:
    """The statements a school's figures come from (the district report's per-school tables); the
    one place a figure is defined, so the chat, the snapshots and the compiled report agree.
    `schema_before_0005`: for migration 0002, on a database without the returns' entry times."""
    return {
        "needs": report_queries.needs_per_school(f),
        "devices": report_queries.devices_per_school(f),
        "vaccination": report_queries.vaccination_per_school(f),
        "timeliness": report_queries.timeliness_per_school(f, return_entries=not schema_before_0005),
    }


def figure_values(rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """The figures (keys of PROGRAM_FIGURES / VACCINE_FIGURES) from the rows of `figure_statements`."""
    values: dict[str, int] = {}
    needs = rows.get("needs") or []
    if needs:
        row = needs[0]
        values["students"] = int(row["students"])
        values["students_priority"] = int(row["students_priority"])
        for group in NEED_GROUPS:
            for kind in ("device", "connectivity"):
                values[f"needs.{kind}_{group.value}"] = int(row[f"{kind}_{group.value}"])
        values["needs.device_total"] = int(row["device_total"])
        values["needs.connectivity_total"] = int(row["connectivity_total"])
        values["needs.total"] = int(row["needs_total"])
        # Met: a gift handed over by the period's end (a loan never meets a need). Not among
        # PROGRAM_FIGURES (not submitted), but /need_summary shows them as Biểu 1 does.
        values["needs.device_met"] = int(row["device_met"])
        values["needs.device_unmet"] = int(row["device_unmet"])
    for row in rows.get("devices") or []:
        source = DonationSource(row["source"]).value
        for name in ("batches", "received", "given", "lent", "returned", "on_loan", "left"):
            values[f"devices.{source}.{name}"] = int(row[name])
    vaccination = rows.get("vaccination") or []
    if vaccination:
        row = vaccination[0]
        for name in ("enrolled", "dose1", "dose2", "dose3", "doses"):
            values[f"vaccination.{name}"] = int(row[name])
    timeliness = rows.get("timeliness") or []
    if timeliness:
        row = timeliness[0]
        # The records of the 1-day rule (needs are never late: docs/reports.md).
        for name in ("batches", "handovers", "returns", "doses"):
            values[f"late.{name}"] = int(row[f"{name}_late"])
    return values


async def school_figures(
    session: AsyncSession, rnd: ReportingRound, school: School, tz: ZoneInfo
) -> SchoolFigures:
    f = report_filter(rnd, tz, school_id=school.id)
    rows = {name: await _rows(session, statement) for name, statement in figure_statements(f).items()}
    values = figure_values(rows)

    found = [
        *await report_queries.needs_issues(session, f),
        *await report_queries.device_issues(session, f),
        *await report_queries.vaccination_issues(session, f),
    ]
    issues = [
        Inconsistency(
            code=str(item["issue"]),
            track=ISSUE_AREA_TRACK.get(str(item["area"]), SubmissionTrack.PROGRAM),
            subject=str(item.get("subject") or ""),
            params={key: _plain(value) for key, value in (item.get("params") or {}).items()},
        )
        for item in found
    ]
    return SchoolFigures(
        round_id=rnd.id,
        school_id=school.id,
        school_code=school.code,
        school_name=school.name,
        level=school.level,
        period_start=rnd.period_start,
        period_end=rnd.period_end,
        values=values,
        inconsistencies=issues[:MAX_LISTED_ISSUES],
        more_inconsistencies=max(0, len(issues) - MAX_LISTED_ISSUES),
    )


async def records_per_school(session: AsyncSession, rnd: ReportingRound, tz: ZoneInfo) -> dict[int, int]:
    """School id -> records of the round's period (batches, handovers, returns, doses, need states)."""
    rows = await _rows(session, report_queries.timeliness_per_school(report_filter(rnd, tz)))
    return {int(row["school_id"]): int(row["records_total"]) + int(row["needs_recorded"]) for row in rows}


def _entered_by_statements(
    school_id: int, track: SubmissionTrack, rnd: ReportingRound, tz: ZoneInfo
) -> list[Select[*tuple[Any, ...]]]:
    start, end = rnd.period_start, rnd.period_end
    if track is SubmissionTrack.VACCINE:
        return [
            select(VaccineDose.entered_by_id.label("staff_id"))
            .join(Student, Student.id == VaccineDose.student_id)
            .where(Student.school_id == school_id, VaccineDose.given_on.between(start, end))
        ]
    entered_from, entered_before = period_instants(start, end, tz)
    return [
        select(DonationBatch.entered_by_id.label("staff_id")).where(
            DonationBatch.school_id == school_id, DonationBatch.received_on.between(start, end)
        ),
        select(Handover.entered_by_id.label("staff_id"))
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .where(DonationBatch.school_id == school_id, Handover.handed_on.between(start, end)),
        select(NeedRecord.entered_by_id.label("staff_id"))
        .join(Student, Student.id == NeedRecord.student_id)
        .where(
            Student.school_id == school_id,
            NeedRecord.entered_at >= entered_from,
            NeedRecord.entered_at < entered_before,
        ),
    ]


async def people_to_notify(
    session: AsyncSession, rnd: ReportingRound, school_id: int, track: SubmissionTrack, tz: ZoneInfo
) -> list[Staff]:
    """The school's active principals and the active staff who entered its records of `track` in
    the round's period; principals first, then by name."""
    entered = union_all(*_entered_by_statements(school_id, track, rnd, tz)).subquery()
    rows = await session.scalars(
        select(Staff)
        .where(
            Staff.active,
            or_(
                and_(Staff.role == Role.PRINCIPAL, Staff.school_id == school_id),
                Staff.id.in_(select(entered.c.staff_id).where(entered.c.staff_id.is_not(None))),
            ),
        )
        .order_by(Staff.role != Role.PRINCIPAL, Staff.full_name, Staff.id)
    )
    return list(rows)


async def submissions_of_round(
    session: AsyncSession, round_id: int, *, school_ids: Iterable[int] | None = None
) -> list[tuple[RoundSubmission, School]]:
    query = (
        select(RoundSubmission, School)
        .join(School, School.id == RoundSubmission.school_id)
        .where(RoundSubmission.round_id == round_id)
        .order_by(School.code, RoundSubmission.track)
    )
    if school_ids is not None:
        query = query.where(RoundSubmission.school_id.in_(list(school_ids)))
    return [(submission, school) for submission, school in await session.execute(query)]


async def first_submitted(session: AsyncSession, submission_ids: Sequence[int]) -> dict[int, datetime]:
    """Submission id -> when the school first submitted it (lateness is judged on that)."""
    if not submission_ids:
        return {}
    rows = await session.execute(
        select(SubmissionEvent.submission_id, func.min(SubmissionEvent.at))
        .where(
            SubmissionEvent.submission_id.in_(list(submission_ids)),
            SubmissionEvent.to_status == SubmissionStatus.SUBMITTED,
        )
        .group_by(SubmissionEvent.submission_id)
    )
    return {submission_id: at for submission_id, at in rows}


async def submitted_events(session: AsyncSession, submission_id: int) -> list[SubmissionEvent]:
    """The submission's "submitted" events, oldest first."""
    rows = await session.scalars(
        select(SubmissionEvent)
        .where(
            SubmissionEvent.submission_id == submission_id,
            SubmissionEvent.to_status == SubmissionStatus.SUBMITTED,
        )
        .order_by(SubmissionEvent.at, SubmissionEvent.id)
    )
    return list(rows)


async def last_return_reason(session: AsyncSession, submission_id: int) -> str:
    reason = await session.scalar(
        select(SubmissionEvent.reason)
        .where(
            SubmissionEvent.submission_id == submission_id,
            SubmissionEvent.to_status == SubmissionStatus.RETURNED,
        )
        .order_by(SubmissionEvent.at.desc(), SubmissionEvent.id.desc())
        .limit(1)
    )
    return reason or ""


async def district_staff(
    session: AsyncSession, district_id: int, roles: Iterable[Role], *, reachable: bool = True
) -> list[Staff]:
    """Active staff of the district in `roles` (officers without a district count for every one);
    `reachable`: only those with a Telegram account."""
    query = (
        select(Staff)
        .outerjoin(School, School.id == Staff.school_id)
        .where(
            Staff.active,
            Staff.role.in_(list(roles)),
            or_(
                Staff.district_id == district_id,
                School.district_id == district_id,
                Staff.district_id.is_(None),
            ),
        )
        .order_by(Staff.id)
    )
    if reachable:
        query = query.where(Staff.telegram_user_id.is_not(None))
    return list(await session.scalars(query))


async def sent_reminders(session: AsyncSession, round_ids: Sequence[int]) -> set[tuple[int, int, str]]:
    if not round_ids:
        return set()
    rows = await session.execute(
        select(SentReminder.round_id, SentReminder.staff_id, SentReminder.reminder_key).where(
            SentReminder.round_id.in_(list(round_ids))
        )
    )
    return {(round_id, staff_id, key) for round_id, staff_id, key in rows}


async def active_schools(session: AsyncSession, district_id: int) -> list[School]:
    return list(
        await session.scalars(
            select(School).where(School.district_id == district_id, School.active).order_by(School.code)
        )
    )
