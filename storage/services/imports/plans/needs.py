"""The needs plan: one need per student."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AuditAction
from storage.models import NeedHistory, NeedRecord, Student
from storage.repositories import audit
from storage.schemas.imports import Outcome, cell_yes_no, parse_priority
from storage.schemas.needs import NeedIn
from storage.services.imports.plans.common import (
    ImportPlan,
    SheetRow,
    breathe,
    changed_row,
    chunks,
    coerce_cell,
    insert_many,
    refresh_statistics,
    resolved_student_id,
    school_of_row,
    student_of_row,
    update_many,
    validate_row,
    write_audit,
)


class NeedsPlan(ImportPlan):
    """One need per student (4.8.1); the need's group is also the student's priority group."""

    NAMES: dict[str, str | None] = {"student_id": "student_code"}

    async def plan(self, session: AsyncSession) -> None:
        placed = self.placed()
        await self.students_by_code(session, placed)
        for index, row in enumerate(placed):
            await breathe(index)
            fields = {
                "student_id": student_of_row(row),
                "category": coerce_cell(row, "category", parse_priority),
                "needs_device": bool(coerce_cell(row, "needs_device", cell_yes_no)),
                "needs_connectivity": bool(coerce_cell(row, "needs_connectivity", cell_yes_no)),
                "note": row.text("note"),
            }
            row.parsed = validate_row(row, NeedIn, fields, self.NAMES, self.today)
        # An imported need or change stands from today.
        await self.refuse_locked(session, "needs", "category", lambda _: self.today, standing=True)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None], lambda r: r.parsed.student_id, ["student_code"]
        )
        ids = [row.parsed.student_id for row in rows]
        existing: dict[int, Any] = {}  # plain rows of need_record
        table = NeedRecord.__table__
        for chunk in chunks(ids):
            for stored_need in await session.execute(select(table).where(table.c.student_id.in_(chunk))):
                existing[stored_need.student_id] = stored_need
        self.creates: list[SheetRow] = []
        self.updates: list[tuple[SheetRow, Any]] = []  # the row, the stored need
        for row in rows:
            data: NeedIn = row.parsed
            need = existing.get(resolved_student_id(data.student_id))
            student = row.extra["student"]
            if need is None:
                row.result.outcome = Outcome.CREATED
                self.creates.append(row)
                continue
            same = (need.category, need.needs_device, need.needs_connectivity, need.note) == (
                data.category,
                data.needs_device,
                data.needs_connectivity,
                data.note,
            )
            if same and student.priority_group == data.category:
                row.result.outcome = Outcome.UNCHANGED
            else:
                row.result.outcome = Outcome.UPDATED
                self.updates.append((row, need))

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, today = self.clock.now(), self.today
        created = [
            {
                "student_id": row.parsed.student_id,
                "category": row.parsed.category,
                "needs_device": row.parsed.needs_device,
                "needs_connectivity": row.parsed.needs_connectivity,
                "note": row.parsed.note,
                "opened_on": today,
                "changed_on": today,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": False,
                "request_key": None,
            }
            for row in self.creates
        ]
        await insert_many(session, NeedRecord, created, ("student_id",))
        entries = [
            audit.values_entry(
                NeedRecord,
                AuditAction.CREATE,
                values,
                before=None,
                actor_id=actor_id,
                at=now,
                school_id=school_of_row(row),
            )
            for row, values in zip(self.creates, created, strict=True)
        ]
        updated = []
        afters = []
        for row, need in self.updates:
            data: NeedIn = row.parsed
            params, after = changed_row(
                need,
                {
                    "category": data.category,
                    "needs_device": data.needs_device,
                    "needs_connectivity": data.needs_connectivity,
                    "note": data.note,
                    "updated_at": now,
                    "changed_on": today,
                },
            )
            updated.append(params)
            afters.append(after)
            before = audit.snapshot_values(NeedRecord, need._mapping)
            entries.append(
                audit.values_entry(
                    NeedRecord,
                    AuditAction.UPDATE,
                    after,
                    before=before,
                    actor_id=actor_id,
                    at=now,
                    school_id=school_of_row(row),
                )
            )
        await update_many(session, NeedRecord, updated)
        # Each need's state from today (a second row the same day wins by its id).
        history = [
            {
                "student_id": need["student_id"],
                "changed_on": today,
                "category": need["category"],
                "needs_device": need["needs_device"],
                "needs_connectivity": need["needs_connectivity"],
                "closed": False,
                "entered_by_id": actor_id,
                "entered_at": now,
            }
            for need in created + afters
        ]
        if history:
            await session.execute(insert(NeedHistory.__table__), history)
        # The need's group is the student's priority group.
        regrouped = []
        for row in [*self.creates, *(r for r, _ in self.updates)]:
            student = row.extra["student"]
            if student.priority_group != row.parsed.category:
                params, after = changed_row(
                    student, {"priority_group": row.parsed.category, "updated_at": now}
                )
                regrouped.append(params)
                before = audit.snapshot_values(Student, student._mapping)
                entries.append(
                    audit.values_entry(
                        Student,
                        AuditAction.UPDATE,
                        after,
                        before=before,
                        actor_id=actor_id,
                        at=now,
                        school_id=student.school_id,
                    )
                )
        await update_many(session, Student, regrouped)
        await write_audit(session, entries)
        await refresh_statistics(session, NeedRecord, len(created))
