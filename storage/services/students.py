"""Students of a school: the picker's search, adding a missing student in place, the Excel import's
upsert by student code, and class lists for vaccination rounds."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AuditAction, PriorityGroup, SchoolLevel
from storage.errors import DomainError, NotFound
from storage.models import School, Student
from storage.repositories import audit, bulk
from storage.repositories import students as repo
from storage.schemas.students import (
    ClassSummary,
    NewStudentIn,
    RowVerdict,
    StudentIn,
    StudentOut,
    StudentPage,
    UpsertResult,
    check_birth_date,
    check_grade_in_school,
    clean_class_name,
    provisional_code,
)
from storage.services.base import ServiceBase
from storage.text import fold

PAGE_SIZE = 8
MIN_QUERY_LENGTH = 2
# Columns an import or an edit may change; the code is the natural key and never changes.
UPDATABLE = ("full_name", "search_name", "date_of_birth", "class_name", "grade", "gender", "active")
# What a plan reads of a stored student to judge a row (`repo.rows_by_codes(columns=…)`); a student it
# updates is read whole when written, for the audit row's "before".
COMPARED = ("id", "school_id", "code", *UPDATABLE)


@dataclass(slots=True)
class _Verdict:
    """`RowVerdict` without pydantic's validation: a plan of 50,000 rows makes one per row
    (`preview_upsert` hands out `RowVerdict`s)."""

    index: int
    code: str
    outcome: str
    error_code: str | None = None
    error_params: dict[str, Any] | None = None


@dataclass
class StudentPlan:
    """What an upsert would do. Stored students are plain rows of the `COMPARED` columns
    (`repo.rows_by_codes`), not ORM objects: an import compares 50,000 of them and writes with bulk
    statements."""

    verdicts: list[_Verdict] = field(default_factory=list)
    to_create: list[StudentIn] = field(default_factory=list)
    to_update: list[tuple[Row[Any], dict[str, Any]]] = field(default_factory=list)  # stored, changes
    unchanged: list[Row[Any]] = field(default_factory=list)
    first_error: DomainError | None = None


def _values(row: StudentIn) -> dict[str, Any]:
    return {
        "full_name": row.full_name,
        "search_name": fold(row.full_name),
        "date_of_birth": row.date_of_birth,
        "class_name": row.class_name,
        "grade": row.checked_grade,
        "gender": row.gender,
        "active": True,
    }


class StudentService(ServiceBase):
    async def search(
        self, school_id: int, query: str, page: int = 1, page_size: int = PAGE_SIZE
    ) -> StudentPage:
        """Students of one school whose name (any case, with or without diacritics) or code
        contains what was typed; `page` counts from 1."""
        if len(fold(query).replace(" ", "")) < MIN_QUERY_LENGTH:
            raise DomainError("students.query_too_short", minimum=MIN_QUERY_LENGTH)
        page = max(1, page)
        async with self.sessionmaker() as session:
            rows, total = await repo.search(
                session, school_id, query, offset=(page - 1) * page_size, limit=page_size
            )
            return StudentPage(
                items=[StudentOut.model_validate(s) for s in rows],
                total=total,
                page=page,
                page_size=page_size,
            )

    async def get(self, student_id: int, *, school_id: int) -> StudentOut:
        """The student, only if they belong to `school_id` (another school's student is "not found")."""
        async with self.sessionmaker() as session:
            student = await repo.in_school(session, student_id, school_id)
            if student is None:
                raise NotFound("student")
            return StudentOut.model_validate(student)

    async def add(self, data: StudentIn, *, school_id: int, actor_id: int | None) -> StudentOut:
        """Add a student missing from the list, from inside a flow."""
        try:
            async with self.sessionmaker.begin() as session:
                level = await self._school_level(session, school_id)
                self._check_row(data, level)
                if await session.scalar(select(Student.id).where(Student.code == data.code)):
                    raise DomainError("students.code_taken", code=data.code)
                student = Student(
                    school_id=school_id,
                    code=data.code,
                    entered_by_id=actor_id,
                    entered_at=self.clock.now(),
                    **_values(data),
                )
                session.add(student)
                await session.flush()
                await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=student)
                return StudentOut.model_validate(student)
        except IntegrityError as exc:
            # Two people adding the same code at once: the second is told the code is taken.
            raise DomainError("students.code_taken", code=data.code) from exc

    async def check_new(self, data: NewStudentIn, *, school_id: int) -> None:
        """Refusals adding `data` would meet (grade not in the school, age, code taken); writes
        nothing. The chat asks this where it can be fixed, before the record's confirm adds it."""
        async with self.sessionmaker() as session:
            self._check_row(data, await self._school_level(session, school_id))
            if data.code and await session.scalar(select(Student.id).where(Student.code == data.code)):
                raise DomainError("students.code_taken", code=data.code)

    async def create_in(
        self, session: AsyncSession, data: NewStudentIn, *, school_id: int, actor_id: int | None
    ) -> Student:
        """Add a new student inside the caller's transaction (a handover, dose or need saved with
        its new student: both or neither). No code yet: a placeholder, `is_provisional_code`."""
        self._check_row(data, await self._school_level(session, school_id))
        code = data.code or provisional_code()
        if await session.scalar(select(Student.id).where(Student.code == code)):
            raise DomainError("students.code_taken", code=code)
        student = unsaved_student(school_id, data, code=code)
        student.entered_by_id, student.entered_at = actor_id, self.clock.now()
        session.add(student)
        await session.flush()
        await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=student)
        return student

    async def preview_upsert(self, rows: Sequence[StudentIn], *, school_id: int) -> list[RowVerdict]:
        """What `upsert_many` would do with each row, writing nothing (the import's verdict)."""
        async with self.sessionmaker() as session:
            plan = await self.plan_rows(session, rows, school_id=school_id)
            return [
                RowVerdict(
                    index=v.index,
                    code=v.code,
                    outcome=v.outcome,
                    error_code=v.error_code,
                    error_params=v.error_params,
                )
                for v in plan.verdicts
            ]

    async def upsert_many(
        self, rows: Sequence[StudentIn], *, school_id: int, actor_id: int | None
    ) -> UpsertResult:
        """Create or update students by code, in one transaction, audited. Any row that would be
        rejected (see `preview_upsert`) refuses the whole call, writing nothing."""
        try:
            async with self.sessionmaker.begin() as session:
                plan = await self.plan_rows(session, rows, school_id=school_id)
                if plan.first_error is not None:
                    raise plan.first_error
                return await self.apply_plan(session, plan, school_id=school_id, actor_id=actor_id)
        except IntegrityError as exc:
            # A code added by someone else since the plan was made.
            raise DomainError("students.import_conflict") from exc

    async def list_class(self, school_id: int, class_name: str) -> list[StudentOut]:
        """The class's active students in the order of a Vietnamese class list (by given name)."""
        name = clean_class_name(class_name)
        async with self.sessionmaker() as session:
            students = await repo.class_list(session, school_id, name)
            return [StudentOut.model_validate(s) for s in students]

    async def classes(self, school_id: int) -> list[ClassSummary]:
        async with self.sessionmaker() as session:
            return [
                ClassSummary(class_name=name, grade=grade, student_count=count)
                for name, grade, count in await repo.classes(session, school_id)
            ]

    # --- internals --------------------------------------------------------------------------------

    async def _school_level(self, session: AsyncSession, school_id: int) -> SchoolLevel:
        level = await session.scalar(select(School.level).where(School.id == school_id))
        if level is None:
            raise NotFound("school", code=str(school_id))
        return level

    def _check_row(self, row: StudentIn, level: SchoolLevel) -> None:
        check_grade_in_school(row.checked_grade, level)
        check_birth_date(row.date_of_birth, self.clock.today(), row.checked_grade)

    # --- the bulk path, shared with the Excel import ----------------------------------------------

    async def plan_rows(
        self,
        session: AsyncSession,
        rows: Sequence[StudentIn],
        *,
        school_id: int,
        existing: Mapping[str, Row[Any]] | None = None,
    ) -> StudentPlan:
        """Each row's verdict and what writing the rows would do, in the caller's session, writing
        nothing: the bulk path of `preview_upsert`/`upsert_many`, shared with the Excel import's
        students plan, so the file and the chat judge a student alike. `existing`: the stored
        students of these codes when the caller has them already (the import looks them up once,
        for its own check of other schools' codes)."""
        level = await self._school_level(session, school_id)
        if existing is None:
            existing = await repo.rows_by_codes(session, (row.code for row in rows), columns=COMPARED)
        plan = StudentPlan()
        seen: set[str] = set()
        for index, row in enumerate(rows):
            try:
                if row.code in seen:
                    raise DomainError("students.code_repeated", code=row.code)
                seen.add(row.code)
                self._check_row(row, level)
                student = existing.get(row.code)
                if student is not None and student.school_id != school_id:
                    raise DomainError("students.code_in_other_school", code=row.code)
            except DomainError as error:
                error.params.setdefault("row", index + 1)
                plan.verdicts.append(
                    _Verdict(
                        index=index,
                        code=row.code,
                        outcome="rejected",
                        error_code=error.code,
                        error_params=error.params,
                    )
                )
                plan.first_error = plan.first_error or error
                continue
            if student is None:
                plan.to_create.append(row)
                outcome = "created"
            else:
                values = _values(row)
                if values["gender"] is None:  # a file without the column keeps what is known
                    values["gender"] = student.gender
                changes = {k: v for k, v in values.items() if getattr(student, k) != v}
                if changes:
                    plan.to_update.append((student, changes))
                    outcome = "updated"
                else:
                    plan.unchanged.append(student)
                    outcome = "unchanged"
            plan.verdicts.append(_Verdict(index, row.code, outcome))
        return plan

    async def apply_plan(
        self, session: AsyncSession, plan: StudentPlan, *, school_id: int, actor_id: int | None
    ) -> UpsertResult:
        """Write a plan of `plan_rows` (its creations and updates, audited) in the caller's
        transaction: the bulk path of `upsert_many`, shared with the Excel import, which writes one
        school's plan in slices."""
        # Bulk statements, not the unit of work: a 50,000-row import must not cost one round trip,
        # one ORM object or one flush per row. The audit rows are built from the values written.
        now = self.clock.now()
        table: Table = Student.__table__
        entries: list[dict[str, Any]] = []
        ids: dict[str, int] = {}
        if plan.to_create:
            # Ids reserved first, so the rows go to the driver in one call (COPY / executemany) with
            # no RETURNING to match back, and their audit rows are built from the same values.
            new_ids = await bulk.reserve_ids(session, table, len(plan.to_create))
            created = [
                {
                    "id": student_id,
                    "school_id": school_id,
                    "code": row.code,
                    "priority_group": PriorityGroup.NONE,
                    "entered_by_id": actor_id,
                    "entered_at": now,
                    "updated_at": None,
                    **_values(row),
                }
                for student_id, row in zip(new_ids, plan.to_create, strict=True)
            ]
            order = table.c.keys()
            row_of = operator.itemgetter(*order)
            await bulk.insert_rows(session, table, order, [row_of(values) for values in created])
            for values in created:
                ids[values["code"]] = values["id"]
                entries.append(
                    audit.values_entry(
                        Student,
                        AuditAction.CREATE,
                        values,
                        before=None,
                        actor_id=actor_id,
                        at=now,
                        school_id=values["school_id"],
                    )
                )
        if plan.to_update:
            # Every updatable column of every changed row: one statement, executemany (the SET
            # clause is the parameters' keys).
            columns = (*UPDATABLE, "updated_at")
            statement = update(table).where(table.c.id == bindparam("student_id"))
            updated = []
            # The plan compared the columns it reads (`COMPARED`); the audit's "before" is the whole row.
            whole = await repo.rows_by_ids(session, (stored.id for stored, _ in plan.to_update))
            for stored, changes in plan.to_update:
                found = whole[stored.id]._mapping
                values = {**found, **changes, "updated_at": now}
                updated.append({"student_id": stored.id, **{name: values[name] for name in columns}})
                before = audit.snapshot_values(Student, found)
                entries.append(
                    audit.values_entry(
                        Student,
                        AuditAction.UPDATE,
                        values,
                        before=before,
                        actor_id=actor_id,
                        at=now,
                        school_id=values["school_id"],
                    )
                )
            await session.execute(statement, updated)
        await audit.record_many(session, entries)
        ids.update({s.code: s.id for s, _ in plan.to_update})
        ids.update({s.code: s.id for s in plan.unchanged})
        return UpsertResult(
            created=len(plan.to_create),
            updated=len(plan.to_update),
            unchanged=len(plan.unchanged),
            student_ids=ids,
        )


def unsaved_student(school_id: int, data: StudentIn, *, code: str = "") -> Student:
    """A student row not added to any session: what a record's checks look at before the confirm
    that creates the student (no id, no doses, no handovers yet)."""
    return Student(school_id=school_id, code=code or data.code or "", **_values(data))
