"""Donors and donation batches (menu 4.8.3): rules, lateness, idempotent confirm, edit/delete, locks."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.errors import render_error
from bot.texts import load
from storage.enums import (
    AuditAction,
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    HandoverKind,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.errors import DomainError
from storage.models import AuditLog, DonationBatch, ReportingRound, RoundSubmission
from storage.schemas.devices import BatchIn, BatchUpdate, DonorIn, HandoverIn
from tests.conftest import TZ
from tests.factories import make_world

TODAY = date(2021, 11, 15)


async def add_donor(services, world, name: str = "Công ty TNHH Ánh Dương") -> int:
    donor = await services.donations.add_donor(
        DonorIn(name=name, kind="doanh nghiệp", contact="028 3873 0000"),
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["teacher"],
    )
    return donor.id


def other_batch(donor_id: int, **changes: object) -> BatchIn:
    values: dict[str, object] = {
        "source": DonationSource.OTHER,
        "donor_id": donor_id,
        "received_on": TODAY,
        "quantity": 10,
        "device_type": DeviceType.LAPTOP,
        "make_model": "Dell Latitude 3420",
        "condition": DeviceCondition.USED,
    }
    values.update(changes)
    return BatchIn.model_validate(values, context={"today": TODAY})


async def lock_school(
    services, school_id: int, status: SubmissionStatus = SubmissionStatus.SUBMITTED
) -> None:
    async with services.sessionmaker.begin() as session:
        round_ = ReportingRound(
            district_id=await _district_of(session, school_id),
            name="Đợt 15/11/2021",
            period_start=date(2021, 9, 1),
            period_end=date(2021, 11, 15),
            submit_deadline=datetime(2021, 11, 15, 15, 30, tzinfo=TZ),
            approve_deadline=datetime(2021, 11, 16, 11, 0, tzinfo=TZ),
            compile_deadline=datetime(2021, 11, 16, 17, 0, tzinfo=TZ),
        )
        session.add(round_)
        await session.flush()
        reason = "Thiếu ảnh biên bản" if status is SubmissionStatus.RETURNED else ""
        session.add(
            RoundSubmission(
                round_id=round_.id,
                school_id=school_id,
                track=SubmissionTrack.PROGRAM,
                status=status,
                return_reason=reason,
            )
        )


async def _district_of(session, school_id: int) -> int:
    from storage.models import School

    return (await session.get(School, school_id)).district_id


async def audit_rows(services, entity: str) -> list[AuditLog]:
    async with services.sessionmaker() as session:
        return list(
            await session.scalars(select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))
        )


# --- donors -------------------------------------------------------------------------------------------


async def test_donors_of_a_school(services):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    donors = await services.donations.donors(world.primary_school_id)
    assert [(d.id, d.name, d.kind) for d in donors] == [
        (donor_id, "Công ty TNHH Ánh Dương", DonorKind.BUSINESS)
    ]
    assert await services.donations.donors(world.secondary_school_id) == []
    found = await services.donations.donor_by_name(world.primary_school_id, "cong ty tnhh anh duong")
    assert found is not None and found.id == donor_id
    with pytest.raises(DomainError) as caught:
        await services.donations.add_donor(
            DonorIn(name="CÔNG TY TNHH ÁNH DƯƠNG", kind="business"),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    assert caught.value.code == "devices.donor_exists"
    # The same name is fine in another school.
    await services.donations.add_donor(
        DonorIn(name="Công ty TNHH Ánh Dương", kind="to chuc"),
        school_id=world.secondary_school_id,
        actor_id=None,
    )
    with pytest.raises(ValidationError) as invalid:
        DonorIn(name="Bà Năm", kind="hàng xóm")
    assert "Loại nhà tài trợ «hàng xóm» không hợp lệ" in render_error(invalid.value)


# --- creating batches ---------------------------------------------------------------------------------


async def test_create_batch_other_source_with_stock(services):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    batch = await services.donations.create_batch(
        other_batch(donor_id), school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"]
    )
    assert (batch.source, batch.donor_name, batch.quantity, batch.left, batch.handed_over) == (
        DonationSource.OTHER,
        "Công ty TNHH Ánh Dương",
        10,
        10,
        0,
    )
    assert not batch.entered_late and not batch.replayed
    assert batch.entered_by_id == world.staff_ids["teacher"]
    (entry,) = await audit_rows(services, "donation_batch")
    assert entry.action is AuditAction.CREATE and entry.after["quantity"] == 10


async def test_program_batch_needs_no_donor_but_other_source_does(services):
    world = await make_world(services)
    program = await services.donations.create_batch(
        BatchIn(source="chương trình", received_on=TODAY, quantity="1.000", device_type="máy tính bảng"),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    assert (program.source, program.donor_id, program.quantity, program.device_type) == (
        DonationSource.PROGRAM,
        None,
        1000,
        DeviceType.TABLET,
    )
    with pytest.raises(ValidationError) as caught:
        BatchIn(source="nguồn khác", received_on=TODAY, quantity=5, device_type="laptop")
    assert "cần có nhà tài trợ" in render_error(caught.value)


async def test_batch_typed_answers_are_checked(services):
    cases = {
        "received_on": ("16/11/2021", "date.future"),
        "quantity": ("0", "quantity.not_positive"),
        "device_type": ("tivi", "devices.device_type_invalid"),
        "condition": ("hư", "devices.condition_invalid"),
        "source": ("xyz", "devices.source_invalid"),
    }
    for field, (typed, code) in cases.items():
        with pytest.raises(ValidationError) as caught:
            other_batch(1, **{field: typed})
        inner = caught.value.errors()[0]["ctx"]["error"]
        assert inner.code == code, field
    with pytest.raises(ValidationError) as caught:
        other_batch(1, received_on="31/08/2021")
    assert "không được trước 01/09/2021" in render_error(caught.value)
    assert other_batch(1, received_on="hôm qua").received_on == date(2021, 11, 14)


async def test_batch_dates_are_checked_again_by_the_service(services):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    for received_on, code in ((date(2021, 8, 31), "date.too_early"), (date(2021, 11, 16), "date.future")):
        data = BatchIn(
            source="other", donor_id=donor_id, received_on=received_on, quantity=1, device_type="laptop"
        )
        with pytest.raises(DomainError) as caught:
            await services.donations.create_batch(data, school_id=world.primary_school_id, actor_id=None)
        assert caught.value.code == code
    assert await services.donations.batches_with_stock(world.primary_school_id) == []


async def test_another_schools_donor_is_refused(services):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    with pytest.raises(DomainError) as caught:
        await services.donations.create_batch(
            other_batch(donor_id), school_id=world.secondary_school_id, actor_id=None
        )
    assert caught.value.code == "devices.donor_not_found"


async def test_late_receipt_is_saved_and_flagged(services, clock):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    # Received on the 13th: entering it on the 14th is on time, on the 15th (today) is late.
    late = await services.donations.create_batch(
        other_batch(donor_id, received_on=date(2021, 11, 13)),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    on_time = await services.donations.create_batch(
        other_batch(donor_id, received_on=date(2021, 11, 14)),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    assert late.entered_late and not on_time.entered_late
    # 23:59 local time on D+1 is still on time.
    clock.freeze(datetime(2021, 11, 16, 23, 59, tzinfo=TZ))
    edge = await services.donations.create_batch(
        other_batch(donor_id, received_on=date(2021, 11, 15)),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    assert not edge.entered_late


async def test_double_confirm_saves_one_batch(services):
    world = await make_world(services)
    donor_id = await add_donor(services, world)
    data = other_batch(donor_id)
    first = await services.donations.create_batch(
        data, school_id=world.primary_school_id, actor_id=None, request_key="draft-1"
    )
    second = await services.donations.create_batch(
        data, school_id=world.primary_school_id, actor_id=None, request_key="draft-1"
    )
    assert second.id == first.id and second.replayed and not first.replayed
    # Telegram delivering the same update twice at the same moment.
    both = await asyncio.gather(
        *(
            services.donations.create_batch(
                data, school_id=world.primary_school_id, actor_id=None, request_key="draft-2"
            )
            for _ in range(2)
        )
    )
    assert both[0].id == both[1].id
    async with services.sessionmaker() as session:
        assert await session.scalar(select(func.count(DonationBatch.id))) == 2
    assert len(await audit_rows(services, "donation_batch")) == 2


# --- stock, edit, delete --------------------------------------------------------------------------------


async def test_batches_with_stock_counts_gifts_open_loans_and_returns(services):
    world = await make_world(services)
    school = world.primary_school_id
    donor_id = await add_donor(services, world)
    batch = await services.donations.create_batch(
        other_batch(donor_id, quantity=3), school_id=school, actor_id=None
    )
    ids = world.student_ids
    await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=ids["HS0001"], kind="gift", handed_on=TODAY),
        school_id=school,
        actor_id=None,
    )
    loan = await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=ids["HS0002"], kind="loan", handed_on=TODAY),
        school_id=school,
        actor_id=None,
    )
    await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=ids["HS0003"], kind="cho mượn", handed_on=TODAY),
        school_id=school,
        actor_id=None,
    )
    await services.handovers.return_loan(loan.id, TODAY, school_id=school, actor_id=None)
    (stock,) = await services.donations.batches_with_stock(school)
    assert (
        stock.quantity,
        stock.gifts,
        stock.open_loans,
        stock.returned_loans,
        stock.handed_over,
        stock.left,
    ) == (
        3,
        1,
        1,
        1,
        2,
        1,
    )
    assert len(await services.donations.batches_with_stock(school, with_stock_only=True)) == 1
    await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=ids["HS0004"], kind=HandoverKind.GIFT, handed_on=TODAY),
        school_id=school,
        actor_id=None,
    )
    assert await services.donations.batches_with_stock(school, with_stock_only=True) == []
    # Another school sees none of it.
    assert await services.donations.batches_with_stock(world.secondary_school_id) == []
    with pytest.raises(DomainError) as caught:
        await services.donations.get_batch(batch.id, school_id=world.secondary_school_id)
    assert caught.value.code == "not_found.batch"


async def test_update_batch_is_audited_and_checked(services, clock):
    world = await make_world(services)
    school = world.primary_school_id
    donor_id = await add_donor(services, world)
    batch = await services.donations.create_batch(
        other_batch(donor_id, quantity=2), school_id=school, actor_id=None
    )
    for code in ("HS0001", "HS0002"):
        await services.handovers.create_handover(
            HandoverIn(batch_id=batch.id, student_id=world.student_ids[code], kind="gift", handed_on=TODAY),
            school_id=school,
            actor_id=None,
        )
    teacher = world.staff_ids["teacher"]
    updated = await services.donations.update_batch(
        batch.id, BatchUpdate(quantity=5, make_model="HP 240 G8"), school_id=school, actor_id=teacher
    )
    assert (updated.quantity, updated.make_model, updated.left) == (5, "HP 240 G8", 3)
    entry = (await audit_rows(services, "donation_batch"))[-1]
    assert entry.action is AuditAction.UPDATE and entry.actor_id == teacher
    assert (entry.before["quantity"], entry.after["quantity"]) == (2, 5)
    assert (entry.before["make_model"], entry.after["make_model"]) == ("Dell Latitude 3420", "HP 240 G8")

    refusals = [
        (BatchUpdate(quantity=1), "devices.quantity_below_handed"),
        (BatchUpdate(received_on=date(2021, 11, 16)), "date.future"),
        (BatchUpdate(source="other", donor_id=None), "devices.donor_required"),
    ]
    for data, code in refusals:
        with pytest.raises(DomainError) as caught:
            await services.donations.update_batch(batch.id, data, school_id=school, actor_id=teacher)
        assert caught.value.code == code
    assert "đã bàn giao 2 thiết bị" in render_error(
        DomainError("devices.quantity_below_handed", quantity=1, handed=2)
    )
    assert len(await audit_rows(services, "donation_batch")) == 2  # the refusals wrote nothing
    # Received after the first handover: refused with the handover's date.
    clock.advance(timedelta(days=3))
    with pytest.raises(DomainError) as caught:
        await services.donations.update_batch(
            batch.id, BatchUpdate(received_on=date(2021, 11, 17)), school_id=school, actor_id=teacher
        )
    assert caught.value.code == "devices.received_after_handover"
    assert "15/11/2021" in render_error(caught.value)
    # A corrected date is judged against when the receipt was first entered.
    late = await services.donations.update_batch(
        batch.id, BatchUpdate(received_on=date(2021, 11, 10)), school_id=school, actor_id=teacher
    )
    assert late.entered_late
    with pytest.raises(DomainError) as caught:
        await services.donations.update_batch(
            batch.id, BatchUpdate(quantity=1), school_id=world.secondary_school_id, actor_id=teacher
        )
    assert caught.value.code == "not_found.batch"


async def test_delete_batch_refused_with_handovers_then_allowed(services):
    world = await make_world(services)
    school = world.primary_school_id
    donor_id = await add_donor(services, world)
    batch = await services.donations.create_batch(other_batch(donor_id), school_id=school, actor_id=None)
    handover = await services.handovers.create_handover(
        HandoverIn(batch_id=batch.id, student_id=world.student_ids["HS0001"], kind="gift", handed_on=TODAY),
        school_id=school,
        actor_id=None,
    )
    with pytest.raises(DomainError) as caught:
        await services.donations.delete_batch(batch.id, school_id=school, actor_id=None)
    assert caught.value.code == "devices.batch_has_handovers" and caught.value.params == {"count": 1}
    assert "1 lượt bàn giao" in render_error(caught.value)
    await services.handovers.delete_handover(handover.id, school_id=school, actor_id=None)
    teacher = world.staff_ids["teacher"]
    await services.donations.delete_batch(batch.id, school_id=school, actor_id=teacher)
    assert await services.donations.batches_with_stock(school) == []
    entry = (await audit_rows(services, "donation_batch"))[-1]
    assert entry.action is AuditAction.DELETE and entry.after is None and entry.before["id"] == batch.id


@pytest.mark.parametrize("status", [SubmissionStatus.SUBMITTED, SubmissionStatus.APPROVED])
async def test_locked_round_refuses_batch_changes(services, status):
    world = await make_world(services)
    school = world.primary_school_id
    donor_id = await add_donor(services, world)
    batch = await services.donations.create_batch(other_batch(donor_id), school_id=school, actor_id=None)
    await lock_school(services, school, status)
    attempts = [
        services.donations.create_batch(other_batch(donor_id), school_id=school, actor_id=None),
        services.donations.update_batch(batch.id, BatchUpdate(quantity=3), school_id=school, actor_id=None),
        services.donations.delete_batch(batch.id, school_id=school, actor_id=None),
    ]
    for attempt in attempts:
        with pytest.raises(DomainError) as caught:
            await attempt
        # Issue 14: the text names the round, the period, who can reopen it and what to do instead.
        approved = status is SubmissionStatus.APPROVED
        assert caught.value.code == ("devices.locked_approved" if approved else "devices.locked")
        text = render_error(caught.value)
        assert "Đợt 15/11/2021" in text and "01/09/2021 – 15/11/2021" in text and "16/11/2021" in text
        if approved:
            assert "Thống kê hoặc quản trị viên" in text and "/reopen" in text
        else:
            assert "chuyên viên Tiểu học/THCS" in text and "trả lại" in text
            assert "primary/lower-secondary specialist" in render_error(caught.value, "en")
    # The other school is not locked.
    await services.donations.create_batch(
        BatchIn(source="program", received_on=TODAY, quantity=1, device_type="laptop"),
        school_id=world.secondary_school_id,
        actor_id=None,
    )


async def test_returned_submission_unlocks(services):
    world = await make_world(services)
    school = world.primary_school_id
    await lock_school(services, school, SubmissionStatus.RETURNED)
    await services.donations.create_batch(
        BatchIn(source="program", received_on=TODAY, quantity=1, device_type="laptop"),
        school_id=school,
        actor_id=None,
    )


def test_every_device_and_student_error_has_both_languages():
    import re
    from pathlib import Path

    root = Path(__file__).parent.parent
    sources = [
        "storage/schemas/students.py",
        "storage/schemas/devices.py",
        "storage/services/students.py",
        "storage/services/donations.py",
        "storage/services/handovers.py",
        "storage/repositories/devices.py",
        "storage/rules/devices.py",
        "storage/rules/timeliness.py",
    ]
    codes: set[str] = set()
    for source in sources:
        text = (root / source).read_text(encoding="utf-8")
        codes |= set(re.findall(r"(?:DomainError|Conflict)\(\s*\"([a-z_.]+)\"", text))
        codes |= {f"not_found.{name}" for name in re.findall(r"NotFound\(\"([a-z_]+)\"", text)}
        codes |= set(re.findall(r"\"((?:students|devices)\.[a-z_]+)\"", text))
    assert "devices.batch_exhausted" in codes and "students.code_taken" in codes
    for language in ("vi", "en"):
        missing = sorted(code for code in codes if f"errors.{code}" not in load(language))
        assert missing == [], language
