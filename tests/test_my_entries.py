"""/my: the person's recent records of all four kinds, edited and deleted through the chat, audited."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from conversations.my_entries import Step
from storage.enums import AuditAction, DosePlace, HandoverKind, PriorityGroup, SubmissionStatus
from storage.models import AuditLog, DonationBatch, Handover, NeedRecord, VaccineDose
from storage.schemas.devices import BatchIn, BatchOut, DonorIn, HandoverIn, HandoverOut
from storage.schemas.needs import NeedIn
from storage.schemas.vaccines import DoseIn
from storage.services import Services
from tests.chat import TODAY_BUTTON, YESTERDAY_BUTTON, Harness, Person, label, step_of
from tests.factories import World, make_world
from tests.test_donations_service import lock_school

BACK = label("my.back")  # my entries' own back button (same words as core.back)
DELETE = label("my.delete")
SAVE = label("my.save")


def entries(person: Person) -> list[str]:
    """The record buttons of the latest list (not its paging, filter or search buttons)."""
    return [b for b in person.buttons() if " · " in b]


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
        DonorIn(name=f"Công ty Ánh Dương {quantity}", kind="business"), school_id=school_id, actor_id=None
    )
    data = BatchIn(
        source="other",
        donor_id=donor.id,
        received_on=date(2021, 11, 10),
        quantity=quantity,
        device_type="laptop",
        make_model="Dell Latitude 3420",
    )
    return await services.donations.create_batch(data, school_id=school_id, actor_id=world.staff_ids[actor])


async def teacher_handover(
    services: Services, world: World, batch: BatchOut, code: str = "HS0001"
) -> HandoverOut:
    data = HandoverIn(
        batch_id=batch.id, student_id=world.student_ids[code], kind="gift", handed_on=date(2021, 11, 14)
    )
    return await services.handovers.create_handover(
        data, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"]
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
        data, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"], request_key=None
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
        data, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"], request_key=None
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
    return f"{lock}📦 10/11/2021 · lô #{batch.number} · {batch.quantity} máy tính xách tay"


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
    assert "Các bản ghi bạn đã nhập (mới nhất trước) · mọi loại · 4 bản ghi, trang 1/1" in teacher.last_text()
    assert entries(teacher) == [NEED_BUTTON, DOSE_BUTTON, HANDOVER_BUTTON, batch_button(batch)]
    await teacher.tap(batch_button(batch))
    detail = teacher.last_text()
    assert f"Lô #{batch.id}</b> · Nguồn khác (4.8.3.2)" in detail and "Ngày nhận: 10/11/2021" in detail
    assert "Đã bàn giao 1/10 (tặng 1, đang cho mượn 0; 0 máy cho mượn đã trả lại), còn 9" in detail
    # Every answer the /donation flow asked can be corrected, one tap each.
    assert teacher.buttons() == [
        "📥 Nguồn",
        "🤝 Nhà tài trợ",
        "📅 Ngày nhận",
        "🔢 Số lượng",
        "💻 Loại thiết bị",
        "🏷 Hãng, mẫu",
        "✨ Mới / cũ",
        "⚙️ Cấu hình",
        "🖼 Ảnh biên bản",
        "📝 Ghi chú",
        DELETE,
        "◀️ Danh sách",
    ]
    assert await step_of(services, teacher, "my") is None  # only looking: nothing is held open
    await teacher.tap(label("my.back_to_list"))
    assert len(entries(teacher)) == 4
    await teacher.tap(batch_button(batch))
    await teacher.tap(label("my.field.quantity"))
    assert "Số lượng: đang ghi <b>10</b>" in teacher.last_text()
    await teacher.send("mười hai")
    assert "không phải là số nguyên" in teacher.last_text()
    assert await step_of(services, teacher, "my") == Step.VALUE
    await teacher.send("12")
    assert "10 → <b>12</b>" in teacher.last_text()
    await teacher.tap(SAVE)
    assert "Đã sửa 🔢 Số lượng: 10 → <b>12</b>" in teacher.last_text()
    assert (await get(services, DonationBatch, batch.id)).quantity == 12
    update = [a for a in await audits(services, "donation_batch") if a.action is AuditAction.UPDATE]
    assert len(update) == 1 and update[0].actor_id == world.staff_ids["teacher"]
    assert update[0].before["quantity"] == 10 and update[0].after["quantity"] == 12
    assert await step_of(services, teacher, "my") is None
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
    assert "Ảnh biên bản: (không có)" in teacher.last_text()
    await teacher.tap(label("my.field.handed_on"))
    assert teacher.buttons() == [TODAY_BUTTON, YESTERDAY_BUTTON, BACK]
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
    await teacher.tap(label("my.field.kind"))
    assert teacher.buttons() == [label("devices.kind.gift"), label("devices.kind.loan"), BACK]
    await teacher.tap(label("devices.kind.loan"))
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
    await teacher.tap(label("my.delete_confirm"))
    texts = teacher.new_texts()
    assert any("Không thể xoá lô này vì đã có 1 lượt bàn giao" in t for t in texts)
    assert f"Lô #{batch.id}</b>" in texts[-1]  # back at the record, nothing under way
    assert await step_of(services, teacher, "my") is None
    assert await get(services, DonationBatch, batch.id) is not None
    await teacher.tap(label("my.back_to_list"))
    await teacher.tap(HANDOVER_BUTTON)
    await teacher.tap(DELETE)
    await teacher.tap(BACK)  # changed their mind: back to the record, nothing deleted
    assert "Bàn giao #" in teacher.last_text() and await step_of(services, teacher, "my") is None
    await teacher.tap(DELETE)
    await teacher.tap(label("my.delete_confirm"))
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
    await teacher.tap(label("my.delete_confirm"))
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
    await teacher.tap(label("my.field.dose_number"))
    await teacher.send("mũi hai")
    assert "không phải là số mũi" in teacher.last_text()
    await teacher.send("11")
    assert "số mũi phải từ 1 đến 10" in teacher.last_text()
    assert await step_of(services, teacher, "my") == Step.VALUE
    await teacher.send("3")
    await teacher.tap(SAVE)  # dose 3 without dose 2: the service's warning, to confirm
    assert "chưa được ghi mũi 1, 2" in teacher.last_text() or "chưa được ghi mũi 2" in teacher.last_text()
    assert teacher.buttons() == [label("my.save_anyway"), BACK]
    assert (await get(services, VaccineDose, dose_id)).dose_number == 1
    await teacher.tap(label("my.save_anyway"))
    assert "Đã sửa 💉 Số mũi: 1 → <b>3</b>" in teacher.last_text()
    assert (await get(services, VaccineDose, dose_id)).dose_number == 3
    # The need's priority group.
    await teacher.send("/my")
    await teacher.tap(NEED_BUTTON)
    assert "Diện ưu tiên: Cha, mẹ tử vong do COVID-19" in teacher.last_text()
    await teacher.tap(label("my.field.category"))
    await teacher.tap(label("my.need_group.poor"))
    await teacher.tap(SAVE)
    assert "Cha, mẹ tử vong do COVID-19 → <b>Hộ nghèo</b>" in teacher.last_text()
    assert (await get(services, NeedRecord, need_id)).category is PriorityGroup.POOR
    updates = [a for a in await audits(services, "need_record") if a.action is AuditAction.UPDATE]
    assert (updates[-1].before["category"], updates[-1].after["category"]) == ("covid_orphan", "poor")
    # And its note can be cleared.
    await teacher.send("/my")
    await teacher.tap("🖥 15/11/2021 · Lê Hoàng Cường · Hộ nghèo")
    await teacher.tap(label("my.field.note"))
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
        assert await step_of(services, teacher, "my") == step

    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(label("my.field.quantity"))
    await wrong("0", "từ 1 trở lên", Step.VALUE)
    await teacher.send("1")
    await wrong("lưu", "Hãy bấm một nút", Step.CHANGE)
    await teacher.tap(SAVE)  # two devices handed over: the service refuses, nothing changes
    assert "Không thể giảm số lượng xuống 1" in teacher.last_text()
    assert await step_of(services, teacher, "my") == Step.CHANGE
    await teacher.tap(BACK)  # the change -> the value -> the record
    await teacher.tap(BACK)
    await teacher.tap(label("my.field.received_on"))
    await wrong("15/11/2021", "", Step.CHANGE)  # after the handovers: said by the service on Save
    await teacher.tap(SAVE)
    assert "muộn hơn lần bàn giao đầu tiên của lô (14/11/2021)" in teacher.last_text()
    await teacher.tap(BACK)
    await teacher.tap(BACK)
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
    assert entries(teacher) == [batch_button(batch, "🔒 ")]
    await teacher.tap(batch_button(batch, label("my.locked_mark")))
    detail = teacher.last_text()  # shown, with the reason, not hidden
    assert f"Lô #{batch.id}</b>" in detail and "\n\n🔒 " in detail
    assert "Đợt 15/11/2021" in detail and "chuyên viên Tiểu học/THCS của Phòng" in detail
    await teacher.tap(label("my.field.quantity"))
    text = teacher.last_text()
    assert "không thêm, sửa hay xoá" in text and "chuyên viên Tiểu học/THCS của Phòng" in text
    assert "trả lại hồ sơ" in text and "01/09/2021 – 15/11/2021" in text
    assert await step_of(services, teacher, "my") is None
    await teacher.send("/my")
    await teacher.tap(batch_button(batch, label("my.locked_mark")))
    await teacher.tap(DELETE)
    assert "chuyên viên Tiểu học/THCS" in teacher.last_text()
    assert await step_of(services, teacher, "my") is None
    assert await get(services, DonationBatch, batch.id) is not None
    assert [a.action for a in await audits(services, "donation_batch")] == [AuditAction.CREATE]


async def test_another_school_and_another_role(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    ours = await teacher_batch(services, world)
    theirs = await teacher_batch(services, world, quantity=4, actor="teacher_thcs")
    other = harness.person("teacher_thcs")
    await other.send("/my")
    assert entries(other) == [batch_button(theirs)]  # only their own records
    message = other.bot_messages()[-1]
    await harness.deliver(harness.api.callback_query(other.user, message, f"my:open:batch.{ours.id}"))
    assert "Không tìm thấy bản ghi này" in other.last_text()
    await harness.deliver(harness.api.callback_query(other.user, message, f"my:delete:batch.{ours.id}"))
    assert "Không tìm thấy bản ghi này" in other.last_text()
    assert await step_of(services, other, "my") is None
    assert await get(services, DonationBatch, ours.id) is not None
    specialist = harness.person("primary_specialist")
    await specialist.send("/my")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    principal = harness.person("principal")  # the school's records, whoever entered them
    await principal.send("/my")
    assert "Các bản ghi của trường" in principal.last_text()
    assert entries(principal) == [batch_button(ours)]
    other_principal = harness.person("principal_thcs")  # entered nothing, but their school has a batch
    await other_principal.send("/my")
    assert entries(other_principal) == [batch_button(theirs)]


async def test_restart_mid_flow_and_cancel(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(label("my.field.make_model"))
    await harness.restart()
    await teacher.send("Dell Latitude 3520")
    assert "Dell Latitude 3420 → <b>Dell Latitude 3520</b>" in teacher.last_text()
    await teacher.send("/cancel")
    assert "Đã huỷ" in teacher.last_text()
    assert (await get(services, DonationBatch, batch.id)).make_model == "Dell Latitude 3420"
    assert await step_of(services, teacher, "my") is None


# --- issue 16, item 1: every entry, paged, filtered, searched; every answer editable ----------------


async def sixty_entries(services: Services, world: World, clock) -> int:
    """30 students of 4A2, each with a dose and a need, a minute apart; the oldest entry is the dose
    of Trịnh Thị Xuân. Returns that dose's id."""
    from storage.schemas.students import StudentIn

    product = next(p for p in await services.vaccines.products() if p.code == "VEROCELL")
    names = ["Trịnh Thị Xuân"] + [f"Lê Văn Số {chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(29)]
    oldest = 0
    for i, name in enumerate(names):
        data = StudentIn(code=f"P{i:04d}", full_name=name, date_of_birth="2012-05-01", class_name="4A2")
        student = await services.students.add(data, school_id=world.primary_school_id, actor_id=None)
        dose = DoseIn(
            student_id=student.id,
            dose_number=1,
            given_on=date(2021, 11, 1),
            product_id=product.id,
            place=DosePlace.SCHOOL,
        )
        saved = await services.vaccines.record_dose(
            dose, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"], request_key=None
        )
        oldest = oldest or saved.id
        clock.advance(timedelta(minutes=1))
        need = NeedIn(student_id=student.id, category="poor", needs_device=True, needs_connectivity=False)
        await services.needs.record_need(
            need, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"], request_key=None
        )
        clock.advance(timedelta(minutes=1))
    return oldest


async def test_sixty_entries_the_oldest_found_and_edited_in_four_taps(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    oldest = await sixty_entries(services, world, clock)
    clock.advance(timedelta(hours=1))
    teacher = harness.person("teacher")
    await teacher.send("/my")
    assert "60 bản ghi, trang 1/8" in teacher.last_text()
    assert len(entries(teacher)) == 8
    assert entries(teacher)[0].startswith("🖥 15/11/2021 · Lê Văn Số BC")  # the newest first
    # Every page can be reached: the oldest is on the last page.
    await teacher.tap(label("my.last"))
    assert "trang 8/8" in teacher.last_text()
    assert entries(teacher)[-1] == "💉 01/11/2021 · Trịnh Thị Xuân · mũi 1"
    await teacher.tap(label("my.first"))
    await teacher.tap(label("my.filter.dose"))  # the filter by kind
    assert "mũi tiêm · 30 bản ghi, trang 1/4" in teacher.last_text()
    # The search, typed after «🔍» (without diacritics): only Xuân's records.
    await teacher.tap(label("my.search"))
    await teacher.send("a")
    assert "ít nhất 2 ký tự" in teacher.last_text() and await step_of(services, teacher, "my") == Step.SEARCH
    await teacher.send("trinh xuan")
    assert entries(teacher) == ["💉 01/11/2021 · Trịnh Thị Xuân · mũi 1"]
    assert await step_of(services, teacher, "my") is None  # the list holds nothing open
    # One typed search with the command, then four taps: the record, the answer, the value, save.
    await teacher.send("/my trinh xuan")
    assert entries(teacher) == [
        "🖥 15/11/2021 · Trịnh Thị Xuân · Hộ nghèo",
        "💉 01/11/2021 · Trịnh Thị Xuân · mũi 1",
    ]
    await teacher.tap("💉 01/11/2021 · Trịnh Thị Xuân · mũi 1")  # 1
    await teacher.tap(label("my.field.given_on"))  # 2
    await teacher.tap(YESTERDAY_BUTTON)  # 3
    await teacher.tap(SAVE)  # 4
    assert "Đã sửa 📅 Ngày tiêm: 01/11/2021 → <b>14/11/2021</b>" in teacher.last_text()
    assert (await get(services, VaccineDose, oldest)).given_on == date(2021, 11, 14)


async def test_edit_a_dose_product_and_place(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    _, _, dose_id, _ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(DOSE_BUTTON)
    assert "Nơi tiêm: Tại trường" in teacher.last_text()
    await teacher.tap(label("my.field.product_id"))
    assert "Vắc xin: đang ghi <b>Vero Cell (Sinopharm)</b>" in teacher.last_text()
    await teacher.send("moderna xyz")  # typed, matching no product
    assert "Hãy bấm một nút" in teacher.last_text() and await step_of(services, teacher, "my") == Step.VALUE
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    assert "Vero Cell (Sinopharm) → <b>Comirnaty (Pfizer-BioNTech)</b>" in teacher.last_text()
    await teacher.tap(SAVE)
    assert "Đã sửa 🧪 Vắc xin" in teacher.last_text()
    products = {p.id: p.code for p in await services.vaccines.products()}
    assert products[(await get(services, VaccineDose, dose_id)).product_id] == "COMIRNATY"
    # «Other»: its name typed.
    await teacher.send("/my")
    await teacher.tap(DOSE_BUTTON)
    await teacher.tap(label("my.field.product_id"))
    await teacher.tap(label("vaccines.product_other"))
    await teacher.send("Corbevax")
    await teacher.tap(SAVE)
    assert (await get(services, VaccineDose, dose_id)).product_other_name == "Corbevax"
    # The place.
    await teacher.send("/my")
    await teacher.tap(DOSE_BUTTON)
    await teacher.tap(label("my.field.place"))
    await teacher.tap(label("vaccines.place_button.community"))
    assert "Tại trường → <b>Tại cộng đồng</b>" in teacher.last_text()
    await teacher.tap(SAVE)
    assert (await get(services, VaccineDose, dose_id)).place is DosePlace.COMMUNITY
    updates = [a for a in await audits(services, "vaccine_dose") if a.action is AuditAction.UPDATE]
    assert [u.after["place"] for u in updates][-1] == "community" and len(updates) == 3


async def test_edit_a_handover_photo(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    _, handover, *_ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(HANDOVER_BUTTON)
    await teacher.tap(label("my.field.receipt_photo_file_id"))
    await teacher.send("ảnh đây")  # text where a photo is asked
    assert "ảnh" in teacher.last_text() and await step_of(services, teacher, "my") == Step.VALUE
    await teacher.photo(b"\xff\xd8 receipt")
    assert "(không có) → <b>đã đính kèm ✅</b>" in teacher.last_text()
    await harness.restart()  # interrupted before Save: the change waits in the draft
    await teacher.tap(SAVE)
    assert (await get(services, Handover, handover.id)).receipt_photo_file_id
    await teacher.send("/my")
    await teacher.tap(HANDOVER_BUTTON)
    assert "Ảnh biên bản: đã đính kèm ✅" in teacher.last_text()
    await teacher.tap(label("my.field.receipt_photo_file_id"))
    await teacher.tap(label("my.clear"))
    await teacher.tap(SAVE)
    assert (await get(services, Handover, handover.id)).receipt_photo_file_id is None


async def test_a_batch_edit_that_handovers_depend_on_is_refused_with_the_reason(
    services: Services, harness: Harness, clock
) -> None:
    world = await make_world(services)
    batch, *_ = await all_four(services, world, clock)
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(label("my.field.device_type"))
    await teacher.tap(label("devices.device_type.tablet"))
    await teacher.tap(SAVE)
    assert "Không thể đổi loại thiết bị của lô này vì đã có 1 lượt bàn giao" in teacher.last_text()
    assert await step_of(services, teacher, "my") == Step.CHANGE  # stays open: back, or cancel
    await teacher.tap(BACK)
    await teacher.tap(BACK)
    await teacher.tap(label("my.field.source"))
    await teacher.tap(label("devices.source.program"))
    await teacher.tap(SAVE)
    assert "Không thể đổi nguồn của lô này vì đã có 1 lượt bàn giao" in teacher.last_text()
    row = await get(services, DonationBatch, batch.id)
    assert row.device_type.value == "laptop" and row.source.value == "other"
    # What handovers do not depend on changes: the condition.
    await teacher.send("/cancel")
    await teacher.send("/my")
    await teacher.tap(batch_button(batch))
    await teacher.tap(label("my.field.condition"))
    await teacher.tap(label("devices.condition.used"))
    await teacher.tap(SAVE)
    assert "mới → <b>đã qua sử dụng</b>" in teacher.last_text()


async def test_returns_are_listed_and_their_date_edited(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world)
    data = HandoverIn(
        batch_id=batch.id, student_id=world.student_ids["HS0002"], kind="loan", handed_on=date(2021, 11, 11)
    )
    loan = await services.handovers.create_handover(
        data, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"]
    )
    clock.advance(timedelta(minutes=5))
    await services.handovers.return_loan(
        loan.id, date(2021, 11, 14), school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"]
    )
    teacher = harness.person("teacher")
    await teacher.send("/my")
    await teacher.tap(label("my.filter.return"))
    assert entries(teacher) == [f"↩️ 14/11/2021 · Trần Thị Bình (4A1) · trả máy lô #{batch.number}"]
    await teacher.tap(entries(teacher)[0])
    assert "Đã trả lại ngày 14/11/2021" in teacher.last_text()
    await teacher.tap(label("my.field.returned_on"))
    await teacher.send("10/11/2021")  # before the loan
    assert "10/11/2021" in teacher.last_text() and await step_of(services, teacher, "my") in (
        Step.VALUE,
        Step.CHANGE,
    )
    await teacher.send("/cancel")
    await teacher.send("/my")
    await teacher.tap(label("my.filter.return"))
    await teacher.tap(entries(teacher)[0])
    await teacher.tap(label("my.field.returned_on"))
    await teacher.send("13/11")
    await teacher.tap(SAVE)
    assert (await get(services, Handover, loan.id)).returned_on == date(2021, 11, 13)
