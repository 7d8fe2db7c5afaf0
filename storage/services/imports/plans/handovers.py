"""The handovers plan: handovers by batch and student."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AuditAction
from storage.errors import Conflict, DomainError
from storage.models import DonationBatch, Handover, NeedRecord
from storage.repositories import audit
from storage.rules import devices
from storage.rules.timeliness import is_late_entry
from storage.schemas.devices import HandoverIn
from storage.schemas.imports import Outcome, cell_date, parse_batch_ref, parse_handover_kind
from storage.services.imports.plans.common import (
    ImportPlan,
    SheetRow,
    breathe,
    chunks,
    coerce_cell,
    insert_many,
    refresh_statistics,
    resolved_student_id,
    rows_audit,
    school_of_row,
    student_of_row,
    validate_row,
    write_audit,
)


class HandoversPlan(ImportPlan):
    """Handovers by batch and student; a batch never gives more devices than it has left."""

    NAMES: dict[str, str | None] = {
        "batch_id": "batch",
        "student_id": "student_code",
        "kind": "handover_kind",
    }

    async def plan(self, session: AsyncSession) -> None:
        live = self.placed()
        await self.students_by_code(session, live)
        refs = {id(row): coerce_cell(row, "batch", parse_batch_ref) for row in live}
        wanted = sorted({ref for ref in refs.values() if ref is not None})
        school_ids = sorted({row.school.id for row in live if row.school is not None})
        # A row names the batch by its school's own number, as the chat and the template show it.
        batches: dict[tuple[int, int], DonationBatch] = {}
        for chunk in chunks(wanted):
            for stored_batch in await session.scalars(
                select(DonationBatch).where(
                    DonationBatch.number.in_(chunk), DonationBatch.school_id.in_(school_ids)
                )
            ):
                batches[(stored_batch.school_id, stored_batch.number)] = stored_batch
        for index, row in enumerate(live):
            await breathe(index)
            ref = refs.get(id(row))
            batch = batches.get((row.school.id, ref)) if ref is not None and row.school is not None else None
            if ref is not None and batch is None:
                row.reject("batch", DomainError("excel.batch.unknown", batch=ref))
                batch = None
            fields = {
                "batch_id": batch.id if batch is not None else 0,
                "student_id": student_of_row(row),
                "kind": coerce_cell(row, "handover_kind", parse_handover_kind),
                "handed_on": coerce_cell(row, "handed_on", cell_date),
                "note": row.text("note"),
            }
            parsed = validate_row(row, HandoverIn, fields, self.NAMES, self.today)
            if parsed is None or batch is None:
                continue
            try:
                devices.check_handed_on(parsed.handed_on, batch.received_on, self.today)
            except DomainError as error:
                row.reject("handed_on", error)
                continue
            row.parsed = parsed
            row.extra["batch"] = batch
        await self.refuse_locked(session, "devices", "handed_on", lambda parsed: parsed.handed_on)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None],
            lambda r: (r.parsed.batch_id, r.parsed.student_id),
            ["batch", "student_code"],
        )
        student_ids = sorted({row.parsed.student_id for row in rows})
        active: dict[tuple[int, int], Handover] = {}
        program_held: dict[int, tuple[Handover, DonationBatch]] = {}
        for chunk in chunks(student_ids):
            result = await session.execute(
                select(Handover, DonationBatch)
                .join(DonationBatch, DonationBatch.id == Handover.batch_id)
                .where(Handover.student_id.in_(chunk), Handover.returned_on.is_(None))
                .order_by(Handover.handed_on, Handover.id)
            )
            for handover, batch in result:
                active[(handover.batch_id, handover.student_id)] = handover
                if devices.may_warn(batch.source):
                    program_held.setdefault(handover.student_id, (handover, batch))
        needing: set[int] = set()  # students with a recorded need for a device
        for chunk in chunks(student_ids):
            needing.update(
                await session.scalars(
                    select(NeedRecord.student_id).where(
                        NeedRecord.student_id.in_(chunk), NeedRecord.needs_device
                    )
                )
            )
        self.creates: list[SheetRow] = []
        self.updates: list[tuple[SheetRow, Handover]] = []
        taken: dict[int, int] = defaultdict(int)
        for row in rows:
            data: HandoverIn = row.parsed
            student_id = resolved_student_id(data.student_id)
            batch = row.extra["batch"]
            existing = active.get((data.batch_id, student_id))
            if existing is not None:
                if (existing.kind, existing.handed_on, existing.note) == (
                    data.kind,
                    data.handed_on,
                    data.note,
                ):
                    row.result.outcome = Outcome.UNCHANGED
                else:
                    row.result.outcome = Outcome.UPDATED
                    self.updates.append((row, existing))
                continue
            try:
                devices.check_devices_left(batch.quantity, batch.allocated + taken[batch.id])
            except DomainError as error:
                row.reject("batch", error)
                continue
            taken[batch.id] += 1
            held = program_held.get(student_id)
            student = row.extra["student"]
            # The chat's rule (HandoverService.check_handover), with this file's earlier rows counted
            # as held: a second programme device, no recorded need and no group, are notes.
            for finding in devices.judge_handover(
                batch.source,
                student=student.full_name,
                priority_group=student.priority_group,
                needs_device=student_id in needing,
                held=devices.Held(held[0].handed_on, held[0].kind, held[1].number)
                if held is not None and held[1].id != batch.id
                else None,
            ):
                row.reject("student_code", finding.as_error(), warning=True)
            if devices.may_warn(batch.source) and held is None:
                program_held[student_id] = (
                    Handover(batch_id=batch.id, handed_on=data.handed_on, kind=data.kind),
                    batch,
                )
            row.result.outcome = Outcome.CREATED
            self.creates.append(row)
        self.taken = dict(taken)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, tz = self.clock.now(), self.clock.tz
        for batch_id, count in sorted(self.taken.items()):
            # The same guard as `allocate_one`, for several devices at once.
            result = await session.execute(
                update(DonationBatch)
                .where(
                    DonationBatch.id == batch_id, DonationBatch.allocated + count <= DonationBatch.quantity
                )
                .values(allocated=DonationBatch.allocated + count)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise Conflict("excel.conflict")
        created = [
            {
                "batch_id": row.parsed.batch_id,
                "student_id": row.parsed.student_id,
                "kind": row.parsed.kind,
                "handed_on": row.parsed.handed_on,
                "returned_on": None,
                "receipt_photo_file_id": None,
                "note": row.parsed.note,
                "return_entered_at": None,
                "return_entered_late": False,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": is_late_entry(row.parsed.handed_on, now, tz),
                "request_key": None,
            }
            for row in self.creates
        ]
        # (batch, student) is unique among active handovers, and so among the file's new ones.
        await insert_many(session, Handover, created, ("batch_id", "student_id"))
        entries = [
            audit.values_entry(
                Handover,
                AuditAction.CREATE,
                values,
                before=None,
                actor_id=actor_id,
                at=now,
                school_id=school_of_row(row),
            )
            for row, values in zip(self.creates, created, strict=True)
        ]
        # Updates stay on the loaded objects: a file changes few handovers (a note, a date).
        befores = []
        for row, handover in self.updates:
            data = row.parsed
            befores.append(audit.snapshot(handover))
            handover.kind, handover.handed_on, handover.note = data.kind, data.handed_on, data.note
            handover.entered_late = is_late_entry(handover.handed_on, handover.entered_at, tz)
            handover.updated_at = now
        await session.flush()
        entries += rows_audit(actor_id, [], self.updates, befores, now)
        await write_audit(session, entries)
        await refresh_statistics(session, Handover, len(created))
