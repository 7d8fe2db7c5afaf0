"""Students' needs for a computer under "Sóng và máy tính cho em" (menu 4.8.1) and the school's
summary by priority group (4.8.2). One need record per student, updated in place; every state it had
is kept with its day in need_history, so a period counts needs as they stood at its end.

A need has no event day: a change is dated by the day it stands from (`NeedIn.since`, today by
default). A change dated on or before the end of a locked period of the school's programme part would
alter what was submitted, and is refused (storage.repositories.locks.standing_lock)."""

from __future__ import annotations

from collections import Counter
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import NEED_GROUPS, AuditAction, PriorityGroup
from storage.errors import Conflict, DomainError, NotFound
from storage.models import NeedRecord, School, Student
from storage.repositories import audit, locks
from storage.repositories import needs as history
from storage.repositories.reports import ReportFilter
from storage.repositories.rounds import figure_statements, figure_values
from storage.schemas.entries import RecentEntry
from storage.schemas.needs import NeedChange, NeedGroupSummary, NeedIn, NeedOut, NeedSummary
from storage.schemas.vaccines import Finding
from storage.services.base import ServiceBase
from storage.services.students import StudentService
from storage.services.vaccines import given_name_order, school_student


def need_out(need: NeedRecord, student: Student) -> NeedOut:
    return NeedOut(
        id=need.id,
        school_id=student.school_id,
        student_id=student.id,
        student_code=student.code,
        student_name=student.full_name,
        class_name=student.class_name,
        category=need.category,
        needs_device=need.needs_device,
        needs_connectivity=need.needs_connectivity,
        note=need.note,
        entered_at=need.entered_at,
        entered_by_id=need.entered_by_id,
        updated_at=need.updated_at,
        opened_on=need.opened_on,
        changed_on=need.changed_on,
    )


def recent_need(need: NeedOut, lock: locks.PeriodLock | None) -> RecentEntry:
    return RecentEntry(
        kind="need",
        id=need.id,
        school_id=need.school_id,
        event_on=None,  # a need has no event day; the 1-day rule does not apply to it
        subject=need.student_name,
        details={
            "student_code": need.student_code,
            "class_name": need.class_name,
            "category": need.category.value,
            "needs_device": need.needs_device,
            "needs_connectivity": need.needs_connectivity,
        },
        entered_at=need.entered_at,
        **locks.entry_marks(lock, "needs"),
    )


class NeedService(ServiceBase):
    async def existing_need(self, student_id: int, *, school_id: int) -> NeedOut | None:
        """The student's need if one is recorded: the chat then offers to update it."""
        async with self.sessionmaker() as session:
            student = await school_student(session, school_id, student_id)
            need = await session.scalar(select(NeedRecord).where(NeedRecord.student_id == student.id))
            return need_out(need, student) if need else None

    async def get_need(self, need_id: int, *, school_id: int) -> NeedOut:
        async with self.sessionmaker() as session:
            need, student = await _school_need(session, school_id, need_id)
            return need_out(need, student)

    async def record_need(
        self,
        data: NeedIn,
        *,
        school_id: int,
        actor_id: int | None,
        request_key: str | None,
        update: bool = False,
    ) -> NeedOut:
        """Record a student's need and set the student's priority group to its category.

        A student already recorded is refused unless `update=True`, which updates that record in place.
        The same `request_key` again (a double tap, a repeated confirm) returns the saved record.
        """
        try:
            async with self.sessionmaker.begin() as session:
                # Lock first, then look for the key: a concurrent twin of this confirm waits here and
                # then finds the record its twin saved.
                if request_key:
                    saved = await _need_by_key(session, school_id, request_key)
                    if saved is not None and data.new_student is not None:
                        return saved  # the twin confirm saved the need and its new student
                if data.new_student is not None:
                    # Created here, in the need's transaction: a refused need leaves no student.
                    student = await StudentService(self.sessionmaker, self.clock).create_in(
                        session, data.new_student, school_id=school_id, actor_id=actor_id
                    )
                else:
                    student = await school_student(session, school_id, data.student_id or 0, lock=True)
                if request_key and data.new_student is None:
                    saved = await _need_by_key(session, school_id, request_key)
                    if saved is not None:
                        return _replayed(saved, data.student_id)
                day = self._since(data.since)
                await locks.refuse_standing(session, school_id, day)
                need = await session.scalar(select(NeedRecord).where(NeedRecord.student_id == student.id))
                if need is not None and not update:
                    raise DomainError(
                        "needs.already_recorded",
                        student=student.full_name,
                        entered_on=need.entered_at.astimezone(self.clock.tz).date(),
                    )
                latest = await history.latest_state(session, student.id)
                if latest is not None and day < latest.changed_on:
                    # Changes are kept in order of their days: one cannot go before the last one.
                    raise DomainError("needs.since_before_change", since=latest.changed_on)
                if need is None:
                    need = NeedRecord(
                        student_id=student.id,
                        category=data.category,
                        needs_device=data.needs_device,
                        needs_connectivity=data.needs_connectivity,
                        note=data.note,
                        entered_by_id=actor_id,
                        entered_at=self.clock.now(),
                        request_key=request_key,
                        opened_on=day,
                        changed_on=day,
                    )
                    session.add(need)
                    await session.flush()
                    await audit.record(
                        session, actor_id=actor_id, action=AuditAction.CREATE, row=need, school_id=school_id
                    )
                else:
                    await self._apply(
                        session,
                        need,
                        data,
                        day=day,
                        school_id=school_id,
                        actor_id=actor_id,
                        request_key=request_key,
                    )
                await history.record_state(session, need, day, actor_id=actor_id, at=self.clock.now())
                await self._set_priority_group(session, student, data.category, actor_id=actor_id)
                return need_out(need, student)
        except IntegrityError as exc:
            # A race lost on PostgreSQL: the same confirm saved first.
            if request_key:
                async with self.sessionmaker() as session:
                    saved = await _need_by_key(session, school_id, request_key)
                    if saved is not None:
                        return _replayed(saved, data.student_id)
            raise Conflict("needs.conflict") from exc

    async def update_need(
        self,
        need_id: int,
        change: NeedChange,
        *,
        school_id: int,
        actor_id: int | None,
        request_key: str | None = None,
    ) -> NeedOut:
        """Correct a need (from /my): only the fields given change."""
        async with self.sessionmaker.begin() as session:
            need, student = await _school_need(session, school_id, need_id, lock=True)
            if request_key and need.request_key == request_key:
                return need_out(need, student)  # this update was already saved
            # A correction of the need as it stands, when no locked period counted that state; else
            # a change from today (refused too when today is inside a locked period).
            day = need.changed_on
            if await locks.standing_refusal(session, school_id, day) is not None:
                day = self.clock.today()
                await locks.refuse_standing(session, school_id, day)
            needs_device = need.needs_device if change.needs_device is None else change.needs_device
            needs_connectivity = (
                need.needs_connectivity if change.needs_connectivity is None else change.needs_connectivity
            )
            if not (needs_device or needs_connectivity):
                raise DomainError("needs.nothing_needed")
            data = NeedIn(
                student_id=student.id,
                category=change.category or need.category,
                needs_device=needs_device,
                needs_connectivity=needs_connectivity,
                note=need.note if change.note is None else change.note,
            )
            await self._apply(
                session, need, data, day=day, school_id=school_id, actor_id=actor_id, request_key=request_key
            )
            await history.record_state(session, need, day, actor_id=actor_id, at=self.clock.now())
            await self._set_priority_group(session, student, data.category, actor_id=actor_id)
            return need_out(need, student)

    async def delete_need(self, need_id: int, *, school_id: int, actor_id: int | None) -> NeedOut:
        """Delete a need; returns what was deleted. The student's priority group is left as it is:
        it belongs to the student list, which may have said so before the need was recorded."""
        async with self.sessionmaker.begin() as session:
            need, student = await _school_need(session, school_id, need_id, lock=True)
            if await locks.standing_refusal(session, school_id, need.opened_on) is None:
                # Seen by no locked period: a mistake, gone with its history.
                await history.forget(session, student.id, need.opened_on)
            else:
                # A locked period counted it: it stays there, and is closed from today.
                today = self.clock.today()
                await locks.refuse_standing(session, school_id, today)
                await history.record_state(
                    session, need, today, actor_id=actor_id, at=self.clock.now(), closed=True
                )
            gone = need_out(need, student)
            await audit.record(
                session, actor_id=actor_id, action=AuditAction.DELETE, row=need, school_id=school_id
            )
            await session.delete(need)
            await session.flush()
            return gone

    async def change_refusal(self, school_id: int, since: date | None = None) -> Finding | None:
        """Why a need change dated `since` (today by default) would be refused, if it would: the chat
        asks before its questions."""
        async with self.sessionmaker() as session:
            return await locks.standing_refusal(session, school_id, self._since(since))

    async def need_summary(self, school_id: int, as_of: date | None = None) -> NeedSummary:
        """What 4.8.2 sends: per priority group, students needing a device, connectivity or both,
        beside the school's student list per group, and the figures that disagree with that list.

        Counted as the reports count (docs/reports.md): the needs as they stood at the end of `as_of`
        (today by default; storage.repositories.reports.needs_as_of), the figures from the same
        statement as a round's figures and Biểu 1 (figure_statements / figure_values), met = a gift
        handed over by then (a loan never meets a need). So the chat, the submitted figures and the
        district workbook give one answer for the same school and day."""
        day = self._as_of(as_of)
        async with self.sessionmaker() as session:
            school = await session.get(School, school_id)
            f = ReportFilter(
                district_id=school.district_id if school is not None else 0,
                school_id=school_id,
                date_to=day,
                tz=self.clock.tz,
            )
            needs_row = [dict(r._mapping) for r in await session.execute(figure_statements(f)["needs"])]
            values = figure_values({"needs": needs_row})
            rows = await history.standing_needs(session, f)
            listed = await history.listed_per_group(session, school_id)
        rows.sort(key=lambda row: (row["class_name"], *given_name_order(row["full_name"], row["code"])))

        both: Counter[PriorityGroup] = Counter()
        with_need_by_group: Counter[PriorityGroup] = Counter()
        inconsistencies: list[Finding] = []
        for row in rows:
            who = {"student": row["full_name"], "code": row["code"], "class_name": row["class_name"]}
            if not row["active"]:
                # Not on the school's list any more: not counted, shown so the school can delete it.
                inconsistencies.append(Finding(code="needs.inconsistency.student_not_on_list", params=who))
                continue
            category = PriorityGroup(row["category"])
            if row["needs_device"] and row["needs_connectivity"]:
                both[category] += 1
            if row["priority_group"] == category:
                with_need_by_group[category] += 1
            else:
                inconsistencies.append(
                    Finding(
                        code="needs.inconsistency.category_differs",
                        params={
                            **who,
                            "category": category.value,
                            "listed_group": PriorityGroup(row["priority_group"]).value,
                        },
                    )
                )
        groups: list[NeedGroupSummary] = []
        for group in NEED_GROUPS:
            # The per-group device and connectivity figures are Biểu 1's; "both" splits them.
            device = values.get(f"needs.device_{group.value}", 0)
            connectivity = values.get(f"needs.connectivity_{group.value}", 0)
            summary = NeedGroupSummary(
                category=group,
                device_only=device - both[group],
                connectivity_only=connectivity - both[group],
                both=both[group],
                listed=listed.get(group, 0),
                listed_without_need=listed.get(group, 0) - with_need_by_group[group],
            )
            groups.append(summary)
            if summary.total > summary.listed:
                inconsistencies.append(
                    Finding(
                        code=f"needs.inconsistency.group_exceeds_list.{group.value}",
                        params={"needs": summary.total, "listed": summary.listed},
                    )
                )
        totals = NeedGroupSummary(
            category=PriorityGroup.NONE,
            device_only=sum(g.device_only for g in groups),
            connectivity_only=sum(g.connectivity_only for g in groups),
            both=sum(g.both for g in groups),
            listed=sum(g.listed for g in groups),
            listed_without_need=sum(g.listed_without_need for g in groups),
        )
        return NeedSummary(
            school_id=school_id,
            as_of=day,
            groups=groups,
            totals=totals,
            students_listed=values.get("students", 0),
            device_met=values.get("needs.device_met", 0),
            device_unmet=values.get("needs.device_unmet", 0),
            inconsistencies=inconsistencies,
        )

    # Internals ------------------------------------------------------------------------------------

    def _as_of(self, as_of: date | None) -> date:
        today = self.clock.today()
        if as_of is None:
            return today
        if as_of > today:
            # Needs as they will stand are not known: a later change may still be dated before then.
            raise DomainError("needs.summary_future", day=as_of)
        return as_of

    def _since(self, since: date | None) -> date:
        today = self.clock.today()
        if since is None:
            return today
        if since > today:
            raise DomainError("needs.since_future", since=since)
        return since

    async def _apply(
        self,
        session: AsyncSession,
        need: NeedRecord,
        data: NeedIn,
        *,
        day: date,
        school_id: int,
        actor_id: int | None,
        request_key: str | None,
    ) -> None:
        before = audit.snapshot(need)
        need.changed_on = day
        need.category = data.category
        need.needs_device = data.needs_device
        need.needs_connectivity = data.needs_connectivity
        need.note = data.note
        need.updated_at = self.clock.now()
        if request_key:
            need.request_key = request_key  # a repeated confirm of this update finds it
        await session.flush()
        await audit.record(
            session,
            actor_id=actor_id,
            action=AuditAction.UPDATE,
            row=need,
            before=before,
            school_id=school_id,
        )

    async def _set_priority_group(
        self, session: AsyncSession, student: Student, group: PriorityGroup, *, actor_id: int | None
    ) -> None:
        """The need's category is the student's priority group: keep the student list in step."""
        if student.priority_group == group:
            return
        before = audit.snapshot(student)
        student.priority_group = group
        await session.flush()
        await audit.record(session, actor_id=actor_id, action=AuditAction.UPDATE, row=student, before=before)


async def _school_need(
    session: AsyncSession, school_id: int, need_id: int, *, lock: bool = False
) -> tuple[NeedRecord, Student]:
    query = (
        select(NeedRecord, Student)
        .join(Student, Student.id == NeedRecord.student_id)
        .where(NeedRecord.id == need_id, Student.school_id == school_id)
    )
    if lock:
        query = query.with_for_update(of=[NeedRecord, Student])
    row = (await session.execute(query)).first()
    if row is None:
        raise NotFound("record", id=need_id)
    need, student = row
    return need, student


async def _need_by_key(session: AsyncSession, school_id: int, request_key: str) -> NeedOut | None:
    query = (
        select(NeedRecord, Student)
        .join(Student, Student.id == NeedRecord.student_id)
        .where(NeedRecord.request_key == request_key, Student.school_id == school_id)
    )
    row = (await session.execute(query)).first()
    return need_out(*row) if row else None


def _replayed(saved: NeedOut, student_id: int | None) -> NeedOut:
    if student_id is not None and saved.student_id != student_id:
        # The chat reused a draft's key for another student: a bug, never a silent overwrite.
        raise Conflict("needs.request_key_reused")
    return saved
