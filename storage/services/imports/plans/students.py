"""The students plan: students by code, through the student service's own plan."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.clock import Clock
from storage.errors import DomainError
from storage.models import Student
from storage.repositories import students as students_repo
from storage.schemas.imports import Outcome, cell_date, cell_int, cell_text
from storage.schemas.students import StudentIn
from storage.services.imports.plans.common import (
    Cells,
    ImportPlan,
    SheetRow,
    breathe,
    refresh_statistics,
    validate_row,
)
from storage.services.students import COMPARED, StudentService

WRITE_SLICE = 5_000  # students written per flush
PLAN_SLICE = 2_000  # students planned between two turns of the event loop


class _PinnedClock(Clock):
    """One import, one instant: "today" is worked out once, not once per row."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(tz=clock.tz, frozen_at=clock.now())
        self._today = clock.today()

    def today(self) -> date:
        return self._today


def _as_text(value: Any) -> str:
    """A text cell for a schema whose validator normalises it anyway (`clean_code`, `clean_name`,
    `clean_class_name` start with `nfc`): passed as it is, not normalised twice; other cells as
    `cell_text` gives them."""
    return value if type(value) is str else cell_text(value)


class StudentsPlan(ImportPlan):
    """Students by code, through the student service's own plan (grade in the school, age)."""

    NAMES: dict[str, str | None] = {"code": "student_code"}

    async def plan(self, session: AsyncSession) -> None:
        self.students = StudentService(self.service.sessionmaker, _PinnedClock(self.clock))
        self.plans: dict[int, tuple[Any, list[SheetRow]]] = {}
        cells = Cells()
        for index, row in enumerate(self.placed()):
            await breathe(index)
            values = row.values
            data = {
                "code": _as_text(values.get("student_code")),
                "full_name": _as_text(values.get("full_name")),
                "date_of_birth": cells.coerce(row, "date_of_birth", cell_date),
                "class_name": _as_text(values.get("class_name")),
                "grade": cells.coerce(row, "grade", cell_int),
                "gender": cells.coerce(row, "gender", cell_text),
            }
            row.parsed = validate_row(row, StudentIn, data, self.NAMES, self.today)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None], lambda r: r.parsed.code, ["student_code"]
        )
        # The stored students of these codes, looked up once (a statement per 5,000 codes, only the
        # compared columns) for both the check below and the student service's plan.
        stored = await students_repo.rows_by_codes(
            session, [row.parsed.code for row in rows], columns=COMPARED
        )
        # Another school's student: said first, before rules of this school (grades, ages) would.
        for row in rows:
            owner = stored.get(row.parsed.code)
            if row.school is not None and owner is not None and owner.school_id != row.school.id:
                row.reject("student_code", DomainError("students.code_in_other_school", code=row.parsed.code))
        rows = [row for row in rows if row.ok]
        by_school: dict[int, list[SheetRow]] = defaultdict(list)
        for row in rows:
            assert row.school is not None
            by_school[row.school.id].append(row)
        for school_id, school_rows in by_school.items():
            # The student service's plan is CPU work on the event loop: a slice at a time, so other
            # chats' updates run between slices. The slices never share a code (duplicates were
            # refused above), so the plans of the slices add up to the plan of the whole.
            plan: Any = None
            for start in range(0, len(school_rows), PLAN_SLICE):
                part = school_rows[start : start + PLAN_SLICE]
                sliced = await self.students.plan_rows(
                    session, [r.parsed for r in part], school_id=school_id, existing=stored
                )
                await asyncio.sleep(0)
                for verdict in sliced.verdicts:
                    row = part[verdict.index]
                    if verdict.outcome == "rejected":
                        assert verdict.error_code is not None
                        params = {k: v for k, v in (verdict.error_params or {}).items() if k != "row"}
                        row.reject(None, DomainError(verdict.error_code, **params))
                    else:
                        row.result.outcome = Outcome(verdict.outcome)
                if plan is None:
                    plan = sliced
                else:
                    plan.to_create += sliced.to_create
                    plan.to_update += sliced.to_update
                    plan.unchanged += sliced.unchanged
            self.plans[school_id] = (plan, school_rows)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        # In slices: the INSERT parameters and audit rows of 50,000 students never exist at once (the
        # session's identity map lets written rows go once nothing refers to them).
        created = 0
        for school_id, (plan, _) in self.plans.items():
            for start in range(0, max(len(plan.to_create), len(plan.to_update)), WRITE_SLICE):
                part = type(plan)()
                part.to_create = plan.to_create[start : start + WRITE_SLICE]
                part.to_update = plan.to_update[start : start + WRITE_SLICE]
                await self.students.apply_plan(session, part, school_id=school_id, actor_id=actor_id)
                created += len(part.to_create)
        # Once, after every slice: ANALYZE samples up to 30,000 rows of the table each time, and
        # after each slice it cost 10 samplings for 50,000 students.
        await refresh_statistics(session, Student, created)
