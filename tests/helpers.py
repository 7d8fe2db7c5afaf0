"""What several test files do: read the database back (counts, audit rows, a priority group, a batch's
allocation, a person's account) and enter records (a dose; the records a reporting round is about)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from storage.enums import DeviceType, DonationSource, DosePlace, HandoverKind, PriorityGroup
from storage.models import AuditLog, DonationBatch, Student
from storage.schemas.devices import BatchIn, HandoverIn
from storage.schemas.organisation import StaffOut
from storage.schemas.vaccines import DoseIn
from storage.services import Services
from tests.factories import TELEGRAM_IDS, World


async def count(services: Services, model: Any, *where: Any) -> int:
    async with services.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def audit_of(services: Services, entity: str, entity_id: int) -> list[AuditLog]:
    """The audit rows of one record, oldest first."""
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id))
            .order_by(AuditLog.id)
        )
        return list(rows)


async def allocated(services: Services, batch_id: int) -> int:
    """The batch's allocated counter as stored."""
    async with services.sessionmaker() as session:
        return await session.scalar(select(DonationBatch.allocated).where(DonationBatch.id == batch_id)) or 0


async def staff_of(services: Services, key: str) -> StaffOut:
    """The account of one of the world's people (a key of `tests.factories.TELEGRAM_IDS`)."""
    staff = await services.staff.by_telegram_id(TELEGRAM_IDS[key])
    assert staff is not None
    return staff


async def product_id(services: Services, code: str) -> int:
    return next(p.id for p in await services.vaccines.products() if p.code == code)


async def seed_dose(
    services: Services, world: World, student_id: int, number: int, given_on: date, product: str = "COMIRNATY"
) -> None:
    """A dose entered behind the chat (at the primary school, in the community), warnings accepted."""
    data = DoseIn(
        student_id=student_id,
        dose_number=number,
        given_on=given_on,
        product_id=await product_id(services, product),
        place=DosePlace.COMMUNITY,
    )
    await services.vaccines.record_dose(
        data, school_id=world.primary_school_id, actor_id=None, request_key=None, confirm_warnings=True
    )


async def priority_group(services: Services, student_id: int) -> PriorityGroup:
    async with services.sessionmaker() as session:
        student = await session.get(Student, student_id)
        assert student is not None
        return student.priority_group


async def laptops_with_one_gift(services: Services, world: World) -> int:
    """The primary school's programme batch of 3 laptops (received 10/11/2021) and one of them given
    to HS0001 on 14/11/2021, both entered by its teacher; the batch id."""
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    batch = await services.donations.create_batch(
        BatchIn(
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 10),
            quantity=3,
            device_type=DeviceType.LAPTOP,
        ),
        school_id=school,
        actor_id=teacher,
    )
    await services.handovers.create_handover(
        HandoverIn(
            batch_id=batch.id,
            student_id=world.student_ids["HS0001"],
            kind=HandoverKind.GIFT,
            handed_on=date(2021, 11, 14),
        ),
        school_id=school,
        actor_id=teacher,
    )
    return batch.id
