"""Handovers: gifts and loans, never over-allocated (also under a race), returns, edits, /my entries."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.errors import render_error
from storage.enums import AuditAction, DonationSource, HandoverKind, SubmissionStatus
from storage.errors import DomainError
from storage.models import AuditLog, Handover
from storage.schemas.devices import BatchIn, BatchOut, HandoverIn, HandoverUpdate
from storage.schemas.students import StudentIn
from tests.factories import make_world
from tests.helpers import allocated, staff_of
from tests.test_donations_service import add_donor, lock_school

TODAY = date(2021, 11, 15)
RACE_ROUNDS = 20


async def make_batch(
    services, world, *, quantity: int = 5, source: str = "other", received_on: date = date(2021, 11, 10)
) -> BatchOut:
    donor_id = await add_donor(services, world) if source == "other" else None
    data = BatchIn(
        source=source, donor_id=donor_id, received_on=received_on, quantity=quantity, device_type="laptop"
    )
    return await services.donations.create_batch(data, school_id=world.primary_school_id, actor_id=None)


def gift(batch_id: int, student_id: int, handed_on: date = TODAY, kind: str = "gift") -> HandoverIn:
    return HandoverIn(batch_id=batch_id, student_id=student_id, kind=kind, handed_on=handed_on)


async def add_students(services, world, count: int, prefix: str = "RC") -> list[int]:
    rows = [
        StudentIn(
            code=f"{prefix}{i:03d}",
            full_name="Phan Văn Tí",
            date_of_birth=date(2012, 1, 1 + i),
            class_name="4A3",
        )
        for i in range(count)
    ]
    result = await services.students.upsert_many(rows, school_id=world.primary_school_id, actor_id=None)
    return [result.student_ids[row.code] for row in rows]


async def active_handovers(services, batch_id: int) -> int:
    async with services.sessionmaker() as session:
        return await session.scalar(
            select(func.count(Handover.id)).where(
                Handover.batch_id == batch_id, Handover.returned_on.is_(None)
            )
        )


# --- the happy path and its rules -------------------------------------------------------------------------


async def test_hand_over_a_gift(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = world.staff_ids["teacher"]
    handover = await services.handovers.create_handover(
        HandoverIn.model_validate(
            {
                "batch_id": batch.id,
                "student_id": world.student_ids["HS0001"],
                "kind": "tặng",
                "handed_on": "hôm nay",
                "receipt_photo_file_id": "AgACAgUAAxkBAAIB",
                "note": " biên bản số 12 ",
            },
            context={"today": TODAY},
        ),
        school_id=world.primary_school_id,
        actor_id=teacher,
    )
    assert (handover.kind, handover.handed_on, handover.student_name, handover.class_name) == (
        HandoverKind.GIFT,
        TODAY,
        "Nguyễn Văn An",
        "4A1",
    )
    assert handover.batch_left == 1 and handover.active and not handover.entered_late
    assert (handover.receipt_photo_file_id, handover.note) == ("AgACAgUAAxkBAAIB", "biên bản số 12")
    async with services.sessionmaker() as session:
        entry = await session.scalar(select(AuditLog).where(AuditLog.entity == "handover"))
    assert entry.action is AuditAction.CREATE and entry.actor_id == teacher
    assert entry.school_id == world.primary_school_id and entry.after["student_id"] == handover.student_id


def test_handover_typed_answers_are_checked():
    with pytest.raises(ValidationError) as caught:
        HandoverIn(batch_id=1, student_id=1, kind="bán", handed_on=TODAY)
    assert "Chọn «Tặng» hoặc «Cho mượn tạm»" in render_error(caught.value)
    loan = HandoverIn.model_validate(
        {"batch_id": 1, "student_id": 1, "kind": "Cho muon tam", "handed_on": "14/11"},
        context={"today": TODAY},
    )
    assert (loan.kind, loan.handed_on) == (HandoverKind.LOAN, date(2021, 11, 14))


async def test_handover_dates_are_refused_with_a_reason(services):
    world = await make_world(services)
    batch = await make_batch(services, world, received_on=date(2021, 11, 10))
    student = world.student_ids["HS0001"]
    cases = [
        (date(2021, 11, 16), "date.future"),
        (date(2021, 8, 31), "date.too_early"),
        (date(2021, 11, 9), "devices.handed_before_received"),
    ]
    for handed_on, code in cases:
        with pytest.raises(DomainError) as caught:
            await services.handovers.create_handover(
                gift(batch.id, student, handed_on), school_id=world.primary_school_id, actor_id=None
            )
        assert caught.value.code == code
    assert "trước ngày trường nhận lô (10/11/2021)" in render_error(caught.value)
    assert await allocated(services, batch.id) == 0


async def test_late_handover_is_saved_and_flagged(services):
    world = await make_world(services)
    batch = await make_batch(services, world, received_on=date(2021, 11, 1))
    late = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"], date(2021, 11, 13)),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    on_time = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0002"], date(2021, 11, 14)),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    assert late.entered_late and not on_time.entered_late


async def test_another_schools_batch_or_student_is_not_found(services):
    world = await make_world(services)
    batch = await make_batch(services, world)
    secondary = world.secondary_school_id
    with pytest.raises(DomainError) as caught:
        await services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0005"]), school_id=world.primary_school_id, actor_id=None
        )
    assert caught.value.code == "not_found.student"
    with pytest.raises(DomainError) as caught:
        await services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0005"]), school_id=secondary, actor_id=None
        )
    assert caught.value.code == "not_found.batch"
    handover = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"]), school_id=world.primary_school_id, actor_id=None
    )
    for call in (
        services.handovers.get_handover(handover.id, school_id=secondary),
        services.handovers.delete_handover(handover.id, school_id=secondary, actor_id=None),
        services.handovers.update_handover(
            handover.id, HandoverUpdate(note="x"), school_id=secondary, actor_id=None
        ),
    ):
        with pytest.raises(DomainError) as caught:
            await call
        assert caught.value.code == "not_found.record"
    assert await services.handovers.open_loans(secondary) == []


async def test_one_active_device_per_student_per_batch(services):
    world = await make_world(services)
    batch = await make_batch(services, world)
    student = world.student_ids["HS0001"]
    await services.handovers.create_handover(
        gift(batch.id, student), school_id=world.primary_school_id, actor_id=None
    )
    with pytest.raises(DomainError) as caught:
        await services.handovers.create_handover(
            gift(batch.id, student), school_id=world.primary_school_id, actor_id=None
        )
    assert caught.value.code == "devices.already_handed_from_batch"
    assert "Nguyễn Văn An đã nhận thiết bị từ lô này ngày 15/11/2021" in render_error(caught.value)
    assert await allocated(services, batch.id) == 1


async def test_second_program_device_needs_confirmation(services):
    world = await make_world(services)
    first = await make_batch(services, world, source="program")
    second = await make_batch(services, world, source="program")
    other = await make_batch(services, world, source="other")
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await services.handovers.create_handover(
        gift(first.id, student, kind="loan"), school_id=school, actor_id=None
    )
    with pytest.raises(DomainError) as caught:
        await services.handovers.create_handover(gift(second.id, student), school_id=school, actor_id=None)
    assert caught.value.code == "devices.second_program_device"
    assert caught.value.params["kind"] == "loan"
    assert "Nguyễn Văn An đã nhận một thiết bị của Chương trình" in render_error(caught.value)
    assert await allocated(services, second.id) == 0
    # A device from another donor is no warning; a confirmed second programme device is saved.
    await services.handovers.create_handover(gift(other.id, student), school_id=school, actor_id=None)
    confirmed = await services.handovers.create_handover(
        gift(second.id, student), school_id=school, actor_id=None, confirm_second_program_device=True
    )
    assert confirmed.batch_source is DonationSource.PROGRAM


async def test_a_batch_is_never_over_allocated(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=1)
    school = world.primary_school_id
    await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"]), school_id=school, actor_id=None
    )
    with pytest.raises(DomainError) as caught:
        await services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0002"]), school_id=school, actor_id=None
        )
    assert caught.value.code == "devices.batch_exhausted"
    assert "Chưa có gì được lưu" in render_error(caught.value)
    assert await allocated(services, batch.id) == 1 and await active_handovers(services, batch.id) == 1


# --- races and double confirms ------------------------------------------------------------------------------


async def test_two_confirms_of_the_last_device_at_once(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=1)
    school = world.primary_school_id
    results = await asyncio.gather(
        services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0001"]), school_id=school, actor_id=None
        ),
        services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0002"]), school_id=school, actor_id=None
        ),
        return_exceptions=True,
    )
    saved = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(saved) == 1 and len(refused) == 1
    assert isinstance(refused[0], DomainError) and refused[0].code == "devices.batch_exhausted"
    assert await allocated(services, batch.id) == 1 and await active_handovers(services, batch.id) == 1
    async with services.sessionmaker() as session:
        audits = await session.scalar(select(func.count(AuditLog.id)).where(AuditLog.entity == "handover"))
    assert audits == 1  # the loser changed nothing


async def test_many_concurrent_confirms_never_exceed_the_quantity(services):
    world = await make_world(services)
    school = world.primary_school_id
    students = await add_students(services, world, 8)
    donor_id = await add_donor(services, world)
    for _ in range(RACE_ROUNDS):
        batch = await make_batch_quick(services, school, donor_id, quantity=5)
        results = await asyncio.gather(
            *(
                services.handovers.create_handover(gift(batch.id, student), school_id=school, actor_id=None)
                for student in students
            ),
            return_exceptions=True,
        )
        saved = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(saved) == 5, refused
        assert all(isinstance(r, DomainError) and r.code == "devices.batch_exhausted" for r in refused)
        assert await allocated(services, batch.id) == 5 == await active_handovers(services, batch.id)


async def make_batch_quick(services, school_id: int, donor_id: int, quantity: int) -> BatchOut:
    data = BatchIn(
        source="other",
        donor_id=donor_id,
        received_on=date(2021, 11, 10),
        quantity=quantity,
        device_type="laptop",
    )
    return await services.donations.create_batch(data, school_id=school_id, actor_id=None)


async def test_double_confirm_saves_one_handover(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    school = world.primary_school_id
    data = gift(batch.id, world.student_ids["HS0001"])
    first = await services.handovers.create_handover(
        data, school_id=school, actor_id=None, request_key="tap-1"
    )
    again = await services.handovers.create_handover(
        data, school_id=school, actor_id=None, request_key="tap-1"
    )
    assert again.id == first.id and again.replayed
    # The same update delivered twice at the same moment.
    other = gift(batch.id, world.student_ids["HS0002"])
    both = await asyncio.gather(
        *(
            services.handovers.create_handover(other, school_id=school, actor_id=None, request_key="tap-2")
            for _ in range(2)
        )
    )
    assert both[0].id == both[1].id
    assert await allocated(services, batch.id) == 2 and await active_handovers(services, batch.id) == 2


# --- loans and returns ------------------------------------------------------------------------------------


async def test_loan_then_return(services, clock):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=1)
    school = world.primary_school_id
    loan = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"], kind="loan"), school_id=school, actor_id=None
    )
    assert [h.id for h in await services.handovers.open_loans(school)] == [loan.id]
    assert loan.batch_left == 0
    clock.advance(timedelta(days=30))
    with pytest.raises(DomainError) as caught:
        await services.handovers.return_loan(loan.id, date(2021, 11, 14), school_id=school, actor_id=None)
    assert caught.value.code == "devices.returned_before_handed"
    with pytest.raises(DomainError) as caught:
        await services.handovers.return_loan(loan.id, date(2021, 12, 16), school_id=school, actor_id=None)
    assert caught.value.code == "date.future"
    teacher = world.staff_ids["teacher"]
    returned = await services.handovers.return_loan(
        loan.id, date(2021, 12, 15), school_id=school, actor_id=teacher
    )
    assert returned.returned_on == date(2021, 12, 15) and not returned.active and returned.batch_left == 1
    assert await services.handovers.open_loans(school) == []
    with pytest.raises(DomainError) as caught:
        await services.handovers.return_loan(loan.id, date(2021, 12, 15), school_id=school, actor_id=None)
    assert caught.value.code == "devices.already_returned"
    # The device is back in stock: it can go to someone else, and the first student can get it again.
    await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"], date(2021, 12, 15)), school_id=school, actor_id=None
    )
    async with services.sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.entity == "handover", AuditLog.entity_id == str(loan.id))
                .order_by(AuditLog.id)
            )
        )
    assert [e.action for e in entries] == [AuditAction.CREATE, AuditAction.UPDATE]
    assert entries[1].before["returned_on"] is None and entries[1].after["returned_on"] == "2021-12-15"


async def test_a_gift_cannot_be_returned(services):
    world = await make_world(services)
    batch = await make_batch(services, world)
    handover = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"]), school_id=world.primary_school_id, actor_id=None
    )
    with pytest.raises(DomainError) as caught:
        await services.handovers.return_loan(
            handover.id, TODAY, school_id=world.primary_school_id, actor_id=None
        )
    assert caught.value.code == "devices.not_a_loan"


async def test_two_returns_at_once_release_one_device(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    school = world.primary_school_id
    loan = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"], kind="loan"), school_id=school, actor_id=None
    )
    await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0002"]), school_id=school, actor_id=None
    )
    results = await asyncio.gather(
        *(services.handovers.return_loan(loan.id, TODAY, school_id=school, actor_id=None) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["DomainError", "HandoverOut"]
    assert await allocated(services, batch.id) == 1


# --- edit and delete --------------------------------------------------------------------------------


async def test_update_handover_is_audited(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2, received_on=date(2021, 11, 1))
    school = world.primary_school_id
    handover = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"]), school_id=school, actor_id=None
    )
    teacher = world.staff_ids["teacher"]
    updated = await services.handovers.update_handover(
        handover.id,
        HandoverUpdate(student_id=world.student_ids["HS0003"], kind="loan", handed_on=date(2021, 11, 12)),
        school_id=school,
        actor_id=teacher,
    )
    assert (updated.student_id, updated.kind, updated.handed_on) == (
        world.student_ids["HS0003"],
        HandoverKind.LOAN,
        date(2021, 11, 12),
    )
    assert updated.entered_late  # the handover happened on the 12th but was entered on the 15th
    assert updated.batch_left == 1
    async with services.sessionmaker() as session:
        entry = await session.scalar(
            select(AuditLog).where(AuditLog.entity == "handover", AuditLog.action == AuditAction.UPDATE)
        )
    assert entry.actor_id == teacher and entry.school_id == school
    assert (entry.before["kind"], entry.after["kind"]) == ("gift", "loan")
    assert (entry.before["student_id"], entry.after["student_id"]) == (
        world.student_ids["HS0001"],
        world.student_ids["HS0003"],
    )
    # Undo a return recorded by mistake, then record it again through an edit.
    returned = await services.handovers.update_handover(
        handover.id, HandoverUpdate(returned_on=TODAY), school_id=school, actor_id=teacher
    )
    assert returned.batch_left == 2
    reopened = await services.handovers.update_handover(
        handover.id, HandoverUpdate(returned_on=None), school_id=school, actor_id=teacher
    )
    assert reopened.active and reopened.batch_left == 1


async def test_update_handover_rules(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3, received_on=date(2021, 11, 10))
    school = world.primary_school_id
    ids = world.student_ids
    first = await services.handovers.create_handover(
        gift(batch.id, ids["HS0001"]), school_id=school, actor_id=None
    )
    await services.handovers.create_handover(gift(batch.id, ids["HS0002"]), school_id=school, actor_id=None)
    loan = await services.handovers.create_handover(
        gift(batch.id, ids["HS0003"], kind="loan"), school_id=school, actor_id=None
    )
    await services.handovers.return_loan(loan.id, TODAY, school_id=school, actor_id=None)
    cases = [
        (first.id, HandoverUpdate(student_id=ids["HS0002"]), "devices.already_handed_from_batch"),
        (first.id, HandoverUpdate(student_id=ids["HS0005"]), "not_found.student"),
        (first.id, HandoverUpdate(handed_on=date(2021, 11, 9)), "devices.handed_before_received"),
        (first.id, HandoverUpdate(returned_on=TODAY), "devices.not_a_loan"),
        (loan.id, HandoverUpdate(kind="gift"), "devices.returned_kind_change"),
        (loan.id, HandoverUpdate(handed_on=date(2021, 11, 15), returned_on=date(2021, 11, 14)), None),
    ]
    for handover_id, data, code in cases:
        with pytest.raises(DomainError) as caught:
            await services.handovers.update_handover(handover_id, data, school_id=school, actor_id=None)
        if code is not None:
            assert caught.value.code == code, data
        else:
            assert caught.value.code == "devices.returned_before_handed"
    # Reopening the returned loan when the batch has been given out in full is refused.
    await services.handovers.create_handover(gift(batch.id, ids["HS0004"]), school_id=school, actor_id=None)
    with pytest.raises(DomainError) as caught:
        await services.handovers.update_handover(
            loan.id, HandoverUpdate(returned_on=None), school_id=school, actor_id=None
        )
    assert caught.value.code == "devices.batch_exhausted"
    assert await allocated(services, batch.id) == 3


async def test_delete_handover_gives_the_device_back(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=1)
    school = world.primary_school_id
    handover = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"]), school_id=school, actor_id=None
    )
    teacher = world.staff_ids["teacher"]
    await services.handovers.delete_handover(handover.id, school_id=school, actor_id=teacher)
    assert await allocated(services, batch.id) == 0
    async with services.sessionmaker() as session:
        entry = await session.scalar(
            select(AuditLog).where(AuditLog.entity == "handover", AuditLog.action == AuditAction.DELETE)
        )
    assert entry.actor_id == teacher and entry.after is None and entry.before["id"] == handover.id
    with pytest.raises(DomainError) as caught:
        await services.handovers.delete_handover(handover.id, school_id=school, actor_id=teacher)
    assert caught.value.code == "not_found.record"
    # A returned loan's device is already back: deleting it does not free a second one.
    loan = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0002"], kind="loan"), school_id=school, actor_id=None
    )
    await services.handovers.return_loan(loan.id, TODAY, school_id=school, actor_id=None)
    await services.handovers.delete_handover(loan.id, school_id=school, actor_id=None)
    assert await allocated(services, batch.id) == 0


async def test_locked_round_refuses_handover_changes(services):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    school = world.primary_school_id
    handover = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0001"], kind="loan"), school_id=school, actor_id=None
    )
    await lock_school(services, school, SubmissionStatus.APPROVED)
    attempts = [
        services.handovers.create_handover(
            gift(batch.id, world.student_ids["HS0002"]), school_id=school, actor_id=None
        ),
        services.handovers.update_handover(
            handover.id, HandoverUpdate(note="x"), school_id=school, actor_id=None
        ),
        services.handovers.return_loan(handover.id, TODAY, school_id=school, actor_id=None),
        services.handovers.delete_handover(handover.id, school_id=school, actor_id=None),
    ]
    for attempt in attempts:
        with pytest.raises(DomainError) as caught:
            await attempt
        assert caught.value.code == "devices.locked_approved"  # issue 14: approved, only a reopen
    assert await allocated(services, batch.id) == 1


# --- /my ------------------------------------------------------------------------------------------


async def test_a_persons_device_records_in_my(services, clock):
    """/my's list (`services.entries`): the person's batches and handovers newest first, paged, each
    locked one marked with its round and the refusal; another person's neither listed nor found."""
    world = await make_world(services)
    school = world.primary_school_id
    teacher, principal = world.staff_ids["teacher"], world.staff_ids["principal"]
    batch = await services.donations.create_batch(
        BatchIn(source="program", received_on=date(2021, 11, 12), quantity=4, device_type="tablet"),
        school_id=school,
        actor_id=teacher,
    )
    handovers = []
    for code in ("HS0001", "HS0002", "HS0003"):
        clock.advance(timedelta(minutes=5))
        handovers.append(
            await services.handovers.create_handover(
                gift(batch.id, world.student_ids[code]),
                school_id=school,
                actor_id=teacher,
                confirm_second_program_device=True,
            )
        )
    clock.advance(timedelta(minutes=5))
    theirs = await services.handovers.create_handover(
        gift(batch.id, world.student_ids["HS0004"]), school_id=school, actor_id=principal
    )
    me = await staff_of(services, "teacher")
    first = await services.entries.page(me, page_size=3)
    assert [(e.kind, e.id) for e in first.items] == [("handover", h.id) for h in reversed(handovers)]
    assert (first.total, first.pages) == (4, 2)
    assert [e.kind for e in (await services.entries.page(me, page=2, page_size=3)).items] == ["batch"]
    everything = (await services.entries.page(me)).items
    assert [e.kind for e in everything] == ["handover", "handover", "handover", "batch"]
    batch_entry = everything[-1]
    assert batch_entry.entered_late  # received on the 12th, entered on the 15th
    assert batch_entry.details["quantity"] == 4 and batch_entry.details["left"] == 0
    assert everything[0].subject == "Nguyễn Văn An" and everything[0].details["kind"] == "gift"
    assert all(e.editable and e.locked_round is None and e.refusal is None for e in everything)
    handed = await services.entries.page(me, kind="handover")
    assert [e.id for e in handed.items] == [h.id for h in reversed(handovers)]
    with pytest.raises(DomainError) as missing:
        await services.entries.entry(me, "handover", theirs.id)
    assert missing.value.code == "not_found.record"

    await lock_school(services, school)
    locked = (await services.entries.page(me)).items
    assert all(not e.editable and e.locked_round == "Đợt 15/11/2021" for e in locked)
    assert {e.refusal.code for e in locked if e.refusal is not None} == {"devices.locked"}
    assert (await services.entries.entry(me, "batch", batch.id)).refusal == locked[-1].refusal
    other = await services.entries.page(await staff_of(services, "teacher_thcs"))
    assert (other.items, other.total) == ([], 0)
