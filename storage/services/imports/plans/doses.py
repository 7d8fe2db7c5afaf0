"""The doses plan: doses by student and dose number, judged by `judge_dose`."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AuditAction
from storage.errors import DomainError
from storage.models import VaccineDose, VaccineProduct
from storage.repositories import audit
from storage.rules.timeliness import is_late_entry
from storage.rules.vaccines import DoseFacts, judge_dose
from storage.schemas.imports import Outcome, cell_date, cell_int, cell_text, parse_place, product_keys
from storage.schemas.parsing import parse_date
from storage.schemas.vaccines import OTHER_PRODUCT_CODE, DoseIn, Finding
from storage.services.imports.plans.common import (
    Cells,
    ImportPlan,
    SheetRow,
    breathe,
    changed_row,
    chunks,
    insert_many,
    refresh_statistics,
    resolved_student_id,
    school_of_row,
    student_of_row,
    update_many,
    validate_row,
    write_audit,
)
from storage.text import fold_key


def _forget(
    merged: dict[int, dict[int, tuple[date, int]]], stored: dict[int, dict[int, Any]], data: DoseIn
) -> None:
    """A refused dose row: the student keeps the stored dose of that number, if any."""
    student_id = resolved_student_id(data.student_id)
    kept = stored[student_id].get(data.dose_number)
    if kept is not None:
        merged[student_id][data.dose_number] = (kept.given_on, kept.product_id)
    else:
        merged[student_id].pop(data.dose_number, None)


class DosesPlan(ImportPlan):
    """Doses by student and dose number, judged by `judge_dose` against the student's other doses —
    those stored and those of the same file."""

    NAMES: dict[str, str | None] = {"student_id": "student_code", "product_id": "product"}

    async def plan(self, session: AsyncSession) -> None:
        placed = self.placed()
        await self.students_by_code(session, placed)
        products = {p.id: p for p in await session.scalars(select(VaccineProduct))}
        by_key: dict[str, VaccineProduct] = {}
        for known in sorted(products.values(), key=lambda p: (not p.active, p.sort_order, p.id)):
            for key in product_keys(known.code, known.name):
                by_key.setdefault(key, known)

        def product_of(value: Any) -> VaccineProduct:
            found = by_key.get(fold_key(cell_text(value)))
            if found is None:
                raise DomainError("vaccines.unknown_product")
            return found

        def given_on(value: Any) -> date:
            parsed = cell_date(value)
            return parsed if isinstance(parsed, date) else parse_date(parsed, self.today, allow_future=True)

        cells = Cells()
        for index, row in enumerate(placed):
            await breathe(index)
            chosen = cells.coerce(row, "product", product_of)
            fields = {
                "student_id": student_of_row(row),
                "dose_number": cells.coerce(row, "dose_number", cell_int),
                "given_on": cells.coerce(row, "given_on", given_on),
                "product_id": chosen.id if chosen is not None else None,
                "product_other_name": row.text("product_other_name"),
                "place": cells.coerce(row, "place", parse_place),
            }
            row.parsed = validate_row(row, DoseIn, fields, self.NAMES, self.today)
            row.extra["product"] = chosen
        await self.refuse_locked(session, "vaccines", "given_on", lambda parsed: parsed.given_on)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None],
            lambda r: (r.parsed.student_id, r.parsed.dose_number),
            ["student_code", "dose_number"],
        )
        student_ids = sorted({row.parsed.student_id for row in rows})
        stored: dict[int, dict[int, Any]] = defaultdict(dict)  # plain rows of vaccine_dose
        table = VaccineDose.__table__
        for chunk in chunks(student_ids):
            for dose in await session.execute(select(table).where(table.c.student_id.in_(chunk))):
                stored[dose.student_id][dose.dose_number] = dose
        # Each student's doses as they would be after the import: the stored ones, replaced or
        # completed by the rows of the file.
        merged: dict[int, dict[int, tuple[date, int]]] = defaultdict(dict)
        for student_id, doses in stored.items():
            for number, dose in doses.items():
                merged[student_id][number] = (dose.given_on, dose.product_id)
        for row in rows:
            merged[row.parsed.student_id][row.parsed.dose_number] = (
                row.parsed.given_on,
                row.parsed.product_id,
            )
        self.creates: list[SheetRow] = []
        self.updates: list[tuple[SheetRow, Any]] = []  # the row, the stored dose
        judged: list[SheetRow] = []
        for index, row in enumerate(rows):
            await breathe(index)
            data: DoseIn = row.parsed
            product: VaccineProduct = row.extra["product"]
            other_name = data.product_other_name if product.code == OTHER_PRODUCT_CODE else ""
            row.extra["other_name"] = other_name
            existing = stored[resolved_student_id(data.student_id)].get(data.dose_number)
            row.extra["existing"] = existing
            if existing is not None and (
                existing.given_on,
                existing.product_id,
                existing.product_other_name,
                existing.place,
            ) == (data.given_on, product.id, other_name, data.place):
                row.result.outcome = Outcome.UNCHANGED
            elif not product.active and (existing is None or existing.product_id != product.id):
                row.reject("product", DomainError("vaccines.unknown_product"))
                _forget(merged, stored, data)
            else:
                judged.append(row)
        # A refused row's dose will not be there: judge the others again without it, until stable.
        while True:
            verdicts = {id(row): self._judge(row, merged, products) for row in judged}
            refused = [row for row in judged if verdicts[id(row)][0]]
            for row in refused:
                for finding in verdicts[id(row)][0]:
                    row.reject(None, finding.as_error())
                _forget(merged, stored, row.parsed)
            judged = [row for row in judged if not verdicts[id(row)][0]]
            if not refused:
                break
        for row in judged:
            for finding in verdicts[id(row)][1]:
                row.reject(None, finding.as_error(), warning=True)
            existing = row.extra["existing"]
            if existing is None:
                row.result.outcome = Outcome.CREATED
                self.creates.append(row)
            else:
                row.result.outcome = Outcome.UPDATED
                self.updates.append((row, existing))

    def _judge(
        self,
        row: SheetRow,
        merged: dict[int, dict[int, tuple[date, int]]],
        products: dict[int, VaccineProduct],
    ) -> tuple[list[Finding], list[Finding]]:
        data: DoseIn = row.parsed
        others = [
            VaccineDose(dose_number=number, given_on=given, product_id=product_id)
            for number, (given, product_id) in merged[resolved_student_id(data.student_id)].items()
            if number != data.dose_number
        ]
        facts = DoseFacts(
            date_of_birth=row.extra["student"].date_of_birth,
            dose_number=data.dose_number,
            given_on=data.given_on,
            product=row.extra["product"],
            product_other_name=row.extra["other_name"],
            others=others,
        )
        return judge_dose(facts, products, self.today)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, tz = self.clock.now(), self.clock.tz
        created = [
            {
                "student_id": row.parsed.student_id,
                "dose_number": row.parsed.dose_number,
                "given_on": row.parsed.given_on,
                "product_id": row.parsed.product_id,
                "product_other_name": row.extra["other_name"],
                "place": row.parsed.place,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": is_late_entry(row.parsed.given_on, now, tz),
                "request_key": None,
            }
            for row in self.creates
        ]
        await insert_many(session, VaccineDose, created, ("student_id", "dose_number"))
        entries = [
            audit.values_entry(
                VaccineDose,
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
        for row, dose in self.updates:
            data: DoseIn = row.parsed
            params, after = changed_row(
                dose,
                {
                    "given_on": data.given_on,
                    "product_id": data.product_id,
                    "product_other_name": row.extra["other_name"],
                    "place": data.place,
                    # Late is judged from when the dose was first entered, against its corrected date.
                    "entered_late": is_late_entry(data.given_on, dose.entered_at, tz),
                    "updated_at": now,
                },
            )
            updated.append(params)
            before = audit.snapshot_values(VaccineDose, dose._mapping)
            entries.append(
                audit.values_entry(
                    VaccineDose,
                    AuditAction.UPDATE,
                    after,
                    before=before,
                    actor_id=actor_id,
                    at=now,
                    school_id=school_of_row(row),
                )
            )
        await update_many(session, VaccineDose, updated)
        await write_audit(session, entries)
        await refresh_statistics(session, VaccineDose, len(created))
