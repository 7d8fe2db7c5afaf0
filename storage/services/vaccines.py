"""COVID-19 vaccine doses of students (menu 4.9.1): one dose at a time and whole-class rounds.

The per-product rules (minimum age, minimum interval between doses) are rows of `vaccine_product`,
not code: the district can correct them without a release.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.db import read_core, write_core
from storage.enums import AuditAction
from storage.errors import Conflict, DomainError, NotFound
from storage.models import Student, VaccineDose, VaccineProduct
from storage.repositories import audit, core, locks
from storage.repositories import students as students_repo
from storage.rules.findings import WarningsNotConfirmed
from storage.rules.timeliness import is_late_entry
from storage.rules.vaccines import DoseFacts, dose_day_and_product, judge_dose
from storage.schemas.entries import RecentEntry
from storage.schemas.students import clean_class_name
from storage.schemas.vaccines import (
    MAX_DOSE_NUMBER,
    OTHER_PRODUCT_CODE,
    DoseChange,
    DoseCheck,
    DoseIn,
    DoseOut,
    Finding,
    RosterStudent,
    RoundIn,
    RoundResult,
    RoundSaved,
    RoundSkipped,
    VaccineProductOut,
)
from storage.services.base import ServiceBase
from storage.services.drafts import finish_sync
from storage.services.student_lookup import student_record_sync
from storage.services.students import StudentService, unsaved_student
from storage.text import fold

# How long a process answers the product steps from the products it read (`VaccineService.products`).
PRODUCTS_CACHE_SECONDS = 5.0


def given_name_order(full_name: str, code: str) -> tuple[str, str, str]:
    """Vietnamese class lists sort by the given name (the last word), then the whole name."""
    folded = fold(full_name)
    return (folded.rsplit(" ", 1)[-1], folded, code)


# --- queries on a session, shared with the needs service ------------------------------------------


async def school_student(
    session: AsyncSession, school_id: int, student_id: int, *, lock: bool = False
) -> Student:
    """An active student of this school; any other (another school's, unknown) is not found.

    `lock` holds the student's row until commit on PostgreSQL, so two people saving records for the
    same student are serialised (SQLite serialises writers with BEGIN IMMEDIATE anyway).
    """
    return await session.run_sync(school_student_sync, school_id, student_id, lock=lock)


def school_student_sync(session: Session, school_id: int, student_id: int, *, lock: bool = False) -> Student:
    student = students_repo.in_school_sync(session, student_id, school_id, for_update=lock)
    if student is None:
        raise NotFound("student", id=student_id)
    return student


def recent_dose(dose: DoseOut, lock: locks.PeriodLock | None) -> RecentEntry:
    return RecentEntry(
        kind="dose",
        id=dose.id,
        school_id=dose.school_id,
        event_on=dose.given_on,
        subject=dose.student_name,
        details={
            "student_code": dose.student_code,
            "class_name": dose.class_name,
            "dose_number": dose.dose_number,
            "product": dose.product_label,
            "place": dose.place.value,
        },
        entered_at=dose.entered_at,
        entered_late=dose.entered_late,
        **locks.entry_marks(lock, "vaccines"),
    )


# --- round members ----------------------------------------------------------------------------------


def round_member_key(request_key: str, student_id: int) -> str:
    """One round confirm saves many rows; each row keeps its own key derived from the round's."""
    digest = hashlib.sha256(f"{request_key}/{student_id}".encode()).hexdigest()
    return f"round:{digest[:56]}"  # fits the 64 characters of request_key


# --- DTOs -----------------------------------------------------------------------------------------


def product_out(product: VaccineProduct) -> VaccineProductOut:
    return VaccineProductOut(
        id=product.id,
        code=product.code,
        name=product.name,
        min_age_years=product.min_age_years,
        min_interval_days=product.min_interval_days,
        sort_order=product.sort_order,
    )


def dose_out(dose: VaccineDose, student: Student, product: VaccineProduct) -> DoseOut:
    return DoseOut(
        id=dose.id,
        school_id=student.school_id,
        student_id=student.id,
        student_code=student.code,
        student_name=student.full_name,
        class_name=student.class_name,
        dose_number=dose.dose_number,
        given_on=dose.given_on,
        product_id=product.id,
        product_code=product.code,
        product_name=product.name,
        product_other_name=dose.product_other_name,
        place=dose.place,
        entered_late=dose.entered_late,
        entered_at=dose.entered_at,
        entered_by_id=dose.entered_by_id,
    )


def _label(product: VaccineProduct, other_name: str) -> str:
    return other_name if product.code == OTHER_PRODUCT_CODE and other_name else product.name


# --- the service ----------------------------------------------------------------------------------


class VaccineService(ServiceBase):
    # Products and one student's doses ----------------------------------------------------------

    # (time.monotonic() when read, every product by id): the product steps' list and checks. The
    # district corrects a product's rules in its table (no service writes it): a step sees the change
    # within PRODUCTS_CACHE_SECONDS, and a save always reads the table itself.
    _products_read: tuple[float, dict[int, VaccineProduct]] | None = None

    def _recent_products(self) -> dict[int, VaccineProduct] | None:
        read = self._products_read
        return read[1] if read is not None and time.monotonic() - read[0] < PRODUCTS_CACHE_SECONDS else None

    def _cached_products_sync(self, session: Session) -> dict[int, VaccineProduct]:
        products = self._recent_products()
        if products is None:
            products = _all_products_sync(session)
            self._products_read = (time.monotonic(), products)
        return products

    async def products(self) -> list[VaccineProductOut]:
        """The active products in list order; the one with `needs_name` asks for a typed name."""
        products = self._recent_products()
        if products is None:
            products = await read_core(self.sessionmaker, self._cached_products_sync)
        active = sorted((p for p in products.values() if p.active), key=lambda p: (p.sort_order, p.id))
        return [product_out(p) for p in active]

    async def doses_of(self, student_id: int, *, school_id: int) -> list[DoseOut]:
        return await read_core(self.sessionmaker, lambda session: _doses_of(session, student_id, school_id))

    async def next_dose_number(self, student_id: int, *, school_id: int) -> int:
        """The number to suggest: one after the highest recorded."""

        def read(session: Session) -> int:
            student = _student_record(session, school_id, student_id)
            highest = session.scalar(
                select(func.max(VaccineDose.dose_number)).where(VaccineDose.student_id == student.id)
            )
            return min((highest or 0) + 1, MAX_DOSE_NUMBER)

        return await read_core(self.sessionmaker, read)

    async def doses_and_next(self, student_id: int, *, school_id: int) -> tuple[list[DoseOut], int]:
        """`doses_of` and `next_dose_number` in one read (the chat's dose question shows both)."""

        def read(session: Session) -> tuple[list[DoseOut], int]:
            doses = _doses_of(session, student_id, school_id)
            highest = max((dose.dose_number for dose in doses), default=0)
            return doses, min(highest + 1, MAX_DOSE_NUMBER)

        return await read_core(self.sessionmaker, read)

    async def get_dose(self, dose_id: int, *, school_id: int) -> DoseOut:
        async with self.sessionmaker() as session:
            dose, student, product = await self._school_dose(session, school_id, dose_id)
            return dose_out(dose, student, product)

    # One dose ------------------------------------------------------------------------------------

    async def check_dose(self, data: DoseIn, *, school_id: int) -> DoseCheck:
        """The refusals and warnings saving `data` would meet; writes nothing."""

        def read(session: Session) -> DoseCheck:
            if data.new_student is not None:  # added with this dose at its confirm: no doses yet
                student = unsaved_student(school_id, data.new_student)
            else:
                student = _student_record(session, school_id, data.student_id or 0)
            check, _ = self._check_sync(
                session, school_id, student, data, products=self._cached_products_sync(session)
            )
            return check

        return await read_core(self.sessionmaker, read)

    async def record_dose(
        self,
        data: DoseIn,
        *,
        school_id: int,
        actor_id: int | None,
        request_key: str | None,
        confirm_warnings: bool = False,
        finish_draft: tuple[int, str] | None = None,
    ) -> DoseOut:
        """Save one dose. Refusals raise DomainError; unconfirmed warnings raise WarningsNotConfirmed.

        The same `request_key` again (a double tap, a repeated confirm) returns the saved dose.
        `finish_draft` (telegram user id, flow): the chat's draft of this dose is deleted in the same
        transaction (kept when the dose is refused). On a SQLite file the whole transaction is one
        thread hop (`storage.db.write_core`).
        """
        try:
            if data.new_student is None:

                def save(session: Session) -> DoseOut:
                    # Lock first, then look for the key: a concurrent twin of this confirm waits here
                    # and then finds the dose its twin saved, instead of a duplicate dose number.
                    student = _student_record(session, school_id, data.student_id or 0, lock=True)
                    saved = self._dose_by_key_sync(session, school_id, request_key) if request_key else None
                    if saved is not None:
                        saved = self._replayed(saved, data.student_id)
                    else:
                        saved = self._insert_sync(
                            session, school_id, student, data, actor_id, request_key, confirm_warnings
                        )
                    if finish_draft is not None:
                        finish_sync(session, *finish_draft)
                    return saved

                return await write_core(self.sessionmaker, save)
            async with self.sessionmaker.begin() as session:
                saved = await self._dose_by_key(session, school_id, request_key) if request_key else None
                if saved is None:  # else the twin confirm saved the dose and its new student
                    # Created here, in the dose's transaction: a refused dose leaves no student.
                    student = await StudentService(self.sessionmaker, self.clock).create_in(
                        session, data.new_student, school_id=school_id, actor_id=actor_id
                    )
                    saved = await session.run_sync(
                        self._insert_sync, school_id, student, data, actor_id, request_key, confirm_warnings
                    )
                if finish_draft is not None:
                    await session.run_sync(finish_sync, *finish_draft)
                return saved
        except IntegrityError as exc:
            # A race lost on PostgreSQL: the same confirm saved first, or someone took this dose number.
            if request_key:
                async with self.sessionmaker() as session:
                    saved = await self._dose_by_key(session, school_id, request_key)
                    if saved is not None:
                        return self._replayed(saved, data.student_id)
            raise Conflict("vaccines.duplicate_dose_race", dose_number=data.dose_number) from exc

    def _insert_sync(
        self,
        session: Session,
        school_id: int,
        student: Student,
        data: DoseIn,
        actor_id: int | None,
        request_key: str | None,
        confirm_warnings: bool,
    ) -> DoseOut:
        """The dose of a known (locked) student: its checks, the row and its audit entry."""
        check, product = self._check_sync(session, school_id, student, data)
        self._raise_unless_allowed(check, confirm_warnings)
        assert product is not None
        # By Core (`core.insert`, `audit.record_core_sync`): the row and audit entry the ORM wrote.
        values = {
            "student_id": student.id,
            "dose_number": data.dose_number,
            "given_on": data.given_on,
            "product_id": product.id,
            "product_other_name": data.product_other_name if product.code == OTHER_PRODUCT_CODE else "",
            "place": data.place,
            "entered_by_id": actor_id,
            "entered_at": self.clock.now(),
            "entered_late": check.entered_late,
            "request_key": request_key,
        }
        dose = core.insert(session, VaccineDose, values)
        audit.record_core_sync(
            session, actor_id=actor_id, model=VaccineDose, record=dose, school_id=school_id
        )
        return dose_out(dose, student, product)

    async def update_dose(
        self,
        dose_id: int,
        change: DoseChange,
        *,
        school_id: int,
        actor_id: int | None,
        request_key: str | None = None,
        confirm_warnings: bool = False,
    ) -> DoseOut:
        """Correct a dose (from /my): the same checks as a new one, against the student's other doses."""
        try:
            async with self.sessionmaker.begin() as session:
                dose, student, old_product = await self._school_dose(session, school_id, dose_id, lock=True)
                if request_key and dose.request_key == request_key:
                    return dose_out(dose, student, old_product)  # this update was already saved
                product_id = change.product_id if change.product_id is not None else dose.product_id
                other_name = (
                    change.product_other_name
                    if change.product_other_name is not None
                    else dose.product_other_name
                )
                data = DoseIn(
                    student_id=student.id,
                    dose_number=change.dose_number or dose.dose_number,
                    given_on=change.given_on or dose.given_on,
                    product_id=product_id,
                    product_other_name=other_name,
                    place=change.place or dose.place,
                )
                check, product = await self._check(
                    session,
                    school_id,
                    student,
                    data,
                    editing=dose,
                    allow_inactive_product=product_id == dose.product_id,
                )
                self._raise_unless_allowed(check, confirm_warnings)
                assert product is not None
                before = audit.snapshot(dose)
                dose.dose_number = data.dose_number
                dose.given_on = data.given_on
                dose.product_id = product.id
                dose.product_other_name = (
                    data.product_other_name if product.code == OTHER_PRODUCT_CODE else ""
                )
                dose.place = data.place
                # Late is judged from when the dose was first entered, against its corrected date.
                dose.entered_late = is_late_entry(dose.given_on, dose.entered_at, self.clock.tz)
                dose.updated_at = self.clock.now()
                if request_key:
                    dose.request_key = request_key
                await session.flush()
                await audit.record(
                    session,
                    actor_id=actor_id,
                    action=AuditAction.UPDATE,
                    row=dose,
                    before=before,
                    school_id=school_id,
                )
                return dose_out(dose, student, product)
        except IntegrityError as exc:
            raise Conflict("vaccines.duplicate_dose_race", dose_number=change.dose_number or 0) from exc

    async def delete_dose(self, dose_id: int, *, school_id: int, actor_id: int | None) -> DoseOut:
        """Delete a dose; returns what was deleted (for the confirmation message)."""
        async with self.sessionmaker.begin() as session:
            dose, student, product = await self._school_dose(session, school_id, dose_id, lock=True)
            await locks.refuse_event(session, school_id, "vaccines", dose.given_on)
            gone = dose_out(dose, student, product)
            await audit.record(
                session, actor_id=actor_id, action=AuditAction.DELETE, row=dose, school_id=school_id
            )
            await session.delete(dose)
            await session.flush()
            return gone

    # Vaccination round at school --------------------------------------------------------------

    async def class_roster(self, school_id: int, class_name: str) -> list[RosterStudent]:
        """The class's active students in class-list order, with their dose count and last dose."""
        async with self.sessionmaker() as session:
            students = await students_repo.class_list(session, school_id, clean_class_name(class_name))
            doses = await _doses_by_student(session, [s.id for s in students])
        roster = []
        for student in students:
            own = doses.get(student.id, [])
            last = max(own, key=lambda d: d.dose_number, default=None)
            roster.append(
                RosterStudent(
                    student_id=student.id,
                    code=student.code,
                    full_name=student.full_name,
                    date_of_birth=student.date_of_birth,
                    dose_count=len(own),
                    last_dose_number=last.dose_number if last else None,
                    last_dose_on=last.given_on if last else None,
                    next_dose_number=min((last.dose_number if last else 0) + 1, MAX_DOSE_NUMBER),
                )
            )
        return roster

    async def preview_round(self, data: RoundIn, *, school_id: int) -> RoundResult:
        """Who would be saved and who skipped, and why; writes nothing (the summary before confirm)."""
        async with self.sessionmaker() as session:
            return await self._round(session, school_id, data, actor_id=None, request_key=None, write=False)

    async def record_round(
        self, data: RoundIn, *, school_id: int, actor_id: int | None, request_key: str | None
    ) -> RoundResult:
        """Give each ticked student their next dose, in one transaction.

        A student who cannot get the dose (already has one that day, too young for the product, too
        short an interval, ...) is skipped with the reason, not saved. Confirming again with the same
        `request_key` adds nothing: students saved the first time are reported as saved.
        """
        try:
            async with self.sessionmaker.begin() as session:
                return await self._round(
                    session, school_id, data, actor_id=actor_id, request_key=request_key, write=True
                )
        except IntegrityError as exc:
            # Only a race with another writer on PostgreSQL gets here; the whole round was rolled back.
            raise Conflict("vaccines.round.conflict") from exc

    # Internals ------------------------------------------------------------------------------------

    async def _round(
        self,
        session: AsyncSession,
        school_id: int,
        data: RoundIn,
        *,
        actor_id: int | None,
        request_key: str | None,
        write: bool,
    ) -> RoundResult:
        await locks.refuse_event(session, school_id, "vaccines", data.given_on)
        product = await _active_product(session, data.product_id)
        # What is wrong for everybody refuses the whole round before anyone is looked at.
        today = self.clock.today()
        for finding in dose_day_and_product(product, data.product_other_name, data.given_on, today):
            raise finding.as_error()
        other_name = data.product_other_name if product.code == OTHER_PRODUCT_CODE else ""
        late = is_late_entry(data.given_on, self.clock.now(), self.clock.tz)
        result = RoundResult(
            given_on=data.given_on,
            product_label=_label(product, other_name),
            place=data.place,
            entered_late=late,
            preview=not write,
        )

        query = select(Student).where(
            Student.id.in_(data.student_ids), Student.school_id == school_id, Student.active.is_(True)
        )
        if write:
            query = query.order_by(Student.id).with_for_update()  # one lock order: no deadlocks
        students = {s.id: s for s in await session.scalars(query)}
        doses = await _doses_by_student(session, list(students))
        products = await _all_products(session)
        member_keys = {sid: round_member_key(request_key, sid) for sid in students} if request_key else {}
        saved_before: dict[int, VaccineDose] = {}
        if member_keys:
            rows = await session.scalars(
                select(VaccineDose).where(VaccineDose.request_key.in_(list(member_keys.values())))
            )
            saved_before = {dose.student_id: dose for dose in rows}

        new_doses: list[tuple[VaccineDose, Student]] = []
        for student_id in data.student_ids:
            student = students.get(student_id)
            if student is None:
                result.skipped.append(
                    RoundSkipped(
                        student_id=student_id,
                        student_name="",
                        reason=Finding(code="vaccines.round.not_in_school"),
                    )
                )
                continue
            replayed = saved_before.get(student_id)
            if replayed is not None:
                result.saved.append(
                    RoundSaved(
                        student_id=student_id,
                        student_name=student.full_name,
                        dose_number=replayed.dose_number,
                        dose_id=replayed.id,
                    )
                )
                continue
            own = doses.get(student_id, [])
            number, reason = _round_dose_number(own, data.dose_number)
            if reason is None:
                assert number is not None
                facts = DoseFacts(
                    date_of_birth=student.date_of_birth,
                    dose_number=number,
                    given_on=data.given_on,
                    product=product,
                    product_other_name=other_name,
                    others=own,
                )
                errors, warnings = judge_dose(facts, products, today)
                # In a round a warning is not confirmed student by student: the student is skipped.
                findings = errors + [w for w in warnings if w.code != "vaccines.missing_earlier"]
                reason = findings[0] if findings else None
            if reason is not None:
                result.skipped.append(
                    RoundSkipped(student_id=student_id, student_name=student.full_name, reason=reason)
                )
                continue
            assert number is not None
            dose = VaccineDose(
                student_id=student_id,
                dose_number=number,
                given_on=data.given_on,
                product_id=product.id,
                product_other_name=other_name,
                place=data.place,
                entered_by_id=actor_id,
                entered_at=self.clock.now(),
                entered_late=late,
                request_key=member_keys.get(student_id),
            )
            new_doses.append((dose, student))
            result.saved.append(
                RoundSaved(
                    student_id=student_id, student_name=student.full_name, dose_number=number, dose_id=0
                )
            )

        if write and new_doses:
            session.add_all([dose for dose, _ in new_doses])
            await session.flush()
            ids = {dose.student_id: dose.id for dose, _ in new_doses}
            for dose, _ in new_doses:
                await audit.record(
                    session, actor_id=actor_id, action=AuditAction.CREATE, row=dose, school_id=school_id
                )
            for saved in result.saved:
                saved.dose_id = ids.get(saved.student_id, saved.dose_id)
        return result

    async def _check(
        self,
        session: AsyncSession,
        school_id: int,
        student: Student,
        data: DoseIn,
        *,
        editing: VaccineDose | None = None,
        allow_inactive_product: bool = False,
    ) -> tuple[DoseCheck, VaccineProduct | None]:
        return await session.run_sync(
            self._check_sync,
            school_id,
            student,
            data,
            editing=editing,
            allow_inactive_product=allow_inactive_product,
        )

    def _check_sync(
        self,
        session: Session,
        school_id: int,
        student: Student,
        data: DoseIn,
        *,
        editing: VaccineDose | None = None,
        allow_inactive_product: bool = False,
        products: dict[int, VaccineProduct] | None = None,
    ) -> tuple[DoseCheck, VaccineProduct | None]:
        """`products`: every product by id (a step's check passes the cached ones; a save reads them)."""
        check = DoseCheck(entered_late=is_late_entry(data.given_on, self.clock.now(), self.clock.tz))
        locked = locks.event_refusal_sync(
            session, school_id, "vaccines", data.given_on, editing.given_on if editing else None
        )
        if locked is not None:
            check.errors.append(locked)
        if products is None:  # the rules need them all; the chosen one is among them
            products = _all_products_sync(session)
        product = products.get(data.product_id)
        if product is None or not (product.active or allow_inactive_product):
            check.errors.append(Finding(code="vaccines.unknown_product"))
            return check, None
        doses = _doses_by_student_sync(session, [student.id]).get(student.id, [])
        others = [d for d in doses if editing is None or d.id != editing.id]
        facts = DoseFacts(
            date_of_birth=student.date_of_birth,
            dose_number=data.dose_number,
            given_on=data.given_on,
            product=product,
            product_other_name=data.product_other_name,
            others=others,
        )
        errors, warnings = judge_dose(facts, products, self.clock.today())
        check.errors.extend(errors)
        check.warnings.extend(warnings)
        return check, product

    @staticmethod
    def _raise_unless_allowed(check: DoseCheck, confirm_warnings: bool) -> None:
        if check.errors:
            raise check.errors[0].as_error()
        if check.warnings and not confirm_warnings:
            raise WarningsNotConfirmed(check.warnings)

    async def _school_dose(
        self, session: AsyncSession, school_id: int, dose_id: int, *, lock: bool = False
    ) -> tuple[VaccineDose, Student, VaccineProduct]:
        query = (
            select(VaccineDose, Student, VaccineProduct)
            .join(Student, Student.id == VaccineDose.student_id)
            .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id)
            .where(VaccineDose.id == dose_id, Student.school_id == school_id)
        )
        if lock:
            query = query.with_for_update(of=[VaccineDose, Student])
        row = (await session.execute(query)).first()
        if row is None:
            raise NotFound("record", id=dose_id)
        dose, student, product = row
        return dose, student, product

    async def _dose_by_key(self, session: AsyncSession, school_id: int, request_key: str) -> DoseOut | None:
        return await session.run_sync(self._dose_by_key_sync, school_id, request_key)

    def _dose_by_key_sync(self, session: Session, school_id: int, request_key: str) -> DoseOut | None:
        row = core.execute(
            session, _dose_by_key_query(), {"key": request_key, "school_id": school_id}
        ).first()
        return dose_out(*core.split(row, VaccineDose, Student, VaccineProduct)) if row else None

    @staticmethod
    def _replayed(saved: DoseOut, student_id: int | None) -> DoseOut:
        if student_id is not None and saved.student_id != student_id:
            # The chat reused a draft's key for another student: a bug, never a silent overwrite.
            raise Conflict("vaccines.request_key_reused")
        return saved


def _round_dose_number(own: Sequence[VaccineDose], wanted: int | None) -> tuple[int | None, Finding | None]:
    """The dose a student gets in a round, or why they get none before any date rule is looked at."""
    highest = max((d.dose_number for d in own), default=0)
    if wanted is None:
        if highest >= MAX_DOSE_NUMBER:
            return None, Finding(
                code="vaccines.dose_number_range", params={"value": highest + 1, "maximum": MAX_DOSE_NUMBER}
            )
        return highest + 1, None
    existing = next((d for d in own if d.dose_number == wanted), None)
    if existing is not None:
        return None, Finding(
            code="vaccines.round.already_has_dose",
            params={"dose_number": wanted, "given_on": existing.given_on},
        )
    if highest + 1 < wanted:
        return None, Finding(
            code="vaccines.round.missing_earlier", params={"dose_number": wanted, "next_number": highest + 1}
        )
    return wanted, None


async def _doses_by_student(
    session: AsyncSession, student_ids: Iterable[int]
) -> dict[int, list[VaccineDose]]:
    return await session.run_sync(_doses_by_student_sync, student_ids)


def _doses_by_student_sync(session: Session, student_ids: Iterable[int]) -> dict[int, list[VaccineDose]]:
    ids = list(student_ids)
    found: dict[int, list[VaccineDose]] = {}
    if not ids:
        return found
    # Plain records (`storage.repositories.core`), not ORM objects: the rules only read them.
    if len(ids) == 1:  # one student's doses (a flow's checks): the statement built once
        rows = core.execute(session, _one_students_doses(), {"student_id": ids[0]})
    else:
        rows = core.execute(session, _doses_query(), {"ids": ids})
    make = core.record_type(VaccineDose)._make
    for row in rows:
        dose = make(row)
        found.setdefault(dose.student_id, []).append(dose)
    return found


async def _all_products(session: AsyncSession) -> dict[int, VaccineProduct]:
    return await session.run_sync(_all_products_sync)


def _all_products_sync(session: Session) -> dict[int, VaccineProduct]:
    make = core.record_type(VaccineProduct)._make
    return {p.id: p for p in map(make, core.execute(session, _all_products_query()))}


@functools.cache
def _all_products_query() -> Any:
    return select(*core.columns(VaccineProduct))


@functools.cache
def _one_students_doses() -> Any:
    dose = core.table(VaccineDose).c
    return (
        select(*core.columns(VaccineDose))
        .where(dose.student_id == bindparam("student_id"))
        .order_by(dose.dose_number)
    )


@functools.cache
def _doses_query() -> Any:
    dose = core.table(VaccineDose).c
    return (
        select(*core.columns(VaccineDose))
        .where(dose.student_id.in_(bindparam("ids", expanding=True)))
        .order_by(dose.dose_number)
    )


def _doses_of(session: Session, student_id: int, school_id: int) -> list[DoseOut]:
    student = _student_record(session, school_id, student_id)
    rows = core.execute(session, _doses_with_products(), {"student_id": student.id})
    return [
        dose_out(dose, student, product)
        for dose, product in (core.split(row, VaccineDose, VaccineProduct) for row in rows)
    ]


@functools.cache
def _doses_with_products() -> Any:
    dose, product = core.table(VaccineDose).c, core.table(VaccineProduct).c
    return (
        select(*core.columns(VaccineDose, VaccineProduct))
        .join_from(core.table(VaccineDose), core.table(VaccineProduct), product.id == dose.product_id)
        .where(dose.student_id == bindparam("student_id"))
        .order_by(dose.dose_number)
    )


@functools.cache
def _dose_by_key_query() -> Any:
    dose, student, product = (core.table(m).c for m in (VaccineDose, Student, VaccineProduct))
    return (
        select(*core.columns(VaccineDose, Student, VaccineProduct))
        .join_from(core.table(VaccineDose), core.table(Student), student.id == dose.student_id)
        .join(core.table(VaccineProduct), product.id == dose.product_id)
        .where(dose.request_key == bindparam("key"), student.school_id == bindparam("school_id"))
    )


def _student_record(session: Session, school_id: int, student_id: int, *, lock: bool = False) -> Any:
    """`school_student_sync` as a plain record (the hot path reads its values only)."""
    student = student_record_sync(session, student_id, school_id, for_update=lock)
    if student is None:
        raise NotFound("student", id=student_id)
    return student


async def _active_product(session: AsyncSession, product_id: int) -> VaccineProduct:
    product = await session.get(VaccineProduct, product_id)
    if product is None or not product.active:
        raise DomainError("vaccines.unknown_product")
    return product
