"""Everything a person entered (a principal: everything of the school), for /my: one list of every kind
of record, newest first, paged, filtered by kind and by student.

Kinds: `batch` (received), `handover`, `return` (a lent device back: the loan's record, dated by its
return), `dose`, `need`. One UNION of (kind, id, entered at) finds the page; only the page's records
are then loaded, each marked with the period lock that holds it (issue 14: a record is locked only when
its day is inside a submitted or approved period; `refusal` is the owning service's text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, false, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.enums import HandoverKind, Role
from storage.errors import NotFound
from storage.models import DonationBatch, Donor, Handover, NeedRecord, Student, VaccineDose, VaccineProduct
from storage.repositories import locks
from storage.repositories.students import search_conditions
from storage.schemas.entries import KINDS, RecentEntry
from storage.schemas.organisation import StaffOut
from storage.services.base import ServiceBase
from storage.services.needs import need_out, recent_need
from storage.services.vaccines import dose_out, recent_dose

PAGE_SIZE = 8


class EntryPage(BaseModel):
    items: list[RecentEntry]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


class EntryService(ServiceBase):
    async def page(
        self,
        staff: StaffOut,
        *,
        kind: str | None = None,
        query: str = "",
        page: int = 1,
        page_size: int = PAGE_SIZE,
    ) -> EntryPage:
        """One page of the person's records (of `kind`, about a student matching `query`: part of the
        name with or without diacritics, or of the code), newest entered first. A page past the end
        is the last one."""
        parts = self._parts(staff, kind, query)
        union = union_all(*parts).subquery()
        async with self.sessionmaker() as session:
            total = int(await session.scalar(select(func.count()).select_from(union)) or 0)
            pages = max(1, math.ceil(total / page_size))
            page = min(max(1, page), pages)
            rows = (
                await session.execute(
                    select(union.c.kind, union.c.id)
                    .order_by(union.c.at.desc(), union.c.kind, union.c.id.desc())
                    .offset((page - 1) * page_size)
                    .limit(page_size)
                )
            ).all()
            items = await self._load(session, [(k, i) for k, i in rows])
        return EntryPage(items=items, total=total, page=page, page_size=page_size)

    async def entry(self, staff: StaffOut, kind: str, record_id: int) -> RecentEntry:
        """One record of the person's list (another person's, another school's: not found)."""
        if kind not in KINDS:
            raise NotFound("record")
        [part] = self._parts(staff, kind, "")
        mine = part.subquery()
        async with self.sessionmaker() as session:
            if await session.scalar(select(func.count()).where(mine.c.id == record_id)) != 1:
                raise NotFound("record")
            [found] = await self._load(session, [(kind, record_id)])
        return found

    # --- the list -----------------------------------------------------------------------------------

    def _parts(self, staff: StaffOut, kind: str | None, query: str) -> list[Any]:
        school_id = staff.own_school_id
        whole_school = staff.role is Role.PRINCIPAL
        student = search_conditions(school_id, query)[0] if query.strip() else None
        parts = []
        for name in KINDS if kind is None else (kind,):
            part = self._part(name, staff.id, school_id, whole_school, student)
            if part is not None:
                parts.append(part)
        if not parts:  # searching for a student among batches only: nothing can match
            parts.append(
                select(
                    literal("batch").label("kind"),
                    DonationBatch.id.label("id"),
                    DonationBatch.entered_at.label("at"),
                ).where(false())
            )
        return parts

    @staticmethod
    def _part(
        kind: str, staff_id: int, school_id: int, whole_school: bool, student: ColumnElement[bool] | None
    ) -> Any:
        tag = literal(kind).label("kind")
        if kind == "batch":
            if student is not None:
                return None  # a batch is about no student
            mine = (
                DonationBatch.school_id == school_id
                if whole_school
                else DonationBatch.entered_by_id == staff_id
            )
            return select(tag, DonationBatch.id.label("id"), DonationBatch.entered_at.label("at")).where(
                mine, DonationBatch.school_id == school_id
            )
        if kind in ("handover", "return"):
            at: ColumnElement[datetime] | InstrumentedAttribute[datetime] = Handover.entered_at
            if kind == "return":
                # Returns have no entry row of their own: the loan's record, dated by its last change.
                at = func.coalesce(Handover.updated_at, Handover.entered_at)
            query = (
                select(tag, Handover.id.label("id"), at.label("at"))
                .join(DonationBatch, DonationBatch.id == Handover.batch_id)
                .join(Student, Student.id == Handover.student_id)
                .where(DonationBatch.school_id == school_id)
            )
            if not whole_school:
                query = query.where(Handover.entered_by_id == staff_id)
            if kind == "return":
                query = query.where(Handover.kind == HandoverKind.LOAN, Handover.returned_on.is_not(None))
            return query.where(student) if student is not None else query
        model = VaccineDose if kind == "dose" else NeedRecord
        query = (
            select(tag, model.id.label("id"), model.entered_at.label("at"))
            .join(Student, Student.id == model.student_id)
            .where(Student.school_id == school_id)
        )
        if not whole_school:
            query = query.where(model.entered_by_id == staff_id)
        return query.where(student) if student is not None else query

    # --- the page's records ------------------------------------------------------------------------

    async def _load(self, session: AsyncSession, keys: Sequence[tuple[str, int]]) -> list[RecentEntry]:
        wanted: dict[str, list[int]] = {}
        for kind, record_id in keys:
            wanted.setdefault(kind, []).append(record_id)
        found: dict[tuple[str, int], RecentEntry] = {}
        for kind, ids in wanted.items():
            for entry in await getattr(self, f"_{kind}s")(session, ids):
                found[(kind, entry.id)] = entry
        return [found[key] for key in keys if key in found]

    async def _batchs(self, session: AsyncSession, ids: list[int]) -> list[RecentEntry]:
        rows = list(
            await session.execute(
                select(DonationBatch, Donor.name)
                .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
                .where(DonationBatch.id.in_(ids))
            )
        )
        found = await locks.entry_locks(session, "devices", [(b.school_id, b.received_on) for b, _ in rows])
        return [
            RecentEntry(
                kind="batch",
                id=batch.id,
                school_id=batch.school_id,
                event_on=batch.received_on,
                subject=donor_name or "",
                details={
                    "number": batch.number,  # the school's own number: «lô #3»
                    "source": batch.source.value,
                    "quantity": batch.quantity,
                    "device_type": batch.device_type.value,
                    "make_model": batch.make_model,
                    "left": batch.quantity - batch.allocated,
                },
                entered_at=batch.entered_at,
                entered_late=batch.entered_late,
                **locks.entry_marks(lock, "devices"),
            )
            for (batch, donor_name), lock in zip(rows, found, strict=True)
        ]

    async def _handover_rows(self, session: AsyncSession, ids: list[int]) -> list[Any]:
        return list(
            await session.execute(
                select(Handover, DonationBatch, Student)
                .join(DonationBatch, DonationBatch.id == Handover.batch_id)
                .join(Student, Student.id == Handover.student_id)
                .where(Handover.id.in_(ids))
            )
        )

    async def _handovers(
        self, session: AsyncSession, ids: list[int], *, returns: bool = False
    ) -> list[RecentEntry]:
        rows = await self._handover_rows(session, ids)
        days = [(b.school_id, h.returned_on if returns else h.handed_on) for h, b, _ in rows]
        found = await locks.entry_locks(session, "devices", days)
        return [
            RecentEntry(
                kind="return" if returns else "handover",
                id=handover.id,
                school_id=batch.school_id,
                event_on=handover.returned_on if returns else handover.handed_on,
                subject=student.full_name,
                details={
                    "student_code": student.code,
                    "class_name": student.class_name,
                    "kind": handover.kind.value,
                    "device_type": batch.device_type.value,
                    "batch_id": batch.id,
                    "batch_number": batch.number,
                    "handed_on": handover.handed_on,
                    "returned_on": handover.returned_on,
                },
                entered_at=(handover.updated_at or handover.entered_at) if returns else handover.entered_at,
                entered_late=False if returns else handover.entered_late,
                **locks.entry_marks(lock, "devices"),
            )
            for (handover, batch, student), lock in zip(rows, found, strict=True)
        ]

    async def _returns(self, session: AsyncSession, ids: list[int]) -> list[RecentEntry]:
        return await self._handovers(session, ids, returns=True)

    async def _doses(self, session: AsyncSession, ids: list[int]) -> list[RecentEntry]:
        rows = await session.execute(
            select(VaccineDose, Student, VaccineProduct)
            .join(Student, Student.id == VaccineDose.student_id)
            .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id)
            .where(VaccineDose.id.in_(ids))
        )
        doses = [dose_out(d, s, p) for d, s, p in rows]
        found = await locks.entry_locks(session, "vaccines", [(d.school_id, d.given_on) for d in doses])
        return [recent_dose(dose, lock) for dose, lock in zip(doses, found, strict=True)]

    async def _needs(self, session: AsyncSession, ids: list[int]) -> list[RecentEntry]:
        rows = await session.execute(
            select(NeedRecord, Student)
            .join(Student, Student.id == NeedRecord.student_id)
            .where(NeedRecord.id.in_(ids))
        )
        needs = [need_out(need, student) for need, student in rows]
        # Editable while a change dated today alters no locked period.
        today = self.clock.today()
        found = await locks.entry_locks(
            session, "needs", [(n.school_id, today) for n in needs], standing=True
        )
        return [recent_need(need, lock) for need, lock in zip(needs, found, strict=True)]
