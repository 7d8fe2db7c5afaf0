"""What several test files do: read the database back (counts, audit rows, a priority group) and
enter the records a reporting round is about."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from storage.models import AuditLog, DeviceType, DonationSource, HandoverKind, PriorityGroup, Student
from storage.schemas.devices import BatchIn, HandoverIn
from storage.services import Services
from tests.factories import World


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
        school,
        BatchIn(
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 10),
            quantity=3,
            device_type=DeviceType.LAPTOP,
        ),
        actor_id=teacher,
    )
    await services.handovers.create_handover(
        school,
        HandoverIn(
            batch_id=batch.id,
            student_id=world.student_ids["HS0001"],
            kind=HandoverKind.GIFT,
            handed_on=date(2021, 11, 14),
        ),
        actor_id=teacher,
    )
    return batch.id
