"""A hand-made school for the CSDL upload files: needs, a programme batch with a gift and a loan, a
batch of another donor with a gift, doses (one of an «other» product), and one record of the other
school that must never appear in the first school's files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select

from storage.enums import (
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    HandoverKind,
    PriorityGroup,
)
from storage.models import DonationBatch, Donor, Handover, NeedRecord, VaccineDose, VaccineProduct
from storage.services import Services
from tests.conftest import TZ
from tests.factories import World, make_world


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ)


@dataclass
class CsdlWorld:
    world: World
    needs: dict[str, int] = field(default_factory=dict)  # student code -> need id
    program_batch: int = 0
    other_batch: int = 0
    handovers: dict[str, int] = field(default_factory=dict)  # student code -> handover id
    doses: dict[tuple[str, int], int] = field(default_factory=dict)  # (code, number) -> dose id


async def make_csdl_world(services: Services) -> CsdlWorld:
    world = await make_world(services)
    made = CsdlWorld(world)
    ids = world.student_ids
    async with services.sessionmaker.begin() as session:
        products = {p.code: p.id for p in await session.scalars(select(VaccineProduct))}
        needs = [
            ("HS0001", PriorityGroup.POOR, True, False, "", date(2021, 11, 10)),
            ("HS0002", PriorityGroup.NEAR_POOR, True, True, "Nhà chưa có Internet", date(2021, 11, 11)),
            ("HS0004", PriorityGroup.COVID_ORPHAN, False, True, "=cha mất 8/2021", date(2021, 11, 12)),
            ("HS0005", PriorityGroup.OTHER_HARDSHIP, True, False, "", date(2021, 11, 12)),  # other school
        ]
        for code, group, device, connectivity, note, day in needs:
            need = NeedRecord(
                student_id=ids[code],
                category=group,
                needs_device=device,
                needs_connectivity=connectivity,
                note=note,
                opened_on=day,
                changed_on=day,
                entered_at=at(day),
            )
            session.add(need)
            await session.flush()
            made.needs[code] = need.id
        program = DonationBatch(
            school_id=world.primary_school_id,
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 1),
            quantity=5,
            device_type=DeviceType.LAPTOP,
            make_model="Lenovo V14",
            allocated=2,
            entered_at=at(date(2021, 11, 1)),
        )
        donor = Donor(
            school_id=world.primary_school_id,
            name="Công ty TNHH ABC",
            kind=DonorKind.BUSINESS,
            contact="0909 123 456",
            entered_at=at(date(2021, 11, 5)),
        )
        session.add_all([program, donor])
        await session.flush()
        other = DonationBatch(
            school_id=world.primary_school_id,
            source=DonationSource.OTHER,
            donor_id=donor.id,
            received_on=date(2021, 11, 5),
            quantity=3,
            device_type=DeviceType.TABLET,
            make_model="Samsung Tab A7",
            condition=DeviceCondition.USED,
            specs="3GB RAM, 32GB",
            allocated=1,
            entered_at=at(date(2021, 11, 5)),
        )
        session.add(other)
        await session.flush()
        made.program_batch, made.other_batch = program.id, other.id
        handovers = [
            ("HS0001", program.id, HandoverKind.GIFT, date(2021, 11, 2), ""),
            ("HS0002", program.id, HandoverKind.LOAN, date(2021, 11, 3), "Mượn đến hết học trực tuyến"),
            ("HS0003", other.id, HandoverKind.GIFT, date(2021, 11, 6), ""),
        ]
        for code, batch_id, kind, day, note in handovers:
            handover = Handover(
                batch_id=batch_id,
                student_id=ids[code],
                kind=kind,
                handed_on=day,
                note=note,
                entered_at=at(day),
            )
            session.add(handover)
            await session.flush()
            made.handovers[code] = handover.id
        doses = [
            ("HS0001", 1, date(2021, 10, 1), "COMIRNATY", "", DosePlace.COMMUNITY),
            ("HS0001", 2, date(2021, 10, 22), "COMIRNATY", "", DosePlace.SCHOOL),
            ("HS0002", 1, date(2021, 11, 1), "OTHER", "Sinopharm lô 2", DosePlace.ELSEWHERE),
            ("HS0005", 1, date(2021, 11, 1), "COMIRNATY", "", DosePlace.SCHOOL),  # other school
        ]
        for code, number, day, product, other_name, place in doses:
            dose = VaccineDose(
                student_id=ids[code],
                dose_number=number,
                given_on=day,
                product_id=products[product],
                product_other_name=other_name,
                place=place,
                entered_at=at(day),
            )
            session.add(dose)
            await session.flush()
            made.doses[(code, number)] = dose.id
    return made
