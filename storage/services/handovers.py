"""Handovers: one device of a batch to one student, as a gift or a loan until online learning ends.

A batch never gives more than it received: gifts + open loans <= quantity, kept by the conditional
UPDATE in `repositories.devices.allocate_one` in the same transaction as the handover's INSERT.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Any, TypedDict

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.db import read_core, write_core
from storage.enums import AuditAction, DonationSource, HandoverKind, PriorityGroup
from storage.errors import Conflict, DomainError, NotFound
from storage.models import DonationBatch, Handover, NeedRecord, Student
from storage.repositories import audit, core
from storage.repositories import devices as repo
from storage.repositories import students as students_repo
from storage.rules import devices as rules
from storage.rules.devices import Held, judge_handover
from storage.rules.findings import Finding, HandoverWarnings
from storage.rules.timeliness import is_late_entry
from storage.schemas.devices import HandoverIn, HandoverOut, HandoverUpdate
from storage.services.base import ServiceBase
from storage.services.drafts import finish_sync
from storage.services.student_lookup import student_record_sync
from storage.services.students import StudentService

HandoverRows = tuple[Handover, DonationBatch, Student]


def handover_out(
    handover: Handover, batch: DonationBatch, student: Student, *, replayed: bool = False
) -> HandoverOut:
    return HandoverOut(
        id=handover.id,
        school_id=batch.school_id,
        batch_id=batch.id,
        batch_number=batch.number,
        batch_source=batch.source,
        batch_device_type=batch.device_type,
        batch_make_model=batch.make_model,
        batch_received_on=batch.received_on,
        batch_left=batch.quantity - batch.allocated,
        student_id=student.id,
        student_code=student.code,
        student_name=student.full_name,
        class_name=student.class_name,
        student_date_of_birth=student.date_of_birth,
        kind=handover.kind,
        handed_on=handover.handed_on,
        returned_on=handover.returned_on,
        receipt_photo_file_id=handover.receipt_photo_file_id,
        note=handover.note,
        entered_late=handover.entered_late,
        entered_at=handover.entered_at,
        entered_by_id=handover.entered_by_id,
        replayed=replayed,
    )


def _joined() -> Any:
    return (
        select(Handover, DonationBatch, Student)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .join(Student, Student.id == Handover.student_id)
        # Fresh counters: the conditional UPDATEs bypass the session's copy of the batch.
        .execution_options(populate_existing=True)
    )


_JOINED = (Handover, DonationBatch, Student)


def _joined_records() -> Any:
    """`_joined` as plain columns (`core.split` makes the three records): always fresh counters."""
    handover, batch, student = (core.table(m).c for m in _JOINED)
    return (
        select(*core.columns(*_JOINED))
        .join_from(core.table(Handover), core.table(DonationBatch), batch.id == handover.batch_id)
        .join(core.table(Student), student.id == handover.student_id)
    )


@functools.cache
def _by_id_record() -> Any:
    """A school's handover with its batch and student; built once (every save reads it back)."""
    handover, batch = core.table(Handover).c, core.table(DonationBatch).c
    return _joined_records().where(handover.id == bindparam("id"), batch.school_id == bindparam("school_id"))


@functools.cache
def _by_key_record() -> Any:
    """The handover a confirm saved (its request key); built once (every save looks for it)."""
    return _joined_records().where(core.table(Handover).c.request_key == bindparam("key"))


@functools.cache
def _held_from_batch() -> Any:
    """Built once (the handover flow's student step asks it); values bound at execution."""
    handover, batch = core.table(Handover).c, core.table(DonationBatch).c
    return (
        select(handover.handed_on)
        .join_from(core.table(Handover), core.table(DonationBatch), batch.id == handover.batch_id)
        .where(
            handover.batch_id == bindparam("batch_id"),
            handover.student_id == bindparam("student_id"),
            handover.returned_on.is_(None),
            batch.school_id == bindparam("school_id"),
        )
        .order_by(handover.handed_on, handover.id)
        .limit(1)
    )


@functools.cache
def _needs_device() -> Any:
    return select(NeedRecord.needs_device).where(NeedRecord.student_id == bindparam("student_id"))


class _RestSteps(TypedDict):
    """`HandoverService._rest_sync`'s keyword arguments, the same on both paths of `save`."""

    request_key: str | None
    actor_id: int | None
    confirm_second: bool


def raise_unconfirmed(warnings: list[Finding]) -> None:
    if warnings:
        raise HandoverWarnings(warnings)


class HandoverService(ServiceBase):
    async def create_handover(
        self,
        data: HandoverIn,
        *,
        school_id: int,
        actor_id: int | None,
        request_key: str | None = None,
        confirm_second_program_device: bool = False,
        finish_draft: tuple[int, str] | None = None,
    ) -> HandoverOut:
        """Hand one device of a batch to a student of the same school.

        Refused (DomainError, nothing written): another school's batch or student (not found); a date
        in the future, before the programme or before the batch was received; the student already
        holding a device of this batch; no device left (`devices.batch_exhausted`, also for the loser
        of two simultaneous confirms); a student already holding a programme device, unless
        `confirm_second_program_device` (the chat asks first). The same `request_key` again returns
        the handover already saved. `finish_draft` (telegram user id, flow): the chat's draft of this
        handover is deleted in the same transaction (kept when the handover is refused).

        On a SQLite file the whole transaction is one thread hop (`storage.db.write_core`).
        """
        steps: _RestSteps = {
            "request_key": request_key,
            "actor_id": actor_id,
            "confirm_second": confirm_second_program_device,
        }
        try:
            if data.new_student is None:

                def save(session: Session) -> HandoverOut:
                    saved = self._prelude_sync(session, school_id, data, request_key)
                    if saved is None:
                        # Locking the student first serialises two handovers to the same child (PostgreSQL).
                        student = student_record_sync(
                            session, data.student_id or 0, school_id, for_update=True
                        )
                        if student is None:
                            raise NotFound("student")
                        saved = self._rest_sync(session, school_id, data, student, **steps)
                    if finish_draft is not None:
                        finish_sync(session, *finish_draft)
                    return saved

                return await write_core(self.sessionmaker, save)
            async with self.sessionmaker.begin() as session:
                saved = await session.run_sync(self._prelude_sync, school_id, data, request_key)
                if saved is None:
                    # Created here, in the handover's transaction: a refused handover leaves no student.
                    student = await StudentService(self.sessionmaker, self.clock).create_in(
                        session, data.new_student, school_id=school_id, actor_id=actor_id
                    )
                    saved = await session.run_sync(self._rest_sync, school_id, data, student, **steps)
                if finish_draft is not None:
                    await session.run_sync(finish_sync, *finish_draft)
                return saved
        except IntegrityError as exc:
            # Lost a race (PostgreSQL): the same confirm saved by the other request, or the same
            # student given a device of this batch by someone else (the unique active index).
            saved = await self._after_lost_race(school_id, request_key, data.batch_id, data.student_id or 0)
            if saved is not None:
                return saved
            raise Conflict("devices.save_conflict") from exc

    def _prelude_sync(
        self, session: Session, school_id: int, data: HandoverIn, request_key: str | None
    ) -> HandoverOut | None:
        """A new handover's first checks: the same confirm already saved (returned), the day locked."""
        if request_key is not None:
            saved = self._by_request_key_sync(session, request_key, school_id)
            if saved is not None:
                return saved
        repo.ensure_program_unlocked_sync(session, school_id, data.handed_on)
        return None

    def _rest_sync(
        self,
        session: Session,
        school_id: int,
        data: HandoverIn,
        student: Student,
        *,
        request_key: str | None,
        actor_id: int | None,
        confirm_second: bool,
    ) -> HandoverOut:
        """The new handover with its student known (and locked): checks, the guarded allocation, the
        row and its audit entry."""
        if request_key is not None:
            # The same confirm may have been waiting for the lock that its twin held.
            saved = self._by_request_key_sync(session, request_key, school_id)
            if saved is not None:
                return saved
        batch = self._batch_in_school_sync(session, data.batch_id, school_id)
        rules.check_handed_on(data.handed_on, batch.received_on, self.clock.today())
        self._check_not_holding_sync(session, batch, student)
        if not confirm_second:
            raise_unconfirmed(self._warnings_sync(session, batch, student))
        if not repo.allocate_one_sync(session, batch.id):
            raise rules.exhausted(batch.quantity)
        now = self.clock.now()
        # By Core (`core.insert`, `audit.record_core_sync`): the row and audit entry the ORM wrote.
        values = {
            "batch_id": batch.id,
            "student_id": student.id,
            "kind": data.kind,
            "handed_on": data.handed_on,
            "receipt_photo_file_id": data.receipt_photo_file_id,
            "note": data.note,
            "entered_by_id": actor_id,
            "entered_at": now,
            "entered_late": is_late_entry(data.handed_on, now, self.clock.tz),
            "request_key": request_key,
        }
        handover = core.insert(session, Handover, values)
        audit.record_core_sync(
            session, actor_id=actor_id, model=Handover, record=handover, school_id=school_id
        )
        return self._out_sync(session, handover.id, school_id)

    async def check_handover(
        self,
        data: HandoverIn,
        *,
        school_id: int,
        exclude_id: int | None = None,
        source: DonationSource | None = None,
    ) -> list[Finding]:
        """The warnings saving `data` would need the person's check for (`judge_handover`): shown on the
        chat's summary before Confirm. Writes nothing; refusals are the save's own. `source`, the
        batch's as the caller knows it: a batch the rule never warns about is not read."""
        if source is not None and not rules.may_warn(source):
            return []

        def read(session: Session) -> list[Finding]:
            batch = self._batch_in_school_sync(session, data.batch_id, school_id)
            if data.new_student is not None:
                # A student added in the flow: no group and no need recorded yet.
                return judge_handover(
                    batch.source,
                    student=data.new_student.full_name,
                    priority_group=PriorityGroup.NONE,
                    needs_device=False,
                    held=None,
                )
            student = student_record_sync(session, data.student_id or 0, school_id)
            if student is None:
                raise NotFound("student")
            return self._warnings_sync(session, batch, student, exclude_id=exclude_id)

        return await read_core(self.sessionmaker, read)

    async def check_not_holding(
        self, batch_id: int, student_id: int, *, student: str, school_id: int
    ) -> None:
        """Refuses (`rules.check_not_holding`) a student who still holds a device of this batch: the
        chat says so at the student step, by the name it shows (the save refuses it anyway)."""
        held_on = await self.held_from_batch(batch_id, student_id, school_id=school_id)
        rules.check_not_holding(student, held_on)

    def check_handed_on(self, handed_on: date, received_on: date) -> None:
        """Refuses a handover day the save would refuse (`rules.check_handed_on`): the chat's date step.
        Reads nothing."""
        rules.check_handed_on(handed_on, received_on, self.clock.today())

    def check_returned_on(self, returned_on: date, handed_on: date) -> None:
        """Refuses a loan's return day the save would refuse (`rules.check_returned_on`): the /return
        chat's date step. Reads nothing."""
        rules.check_returned_on(returned_on, handed_on, self.clock.today())

    def check_open_loan(self, loan: HandoverOut) -> None:
        """Refuses a handover that is not an open loan (`rules.check_open_loan`): the /return chat's
        choice. Reads nothing."""
        rules.check_open_loan(loan.kind, loan.returned_on)

    async def held_from_batch(self, batch_id: int, student_id: int, *, school_id: int) -> date | None:
        """The day the student was given the device of this batch they still hold (a gift or an open
        loan), if any: the chat says so at the student step (the save refuses it anyway)."""

        def read(session: Session) -> date | None:
            params = {"batch_id": batch_id, "student_id": student_id, "school_id": school_id}
            held = core.execute(session, _held_from_batch(), params).first()
            return held[0] if held is not None else None

        return await read_core(self.sessionmaker, read)

    async def get_handover(self, handover_id: int, *, school_id: int) -> HandoverOut:
        async with self.sessionmaker() as session:
            return await self._out(session, handover_id, school_id)

    async def open_loans(self, school_id: int) -> list[HandoverOut]:
        """Devices lent and not yet returned, oldest first (the /return picker)."""
        return await self._listed(
            school_id, Handover.kind == HandoverKind.LOAN, Handover.returned_on.is_(None)
        )

    async def handovers_of_student(self, student_id: int, *, school_id: int) -> list[HandoverOut]:
        return await self._listed(school_id, Handover.student_id == student_id)

    async def return_loan(
        self, handover_id: int, returned_on: date, *, school_id: int, actor_id: int | None
    ) -> HandoverOut:
        """A lent device came back: the loan is closed and the device is back in the batch."""
        async with self.sessionmaker.begin() as session:
            handover, batch, _ = await self._rows_for_update(session, handover_id, school_id)
            # A return is an event of its own day: the loan's period is not touched by it.
            await repo.ensure_program_unlocked(session, school_id, returned_on)
            rules.check_open_loan(handover.kind, handover.returned_on)
            rules.check_returned_on(returned_on, handover.handed_on, self.clock.today())
            before = audit.snapshot(handover)
            handover.returned_on = returned_on
            handover.updated_at = self.clock.now()
            # The return is a record of the 1-day rule of its own (reports, Biểu 8).
            handover.return_entered_at = handover.updated_at
            handover.return_entered_late = is_late_entry(returned_on, handover.updated_at, self.clock.tz)
            await session.flush()
            await repo.release_one(session, batch.id)
            await audit.record(
                session,
                actor_id=actor_id,
                action=AuditAction.UPDATE,
                row=handover,
                before=before,
                school_id=school_id,
            )
            return await self._out(session, handover.id, school_id)

    async def update_handover(
        self,
        handover_id: int,
        data: HandoverUpdate,
        *,
        school_id: int,
        actor_id: int | None,
        confirm_second_program_device: bool = False,
    ) -> HandoverOut:
        """Fix a handover: the student, gift/loan, the dates, the photo, the note (the batch stays;
        delete and hand over from the other batch instead). The same rules as a new handover."""
        changes = data.changes()
        try:
            async with self.sessionmaker.begin() as session:
                handover, batch, student = await self._rows_for_update(session, handover_id, school_id)
                # Every day the handover has or gets: none may be in a locked period.
                await repo.ensure_program_unlocked(
                    session,
                    school_id,
                    handover.handed_on,
                    handover.returned_on,
                    changes.get("handed_on"),
                    changes.get("returned_on"),
                )
                before = audit.snapshot(handover)
                was_active = handover.returned_on is None
                if "student_id" in changes and changes["student_id"] != student.id:
                    found = await students_repo.in_school(
                        session, changes["student_id"], school_id, for_update=True
                    )
                    if found is None:
                        raise NotFound("student")
                    student = found
                kind: HandoverKind = changes.get("kind", handover.kind)
                handed_on: date = changes.get("handed_on", handover.handed_on)
                returned_on: date | None = changes.get("returned_on", handover.returned_on)
                if returned_on is not None and kind is not HandoverKind.LOAN:
                    raise DomainError(
                        "devices.returned_kind_change" if "kind" in changes else "devices.not_a_loan"
                    )
                if "handed_on" in changes:
                    rules.check_handed_on(handed_on, batch.received_on, self.clock.today())
                if returned_on is not None:
                    rules.check_returned_on(returned_on, handed_on, self.clock.today())
                is_active = returned_on is None
                if is_active and (student.id != handover.student_id or not was_active):
                    await self._check_not_holding(session, batch, student, exclude_id=handover.id)
                    if not confirm_second_program_device:
                        warnings = await self._warnings(session, batch, student, exclude_id=handover.id)
                        if student.id == handover.student_id:  # a loan back on: the child was chosen before
                            warnings = [w for w in warnings if w.code != "devices.program_without_need"]
                        raise_unconfirmed(warnings)
                if is_active and not was_active and not await repo.allocate_one(session, batch.id):
                    raise rules.exhausted(batch.quantity)
                if was_active and not is_active:
                    await repo.release_one(session, batch.id)
                handover.student_id = student.id
                handover.kind, handover.handed_on, handover.returned_on = kind, handed_on, returned_on
                for key in ("receipt_photo_file_id", "note"):
                    if key in changes:
                        setattr(handover, key, changes[key])
                # Lateness is judged on when the handover was first entered, against the corrected date.
                handover.entered_late = is_late_entry(handover.handed_on, handover.entered_at, self.clock.tz)
                handover.updated_at = self.clock.now()
                if returned_on is None:
                    handover.return_entered_at, handover.return_entered_late = None, False
                else:
                    # The return's entry counts from when it was first entered, against its (new) day.
                    handover.return_entered_at = handover.return_entered_at or handover.updated_at
                    handover.return_entered_late = is_late_entry(
                        returned_on, handover.return_entered_at, self.clock.tz
                    )
                await session.flush()
                await audit.record(
                    session,
                    actor_id=actor_id,
                    action=AuditAction.UPDATE,
                    row=handover,
                    before=before,
                    school_id=school_id,
                )
                return await self._out(session, handover.id, school_id)
        except IntegrityError as exc:
            # Someone else gave the same student a device of this batch meanwhile.
            raise Conflict("devices.save_conflict") from exc

    async def delete_handover(self, handover_id: int, *, school_id: int, actor_id: int | None) -> None:
        """Delete a handover entered by mistake; its device goes back to the batch if it was out."""
        async with self.sessionmaker.begin() as session:
            handover, batch, _ = await self._rows_for_update(session, handover_id, school_id)
            await repo.ensure_program_unlocked(session, school_id, handover.handed_on, handover.returned_on)
            before = audit.snapshot(handover)
            was_active = handover.returned_on is None
            await session.delete(handover)
            await session.flush()
            if was_active:
                await repo.release_one(session, batch.id)
            await audit.record(
                session,
                actor_id=actor_id,
                action=AuditAction.DELETE,
                row=handover,
                before=before,
                school_id=school_id,
            )

    # --- internals --------------------------------------------------------------------------------

    async def _listed(self, school_id: int, *conditions: Any) -> list[HandoverOut]:
        """The school's handovers that meet `conditions`, oldest handed first."""
        async with self.sessionmaker() as session:
            rows = await session.execute(
                _joined()
                .where(DonationBatch.school_id == school_id, *conditions)
                .order_by(Handover.handed_on, Handover.id)
            )
            return [handover_out(*row) for row in rows]

    async def _out(
        self, session: AsyncSession, handover_id: int, school_id: int, *, replayed: bool = False
    ) -> HandoverOut:
        return await session.run_sync(self._out_sync, handover_id, school_id, replayed=replayed)

    def _out_sync(
        self, session: Session, handover_id: int, school_id: int, *, replayed: bool = False
    ) -> HandoverOut:
        row = core.execute(session, _by_id_record(), {"id": handover_id, "school_id": school_id}).first()
        if row is None:
            raise NotFound("record")
        return handover_out(*core.split(row, *_JOINED), replayed=replayed)

    async def _rows_for_update(self, session: AsyncSession, handover_id: int, school_id: int) -> HandoverRows:
        """The handover with its batch and student, the handover row-locked (PostgreSQL) so that two
        changes of the same handover (two returns, a return and a delete) cannot both count."""
        row = (
            await session.execute(
                _joined()
                .where(Handover.id == handover_id, DonationBatch.school_id == school_id)
                .with_for_update(of=Handover)
            )
        ).first()
        if row is None:
            raise NotFound("record")
        return row[0], row[1], row[2]

    async def _by_request_key(
        self, session: AsyncSession, request_key: str, school_id: int
    ) -> HandoverOut | None:
        return await session.run_sync(self._by_request_key_sync, request_key, school_id)

    def _by_request_key_sync(self, session: Session, request_key: str, school_id: int) -> HandoverOut | None:
        row = core.execute(session, _by_key_record(), {"key": request_key}).first()
        if row is None:
            return None
        handover, batch, student = core.split(row, *_JOINED)
        if batch.school_id != school_id:
            raise Conflict("devices.save_conflict")
        return handover_out(handover, batch, student, replayed=True)

    async def _batch_in_school(self, session: AsyncSession, batch_id: int, school_id: int) -> DonationBatch:
        return await session.run_sync(self._batch_in_school_sync, batch_id, school_id)

    def _batch_in_school_sync(self, session: Session, batch_id: int, school_id: int) -> DonationBatch:
        # A plain record (`storage.repositories.core`): read only; the allocation is a guarded UPDATE.
        batch: DonationBatch | None = repo.batch_record_sync(session, batch_id, school_id)
        if batch is None:
            raise NotFound("batch")
        return batch

    async def _check_not_holding(
        self, session: AsyncSession, batch: DonationBatch, student: Student, *, exclude_id: int | None = None
    ) -> None:
        await session.run_sync(self._check_not_holding_sync, batch, student, exclude_id=exclude_id)

    def _check_not_holding_sync(
        self, session: Session, batch: DonationBatch, student: Student, *, exclude_id: int | None = None
    ) -> None:
        held = repo.active_in_batch_sync(session, batch.id, student.id)
        if held is not None and held.id != exclude_id:
            rules.check_not_holding(student.full_name, held.handed_on)

    async def _warnings(
        self, session: AsyncSession, batch: DonationBatch, student: Student, *, exclude_id: int | None = None
    ) -> list[Finding]:
        """What the person must check before this student gets a device of this batch."""
        return await session.run_sync(self._warnings_sync, batch, student, exclude_id=exclude_id)

    def _warnings_sync(
        self, session: Session, batch: DonationBatch, student: Student, *, exclude_id: int | None = None
    ) -> list[Finding]:
        if not rules.may_warn(batch.source):
            return []
        held = repo.active_program_handover_sync(session, student.id, exclude_handover_id=exclude_id)
        need = core.execute(session, _needs_device(), {"student_id": student.id}).scalar()
        return judge_handover(
            batch.source,
            student=student.full_name,
            priority_group=student.priority_group,
            needs_device=bool(need),
            held=Held(held[0].handed_on, held[0].kind, held[1].number) if held is not None else None,
        )

    async def _after_lost_race(
        self, school_id: int, request_key: str | None, batch_id: int, student_id: int
    ) -> HandoverOut | None:
        async with self.sessionmaker() as session:
            if request_key is not None:
                saved = await self._by_request_key(session, request_key, school_id)
                if saved is not None:
                    return saved
            held = await repo.active_in_batch(session, batch_id, student_id)
            if held is not None:
                student = await session.get(Student, student_id)
                rules.check_not_holding(student.full_name if student else "", held.handed_on)
        return None
