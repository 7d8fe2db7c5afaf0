"""Reporting rounds (section 5 of the directive): create, submit, review (approve or send back),
compile; the progress board, the reminders, a school's history.

Every change of a submission writes the audit log and a SubmissionEvent in the same transaction.
A submit freezes the school's figures of the part as a SubmissionSnapshot; approval approves that
snapshot; a reopen (after approval, by the statistics officer or an admin, with a reason) stamps it
reopened. While a submission is submitted or approved, the school's records of that part dated inside
the round's period are locked (storage.repositories.locks reads the status written here); records of
later days never are. /compile builds the district workbook from the approved snapshots.

Reminders are planned by the pure function `storage.rules.reminders.plan_reminders` from a snapshot
of the open rounds; the chat runs `RoundService.due_reminders` from the job queue, sends each through
the rate limiter and calls `mark_sent`, so nobody is reminded twice, across restarts too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from storage.db import read_core
from storage.enums import AuditAction, Role, RoundStatus, SubmissionStatus, SubmissionTrack
from storage.errors import AccessDenied, DomainError
from storage.models import (
    AuditLog,
    BatchReport,
    CompiledReport,
    District,
    DonationBatch,
    Donor,
    ReportingRound,
    RoundSubmission,
    School,
    SentReminder,
    Staff,
    Student,
    SubmissionEvent,
    SubmissionSnapshot,
    VaccineProduct,
)
from storage.permissions import SPECIALIST_LEVELS, Action, require, sees_school
from storage.repositories import audit, batch_reports, locks
from storage.repositories import csdl as csdl_repo
from storage.repositories import rounds as repo
from storage.rules import district_report_deadline, round_label
from storage.rules.dates import show_local
from storage.rules.reminders import PENDING_STATUSES as PENDING_STATUSES
from storage.rules.reminders import Contact, RoundState, SchoolState, plan_reminders
from storage.rules.reminders import in_quiet_hours as in_quiet_hours
from storage.rules.reminders import reminder_offset as reminder_offset
from storage.rules.timeliness import is_late, reported_in_time
from storage.schemas.history import HistoryNames, Ref, describe_audit, references
from storage.schemas.organisation import SchoolOut, StaffOut
from storage.schemas.parsing import clean_text
from storage.schemas.rounds import (
    TRACK_FIGURES,
    CompileCheck,
    CompileChoice,
    CompiledOut,
    CompiledRound,
    CompiledSchool,
    HistoryEntry,
    PendingReview,
    Progress,
    ProgressTotals,
    Recipient,
    ReminderDue,
    ReopenOutcome,
    ReportedUpward,
    ReviewOutcome,
    ReviewSummary,
    RoundIn,
    RoundOut,
    SchoolFigures,
    SchoolProgress,
    SchoolRef,
    SnapshotOut,
    SubmissionOut,
    SubmitResult,
    SubmittedFigures,
    TrackState,
    UnreportedBatch,
    clean_reason,
    diff_figures,
)
from storage.schemas.students import level_label
from storage.schemas.vaccines import Finding
from storage.services.base import ServiceBase
from storage.services.csdl import csdl_cutoff
from storage.services.staff import staff_out

REVIEW_ACTIONS = {
    SubmissionTrack.PROGRAM: Action.REVIEW_PROGRAM,
    SubmissionTrack.VACCINE: Action.REVIEW_VACCINE,
}
REVIEWER_ROLES = {
    SubmissionTrack.PROGRAM: (Role.PRIMARY_SPECIALIST, Role.SECONDARY_SPECIALIST),
    SubmissionTrack.VACCINE: (Role.HEALTH_OFFICER,),
}
MAX_FILENAME = 200


def to_utc(value: datetime, tz: ZoneInfo) -> datetime:
    """A typed local wall time (naive) or an aware time, as aware UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def round_out(rnd: ReportingRound, schools: int = 0) -> RoundOut:
    return RoundOut(
        id=rnd.id,
        district_id=rnd.district_id,
        name=rnd.name,
        period_start=rnd.period_start,
        period_end=rnd.period_end,
        submit_deadline=rnd.submit_deadline,
        approve_deadline=rnd.approve_deadline,
        compile_deadline=rnd.compile_deadline,
        status=rnd.status,
        created_by_id=rnd.created_by_id,
        created_at=rnd.created_at,
        compiled_at=rnd.compiled_at,
        compiled_by_id=rnd.compiled_by_id,
        schools=schools,
    )


def submission_out(
    submission: RoundSubmission, rnd: ReportingRound, school: School, *, late: bool = False
) -> SubmissionOut:
    return SubmissionOut(
        id=submission.id,
        round_id=rnd.id,
        round_name=rnd.name,
        school_id=school.id,
        school_code=school.code,
        school_name=school.name,
        level=school.level,
        track=submission.track,
        status=submission.status,
        submitted_at=submission.submitted_at,
        submitted_by_id=submission.submitted_by_id,
        reviewed_at=submission.reviewed_at,
        reviewed_by_id=submission.reviewed_by_id,
        return_reason=submission.return_reason,
        late=late,
    )


def school_ref(school: School) -> SchoolRef:
    return SchoolRef(
        school_id=school.id, school_code=school.code, school_name=school.name, level=school.level
    )


def recipient(staff: Staff) -> Recipient:
    return Recipient(
        staff_id=staff.id,
        full_name=staff.full_name,
        role=staff.role,
        telegram_user_id=staff.telegram_user_id,
        language=staff.language,
    )


def stored_figures(payload: dict[str, Any] | None) -> SubmittedFigures | None:
    """The figures a submission or an event stored, if any (and readable)."""
    if not payload:
        return None
    try:
        return SubmittedFigures.model_validate(payload)
    except ValueError:
        return None


# --- the service ----------------------------------------------------------------------------------


class RoundService(ServiceBase):
    # -- rounds ------------------------------------------------------------------------------------

    async def create_round(self, data: RoundIn, *, district_id: int, actor_id: int | None) -> RoundOut:
        """A new round with a submission per track for every active school of the district.
        `actor_id` None: the command line (an administrator on the server)."""
        tz = self.clock.tz
        submit, approve, compile_ = (
            to_utc(data.submit_deadline, tz),
            to_utc(data.approve_deadline, tz),
            to_utc(data.compile_deadline, tz),
        )
        if data.period_end < data.period_start:
            raise DomainError(
                "rounds.period_invalid",
                period_start=data.period_start,
                period_end=data.period_end,
            )
        if not submit < approve < compile_:
            raise DomainError(
                "rounds.deadlines_order",
                submit=show_local(submit, tz),
                approve=show_local(approve, tz),
                compile=show_local(compile_, tz),
            )
        async with self.sessionmaker.begin() as session:
            if actor_id is not None:
                staff = await self._staff(session, actor_id)
                require(staff, Action.MANAGE_ROUNDS)
                if staff.district_id is not None and staff.district_id != district_id:
                    raise AccessDenied("rounds.other_district")
            if await session.get(District, district_id) is None:
                raise DomainError("rounds.district_unknown")
            schools = await repo.active_schools(session, district_id)
            if not schools:
                raise DomainError("rounds.no_schools")
            rnd = ReportingRound(
                district_id=district_id,
                name=data.name,
                period_start=data.period_start,
                period_end=data.period_end,
                submit_deadline=submit,
                approve_deadline=approve,
                compile_deadline=compile_,
                status=RoundStatus.OPEN,
                created_by_id=actor_id,
                created_at=self.clock.now(),
            )
            session.add(rnd)
            await session.flush()
            await self._audit(session, actor_id=actor_id, action=AuditAction.CREATE, row=rnd)
            for school in schools:
                for track in SubmissionTrack:
                    submission = RoundSubmission(
                        round_id=rnd.id,
                        school_id=school.id,
                        track=track,
                        status=SubmissionStatus.NOT_SUBMITTED,
                        return_reason="",
                    )
                    session.add(submission)
                    await session.flush()
                    await self._audit(session, actor_id=actor_id, action=AuditAction.CREATE, row=submission)
            return round_out(rnd, len(schools))

    async def get_round(self, round_id: int) -> RoundOut:
        async with self.sessionmaker() as session:
            rnd = await self._round(session, round_id)
            return round_out(rnd, await self._school_count(session, rnd.id))

    async def list_rounds(self, district_id: int | None = None) -> list[RoundOut]:
        """Rounds, newest first."""
        async with self.sessionmaker() as session:
            query = select(ReportingRound).order_by(
                ReportingRound.submit_deadline.desc(), ReportingRound.id.desc()
            )
            if district_id is not None:
                query = query.where(ReportingRound.district_id == district_id)
            rounds = list(await session.scalars(query))
            counts = dict(
                (
                    await session.execute(
                        select(RoundSubmission.round_id, func.count(RoundSubmission.id))
                        .where(RoundSubmission.track == SubmissionTrack.PROGRAM)
                        .group_by(RoundSubmission.round_id)
                    )
                ).all()
            )
            return [round_out(r, int(counts.get(r.id, 0))) for r in rounds]

    async def open_rounds(self, district_id: int) -> list[RoundOut]:
        """The district's open rounds, the one due first first."""
        async with self.sessionmaker() as session:
            rounds = list(
                await session.scalars(
                    select(ReportingRound)
                    .where(
                        ReportingRound.district_id == district_id, ReportingRound.status == RoundStatus.OPEN
                    )
                    .order_by(ReportingRound.submit_deadline, ReportingRound.id)
                )
            )
            return [round_out(r, await self._school_count(session, r.id)) for r in rounds]

    async def current_round(self, district_id: int) -> RoundOut | None:
        """The open round due first (the one /submit, /review and /compile work on), if any."""
        rounds = await self.open_rounds(district_id)
        return rounds[0] if rounds else None

    async def district_id_by_code(self, code: str | None) -> int:
        """The district of `code`, or the only district there is."""
        async with self.sessionmaker() as session:
            if code:
                district_id = await session.scalar(
                    select(District.id).where(District.code == code.strip().upper())
                )
                if district_id is None:
                    raise DomainError("rounds.district_code_unknown", code=code)
                return district_id
            ids = list(await session.scalars(select(District.id).order_by(District.id).limit(2)))
            if len(ids) != 1:
                raise DomainError("rounds.district_required" if ids else "rounds.district_unknown")
            return ids[0]

    # -- figures and submissions -------------------------------------------------------------------

    async def school_figures(self, round_id: int, *, school_id: int) -> SchoolFigures:
        """The school's figures for the round now, with the inconsistencies found."""
        async with self.sessionmaker() as session:
            rnd = await self._round(session, round_id)
            school = await self._school(session, school_id, rnd.district_id)
            return await repo.school_figures(session, rnd, school, self.clock.tz)

    async def check_entry_day(self, school_id: int, area: str, day: date) -> None:
        """Refuse a record of `area` ("devices", "vaccines", "needs") dated `day` when a locked period
        holds it (a need change: when it would alter a locked period's stock). The chat asks this as
        soon as a flow knows the day; the owning service checks again when saving."""

        def read(session: Session) -> Finding | None:
            if area == "needs":
                return locks.standing_refusal_sync(session, school_id, day)
            return locks.event_refusal_sync(session, school_id, area, day)

        found = await read_core(self.sessionmaker, read)
        if found is not None:
            raise found.as_error()

    async def snapshots(self, round_id: int, track: SubmissionTrack, *, school_id: int) -> list[SnapshotOut]:
        """The school's snapshots of the part in this round, oldest first."""
        async with self.sessionmaker() as session:
            submission = await self._submission_of(session, round_id, school_id, SubmissionTrack(track))
            return [_snapshot_out(s) for s in await self._snapshots(session, submission.id)]

    async def submission(self, round_id: int, track: SubmissionTrack, *, school_id: int) -> SubmissionOut:
        async with self.sessionmaker() as session:
            rnd = await self._round(session, round_id)
            submission = await self._submission_of(session, round_id, school_id, track)
            school = await self._school(session, school_id, rnd.district_id)
            first = await repo.first_submitted(session, [submission.id])
            late = is_late(first.get(submission.id), rnd.submit_deadline, self.clock.now())
            return submission_out(submission, rnd, school, late=late)

    async def submit(
        self, round_id: int, track: SubmissionTrack, *, school_id: int, actor_id: int
    ) -> SubmitResult:
        """The principal submits the school's data of `track`: the figures are stored and the
        school's records of the track are locked. After the submit deadline it is still accepted,
        flagged late."""
        track = SubmissionTrack(track)
        async with self.sessionmaker.begin() as session:
            staff = await self._staff(session, actor_id)
            require(staff, Action.SUBMIT)
            if staff.school_id != school_id:
                raise AccessDenied("rounds.not_your_school")
            rnd = await self._open_round(session, round_id)
            school = await self._school(session, school_id, rnd.district_id)
            submission = await self._submission_of(session, round_id, school_id, track, lock=True)
            if submission.status is SubmissionStatus.SUBMITTED:
                raise DomainError("rounds.already_submitted", school=school.name)
            if submission.status is SubmissionStatus.APPROVED:
                raise DomainError("rounds.already_approved", school=school.name)
            now = self.clock.now()
            figures = await repo.school_figures(session, rnd, school, self.clock.tz)
            late = now > rnd.submit_deadline
            payload = SubmittedFigures(figures=figures, late=late, deadline=rnd.submit_deadline).model_dump(
                mode="json"
            )
            before = audit.snapshot(submission)
            previous = submission.status
            submission.status = SubmissionStatus.SUBMITTED
            submission.submitted_at = now
            submission.submitted_by_id = actor_id
            submission.reviewed_at = None
            submission.reviewed_by_id = None
            submission.return_reason = ""
            submission.figures = payload
            await self._changed(session, submission, before, previous, actor_id, now, figures=payload)
            await self._take_snapshot(session, submission, figures, late=late, actor_id=actor_id, now=now)
            reviewers = await self._reviewers(session, rnd.district_id, school, track)
            first = await repo.first_submitted(session, [submission.id])
            return SubmitResult(
                submission=submission_out(
                    submission, rnd, school, late=is_late(first.get(submission.id), rnd.submit_deadline, now)
                ),
                figures=figures,
                late=late,
                notify_staff_ids=[s.id for s in reviewers],
                notify=[recipient(s) for s in reviewers],
            )

    # -- review ------------------------------------------------------------------------------------

    async def pending_reviews(
        self, reviewer_staff_id: int, track: SubmissionTrack | None = None
    ) -> list[PendingReview]:
        """Submissions waiting for this reviewer: programme data of their level(s) for a TH/THCS
        specialist, vaccine data for the school-health officer; in open rounds of their district."""
        async with self.sessionmaker() as session:
            staff = await self._staff(session, reviewer_staff_id)
            track = self._reviewer_track(staff, track)
            require(staff, REVIEW_ACTIONS[track])
            query = (
                select(RoundSubmission, ReportingRound, School, Staff.full_name)
                .join(ReportingRound, ReportingRound.id == RoundSubmission.round_id)
                .join(School, School.id == RoundSubmission.school_id)
                .outerjoin(Staff, Staff.id == RoundSubmission.submitted_by_id)
                .where(
                    ReportingRound.status == RoundStatus.OPEN,
                    RoundSubmission.track == track,
                    RoundSubmission.status == SubmissionStatus.SUBMITTED,
                )
                .order_by(RoundSubmission.submitted_at, School.code)
            )
            if staff.district_id is not None:
                query = query.where(ReportingRound.district_id == staff.district_id)
            levels = SPECIALIST_LEVELS.get(staff.role) if track is SubmissionTrack.PROGRAM else None
            if levels is not None:
                query = query.where(School.level.in_(list(levels)))
            rows = list(await session.execute(query))
            ids = [submission.id for submission, *_ in rows]
            first = await repo.first_submitted(session, ids)
            times = await self._submission_counts(session, ids)
            return [
                PendingReview(
                    submission_id=submission.id,
                    round_id=rnd.id,
                    round_name=rnd.name,
                    school_id=school.id,
                    school_code=school.code,
                    school_name=school.name,
                    level=school.level,
                    track=submission.track,
                    submitted_at=submission.submitted_at,
                    submitted_by_name=name,
                    approve_deadline=rnd.approve_deadline,
                    late=is_late(first.get(submission.id), rnd.submit_deadline, self.clock.now()),
                    resubmission=times.get(submission.id, 0) > 1,
                )
                for submission, rnd, school, name in rows
            ]

    async def review_summary(self, submission_id: int, *, reviewer_id: int) -> ReviewSummary:
        """The school's figures now, as submitted, at the submission before (the one sent back), and
        what changed since; the inconsistencies of the track."""
        async with self.sessionmaker() as session:
            submission, rnd, school = await self._submission_by_id(session, submission_id)
            await self._check_reviewer(session, reviewer_id, school, submission.track)
            now_figures = await repo.school_figures(session, rnd, school, self.clock.tz)
            snapshots = await self._snapshots(session, submission.id)
            events = await repo.submitted_events(session, submission.id)
            # The snapshot under review, and the one before it (sent back or reopened).
            submitted = SchoolFigures.model_validate(snapshots[-1].figures) if snapshots else None
            previous_figures = (
                SchoolFigures.model_validate(snapshots[-2].figures) if len(snapshots) >= 2 else None
            )
            track = submission.track
            current = submitted if submitted is not None else now_figures
            changes = (
                diff_figures(previous_figures.numbers(track), current.numbers(track))
                if previous_figures
                else []
            )
            first = await repo.first_submitted(session, [submission.id])
            return ReviewSummary(
                submission=submission_out(
                    submission,
                    rnd,
                    school,
                    late=is_late(first.get(submission.id), rnd.submit_deadline, self.clock.now()),
                ),
                figures=now_figures,
                submitted=submitted,
                previous=previous_figures,
                previous_reason=await repo.last_return_reason(session, submission.id),
                changes=changes,
                inconsistencies=current.issues(track),
                submissions=max(len(events), len(snapshots)),
            )

    async def approve(self, submission_id: int, *, reviewer_id: int) -> ReviewOutcome:
        return await self._review(submission_id, reviewer_id, SubmissionStatus.APPROVED, "")

    async def send_back(self, submission_id: int, *, reviewer_id: int, reason: str) -> ReviewOutcome:
        """Return the submission to the school with a reason (required); its records unlock."""
        return await self._review(submission_id, reviewer_id, SubmissionStatus.RETURNED, clean_reason(reason))

    async def _review(
        self, submission_id: int, reviewer_id: int, status: SubmissionStatus, reason: str
    ) -> ReviewOutcome:
        async with self.sessionmaker.begin() as session:
            submission, _, school = await self._submission_by_id(session, submission_id, lock=True)
            await self._check_reviewer(session, reviewer_id, school, submission.track)
            rnd = await self._open_round(session, submission.round_id)
            if submission.status is SubmissionStatus.NOT_SUBMITTED:
                raise DomainError("rounds.review_not_submitted", school=school.name)
            if submission.status is SubmissionStatus.APPROVED:
                raise DomainError("rounds.review_already_approved", school=school.name)
            if submission.status is SubmissionStatus.RETURNED:
                raise DomainError("rounds.review_already_returned", school=school.name)
            now = self.clock.now()
            before = audit.snapshot(submission)
            previous = submission.status
            submission.status = status
            submission.reviewed_at = now
            submission.reviewed_by_id = reviewer_id
            submission.return_reason = reason
            await self._changed(session, submission, before, previous, reviewer_id, now, reason=reason)
            if status is SubmissionStatus.APPROVED:
                # Approval approves the snapshot as submitted (the period's records were locked since).
                snapshots = await self._snapshots(session, submission.id)
                if snapshots:
                    snapshots[-1].approved_at = now
                    snapshots[-1].approved_by_id = reviewer_id
                    await session.flush()
            people = await repo.people_to_notify(session, rnd, school.id, submission.track, self.clock.tz)
            people = [p for p in people if p.id != reviewer_id]
            first = await repo.first_submitted(session, [submission.id])
            return ReviewOutcome(
                submission=submission_out(
                    submission, rnd, school, late=is_late(first.get(submission.id), rnd.submit_deadline, now)
                ),
                reason=reason,
                notify_staff_ids=[p.id for p in people],
                notify=[recipient(p) for p in people],
            )

    # -- reopen ------------------------------------------------------------------------------------

    async def reopen(self, submission_id: int, *, actor_id: int, reason: str) -> ReopenOutcome:
        """Reopen a school's approved period: only the statistics officer or an admin, with a reason
        (required). The approved snapshot is stamped reopened (it stays as it was, and compile no
        longer uses it), the part goes back to the school (status returned, the reason given), its
        records of the period unlock; the school submits again and the new snapshot is reviewed."""
        reason = clean_reason(reason)
        async with self.sessionmaker.begin() as session:
            staff = await self._staff(session, actor_id)
            require(staff, Action.REOPEN)
            submission, _, school = await self._submission_by_id(session, submission_id, lock=True)
            if staff.district_id not in (None, school.district_id):
                raise AccessDenied("rounds.other_district")
            rnd = await self._open_round(session, submission.round_id)
            if submission.status is not SubmissionStatus.APPROVED:
                raise DomainError("rounds.reopen_not_approved", school=school.name)
            now = self.clock.now()
            before = audit.snapshot(submission)
            submission.status = SubmissionStatus.RETURNED
            submission.return_reason = reason
            submission.reviewed_at = now
            submission.reviewed_by_id = actor_id
            await self._changed(
                session, submission, before, SubmissionStatus.APPROVED, actor_id, now, reason=reason
            )
            snapshots = await self._snapshots(session, submission.id)
            if snapshots:
                approved = snapshots[-1]
                snapshot_before = audit.snapshot(approved)
                approved.reopened_at = now
                approved.reopened_by_id = actor_id
                approved.reopen_reason = reason
                await session.flush()
                await self._audit(
                    session,
                    actor_id=actor_id,
                    action=AuditAction.UPDATE,
                    row=approved,
                    before=snapshot_before,
                    school_id=school.id,
                )
            people = await repo.people_to_notify(session, rnd, school.id, submission.track, self.clock.tz)
            reviewers = await self._reviewers(session, rnd.district_id, school, submission.track)
            told: dict[int, Staff] = {p.id: p for p in [*people, *reviewers] if p.id != actor_id}
            first = await repo.first_submitted(session, [submission.id])
            return ReopenOutcome(
                submission=submission_out(
                    submission, rnd, school, late=is_late(first.get(submission.id), rnd.submit_deadline, now)
                ),
                reason=reason,
                notify=[recipient(p) for p in told.values()],
            )

    async def approved_submissions(self, round_id: int, *, actor_id: int) -> list[SubmissionOut]:
        """The approved parts of the round's schools (what a reopen can choose), by school code."""
        async with self.sessionmaker() as session:
            staff = await self._staff(session, actor_id)
            require(staff, Action.REOPEN)
            rnd = await self._round(session, round_id)
            return [
                submission_out(submission, rnd, school)
                for submission, school in await repo.submissions_of_round(session, rnd.id)
                if submission.status is SubmissionStatus.APPROVED
            ]

    # -- compile -----------------------------------------------------------------------------------

    async def compile_check(self, round_id: int) -> CompileCheck:
        """Schools approved and not yet approved; the programme track decides."""
        async with self.sessionmaker() as session:
            rnd = await self._round(session, round_id)
            return await self._compile_check(session, rnd)

    async def _compile_check(self, session: AsyncSession, rnd: ReportingRound) -> CompileCheck:
        approved: list[SchoolRef] = []
        missing: list[SchoolRef] = []
        vaccine_missing: list[SchoolRef] = []
        for submission, school in await repo.submissions_of_round(session, rnd.id):
            ok = submission.status is SubmissionStatus.APPROVED
            if submission.track is SubmissionTrack.PROGRAM:
                (approved if ok else missing).append(school_ref(school))
            elif not ok:
                vaccine_missing.append(school_ref(school))
        return CompileCheck(
            round_id=rnd.id,
            round_name=rnd.name,
            status=rnd.status,
            approved=approved,
            missing=missing,
            vaccine_missing=vaccine_missing,
        )

    async def compiled_round(self, round_id: int, choice: CompileChoice | str) -> CompiledRound:
        """What the compiled workbook shows: approved snapshots' figures per school and part; for a
        part not approved, nothing (`leave_out`) or the live figures marked not approved
        (`include_live`). The same snapshots give the same figures, whenever it is built."""
        choice = CompileChoice(choice)
        async with self._read_session() as session:
            rnd = await self._round(session, round_id)
            pairs = await repo.submissions_of_round(session, rnd.id)
            states = await self._track_states(session, rnd, pairs)
            approved = await self._approved_snapshots(session, [s.id for s, _ in pairs])
            schools: dict[int, CompiledSchool] = {}
            live: dict[int, SchoolFigures] = {}
            for submission, school in pairs:
                entry = schools.setdefault(
                    school.id,
                    CompiledSchool(
                        school=school_ref(school),
                        program=states[(school.id, SubmissionTrack.PROGRAM)],
                        vaccine=states[(school.id, SubmissionTrack.VACCINE)],
                        program_source="left_out",
                        vaccine_source="left_out",
                    ),
                )
                track = submission.track
                snapshot = approved.get(submission.id)
                if submission.status is SubmissionStatus.APPROVED and snapshot is not None:
                    figures = SchoolFigures.model_validate(snapshot.figures)
                    source = "approved"
                elif choice is CompileChoice.INCLUDE_LIVE:
                    if school.id not in live:
                        live[school.id] = await repo.school_figures(session, rnd, school, self.clock.tz)
                    figures = live[school.id]
                    source = "live"
                else:
                    continue
                entry.values.update(figures.numbers(track))
                setattr(entry, f"{track.value}_source", source)
        rows = sorted(schools.values(), key=lambda s: s.school.school_code)
        program_keys = TRACK_FIGURES[SubmissionTrack.PROGRAM]
        vaccine_keys = TRACK_FIGURES[SubmissionTrack.VACCINE]
        return CompiledRound(
            round=round_out(rnd, len(rows)),
            choice=choice,
            generated_at=self.clock.now(),
            schools=rows,
            approved=sum(1 for s in rows if s.program_source == "approved"),
            total=len(rows),
            left_out=[s.school for s in rows if s.program_source == "left_out"],
            included_unapproved=[s.school for s in rows if s.program_source == "live"],
            totals={
                key: sum(s.values.get(key, 0) for s in rows if s.program_source != "left_out")
                for key in program_keys
            },
            vaccine_totals={
                key: sum(s.values.get(key, 0) for s in rows if s.vaccine_source != "left_out")
                for key in vaccine_keys
            },
        )

    async def compiled_workbook(
        self, round_id: int, choice: CompileChoice | str, language: str = "vi", *, prepared_by: str = ""
    ) -> tuple[bytes, str, CompiledRound]:
        """The compiled district workbook of the round (not stored): bytes, file name, and its data."""
        from exports import round_report

        data = await self.compiled_round(round_id, choice)
        labels = self.labels(language)
        content = await asyncio.to_thread(
            round_report.write_round_report, data, labels, self.clock.tz, prepared_by
        )
        return content, round_report.filename(data, labels, self.clock.tz), data

    async def compile(
        self,
        round_id: int,
        *,
        actor_id: int | None,
        choice: CompileChoice | str,
        missing_school_ids_acknowledged: Sequence[int] = (),
        language: str = "vi",
    ) -> tuple[CompiledOut, bytes]:
        """Build the compiled workbook from the approved snapshots, by the officer's choice for the
        schools not approved, store it and close the round (see `mark_compiled`)."""
        prepared_by = ""
        if actor_id is not None:
            async with self.sessionmaker() as session:
                prepared_by = (await self._staff(session, actor_id)).full_name
        content, filename, data = await self.compiled_workbook(
            round_id, choice, language, prepared_by=prepared_by
        )
        compiled = await self.mark_compiled(
            round_id,
            actor_id=actor_id,
            missing_school_ids_acknowledged=missing_school_ids_acknowledged,
            report=content,
            filename=filename,
            choice=data.choice,
        )
        return compiled, content

    async def mark_compiled(
        self,
        round_id: int,
        *,
        actor_id: int | None,
        missing_school_ids_acknowledged: Sequence[int],
        report: bytes,
        filename: str,
        choice: CompileChoice | str = CompileChoice.LEAVE_OUT,
    ) -> CompiledOut:
        """Store the district report and mark the round compiled. Allowed when every school's
        programme data is approved, or when `missing_school_ids_acknowledged` names exactly the
        schools not approved (recorded in the audit log)."""
        if not report:
            raise DomainError("rounds.report_empty")
        filename = clean_text(filename, max_length=MAX_FILENAME, required=True)
        async with self.sessionmaker.begin() as session:
            rnd = await self._round(session, round_id, lock=True)
            if actor_id is not None:
                staff = await self._staff(session, actor_id)
                require(staff, Action.COMPILE)
                if staff.district_id not in (None, rnd.district_id):
                    raise AccessDenied("rounds.other_district")
            if rnd.status is RoundStatus.COMPILED:
                raise DomainError("rounds.already_compiled", round=round_label(rnd.name))
            check = await self._compile_check(session, rnd)
            missing = {s.school_id for s in check.missing}
            acknowledged = set(missing_school_ids_acknowledged)
            if missing != acknowledged:
                names = "; ".join(s.school_name for s in check.missing)
                if not acknowledged:
                    raise DomainError("rounds.not_all_approved", count=len(missing), schools=names)
                raise DomainError("rounds.missing_list_differs", count=len(missing), schools=names or "–")
            now = self.clock.now()
            stored = CompiledReport(
                round_id=rnd.id,
                kind="district",
                filename=filename,
                content=report,
                created_by_id=actor_id,
                created_at=now,
            )
            session.add(stored)
            await session.flush()
            await self._audit(session, actor_id=actor_id, action=AuditAction.CREATE, row=stored)
            before = audit.snapshot(rnd)
            rnd.status = RoundStatus.COMPILED
            rnd.compiled_at = now
            rnd.compiled_by_id = actor_id
            await session.flush()
            entry = await self._audit(
                session, actor_id=actor_id, action=AuditAction.UPDATE, row=rnd, before=before
            )
            # The compiled report is the district's report upward: its batches are reported now (the
            # 5-day rule, issue 15) — the approved schools', and the others' when they are included.
            included = [s.school_id for s in check.approved]
            if CompileChoice(choice) is CompileChoice.INCLUDE_LIVE:
                included += sorted(missing)
            reported = await batch_reports.record(
                session,
                await batch_reports.batches_of_period(session, included, rnd.period_start, rnd.period_end),
                now,
                reported_by_id=actor_id,
                round_id=rnd.id,
            )
            entry.after = {
                **(entry.after or {}),
                "missing_school_ids_acknowledged": sorted(acknowledged),
                "compile_choice": CompileChoice(choice).value,
                "compiled_report_id": stored.id,
                "batches_reported": reported,
            }
            await session.flush()
            return CompiledOut(
                round_id=rnd.id,
                report_id=stored.id,
                filename=filename,
                size=len(report),
                compiled_at=now,
                compiled_by_id=actor_id,
                missing_acknowledged=[s for s in check.missing if s.school_id in acknowledged],
            )

    # -- progress ----------------------------------------------------------------------------------

    async def progress(self, round_id: int) -> Progress:
        """Per school: records of the period entered, the status of each track, sent back (with
        the reason), late; and the totals."""
        async with self.sessionmaker() as session:
            rnd = await self._round(session, round_id)
            now = self.clock.now()
            pairs = await repo.submissions_of_round(session, rnd.id)
            first = await repo.first_submitted(session, [s.id for s, _ in pairs])
            records = await repo.records_per_school(session, rnd, self.clock.tz)
            states = await self._track_states(session, rnd, pairs)
        by_school: dict[int, dict[str, Any]] = {}
        for submission, school in pairs:
            entry = by_school.setdefault(
                school.id,
                {
                    "school_id": school.id,
                    "school_code": school.code,
                    "school_name": school.name,
                    "level": school.level,
                    "records": records.get(school.id, 0),
                    "program": SubmissionStatus.NOT_SUBMITTED,
                    "vaccine": SubmissionStatus.NOT_SUBMITTED,
                },
            )
            name = submission.track.value
            entry[name] = submission.status
            entry[f"{name}_state"] = states[(school.id, submission.track)]
            entry[f"{name}_late"] = is_late(first.get(submission.id), rnd.submit_deadline, now)
            if submission.status is SubmissionStatus.RETURNED:
                entry[f"{name}_reason"] = submission.return_reason
            if submission.track is SubmissionTrack.PROGRAM:
                entry["program_submitted_at"] = submission.submitted_at
        schools = [SchoolProgress(**entry) for entry in by_school.values()]
        schools.sort(key=lambda s: s.school_code)
        totals = ProgressTotals(
            schools=len(schools),
            records=sum(s.records for s in schools),
            program={
                status.value: sum(1 for s in schools if s.program is status) for status in SubmissionStatus
            },
            vaccine={
                status.value: sum(1 for s in schools if s.vaccine is status) for status in SubmissionStatus
            },
            program_late=sum(1 for s in schools if s.program_late),
            vaccine_late=sum(1 for s in schools if s.vaccine_late),
            returned=sum(1 for s in schools if s.returned),
        )
        return Progress(round=round_out(rnd, len(schools)), now=now, schools=schools, totals=totals)

    # -- reminders ---------------------------------------------------------------------------------

    async def due_reminders(
        self,
        now: datetime | None = None,
        *,
        hours_before: Sequence[int] = (24, 2),
        quiet_start: int = 21,
        quiet_end: int = 7,
    ) -> list[ReminderDue]:
        """The reminders to send now for every open round (see `plan_reminders`); nothing is marked
        sent here — call `mark_sent` after each message went out."""
        now = now or self.clock.now()
        tz = self.clock.tz
        if in_quiet_hours(now.astimezone(tz), quiet_start, quiet_end):
            return []
        async with self.sessionmaker() as session:
            states = await self._reminder_states(session, now)
        return plan_reminders(
            states, now, tz, hours_before=hours_before, quiet_start=quiet_start, quiet_end=quiet_end
        )

    async def mark_sent(self, round_id: int, staff_id: int, reminder_key: str) -> bool:
        """Remember that the reminder went out; True the first time, False when already marked."""
        async with self.sessionmaker.begin() as session:
            dialect = session.bind.dialect.name if session.bind else "sqlite"
            module = postgresql if dialect == "postgresql" else sqlite
            statement = (
                module.insert(SentReminder)
                .values(
                    round_id=round_id, staff_id=staff_id, reminder_key=reminder_key, sent_at=self.clock.now()
                )
                .on_conflict_do_nothing(index_elements=["round_id", "staff_id", "reminder_key"])
            )
            result = await session.execute(statement)
            return bool(getattr(result, "rowcount", 0))

    async def forget_sent(self, round_id: int, staff_id: int, reminder_key: str) -> None:
        """Undo `mark_sent` for a reminder that surely did not go out (the next run sends it)."""
        async with self.sessionmaker.begin() as session:
            await session.execute(
                delete(SentReminder).where(
                    SentReminder.round_id == round_id,
                    SentReminder.staff_id == staff_id,
                    SentReminder.reminder_key == reminder_key,
                )
            )

    async def _reminder_states(self, session: AsyncSession, now: datetime) -> list[RoundState]:
        rounds = list(
            await session.scalars(
                select(ReportingRound)
                .where(ReportingRound.status == RoundStatus.OPEN)
                .order_by(ReportingRound.id)
            )
        )
        sent = await repo.sent_reminders(session, [r.id for r in rounds])
        states = []
        for rnd in rounds:
            pairs = await repo.submissions_of_round(session, rnd.id)
            first = await repo.first_submitted(session, [s.id for s, _ in pairs])
            schools: dict[int, dict[str, Any]] = {}
            for submission, school in pairs:
                entry = schools.setdefault(
                    school.id,
                    {
                        "school_id": school.id,
                        "name": school.name,
                        "level": school.level,
                        "program": SubmissionStatus.NOT_SUBMITTED,
                        "vaccine": SubmissionStatus.NOT_SUBMITTED,
                        "program_late": False,
                    },
                )
                entry[submission.track.value] = submission.status
                if submission.track is SubmissionTrack.PROGRAM:
                    entry["program_late"] = is_late(first.get(submission.id), rnd.submit_deadline, now)
            officers = await repo.district_staff(
                session,
                rnd.district_id,
                (
                    Role.PRIMARY_SPECIALIST,
                    Role.SECONDARY_SPECIALIST,
                    Role.HEALTH_OFFICER,
                    Role.STATISTICS_OFFICER,
                    Role.DEPUTY_HEAD,
                ),
            )
            principals = list(
                await session.scalars(
                    select(Staff).where(
                        Staff.active,
                        Staff.role == Role.PRINCIPAL,
                        Staff.telegram_user_id.is_not(None),
                        Staff.school_id.in_(list(schools)),
                    )
                )
            )
            overdue = await csdl_repo.not_in_csdl(
                session, list(schools), csdl_cutoff(self.clock), with_names=True
            )
            for school_id, (count, names) in overdue.items():
                schools[school_id]["not_in_csdl"] = count
                schools[school_id]["not_in_csdl_names"] = tuple(names)
            state = RoundState(
                round_id=rnd.id,
                name=rnd.name,
                submit_deadline=rnd.submit_deadline,
                approve_deadline=rnd.approve_deadline,
                compile_deadline=rnd.compile_deadline,
                schools=[SchoolState(**entry) for entry in schools.values()],
                sent={(staff_id, key) for round_id, staff_id, key in sent if round_id == rnd.id},
            )
            for principal in principals:
                assert principal.school_id is not None
                state.principals.setdefault(principal.school_id, []).append(_contact(principal))
            for officer in officers:
                contact = _contact(officer)
                if officer.role in (Role.PRIMARY_SPECIALIST, Role.SECONDARY_SPECIALIST):
                    state.specialists.append(contact)
                elif officer.role is Role.HEALTH_OFFICER:
                    state.health_officers.append(contact)
                elif officer.role is Role.STATISTICS_OFFICER:
                    state.statistics_officers.append(contact)
                else:
                    state.deputy_heads.append(contact)
            states.append(state)
        return states

    # -- history -----------------------------------------------------------------------------------

    async def history(
        self, school_id: int, *, viewer_id: int | None = None, limit: int = 50
    ) -> list[HistoryEntry]:
        """The school's changes (audit log) and submission steps, newest first. Updates of a
        submission are shown as its steps (the events), not twice."""
        async with self.sessionmaker() as session:
            school = await session.get(School, school_id)
            if school is None:
                raise DomainError("rounds.school_unknown")
            if viewer_id is not None:
                staff = await self._staff(session, viewer_id)
                require(staff, Action.HISTORY)
                if not sees_school(
                    staff, school_id=school.id, level=school.level, district_id=school.district_id
                ):
                    raise AccessDenied("access.other_school")
            audits = await session.execute(
                select(AuditLog, Staff.full_name)
                .outerjoin(Staff, Staff.id == AuditLog.actor_id)
                .where(
                    AuditLog.school_id == school_id,
                    ~(
                        (AuditLog.entity == RoundSubmission.__tablename__)
                        & (AuditLog.action == AuditAction.UPDATE)
                    ),
                )
                .order_by(AuditLog.at.desc(), AuditLog.id.desc())
                .limit(limit)
            )
            events = await session.execute(
                select(SubmissionEvent, RoundSubmission, ReportingRound, Staff.full_name)
                .join(RoundSubmission, RoundSubmission.id == SubmissionEvent.submission_id)
                .join(ReportingRound, ReportingRound.id == RoundSubmission.round_id)
                .outerjoin(Staff, Staff.id == SubmissionEvent.actor_id)
                .where(RoundSubmission.school_id == school_id)
                .order_by(SubmissionEvent.at.desc(), SubmissionEvent.id.desc())
                .limit(limit)
            )
            audit_rows = list(audits)
            names = await _history_names(session, audit_rows)
            entries = [
                entry for row, name in audit_rows if (entry := _audit_entry(row, name, names)) is not None
            ]
            for event, submission, rnd, name in events:
                stored = stored_figures(event.figures)
                entries.append(
                    HistoryEntry(
                        kind="submission",
                        at=event.at,
                        actor_id=event.actor_id,
                        actor_name=name,
                        round_id=rnd.id,
                        round_name=round_label(rnd.name),
                        track=submission.track,
                        from_status=event.from_status,
                        to_status=event.to_status,
                        reason=event.reason,
                        late=bool(stored and stored.late and event.to_status is SubmissionStatus.SUBMITTED),
                    )
                )
        # Events after audit rows of the same instant: a step reads after the change it explains.
        entries.sort(key=lambda e: (e.at, e.kind == "submission"), reverse=True)
        return entries[:limit]

    async def history_schools(self, viewer_id: int) -> list[SchoolOut]:
        """The schools whose /history the person may read (`sees_school`: a principal their own, a
        specialist those of their level, officers their district), by name — the picker's list."""
        async with self.sessionmaker() as session:
            staff = await self._staff(session, viewer_id)
            require(staff, Action.HISTORY)
            query = select(School).where(School.active.is_(True)).order_by(School.name, School.code)
            if staff.role.is_school_scoped:
                query = query.where(School.id == staff.school_id)
            elif staff.district_id is not None:
                query = query.where(School.district_id == staff.district_id)
            levels = SPECIALIST_LEVELS.get(staff.role)
            if levels is not None:
                query = query.where(School.level.in_(list(levels)))
            schools = list(await session.scalars(query))
        return [
            SchoolOut.model_validate(school)
            for school in schools
            if sees_school(staff, school_id=school.id, level=school.level, district_id=school.district_id)
        ]

    # -- internals ---------------------------------------------------------------------------------

    async def _changed(
        self,
        session: AsyncSession,
        submission: RoundSubmission,
        before: dict[str, Any],
        previous: SubmissionStatus,
        actor_id: int | None,
        now: datetime,
        *,
        reason: str = "",
        figures: dict[str, Any] | None = None,
    ) -> None:
        """The audit row and the event of one status change (after the row was changed)."""
        await session.flush()
        await self._audit(
            session,
            actor_id=actor_id,
            action=AuditAction.UPDATE,
            row=submission,
            before=before,
            school_id=submission.school_id,
        )
        session.add(
            SubmissionEvent(
                submission_id=submission.id,
                from_status=previous,
                to_status=submission.status,
                actor_id=actor_id,
                at=now,
                reason=reason,
                figures=figures,
            )
        )
        await session.flush()

    # --- the report upward: "đã báo cáo Sở" (issue 15) ---------------------------------------------

    async def unreported_batches(self, *, actor_id: int, limit: int = 500) -> list[UnreportedBatch]:
        """The batches of the officer's district not yet reported upward, oldest first, each with
        the day it is due (received + 5 days). For whoever compiles (Action.COMPILE)."""
        async with self.sessionmaker() as session:
            district_id = await self._upward_district(session, actor_id)
            rows = await batch_reports.unreported(session, district_id, limit=limit)
        return [
            UnreportedBatch(
                id=batch.id,
                number=batch.number,
                school_code=school.code,
                school_name=school.name,
                received_on=batch.received_on,
                due_on=district_report_deadline(batch.received_on),
                quantity=batch.quantity,
            )
            for batch, school in rows
        ]

    async def mark_reported_upward(self, batch_ids: Sequence[int], *, actor_id: int) -> ReportedUpward:
        """Record the batches as reported to the Department today (one transaction, one audit row
        each). A batch reported meanwhile keeps its first day and is counted as `already`; a batch of
        another district is refused."""
        if not batch_ids:
            raise DomainError("rounds.upward_none_chosen")
        now = self.clock.now()
        today = now.astimezone(self.clock.tz).date()
        async with self.sessionmaker.begin() as session:
            district_id = await self._upward_district(session, actor_id)
            rows = (
                await session.execute(
                    select(DonationBatch.id, DonationBatch.school_id, DonationBatch.received_on)
                    .join(School, School.id == DonationBatch.school_id)
                    .where(DonationBatch.id.in_(list(batch_ids)), School.district_id == district_id)
                )
            ).all()
            if len(rows) != len(set(batch_ids)):
                raise DomainError("rounds.upward_unknown_batch")
            fresh = set(
                await batch_reports.record(session, [r.id for r in rows], now, reported_by_id=actor_id)
            )
            for row in rows:
                if row.id in fresh:
                    stored = await session.get(BatchReport, row.id)
                    assert stored is not None
                    await self._audit(
                        session,
                        actor_id=actor_id,
                        action=AuditAction.CREATE,
                        row=stored,
                        school_id=row.school_id,
                    )
            on_time = sum(1 for r in rows if r.id in fresh and reported_in_time(r.received_on, today))
        return ReportedUpward(
            reported_on=today, on_time=on_time, late=len(fresh) - on_time, already=len(rows) - len(fresh)
        )

    async def _upward_district(self, session: AsyncSession, actor_id: int) -> int:
        staff = await self._staff(session, actor_id)
        require(staff, Action.COMPILE)
        if staff.district_id is not None:
            return staff.district_id
        districts = list(await session.scalars(select(District.id).limit(2)))
        if len(districts) != 1:
            raise DomainError("rounds.upward_no_district")
        return districts[0]

    async def _audit(self, session: AsyncSession, **kwargs: Any) -> AuditLog:
        """An audit row stamped with the service's clock, like the submission events beside it."""
        entry = await audit.record(session, **kwargs)
        entry.at = self.clock.now()
        await session.flush()
        return entry

    async def _staff(self, session: AsyncSession, staff_id: int) -> StaffOut:
        staff = await session.get(Staff, staff_id, options=[selectinload(Staff.school)])
        if staff is None:
            raise AccessDenied("rounds.unknown_staff")
        return staff_out(staff)

    async def _round(
        self, session: AsyncSession, round_id: int, *, lock: bool = False, share: bool = False
    ) -> ReportingRound:
        """The round; `lock` (compiling) excludes `share` (submitting, reviewing) on PostgreSQL, so a
        round is never compiled while a school's status is changing. SQLite serialises writers."""
        query = select(ReportingRound).where(ReportingRound.id == round_id)
        if lock:
            query = query.with_for_update()
        elif share:
            query = query.with_for_update(read=True)
        rnd = await session.scalar(query)
        if rnd is None:
            raise DomainError("rounds.unknown", id=round_id)
        return rnd

    async def _open_round(self, session: AsyncSession, round_id: int) -> ReportingRound:
        rnd = await self._round(session, round_id, share=True)
        if rnd.status is not RoundStatus.OPEN:
            raise DomainError("rounds.closed", round=round_label(rnd.name))
        return rnd

    async def _school(self, session: AsyncSession, school_id: int, district_id: int) -> School:
        school = await session.get(School, school_id)
        if school is None or school.district_id != district_id:
            raise DomainError("rounds.school_unknown")
        return school

    async def _school_count(self, session: AsyncSession, round_id: int) -> int:
        count = await session.scalar(
            select(func.count(RoundSubmission.id)).where(
                RoundSubmission.round_id == round_id, RoundSubmission.track == SubmissionTrack.PROGRAM
            )
        )
        return int(count or 0)

    async def _submission_of(
        self,
        session: AsyncSession,
        round_id: int,
        school_id: int,
        track: SubmissionTrack,
        *,
        lock: bool = False,
    ) -> RoundSubmission:
        query = select(RoundSubmission).where(
            RoundSubmission.round_id == round_id,
            RoundSubmission.school_id == school_id,
            RoundSubmission.track == track,
        )
        if lock:
            query = query.with_for_update()
        submission = await session.scalar(query)
        if submission is None:
            raise DomainError("rounds.school_not_in_round")
        return submission

    async def _submission_by_id(
        self, session: AsyncSession, submission_id: int, *, lock: bool = False
    ) -> tuple[RoundSubmission, ReportingRound, School]:
        query = (
            select(RoundSubmission, ReportingRound, School)
            .join(ReportingRound, ReportingRound.id == RoundSubmission.round_id)
            .join(School, School.id == RoundSubmission.school_id)
            .where(RoundSubmission.id == submission_id)
        )
        if lock:
            query = query.with_for_update(of=RoundSubmission)
        row = (await session.execute(query)).first()
        if row is None:
            raise DomainError("rounds.submission_unknown")
        submission, rnd, school = row
        return submission, rnd, school

    @staticmethod
    def _reviewer_track(staff: StaffOut, track: SubmissionTrack | None) -> SubmissionTrack:
        if track is not None:
            return SubmissionTrack(track)
        return SubmissionTrack.VACCINE if staff.role is Role.HEALTH_OFFICER else SubmissionTrack.PROGRAM

    async def _check_reviewer(
        self, session: AsyncSession, reviewer_id: int, school: School, track: SubmissionTrack
    ) -> StaffOut:
        """A TH/THCS specialist reviews programme data of schools of their level, the health officer
        vaccine data, each in their own district."""
        staff = await self._staff(session, reviewer_id)
        require(staff, REVIEW_ACTIONS[track])
        if not sees_school(staff, school_id=school.id, level=school.level, district_id=school.district_id):
            if staff.district_id is not None and staff.district_id != school.district_id:
                raise AccessDenied("rounds.other_district")
            raise AccessDenied("rounds.wrong_level", level=level_label(school.level))
        return staff

    async def _reviewers(
        self, session: AsyncSession, district_id: int, school: School, track: SubmissionTrack
    ) -> list[Staff]:
        people = await repo.district_staff(session, district_id, REVIEWER_ROLES[track], reachable=False)
        return [
            p for p in people if p.role not in SPECIALIST_LEVELS or school.level in SPECIALIST_LEVELS[p.role]
        ]

    async def _take_snapshot(
        self,
        session: AsyncSession,
        submission: RoundSubmission,
        figures: SchoolFigures,
        *,
        late: bool,
        actor_id: int | None,
        now: datetime,
    ) -> SubmissionSnapshot:
        number = await session.scalar(
            select(func.count(SubmissionSnapshot.id)).where(SubmissionSnapshot.submission_id == submission.id)
        )
        snapshot = SubmissionSnapshot(
            submission_id=submission.id,
            number=int(number or 0) + 1,
            taken_at=now,
            taken_by_id=actor_id,
            late=late,
            figures=figures.model_dump(mode="json"),
            reopen_reason="",
        )
        session.add(snapshot)
        await session.flush()
        await self._audit(
            session,
            actor_id=actor_id,
            action=AuditAction.CREATE,
            row=snapshot,
            school_id=submission.school_id,
        )
        return snapshot

    @staticmethod
    async def _snapshots(session: AsyncSession, submission_id: int) -> list[SubmissionSnapshot]:
        return list(
            await session.scalars(
                select(SubmissionSnapshot)
                .where(SubmissionSnapshot.submission_id == submission_id)
                .order_by(SubmissionSnapshot.number)
            )
        )

    @staticmethod
    async def _approved_snapshots(
        session: AsyncSession, submission_ids: list[int]
    ) -> dict[int, SubmissionSnapshot]:
        """Submission id -> its approved snapshot that was not reopened (the latest, if several)."""
        if not submission_ids:
            return {}
        rows = await session.scalars(
            select(SubmissionSnapshot)
            .where(
                SubmissionSnapshot.submission_id.in_(submission_ids),
                SubmissionSnapshot.approved_at.is_not(None),
                SubmissionSnapshot.reopened_at.is_(None),
            )
            .order_by(SubmissionSnapshot.submission_id, SubmissionSnapshot.number)
        )
        return {row.submission_id: row for row in rows}

    async def _track_states(
        self, session: AsyncSession, rnd: ReportingRound, pairs: list[tuple[RoundSubmission, School]]
    ) -> dict[tuple[int, SubmissionTrack], TrackState]:
        """(school id, part) -> its line on the status sheet: submitted at and late, approved at and
        by whom, how many times sent back and the last reason, reopens."""
        ids = [submission.id for submission, _ in pairs]
        first = await repo.first_submitted(session, ids)
        events: dict[int, list[SubmissionEvent]] = {}
        names: dict[int, str] = {}
        if ids:
            for event in await session.scalars(
                select(SubmissionEvent)
                .where(SubmissionEvent.submission_id.in_(ids))
                .order_by(SubmissionEvent.at, SubmissionEvent.id)
            ):
                events.setdefault(event.submission_id, []).append(event)
            reviewer_ids = {s.reviewed_by_id for s, _ in pairs if s.reviewed_by_id is not None}
            if reviewer_ids:
                found = await session.execute(
                    select(Staff.id, Staff.full_name).where(Staff.id.in_(reviewer_ids))
                )
                names = {staff_id: name for staff_id, name in found}
        now = self.clock.now()
        returned, submitted, approved = (
            SubmissionStatus.RETURNED,
            SubmissionStatus.SUBMITTED,
            SubmissionStatus.APPROVED,
        )
        states: dict[tuple[int, SubmissionTrack], TrackState] = {}
        for submission, school in pairs:
            own = events.get(submission.id, [])
            sent_back = [e for e in own if e.from_status is submitted and e.to_status is returned]
            reopened = [e for e in own if e.from_status is approved and e.to_status is returned]
            returns = sorted([*sent_back, *reopened], key=lambda e: (e.at, e.id))
            is_approved = submission.status is approved
            states[(school.id, submission.track)] = TrackState(
                status=submission.status,
                submitted_at=submission.submitted_at,
                late=is_late(first.get(submission.id), rnd.submit_deadline, now),
                approved_at=submission.reviewed_at if is_approved else None,
                approved_by=names.get(submission.reviewed_by_id or 0, "") if is_approved else "",
                sent_back=len(sent_back),
                last_reason=returns[-1].reason if returns else "",
                reopened=len(reopened),
            )
        return states

    @contextlib.asynccontextmanager
    async def _read_session(self) -> AsyncIterator[AsyncSession]:
        """One consistent read for a whole compile (PostgreSQL: REPEATABLE READ, READ ONLY)."""
        async with self.sessionmaker() as session:
            bind = session.bind
            if bind is not None and bind.dialect.name == "postgresql":
                await session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                )
            yield session

    async def _submission_counts(self, session: AsyncSession, submission_ids: list[int]) -> dict[int, int]:
        if not submission_ids:
            return {}
        rows = await session.execute(
            select(SubmissionEvent.submission_id, func.count(SubmissionEvent.id))
            .where(
                SubmissionEvent.submission_id.in_(submission_ids),
                SubmissionEvent.to_status == SubmissionStatus.SUBMITTED,
            )
            .group_by(SubmissionEvent.submission_id)
        )
        return {submission_id: int(count) for submission_id, count in rows}


def _snapshot_out(row: SubmissionSnapshot) -> SnapshotOut:
    return SnapshotOut(
        id=row.id,
        submission_id=row.submission_id,
        number=row.number,
        taken_at=row.taken_at,
        taken_by_id=row.taken_by_id,
        late=row.late,
        figures=SchoolFigures.model_validate(row.figures),
        approved_at=row.approved_at,
        approved_by_id=row.approved_by_id,
        reopened_at=row.reopened_at,
        reopen_reason=row.reopen_reason,
    )


def _contact(staff: Staff) -> Contact:
    assert staff.telegram_user_id is not None
    return Contact(
        staff_id=staff.id, telegram_user_id=staff.telegram_user_id, language=staff.language, role=staff.role
    )


def _audit_entry(row: AuditLog, actor_name: str | None, names: HistoryNames) -> HistoryEntry | None:
    """A history line of one audit row, or None for an update that changed nothing people see
    (a batch's handed-over counter, a typing time): a line saying «changed» and nothing else."""
    subject_key, subject, changes = describe_audit(
        row.entity, row.action, row.before, row.after, names, row.entity_id
    )
    if row.action is AuditAction.UPDATE and not changes:
        return None
    return HistoryEntry(
        kind="audit",
        at=row.at,
        actor_id=row.actor_id,
        actor_name=actor_name,
        action=row.action,
        entity=row.entity,
        entity_id=row.entity_id,
        subject_key=subject_key,
        subject=subject,
        changes=changes,
    )


async def _history_names(session: AsyncSession, rows: Sequence[tuple[AuditLog, Any]]) -> HistoryNames:
    """The names the rows' subjects and changes point to, in one query per kind of record."""
    wanted: dict[Ref, set[int]] = {}
    for row, _ in rows:
        for ref, ids in references(row.entity, row.before, row.after).items():
            wanted.setdefault(ref, set()).update(ids)
    names = HistoryNames()

    async def pairs(*columns: Any, ids: set[int]) -> list[Any]:
        return list((await session.execute(select(*columns).where(columns[0].in_(sorted(ids))))).all())

    if wanted_ids := wanted.get(Ref.STUDENT):
        names.students = dict(await pairs(Student.id, Student.full_name, ids=wanted_ids))
    if wanted_ids := wanted.get(Ref.BATCH):
        names.batches = dict(await pairs(DonationBatch.id, DonationBatch.number, ids=wanted_ids))
    if wanted_ids := wanted.get(Ref.PRODUCT):
        names.products = dict(await pairs(VaccineProduct.id, VaccineProduct.name, ids=wanted_ids))
    if wanted_ids := wanted.get(Ref.DONOR):
        names.donors = dict(await pairs(Donor.id, Donor.name, ids=wanted_ids))
    if wanted_ids := wanted.get(Ref.ROUND):
        names.rounds = {
            i: round_label(n) for i, n in await pairs(ReportingRound.id, ReportingRound.name, ids=wanted_ids)
        }
    submission_ids = wanted.get(Ref.SUBMISSION_TRACK, set()) | wanted.get(Ref.SUBMISSION_ROUND, set())
    if submission_ids:
        found = await session.execute(
            select(RoundSubmission.id, RoundSubmission.track, ReportingRound.name)
            .join(ReportingRound, ReportingRound.id == RoundSubmission.round_id)
            .where(RoundSubmission.id.in_(sorted(submission_ids)))
        )
        for submission_id, track, round_name in found:
            names.submission_tracks[submission_id] = SubmissionTrack(track).value
            names.submission_rounds[submission_id] = round_label(round_name)
    return names
