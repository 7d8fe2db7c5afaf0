"""Every database constraint rejects bad data, on SQLite and on PostgreSQL.

The rows are written straight through the ORM (or raw SQL where the ORM would refuse first), so what
is tested is the schema itself, not the services' checks in front of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import SQLITE_BUSY_TIMEOUT_MS, create_engine
from storage.enums import (
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    Gender,
    HandoverKind,
    PriorityGroup,
    Role,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.models import (
    DonationBatch,
    Donor,
    Handover,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    Staff,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.services import Services
from tests.factories import World, make_world
from tests.helpers import count

Write = Callable[[AsyncSession], Awaitable[Any]]


async def write(services: Services, fn: Write) -> None:
    async with services.sessionmaker.begin() as session:
        await fn(session)
        await session.flush()


async def rejected(services: Services, fn: Write) -> IntegrityError:
    """The write fails with IntegrityError and leaves nothing behind."""
    with pytest.raises(IntegrityError) as info:
        await write(services, fn)
    return info.value


def student(world: World, code: str = "HS9999", **overrides: Any) -> Student:
    values: dict[str, Any] = {
        "school_id": world.primary_school_id,
        "code": code,
        "full_name": "Hồ Thị Xuân",
        "search_name": "ho thi xuan",
        "date_of_birth": date(2012, 5, 1),
        "gender": Gender.FEMALE,
        "grade": 4,
        "class_name": "4A2",
        "priority_group": PriorityGroup.POOR,
    }
    values.update(overrides)
    return Student(**values)


def batch(world: World, **overrides: Any) -> DonationBatch:
    values: dict[str, Any] = {
        "school_id": world.primary_school_id,
        "source": DonationSource.PROGRAM,
        "received_on": date(2021, 11, 10),
        "quantity": 5,
        "device_type": DeviceType.LAPTOP,
    }
    values.update(overrides)
    return DonationBatch(**values)


async def a_batch(services: Services, world: World) -> int:
    row = batch(world)
    await write(services, lambda s: _add(s, row))
    return row.id


async def _add(session: AsyncSession, *rows: Any) -> None:
    session.add_all(rows)


async def product_id(services: Services) -> int:
    async with services.sessionmaker() as session:
        found = await session.scalar(select(VaccineProduct.id).where(VaccineProduct.code == "COMIRNATY"))
    assert found is not None
    return found


def dose(world: World, product: int, number: int = 1, **overrides: Any) -> VaccineDose:
    values: dict[str, Any] = {
        "student_id": world.student_ids["HS0005"],
        "dose_number": number,
        "given_on": date(2021, 11, 1),
        "product_id": product,
        "place": DosePlace.SCHOOL,
    }
    values.update(overrides)
    return VaccineDose(**values)


def handover(world: World, batch_id: int, **overrides: Any) -> Handover:
    values: dict[str, Any] = {
        "batch_id": batch_id,
        "student_id": world.student_ids["HS0001"],
        "kind": HandoverKind.GIFT,
        "handed_on": date(2021, 11, 12),
    }
    values.update(overrides)
    return Handover(**values)


# --- uniqueness -----------------------------------------------------------------------------------


async def test_student_code_is_unique(services: Services) -> None:
    world = await make_world(services)
    await rejected(services, lambda s: _add(s, student(world, code="HS0001")))
    # Unique across schools too: the ministry's code names one child nationwide.
    await rejected(
        services, lambda s: _add(s, student(world, code="HS0001", school_id=world.secondary_school_id))
    )
    await write(services, lambda s: _add(s, student(world, code="HS9999")))
    assert await count(services, Student) == len(world.student_ids) + 1


async def test_one_dose_number_per_student(services: Services) -> None:
    world = await make_world(services)
    product = await product_id(services)
    await write(services, lambda s: _add(s, dose(world, product, 1)))
    await rejected(services, lambda s: _add(s, dose(world, product, 1, given_on=date(2021, 11, 5))))
    await write(services, lambda s: _add(s, dose(world, product, 2, given_on=date(2021, 11, 14))))
    # Dose 1 of another student is fine.
    other = world.student_ids["HS0006"]
    await write(services, lambda s: _add(s, dose(world, product, 1, student_id=other)))
    assert await count(services, VaccineDose) == 3


async def test_dose_number_range(services: Services) -> None:
    world = await make_world(services)
    product = await product_id(services)
    await rejected(services, lambda s: _add(s, dose(world, product, 0)))
    await rejected(services, lambda s: _add(s, dose(world, product, 11)))


async def test_one_active_handover_per_student_per_batch(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    await write(services, lambda s: _add(s, handover(world, batch_id)))
    await rejected(services, lambda s: _add(s, handover(world, batch_id, handed_on=date(2021, 11, 13))))
    await rejected(services, lambda s: _add(s, handover(world, batch_id, kind=HandoverKind.LOAN)))
    # The same student from another batch, and another student from this batch, are fine.
    other_batch = await a_batch(services, world)
    await write(services, lambda s: _add(s, handover(world, other_batch)))
    await write(
        services, lambda s: _add(s, handover(world, batch_id, student_id=world.student_ids["HS0002"]))
    )
    assert await count(services, Handover) == 3


async def test_a_returned_loan_frees_the_slot(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    loan = handover(world, batch_id, kind=HandoverKind.LOAN, handed_on=date(2021, 11, 1))
    await write(services, lambda s: _add(s, loan))
    await rejected(services, lambda s: _add(s, handover(world, batch_id)))

    async def give_back(session: AsyncSession) -> None:
        row = await session.get(Handover, loan.id)
        assert row is not None
        row.returned_on = date(2021, 11, 10)

    await write(services, give_back)
    # Returned: the student may receive a device of the same batch again (here as a gift).
    await write(services, lambda s: _add(s, handover(world, batch_id)))
    # Two returned loans never collide either.
    second_loan = handover(
        world,
        batch_id,
        student_id=world.student_ids["HS0002"],
        kind=HandoverKind.LOAN,
        handed_on=date(2021, 11, 1),
        returned_on=date(2021, 11, 3),
    )
    third_loan = handover(
        world,
        batch_id,
        student_id=world.student_ids["HS0002"],
        kind=HandoverKind.LOAN,
        handed_on=date(2021, 11, 4),
        returned_on=date(2021, 11, 6),
    )
    await write(services, lambda s: _add(s, second_loan, third_loan))
    assert await count(services, Handover) == 4


async def test_request_key_is_unique(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    await write(services, lambda s: _add(s, handover(world, batch_id, request_key="draft-1")))
    await rejected(
        services,
        lambda s: _add(
            s, handover(world, batch_id, student_id=world.student_ids["HS0002"], request_key="draft-1")
        ),
    )


async def test_school_code_and_staff_telegram_id_are_unique(services: Services) -> None:
    world = await make_world(services)
    await rejected(
        services,
        lambda s: s.execute(
            text(
                "INSERT INTO school (district_id, code, name, level, address, active, created_at) "
                "VALUES (:d, '79785001', 'Trùng mã', 'TH', '', true, CURRENT_TIMESTAMP)"
            ),
            {"d": world.district_id},
        ),
    )
    await rejected(
        services,
        lambda s: _add(s, Staff(telegram_user_id=1001, full_name="Trùng", role=Role.ADMIN)),
    )


async def test_donor_names_are_unique_per_school_and_district_wide(services: Services) -> None:
    world = await make_world(services)

    def donor(name: str, school_id: int | None) -> Donor:
        return Donor(name=name, kind=DonorKind.ORGANISATION, school_id=school_id)

    await write(
        services, lambda s: _add(s, donor("Bộ GD&ĐT", None), donor("Viettel", world.primary_school_id))
    )
    await rejected(services, lambda s: _add(s, donor("Viettel", world.primary_school_id)))
    # NULL school ids are distinct in a unique constraint: the partial index keeps one district-wide name.
    await rejected(services, lambda s: _add(s, donor("Bộ GD&ĐT", None)))
    # The same name at another school, or at a school and district-wide, is allowed.
    await write(
        services,
        lambda s: _add(
            s, donor("Viettel", world.secondary_school_id), donor("Bộ GD&ĐT", world.primary_school_id)
        ),
    )
    assert await count(services, Donor) == 4


# --- foreign keys ---------------------------------------------------------------------------------


async def test_student_of_a_missing_school(services: Services) -> None:
    world = await make_world(services)
    # On SQLite this fails only with PRAGMA foreign_keys=ON.
    await rejected(services, lambda s: _add(s, student(world, school_id=999_999)))


async def test_other_foreign_keys(services: Services) -> None:
    world = await make_world(services)
    product = await product_id(services)
    batch_id = await a_batch(services, world)
    await rejected(services, lambda s: _add(s, handover(world, 999_999)))
    await rejected(services, lambda s: _add(s, handover(world, batch_id, student_id=999_999)))
    await rejected(services, lambda s: _add(s, dose(world, 999_999)))
    await rejected(services, lambda s: _add(s, dose(world, product, student_id=999_999)))
    await rejected(services, lambda s: _add(s, batch(world, donor_id=999_999)))
    await rejected(services, lambda s: _add(s, Staff(full_name="Ma", role=Role.TEACHER, school_id=999_999)))


async def test_restrict_keeps_referenced_rows(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    await write(services, lambda s: _add(s, handover(world, batch_id)))
    # A student with a handover cannot be deleted (ON DELETE RESTRICT): the district's count stays true.
    await rejected(
        services,
        lambda s: s.execute(text("DELETE FROM student WHERE id = :id"), {"id": world.student_ids["HS0001"]}),
    )
    await rejected(
        services, lambda s: s.execute(text("DELETE FROM donation_batch WHERE id = :id"), {"id": batch_id})
    )


async def test_cascade_deletes_doses_with_their_student(services: Services) -> None:
    world = await make_world(services)
    product = await product_id(services)
    await write(services, lambda s: _add(s, dose(world, product, 1)))
    await write(
        services,
        lambda s: s.execute(text("DELETE FROM student WHERE id = :id"), {"id": world.student_ids["HS0005"]}),
    )
    assert await count(services, VaccineDose) == 0


# --- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [0, -1])
async def test_quantity_positive(services: Services, quantity: int) -> None:
    world = await make_world(services)
    await rejected(services, lambda s: _add(s, batch(world, quantity=quantity)))


async def test_allocated_within_quantity(services: Services) -> None:
    world = await make_world(services)
    await rejected(services, lambda s: _add(s, batch(world, quantity=5, allocated=6)))
    await rejected(services, lambda s: _add(s, batch(world, quantity=5, allocated=-1)))
    await write(services, lambda s: _add(s, batch(world, quantity=5, allocated=5)))
    # The guard also holds for an UPDATE that would hand out more devices than the batch has.
    await rejected(services, lambda s: s.execute(text("UPDATE donation_batch SET allocated = allocated + 1")))


@pytest.mark.parametrize("grade", [0, 13, -4])
async def test_grade_range(services: Services, grade: int) -> None:
    world = await make_world(services)
    await rejected(services, lambda s: _add(s, student(world, grade=grade)))


@pytest.mark.parametrize("grade", [1, 12])
async def test_grade_range_bounds_accepted(services: Services, grade: int) -> None:
    world = await make_world(services)
    await write(services, lambda s: _add(s, student(world, grade=grade)))


async def test_need_must_need_something(services: Services) -> None:
    world = await make_world(services)

    def need(**overrides: Any) -> NeedRecord:
        values: dict[str, Any] = {
            "student_id": world.student_ids["HS0001"],
            "category": PriorityGroup.POOR,
            "needs_device": True,
            "needs_connectivity": False,
            "opened_on": date(2021, 11, 15),
            "changed_on": date(2021, 11, 15),
        }
        values.update(overrides)
        return NeedRecord(**values)

    await rejected(services, lambda s: _add(s, need(needs_device=False, needs_connectivity=False)))
    await rejected(services, lambda s: _add(s, need(category=PriorityGroup.NONE)))
    await write(services, lambda s: _add(s, need(needs_device=False, needs_connectivity=True)))
    # One need record per student.
    await rejected(services, lambda s: _add(s, need()))


async def test_only_loans_are_returned(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    await rejected(services, lambda s: _add(s, handover(world, batch_id, returned_on=date(2021, 11, 14))))


async def test_returned_on_or_after_handed(services: Services) -> None:
    world = await make_world(services)
    batch_id = await a_batch(services, world)
    await rejected(
        services,
        lambda s: _add(
            s,
            handover(
                world,
                batch_id,
                kind=HandoverKind.LOAN,
                handed_on=date(2021, 11, 12),
                returned_on=date(2021, 11, 11),
            ),
        ),
    )
    # The same day is fine.
    await write(
        services,
        lambda s: _add(
            s,
            handover(
                world,
                batch_id,
                kind=HandoverKind.LOAN,
                handed_on=date(2021, 11, 12),
                returned_on=date(2021, 11, 12),
            ),
        ),
    )


async def test_a_returned_submission_has_a_reason(services: Services, clock: Any) -> None:
    world = await make_world(services)
    now = clock.now()
    round_ = ReportingRound(
        district_id=world.district_id,
        name="Đợt 15/11/2021",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=now,
        approve_deadline=now,
        compile_deadline=now,
    )
    await write(services, lambda s: _add(s, round_))

    def submission(**overrides: Any) -> RoundSubmission:
        values: dict[str, Any] = {
            "round_id": round_.id,
            "school_id": world.primary_school_id,
            "track": SubmissionTrack.PROGRAM,
            "status": SubmissionStatus.RETURNED,
            "return_reason": "",
        }
        values.update(overrides)
        return RoundSubmission(**values)

    await rejected(services, lambda s: _add(s, submission()))
    await write(services, lambda s: _add(s, submission(return_reason="Thiếu danh sách lớp 4A1")))
    # One submission per school, round and track.
    await rejected(services, lambda s: _add(s, submission(status=SubmissionStatus.SUBMITTED)))


async def test_round_deadlines_in_order(services: Services, clock: Any) -> None:
    world = await make_world(services)
    now = clock.now()
    from datetime import timedelta

    def round_(submit: int, approve: int, compile_: int) -> ReportingRound:
        return ReportingRound(
            district_id=world.district_id,
            name="Đợt thử",
            period_start=date(2021, 9, 1),
            period_end=date(2021, 11, 15),
            submit_deadline=now + timedelta(hours=submit),
            approve_deadline=now + timedelta(hours=approve),
            compile_deadline=now + timedelta(hours=compile_),
        )

    await rejected(services, lambda s: _add(s, round_(2, 1, 3)))
    await rejected(services, lambda s: _add(s, round_(1, 3, 2)))
    await write(services, lambda s: _add(s, round_(1, 2, 3)))


@pytest.mark.parametrize("role", [Role.TEACHER, Role.PRINCIPAL])
async def test_school_roles_need_a_school(services: Services, role: Role) -> None:
    world = await make_world(services)
    await rejected(
        services,
        lambda s: _add(
            s,
            Staff(telegram_user_id=5555, full_name="Không Trường", role=role, district_id=world.district_id),
        ),
    )


async def test_district_roles_need_no_school(services: Services) -> None:
    world = await make_world(services)
    await write(
        services,
        lambda s: _add(
            s,
            Staff(
                telegram_user_id=5555,
                full_name="Chuyên Viên",
                role=Role.PRIMARY_SPECIALIST,
                district_id=world.district_id,
            ),
        ),
    )


# --- enumerations (CHECK constraints; the ORM would refuse the value before the database) ---------

ENUM_CASES = [
    (
        "school",
        "INSERT INTO school (district_id, code, name, level, address, active, created_at) "
        "VALUES (:district_id, 'X1', 'Trường X', :value, '', true, CURRENT_TIMESTAMP)",
        "TH",
    ),
    (
        "staff",
        "INSERT INTO staff (full_name, phone, telegram_username, role, district_id, language, active, "
        "created_at) VALUES ('Ai Đó', '', '', :value, :district_id, 'vi', true, CURRENT_TIMESTAMP)",
        "admin",
    ),
    (
        "student",
        "INSERT INTO student (school_id, code, full_name, search_name, date_of_birth, grade, class_name, "
        "priority_group, entered_at) VALUES (:school_id, 'HS7777', 'Ai Đó', 'ai do', '2012-01-01', 4, '4A1', "
        ":value, CURRENT_TIMESTAMP)",
        "near_poor",
    ),
    (
        "donation_batch",
        "INSERT INTO donation_batch (school_id, number, source, received_on, quantity, device_type, "
        "make_model, condition, specs, note, allocated, entered_late, entered_at) VALUES (:school_id, 99, "
        "'program', '2021-11-10', 3, :value, '', 'new', '', '', 0, false, CURRENT_TIMESTAMP)",
        "tablet",
    ),
]


@pytest.mark.parametrize(("table", "sql", "good"), ENUM_CASES, ids=[case[0] for case in ENUM_CASES])
async def test_enum_columns_reject_unknown_values(
    services: Services, table: str, sql: str, good: str
) -> None:
    world = await make_world(services)
    params = {"district_id": world.district_id, "school_id": world.primary_school_id}
    for bad in ("XX", "", "Laptop ", "TH&THCS"):
        await rejected(services, lambda s, bad=bad: s.execute(text(sql), {**params, "value": bad}))
    await write(services, lambda s: s.execute(text(sql), {**params, "value": good}))


async def test_orm_refuses_unknown_enum_values_too(services: Services) -> None:
    world = await make_world(services)
    with pytest.raises(StatementError, match="not among the defined enum values"):
        await write(services, lambda s: _add(s, batch(world, device_type="spaceship")))


# --- SQLite connection settings -------------------------------------------------------------------


async def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pragmas.sqlite3'}")
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        # A new connection gets them too, not only the first.
        await engine.dispose()
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        await engine.dispose()


async def test_open_read_sessions_do_not_lock_out_others(services: Services) -> None:
    """Reads never hold the write lock (SQLite: deferred BEGIN in WAL), so a long read (an export)
    or a read session left open around another call neither blocks writers nor other readers."""
    world = await make_world(services)
    async with services.sessionmaker() as reader, services.sessionmaker() as other_reader:
        assert await reader.scalar(select(func.count()).select_from(Student)) == len(world.student_ids)
        assert await other_reader.scalar(select(func.count()).select_from(Student)) == len(world.student_ids)
        await write(services, lambda s: _add(s, student(world, code="HS8888")))
        assert await count(services, Student) == len(world.student_ids) + 1
