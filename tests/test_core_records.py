"""The hot path's reads as plain records (`storage.repositories.core`, issue 17 item 3, fifth round):
each record holds the same attributes with the same values as the ORM object the code read before,
on both databases, so the flows' answers, checks and saves cannot differ."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from storage.db import read_core
from storage.enums import AuditAction, HandoverKind
from storage.models import AuditLog, Base, DonationBatch, Handover, Student, VaccineDose, VaccineProduct
from storage.repositories import audit, core, devices
from storage.repositories import students as students_repo
from storage.schemas.devices import HandoverIn
from storage.services import Services, handovers, vaccines
from storage.services.student_lookup import student_record_sync
from tests.test_hot_path_flows import DAY, world_with_records


def values(thing: Any, model: type[Base]) -> dict[str, Any]:
    """Every column attribute of `thing` (an ORM object or a record)."""
    return {attr.key: getattr(thing, attr.key) for attr in inspect(model).column_attrs}


def test_a_record_has_the_models_attributes() -> None:
    for model in (Student, DonationBatch, Handover, VaccineDose, VaccineProduct):
        assert set(core.record_type(model)._fields) == {a.key for a in inspect(model).column_attrs}


async def test_records_hold_what_the_orm_objects_hold(services: Services) -> None:
    world, batch_id = await world_with_records(services)
    school, an, binh = world.primary_school_id, world.student_ids["HS0001"], world.student_ids["HS0002"]
    service = services.handovers

    def read(session: Session) -> list[tuple[Any, Any]]:
        pairs: list[tuple[Any, Any]] = []
        for student_id, school_id in ((an, school), (binh, school), (an, world.secondary_school_id)):
            for lock in (False, True):
                orm = students_repo.in_school_sync(session, student_id, school_id, for_update=lock)
                record = student_record_sync(session, student_id, school_id, for_update=lock)
                pairs.append(
                    (values(orm, Student) if orm else None, values(record, Student) if record else None)
                )
        for school_id in (school, world.secondary_school_id):
            orm_batch = devices.batch_in_school_sync(session, batch_id, school_id)
            record_batch = devices.batch_record_sync(session, batch_id, school_id)
            pairs.append(
                (
                    values(orm_batch, DonationBatch) if orm_batch else None,
                    values(record_batch, DonationBatch) if record_batch else None,
                )
            )
            for kwargs in ({}, {"with_stock_only": True}, {"batch_ids": [batch_id]}, {"batch_ids": []}):
                orm_rows = devices.batches_with_counts_sync(session, school_id, **kwargs)
                record_rows = devices.batch_records_with_counts_sync(session, school_id, **kwargs)
                pairs.append(
                    (
                        [(values(r[0], DonationBatch), *r[1:]) for r in orm_rows],
                        [(values(r[0], DonationBatch), *r[1:]) for r in record_rows],
                    )
                )
        for student_id in (an, binh):
            held = devices.active_in_batch_sync(session, batch_id, student_id)
            orm_held = session.scalar(
                select(Handover).where(
                    Handover.batch_id == batch_id,
                    Handover.student_id == student_id,
                    Handover.returned_on.is_(None),
                )
            )
            pairs.append(
                (values(orm_held, Handover) if orm_held else None, values(held, Handover) if held else None)
            )
            for exclude in (None, -1):
                program = devices.active_program_handover_sync(
                    session, student_id, exclude_handover_id=exclude
                )
                orm_program = session.execute(
                    select(Handover, DonationBatch)
                    .join(DonationBatch, DonationBatch.id == Handover.batch_id)
                    .where(Handover.student_id == student_id, Handover.returned_on.is_(None))
                    .order_by(Handover.handed_on, Handover.id)
                    .limit(1)
                ).first()
                pairs.append(
                    (
                        (values(orm_program[0], Handover), values(orm_program[1], DonationBatch))
                        if orm_program
                        else None,
                        (values(program[0], Handover), values(program[1], DonationBatch))
                        if program
                        else None,
                    )
                )
        products = vaccines._all_products_sync(session)
        orm_products = {p.id: p for p in session.scalars(select(VaccineProduct))}
        pairs.append(
            (
                {k: values(p, VaccineProduct) for k, p in orm_products.items()},
                {k: values(p, VaccineProduct) for k, p in products.items()},
            )
        )
        for ids in ([an], [an, binh], []):
            doses = vaccines._doses_by_student_sync(session, ids)
            orm_doses: dict[int, list[Any]] = {}
            for dose in session.scalars(
                select(VaccineDose).where(VaccineDose.student_id.in_(ids)).order_by(VaccineDose.dose_number)
            ):
                orm_doses.setdefault(dose.student_id, []).append(dose)
            pairs.append(
                (
                    {k: [values(d, VaccineDose) for d in v] for k, v in orm_doses.items()},
                    {k: [values(d, VaccineDose) for d in v] for k, v in doses.items()},
                )
            )
        # The DTOs the saves and the picker answer: from the ORM join (as before) and from records.
        orm_student = students_repo.in_school_sync(session, an, school)
        assert orm_student is not None
        orm_dose_rows = session.execute(
            select(VaccineDose, VaccineProduct)
            .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id)
            .where(VaccineDose.student_id == an)
            .order_by(VaccineDose.dose_number)
        ).all()
        pairs.append(
            (
                [vaccines.dose_out(d, orm_student, p) for d, p in orm_dose_rows],
                vaccines._doses_of(session, an, school),
            )
        )
        by_key = vaccines.VaccineService._dose_by_key_sync(services.vaccines, session, school, "d-1")
        pairs.append((vaccines.dose_out(*orm_dose_rows[0][:1], orm_student, orm_dose_rows[0][1]), by_key))
        pairs.append(
            (None, vaccines.VaccineService._dose_by_key_sync(services.vaccines, session, school, "none"))
        )
        orm_joined = session.execute(handovers._joined().where(Handover.request_key == "h-1")).one()
        pairs.append(
            (
                handovers.handover_out(*orm_joined, replayed=True),
                service._by_request_key_sync(session, "h-1", school),
            )
        )
        pairs.append(
            (
                handovers.handover_out(*orm_joined),
                service._out_sync(session, orm_joined[0].id, school),
            )
        )
        return pairs

    pairs = await read_core(services.sessionmaker, read)
    async with services.sessionmaker() as session:  # through a session too (PostgreSQL's path)
        pairs += await session.run_sync(read)
    assert len(pairs) > 40
    for orm, record in pairs:
        assert orm == record
    assert any(orm is not None for orm, _ in pairs)


async def test_a_handover_saved_reads_back_its_fresh_batch(services: Services) -> None:
    """The save's answer counts the device it took (the guarded UPDATE is not the ORM's)."""
    world, batch_id = await world_with_records(services)
    saved = await services.handovers.create_handover(
        HandoverIn(
            batch_id=batch_id, student_id=world.student_ids["HS0002"], kind=HandoverKind.GIFT, handed_on=DAY
        ),
        school_id=world.primary_school_id,
        actor_id=None,
        request_key="h-2",
    )
    assert saved.batch_left == 3  # 5 received, 2 handed over
    assert (await services.donations.get_batch(batch_id, school_id=world.primary_school_id)).left == 3
    assert date(2021, 11, 1) == saved.batch_received_on


async def test_a_core_insert_audits_as_the_orm_did(services: Services) -> None:
    """`core.insert` + `audit.record_core_sync` (the saves of /handover and /vaccine) write the row and
    the audit entry that an ORM object, its flush and `audit.record_sync` wrote."""
    world, batch_id = await world_with_records(services)
    school, binh = world.primary_school_id, world.student_ids["HS0002"]
    actor = world.staff_ids["teacher"]
    product = (await services.vaccines.products())[0]
    now = services.vaccines.clock.now()

    def handover(key: str, student_id: int) -> dict[str, Any]:
        return {
            "batch_id": batch_id,
            "student_id": student_id,
            "kind": HandoverKind.LOAN,
            "handed_on": DAY,
            "receipt_photo_file_id": None,
            "note": "ghi chú",
            "entered_by_id": actor,
            "entered_at": now,
            "entered_late": True,
            "request_key": key,
        }

    def dose(key: str, number: int) -> dict[str, Any]:
        return {
            "student_id": binh,
            "dose_number": number,
            "given_on": DAY,
            "product_id": product.id,
            "product_other_name": "",
            "place": "school",
            "entered_by_id": None,
            "entered_at": now,
            "entered_late": False,
            "request_key": key,
        }

    def write(session: Session) -> list[Any]:
        written = []
        for model, orm_values, core_values in (
            (Handover, handover("orm", binh), handover("core", world.student_ids["HS0003"])),
            (VaccineDose, dose("orm", 2), dose("core", 3)),
        ):
            row = model(**orm_values)
            session.add(row)
            session.flush()
            orm_entry = audit.record_sync(
                session, actor_id=actor, action=AuditAction.CREATE, row=row, school_id=school
            )
            record = core.insert(session, model, core_values)
            audit.record_core_sync(session, actor_id=actor, model=model, record=record, school_id=school)
            core_entry = session.scalars(
                select(AuditLog).where(
                    AuditLog.entity == model.__tablename__, AuditLog.entity_id == str(record.id)
                )
            ).one()
            assert set(record._fields) == set(values(row, model))
            written.append((values(row, model), record._asdict(), orm_entry, core_entry))
        return written

    async with services.sessionmaker.begin() as session:
        written = await session.run_sync(write)
    differ = {"id", "request_key", "dose_number", "student_id"}
    for orm_row, core_row, orm_entry, core_entry in written:
        assert {k: v for k, v in orm_row.items() if k not in differ} == {
            k: v for k, v in core_row.items() if k not in differ
        }
        assert (
            orm_entry.action,
            orm_entry.actor_id,
            orm_entry.entity,
            orm_entry.school_id,
            orm_entry.before,
        ) == (
            core_entry.action,
            core_entry.actor_id,
            core_entry.entity,
            core_entry.school_id,
            core_entry.before,
        )
        assert core_entry.entity_id == str(core_row["id"]) and core_entry.at is not None
        assert set(orm_entry.after) == set(core_entry.after)
        assert {k: v for k, v in orm_entry.after.items() if k not in differ} == {
            k: v for k, v in core_entry.after.items() if k not in differ
        }
        assert core_entry.after["request_key"] == "core" and core_entry.after["id"] == core_row["id"]
    async with services.sessionmaker() as session:  # as stored: the Core rows read back like the ORM's
        for model in (Handover, VaccineDose):
            stored = {
                r.request_key: values(r, model)
                for r in await session.scalars(select(model).where(model.request_key.in_(["orm", "core"])))
            }
            assert {k: v for k, v in stored["orm"].items() if k not in differ} == {
                k: v for k, v in stored["core"].items() if k not in differ
            }
