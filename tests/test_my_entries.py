"""/my: the person's recent records of all four kinds, edited and deleted through the chat, audited."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from conversations.my_entries import Step
from storage.models import (
    AuditAction,
    AuditLog,
    DonationBatch,
    DosePlace,
    Handover,
    HandoverKind,
    NeedRecord,
    PriorityGroup,
    SubmissionStatus,
    VaccineDose,
)
from storage.schemas.devices import BatchIn, BatchOut, DonorIn, HandoverIn, HandoverOut
from storage.schemas.needs import NeedIn
from storage.schemas.vaccines import DoseIn
from storage.services import Services
from tests.chat import Harness, Person
from tests.factories import World, make_world
from tests.test_donations_service import lock_school

EDIT = "✏️ Sửa"
DELETE = "🗑 Xoá"
SAVE = "✅ Lưu thay đổi"


async def step_of(services: Services, person: Person) -> int | None:
    draft = await services.drafts.get(person.id, "my")
    return draft.step if draft else None


async def audits(services: Services, entity: str) -> list[AuditLog]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))
        return list(rows)


async def get(services: Services, model: type, row_id: int) -> Any:
    async with services.sessionmaker() as session:
        return await session.get(model, row_id)


async def teacher_batch(
    services: Services, world: World, *, quantity: int = 10, actor: str = "teacher"
) -> BatchOut:
    school_id = world.primary_school_id if actor == "teacher" else world.secondary_school_id
    donor = await services.donations.add_donor(
        school_id, DonorIn(name=f"Công ty Ánh Dương {quantity}", kind="business"), actor_id=None
    )
    data = BatchIn(
        source="other",
        donor_id=donor.id,
        received_on=date(2021, 11, 10),
        quantity=quantity,
        device_type="laptop",
        make_model="Dell Latitude 3420",
    )
    return await services.donations.create_batch(school_id, data, actor_id=world.staff_ids[actor])


async def teacher_handover(
    services: Services, world: World, batch: BatchOut, code: str = "HS0001"
) -> HandoverOut:
    data = HandoverIn(
        batch_id=batch.id, student_id=world.student_ids[code], kind="gift", handed_on=date(2021, 11, 14)
    )
    return await services.handovers.create_handover(
        world.primary_school_id, data, actor_id=world.staff_ids["teacher"]
    )


async def teacher_dose(services: Services, world: World) -> int:
    products = await services.vaccines.products()
    product = next(p for p in products if p.code == "VEROCELL")
    data = DoseIn(
        student_id=world.student_ids["HS0002"],
        dose_number=1,
        given_on=date(2021, 11, 1),
        product_id=product.id,
        place=DosePlace.SCHOOL,
    )
    dose = await services.vaccines.record_dose(
        world.primary_school_id, data, actor_id=world.staff_ids["teacher"], request_key=None
    )
    return dose.id


async def teacher_need(services: Services, world: World) -> int:
    data = NeedIn(
        student_id=world.student_ids["HS0004"],
        category="covid_orphan",
        needs_device=True,
        needs_connectivity=False,
    )
    need = await services.needs.record_need(
        world.primary_school_id, data, actor_id=world.staff_ids["teacher"], request_key=None
    )
    return need.id


async def all_four(services: Services, world: World, clock) -> tuple[BatchOut, HandoverOut, int, int]:
    """One record of each kind, a minute apart (oldest first)."""
    batch = await teacher_batch(services, world)
    clock.advance(timedelta(minutes=1))
    handover = await teacher_handover(services, world, batch)
    clock.advance(timedelta(minutes=1))
    dose_id = await teacher_dose(services, world)
    clock.advance(timedelta(minutes=1))
    need_id = await teacher_need(services, world)
    return batch, handover, dose_id, need_id


def batch_button(batch: BatchOut, lock: str = "") -> str:
    return f"{lock}📦 10/11/2021 · lô #{batch.id} · {batch.quantity} máy tính xách tay"


HANDOVER_BUTTON = "🎁 14/11/2021 · Nguyễn Văn An (4A1) · tặng"
DOSE_BUTTON = "💉 01/11/2021 · Trần Thị Bình · mũi 1"
NEED_BUTTON = "🖥 15/11/2021 · Lê Hoàng Cường · Cha, mẹ tử vong do COVID-19"


async def test_lists_all_four_kinds_and_edits_a_batch_with_an_audit_row(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    batch, *_ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    assert "Các bản ghi bạn nhập gần đây" in teacher.last_text()
    assert teacher.buttons() == [NEED_BUTTON, DOSE_BUTTON, HANDOVER_BUTTON, batch_button(batch)]
    await teacher.tap(batch_button(batch))
    detail = teacher.last_text()
    assert f"Lô #{batch.id}</b> · Nguồn khác (4.8.3.2)" in detail and "Ngày nhận: 10/11/2021" in detail
    assert "Đã bàn giao 1/10 (tặng 1, đang cho mượn 0; 0 máy cho mượn đã trả lại), còn 9" in detail
    assert teacher.buttons() == [EDIT, DELETE, "◀️ Danh sách"]
    assert await step_of(services, teacher) is None  # only looking: nothing is held open
    await teacher.tap("◀️ Danh sách")
    assert len(teacher.buttons()) == 4
    await teacher.tap(batch_button(batch))
    await teacher.tap(EDIT)
    assert teacher.buttons() == [
        "📅 Ngày nhận",
        "🔢 Số lượng",
        "🏷 Hãng, mẫu",
        "⚙️ Cấu hình",
        "📝 Ghi chú",
        "◀️ Quay lại",
    ]
    await teacher.tap("🔢 Số lượng")
    assert "Số lượng: đang ghi <b>10</b>" in teacher.last_text()
    await teacher.send("mười hai")
    assert "không phải là số nguyên" in teacher.last_text()
    assert await step_of(services, teacher) == Step.VALUE
    await teacher.send("12")
    assert "10 → <b>12</b>" in teacher.last_text()
    await teacher.tap(SAVE)
    assert "Đã sửa 🔢 Số lượng: 10 → <b>12</b>" in teacher.last_text()
    assert (await get(services, DonationBatch, batch.id)).quantity == 12
    update = [a for a in await audits(services, "donation_batch") if a.action is AuditAction.UPDATE]
    assert len(update) == 1 and update[0].actor_id == world.staff_ids["teacher"]
    assert update[0].before["quantity"] == 10 and update[0].after["quantity"] == 12
    assert await step_of(services, teacher) is None
    # Looking at a record does not block starting another flow.
    await teacher.send("/my")
    await teacher.tap(DOSE_BUTTON)
    await teacher.send("/donation")
    assert "Thiết bị từ nguồn nào?" in teacher.last_text()


async def test_edit_a_handover_date_and_kind(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    _, handover, *_ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(HANDOVER_BUTTON)
    assert f"Bàn giao #{handover.id}" in teacher.last_text()
    await teacher.tap(EDIT)
    await teacher.tap("📅 Ngày bàn giao")
    assert teacher.buttons() == ["Hôm nay", "Hôm qua", "◀️ Quay lại"]
    await teacher.send("31/02/2021")
    assert "không có trên lịch" in teacher.last_text()
    await teacher.send("16/11/2021")
    assert "còn ở tương lai" in teacher.last_text()
    await teacher.send("12/11")
    await teacher.tap(SAVE)
    assert "14/11/2021 → <b>12/11/2021</b>" in teacher.last_text()
    # The kind, with buttons.
    await teacher.send("/my")
    await teacher.tap("🎁 12/11/2021 · Nguyễn Văn An (4A1) · tặng")
    await teacher.tap(EDIT)
    await teacher.tap("🎁 Tặng / cho mượn")
    assert teacher.buttons() == ["🎁 Tặng hẳn", "🔁 Cho mượn tạm", "◀️ Quay lại"]
    await teacher.tap("🔁 Cho mượn tạm")
    await teacher.tap(SAVE)
    assert "tặng → <b>cho mượn tạm</b>" in teacher.last_text()
    row = await get(services, Handover, handover.id)
    assert row.handed_on == date(2021, 11, 12) and row.kind is HandoverKind.LOAN
    updates = [a for a in await audits(services, "handover") if a.action is AuditAction.UPDATE]
    assert (updates[0].before["handed_on"], updates[0].after["handed_on"]) == ("2021-11-14", "2021-11-12")
    assert (updates[1].before["kind"], updates[1].after["kind"]) == ("gift", "loan")


async def test_delete_a_handover_and_a_batch_with_handovers_is_refused(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    batch, handover, *_ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(DELETE)
    assert "Xoá bản ghi này?" in teacher.last_text()
    await teacher.tap("🗑 Xoá hẳn")
    texts = teacher.new_texts()
    assert any("Không thể xoá lô này vì đã có 1 lượt bàn giao" in t for t in texts)
    assert f"Lô #{batch.id}</b>" in texts[-1]  # back at the record, nothing under way
    assert await step_of(services, teacher) is None
    assert await get(services, DonationBatch, batch.id) is not None
    await teacher.tap("◀️ Danh sách")
    await teacher.tap(HANDOVER_BUTTON)
    await teacher.tap(DELETE)
    await teacher.tap("◀️ Quay lại")  # changed their mind: back to the record, nothing deleted
    assert "Bàn giao #" in teacher.last_text() and await step_of(services, teacher) is None
    await teacher.tap(DELETE)
    await teacher.tap("🗑 Xoá hẳn")
    assert f"Đã xoá: {HANDOVER_BUTTON}" in teacher.last_text()
    assert await get(services, Handover, handover.id) is None
    assert (await services.donations.get_batch(batch.id, school_id=world.primary_school_id)).left == 10
    [deleted] = [a for a in await audits(services, "handover") if a.action is AuditAction.DELETE]
    assert deleted.before["id"] == handover.id and deleted.after is None
    assert deleted.actor_id == world.staff_ids["teacher"]
    # Now the batch has no handover: it can go.
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(DELETE)
    await teacher.tap("🗑 Xoá hẳn")
    assert "Đã xoá" in teacher.last_text()
    assert await get(services, DonationBatch, batch.id) is None
    assert [a.action for a in await audits(services, "donation_batch")] == [
        AuditAction.CREATE,
        AuditAction.DELETE,
    ]


async def test_edit_a_dose_with_a_warning_and_a_need(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    _, _, dose_id, need_id = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(DOSE_BUTTON)
    assert "Mũi 1</b>" in teacher.last_text() and "Vero Cell" in teacher.last_text()
    await teacher.tap(EDIT)
    await teacher.tap("💉 Số mũi")
    await teacher.send("mũi hai")
    assert "không phải là số mũi" in teacher.last_text()
    await teacher.send("11")
    assert "số mũi phải từ 1 đến 10" in teacher.last_text()
    assert await step_of(services, teacher) == Step.VALUE
    await teacher.send("3")
    await teacher.tap(SAVE)  # dose 3 without dose 2: the service's warning, to confirm
    assert "chưa được ghi mũi 1, 2" in teacher.last_text() or "chưa được ghi mũi 2" in teacher.last_text()
    assert teacher.buttons() == ["⚠️ Tôi đã kiểm tra, vẫn lưu", "◀️ Quay lại"]
    assert (await get(services, VaccineDose, dose_id)).dose_number == 1
    await teacher.tap("⚠️ Tôi đã kiểm tra, vẫn lưu")
    assert "Đã sửa 💉 Số mũi: 1 → <b>3</b>" in teacher.last_text()
    assert (await get(services, VaccineDose, dose_id)).dose_number == 3
    # The need's priority group.
    await teacher.send("/my")
    await teacher.tap(NEED_BUTTON)
    assert "Diện ưu tiên: Cha, mẹ tử vong do COVID-19" in teacher.last_text()
    await teacher.tap(EDIT)
    await teacher.tap("🏷 Diện ưu tiên")
    await teacher.tap("Hộ nghèo")
    await teacher.tap(SAVE)
    assert "Cha, mẹ tử vong do COVID-19 → <b>Hộ nghèo</b>" in teacher.last_text()
    assert (await get(services, NeedRecord, need_id)).category is PriorityGroup.POOR
    updates = [a for a in await audits(services, "need_record") if a.action is AuditAction.UPDATE]
    assert (updates[-1].before["category"], updates[-1].after["category"]) == ("covid_orphan", "poor")
    # And its note can be cleared.
    await teacher.send("/my")
    await teacher.tap("🖥 15/11/2021 · Lê Hoàng Cường · Hộ nghèo")
    await teacher.tap(EDIT)
    await teacher.tap("📝 Ghi chú")
    await teacher.send("Nhà chưa có Internet")
    await teacher.tap(SAVE)
    assert (await get(services, NeedRecord, need_id)).note == "Nhà chưa có Internet"


async def test_a_wrong_answer_at_every_step_stays_at_the_step(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world, quantity=2)
    await teacher_handover(services, world, batch, "HS0001")
    await teacher_handover(services, world, batch, "HS0002")
    teacher = harness.person("teacher")

    async def wrong(answer: str, hint: str, step: Step) -> None:
        await teacher.send(answer)
        assert hint in teacher.last_text(), teacher.last_text()
        assert await step_of(services, teacher) == step

    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(EDIT)
    await wrong("số lượng", "Hãy bấm một nút", Step.FIELD)
    await teacher.tap("🔢 Số lượng")
    await wrong("0", "từ 1 trở lên", Step.VALUE)
    await teacher.send("1")
    await wrong("lưu", "Hãy bấm một nút", Step.CHANGE)
    await teacher.tap(SAVE)  # two devices handed over: the service refuses, nothing changes
    assert "Không thể giảm số lượng xuống 1" in teacher.last_text()
    assert await step_of(services, teacher) == Step.CHANGE
    await teacher.tap("◀️ Quay lại")
    await teacher.tap(EDIT)
    await teacher.tap("📅 Ngày nhận")
    await wrong("15/11/2021", "", Step.CHANGE)  # after the handovers: said by the service on Save
    await teacher.tap(SAVE)
    assert "muộn hơn lần bàn giao đầu tiên của lô (14/11/2021)" in teacher.last_text()
    await teacher.tap("◀️ Quay lại")
    await teacher.tap(DELETE)
    await wrong("xoá", "Hãy bấm một nút", Step.DELETE)
    assert (await get(services, DonationBatch, batch.id)).quantity == 2
    assert [a.action for a in await audits(services, "donation_batch")] == [AuditAction.CREATE]


async def test_a_locked_round_refuses_changes_and_says_who_can_reopen(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world)
    await lock_school(services, world.primary_school_id, SubmissionStatus.SUBMITTED)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    assert teacher.buttons() == [batch_button(batch, "🔒 ")]
    await teacher.tap(batch_button(batch, "🔒 "))
    assert "Thuộc đợt báo cáo «Đợt 15/11/2021» đã gửi hoặc đã duyệt" in teacher.last_text()
    await teacher.tap(EDIT)
    text = teacher.last_text()
    assert "không thêm, sửa hay xoá" in text and "chuyên viên Tiểu học/THCS của Phòng" in text
    assert "trả lại hồ sơ" in text and "01/09/2021 – 15/11/2021" in text
    assert await step_of(services, teacher) is None
    await teacher.send("/my")
    await teacher.tap(batch_button(batch, "🔒 "))
    await teacher.tap(DELETE)
    assert "chuyên viên Tiểu học/THCS" in teacher.last_text()
    assert await step_of(services, teacher) is None
    assert await get(services, DonationBatch, batch.id) is not None
    assert [a.action for a in await audits(services, "donation_batch")] == [AuditAction.CREATE]


async def test_another_school_and_another_role(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    ours = await teacher_batch(services, world)
    theirs = await teacher_batch(services, world, quantity=4, actor="teacher_thcs")
    other = harness.person("teacher_thcs")
    await other.send("/my")
    assert other.buttons() == [batch_button(theirs)]  # only their own records
    message = other.bot_messages()[-1]
    await harness.deliver(harness.api.callback_query(other.user, message, f"my:open:batch.{ours.id}"))
    assert "Không tìm thấy bản ghi này" in other.last_text()
    await harness.deliver(harness.api.callback_query(other.user, message, f"my:delete:batch.{ours.id}"))
    assert "Không tìm thấy bản ghi này" in other.last_text()
    assert await step_of(services, other) is None
    assert await get(services, DonationBatch, ours.id) is not None
    specialist = harness.person("primary_specialist")
    await specialist.send("/my")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    principal = harness.person("principal")  # same school, but entered nothing
    await principal.send("/my")
    assert "Bạn chưa nhập bản ghi nào" in principal.last_text()


async def test_restart_mid_flow_and_cancel(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(EDIT)
    await teacher.tap("🏷 Hãng, mẫu")
    await harness.restart()
    await teacher.send("Dell Latitude 3520")
    assert "Dell Latitude 3420 → <b>Dell Latitude 3520</b>" in teacher.last_text()
    await teacher.send("/cancel")
    assert "Đã huỷ" in teacher.last_text()
    assert (await get(services, DonationBatch, batch.id)).make_model == "Dell Latitude 3420"
    assert await step_of(services, teacher) is None
