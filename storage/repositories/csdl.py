"""The CSDL upload files' queries: a school's records as upload rows, their marks, and the records
not yet in the CSDL a day after they were entered (or changed) in the bot.

Rows come back as plain dicts keyed by the field names of `storage.schemas.csdl.FIELDS`, enumerations
as their stored strings. Repositories only read and flush; the service owns the transaction.

Whether a marked record changed is decided by its fingerprint (a hash over `FINGERPRINT_FIELDS`),
which only Python computes; the database narrows the candidates to records (or their student or
donor) updated since the marked fields were read, so counting a district stays a few GROUP BYs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.enums import CsdlRecordKind, DonationSource
from storage.models import (
    CsdlMark,
    DonationBatch,
    Donor,
    Handover,
    NeedRecord,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.repositories.students import shown_student_code
from storage.rules.dates import show_date
from storage.schemas.csdl import CsdlMenu, fingerprint, fingerprint_fields

# Names a reminder lists per school; more are counted.
NAMES_PER_SCHOOL = 5


def _s(column: Any) -> Any:
    return type_coerce(column, String())


def _student_columns() -> list[Any]:
    return [
        # A student added in a flow without a CSDL code yet: the code cell stays empty for the school
        # to fill in (never the placeholder); once the real code is known the row reads as changed.
        shown_student_code().label("student_code"),
        Student.full_name.label("full_name"),
        Student.date_of_birth.label("date_of_birth"),
        _s(Student.gender).label("gender"),
        Student.grade.label("grade"),
        Student.class_name.label("class_name"),
    ]


def _batch_columns() -> list[Any]:
    return [
        DonationBatch.number.label("batch_id"),  # the school's own number, as people and the import see it
        _s(DonationBatch.source).label("source"),
        Donor.name.label("donor_name"),
        _s(Donor.kind).label("donor_kind"),
        Donor.contact.label("donor_contact"),
        DonationBatch.received_on.label("received_on"),
        _s(DonationBatch.device_type).label("device_type"),
        DonationBatch.make_model.label("make_model"),
        _s(DonationBatch.condition).label("condition"),
    ]


def _touched(model: Any) -> Any:
    """When the record was last written in the bot (updated_at is never before entered_at)."""
    return func.coalesce(model.updated_at, model.entered_at)


def records_statement(kind: CsdlRecordKind, source: DonationSource | None = None) -> Select[Any]:
    """Every record of a kind with its upload fields, `school_id`, `touched` and the change times of
    what its fingerprint reads (`changed_at`, `student_changed_at`, `donor_changed_at`)."""
    if kind is CsdlRecordKind.NEED:
        return (
            select(
                NeedRecord.id.label("id"),
                Student.school_id.label("school_id"),
                *_student_columns(),
                _s(NeedRecord.category).label("category"),
                NeedRecord.needs_device.label("needs_device"),
                NeedRecord.needs_connectivity.label("needs_connectivity"),
                NeedRecord.note.label("note"),
                NeedRecord.opened_on.label("opened_on"),
                _touched(NeedRecord).label("touched"),
                Student.updated_at.label("student_changed_at"),
            )
            .join(Student, Student.id == NeedRecord.student_id)
            .where(Student.active)
            .order_by(Student.class_name, Student.full_name, Student.code, NeedRecord.id)
        )
    if kind is CsdlRecordKind.BATCH:
        statement = (
            select(
                DonationBatch.id.label("id"),
                DonationBatch.school_id.label("school_id"),
                *_batch_columns(),
                DonationBatch.quantity.label("quantity"),
                DonationBatch.specs.label("specs"),
                DonationBatch.allocated.label("handed"),
                DonationBatch.note.label("note"),
                _touched(DonationBatch).label("touched"),
                Donor.updated_at.label("donor_changed_at"),
            )
            .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
            .order_by(DonationBatch.received_on, DonationBatch.id)
        )
        return statement if source is None else statement.where(DonationBatch.source == source)
    if kind is CsdlRecordKind.HANDOVER:
        statement = (
            select(
                Handover.id.label("id"),
                DonationBatch.school_id.label("school_id"),
                *_batch_columns(),
                *_student_columns(),
                _s(Handover.kind).label("handover_kind"),
                Handover.handed_on.label("handed_on"),
                Handover.returned_on.label("returned_on"),
                Handover.note.label("note"),
                _touched(Handover).label("touched"),
                Student.updated_at.label("student_changed_at"),
            )
            .select_from(Handover)
            .join(DonationBatch, DonationBatch.id == Handover.batch_id)
            .join(Student, Student.id == Handover.student_id)
            .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
            .order_by(
                Handover.handed_on, DonationBatch.id, Student.class_name, Student.full_name, Handover.id
            )
        )
        return statement if source is None else statement.where(DonationBatch.source == source)
    return (
        select(
            VaccineDose.id.label("id"),
            Student.school_id.label("school_id"),
            *_student_columns(),
            VaccineDose.dose_number.label("dose_number"),
            VaccineDose.given_on.label("given_on"),
            VaccineProduct.code.label("product"),
            VaccineProduct.name.label("product_name"),
            VaccineDose.product_other_name.label("product_other_name"),
            _s(VaccineDose.place).label("place"),
            _touched(VaccineDose).label("touched"),
            Student.updated_at.label("student_changed_at"),
        )
        .join(Student, Student.id == VaccineDose.student_id)
        .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id)
        .order_by(VaccineDose.given_on, Student.class_name, Student.full_name, VaccineDose.dose_number)
    )


# Which records each menu's file holds: (kind, the batches' source it is limited to).
MENU_PARTS: dict[CsdlMenu, tuple[tuple[CsdlRecordKind, DonationSource | None], ...]] = {
    CsdlMenu.NEEDS: ((CsdlRecordKind.NEED, None),),
    CsdlMenu.PROGRAM_HANDOVERS: ((CsdlRecordKind.HANDOVER, DonationSource.PROGRAM),),
    CsdlMenu.OTHER_DONATIONS: (
        (CsdlRecordKind.BATCH, DonationSource.OTHER),
        (CsdlRecordKind.HANDOVER, DonationSource.OTHER),
    ),
    CsdlMenu.DOSES: ((CsdlRecordKind.DOSE, None),),
}
# The records the 1-day rule watches: all of them but the programme's batches (the Ministry allocated
# those; the school reports their handovers).
WATCHED: tuple[tuple[CsdlRecordKind, DonationSource | None], ...] = (
    (CsdlRecordKind.NEED, None),
    (CsdlRecordKind.BATCH, DonationSource.OTHER),
    (CsdlRecordKind.HANDOVER, None),
    (CsdlRecordKind.DOSE, None),
)


def _school_column(kind: CsdlRecordKind) -> Any:
    return (
        DonationBatch.school_id
        if kind in (CsdlRecordKind.BATCH, CsdlRecordKind.HANDOVER)
        else Student.school_id
    )


async def school_records(
    session: AsyncSession, kind: CsdlRecordKind, school_id: int, source: DonationSource | None
) -> list[dict[str, Any]]:
    statement = records_statement(kind, source).where(_school_column(kind) == school_id)
    return [dict(row._mapping) for row in await session.execute(statement)]


async def marks_of(
    session: AsyncSession, kind: CsdlRecordKind, record_ids: Iterable[int]
) -> dict[int, CsdlMark]:
    ids = list(record_ids)
    found: dict[int, CsdlMark] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for mark in await session.scalars(
            select(CsdlMark).where(CsdlMark.record_kind == kind, CsdlMark.record_id.in_(chunk))
        ):
            found[mark.record_id] = mark
    return found


async def not_in_csdl(
    session: AsyncSession,
    school_ids: Sequence[int],
    touched_before: datetime,
    *,
    with_names: bool = False,
) -> dict[int, tuple[int, list[str]]]:
    """Per school: records entered or last changed in the bot before `touched_before` that are not in
    the CSDL (never marked, or changed since), and with `with_names` the first few of them by name."""
    if not school_ids:
        return {}
    counts: dict[int, int] = defaultdict(int)
    names: dict[int, list[str]] = defaultdict(list)
    for kind, source in WATCHED:
        base = (
            records_statement(kind, source).order_by(None).where(_school_column(kind).in_(list(school_ids)))
        )
        sub = base.subquery()
        mark = aliased(CsdlMark)
        joined = sub.outerjoin(mark, and_(mark.record_kind == kind, mark.record_id == sub.c.id))
        old = sub.c.touched < touched_before
        never = [mark.id.is_(None), old]
        unmarked = (
            select(sub.c.school_id, func.count()).select_from(joined).where(*never).group_by(sub.c.school_id)
        )
        for school_id, count in await session.execute(unmarked):
            counts[school_id] += count
        if with_names:
            # The oldest few per school (a window function: both databases have it).
            rank = func.row_number().over(partition_by=sub.c.school_id, order_by=(sub.c.touched, sub.c.id))
            ranked = select(*sub.c, rank.label("rank")).select_from(joined).where(*never).subquery()
            for row in await session.execute(select(ranked).where(ranked.c.rank <= NAMES_PER_SCHOOL)):
                _add_name(names[row.school_id], _name(kind, row._mapping))
        # Marked records whose record, student or donor was written since the marked fields were read
        # (>=: a change in the same instant must not be missed); the fingerprint decides.
        since = [sub.c.touched >= mark.fields_at]
        for name in ("student_changed_at", "donor_changed_at"):
            if name in sub.c:
                since.append(sub.c[name] >= mark.fields_at)
        candidates = (
            select(*sub.c, mark.fingerprint.label("marked_fp"))
            .select_from(joined)
            .where(mark.id.is_not(None), old, or_(*since))
        )
        for row in await session.execute(candidates):
            values = row._mapping
            if fingerprint(fingerprint_fields(kind, dict(values))) != values["marked_fp"]:
                counts[values["school_id"]] += 1
                if with_names:
                    _add_name(names[values["school_id"]], _name(kind, values))
    return {school_id: (counts.get(school_id, 0), names.get(school_id, [])) for school_id in school_ids}


def _add_name(names: list[str], name: str) -> None:
    if len(names) < NAMES_PER_SCHOOL and name not in names:
        names.append(name)


def _name(kind: CsdlRecordKind, values: Any) -> str:
    if kind is CsdlRecordKind.BATCH:
        day = show_date(values["received_on"]) if values["received_on"] else ""
        return f"{values['donor_name'] or '–'} ({day})"
    code = values["student_code"]
    return f"{values['full_name']} ({code})" if code else str(values["full_name"])
