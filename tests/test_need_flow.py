"""/need and /need_summary: a student's need for a computer (4.8.1) and the school's summary (4.8.2)."""

from __future__ import annotations

from sqlalchemy import select

from conversations.need import Step
from storage.enums import AuditAction, PriorityGroup
from storage.models import NeedRecord, Student
from storage.schemas.needs import NeedIn
from storage.services import Services
from tests.chat import CANCEL, CONFIRM, EDIT, SKIP, Harness, Person, label, step_of
from tests.factories import AN_3A2, BINH, World, make_world
from tests.helpers import audit_of, priority_group


async def needs_of(services: Services, student_id: int) -> list[NeedRecord]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(NeedRecord).where(NeedRecord.student_id == student_id)))


async def record(
    services: Services, world: World, code: str, group: PriorityGroup, device: bool, net: bool
) -> None:
    data = NeedIn(
        student_id=world.student_ids[code], category=group, needs_device=device, needs_connectivity=net
    )
    await services.needs.record_need(data, school_id=world.primary_school_id, actor_id=None, request_key=None)


async def enter_need(person: Person, query: str, student: str, group: str, kind: str) -> None:
    await person.send("/need")
    await person.send(query)
    await person.tap(student)
    await person.tap(group)
    await person.tap(kind)


async def test_happy_path(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/need")
    assert "Học sinh nào cần hỗ trợ?" in teacher.last_text()
    await teacher.send("hs0003")
    await teacher.tap(AN_3A2)
    assert "Học sinh thuộc diện ưu tiên nào?" in teacher.last_text()
    assert teacher.buttons() == [
        label("needs.group.poor"),
        label("needs.group.near_poor"),
        label("needs.group.covid_orphan"),
        label("needs.group.other_hardship"),
    ]
    await teacher.tap(label("needs.group.covid_orphan"))
    assert teacher.buttons() == [
        label("needs.kind.device"),
        label("needs.kind.connectivity"),
        label("needs.kind.both"),
    ]
    await teacher.tap(label("needs.kind.device"))
    assert teacher.buttons() == [SKIP]
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "Diện ưu tiên: <b>Cha, mẹ tử vong do COVID-19</b>" in summary
    assert "Nhu cầu: <b>💻 Cần máy tính</b>" in summary and "Ghi chú: (không có)" in summary
    assert await needs_of(services, world.student_ids["HS0003"]) == []
    await teacher.tap(CONFIRM)
    assert teacher.last_text() == (
        f"✅ Đã lưu nhu cầu của <b>{AN_3A2}</b>: Cha, mẹ tử vong do COVID-19 · 💻 Cần máy tính."
    )
    (need,) = await needs_of(services, world.student_ids["HS0003"])
    assert (need.category, need.needs_device, need.needs_connectivity, need.note) == (
        PriorityGroup.COVID_ORPHAN,
        True,
        False,
        "",
    )
    assert need.entered_by_id == world.staff_ids["teacher"]
    # The student list now says the same group.
    assert await priority_group(services, world.student_ids["HS0003"]) == PriorityGroup.COVID_ORPHAN
    assert await step_of(services, teacher, "need") is None


async def test_a_wrong_answer_at_every_step(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/need")
    await teacher.send("x")
    assert "2" in teacher.last_text() and await step_of(services, teacher, "need") == Step.SEARCH
    await teacher.send("hs0003")
    await teacher.tap(AN_3A2)
    await teacher.send("ngheo")  # both "hộ nghèo" and "hộ cận nghèo": unclear
    assert "Chọn nhóm ưu tiên: hộ nghèo, hộ cận nghèo" in teacher.last_text()
    assert await step_of(services, teacher, "need") == Step.GROUP
    await teacher.send("can ngheo")  # typed without diacritics, one group only
    assert await step_of(services, teacher, "need") == Step.NEEDS
    await teacher.send("abc")
    assert (
        "Chọn ít nhất một nhu cầu" in teacher.last_text()
        and await step_of(services, teacher, "need") == Step.NEEDS
    )
    await teacher.send("ca hai")
    assert await step_of(services, teacher, "need") == Step.NOTE
    await teacher.send("x" * 501)
    assert (
        "quá dài (tối đa 500 ký tự)" in teacher.last_text()
        and await step_of(services, teacher, "need") == Step.NOTE
    )
    await teacher.send("Nhà chưa có Internet, học chung điện thoại với anh")
    assert "Ghi chú: Nhà chưa có Internet" in teacher.last_text()
    await teacher.send("ok")
    assert (
        "Hãy bấm một nút" in teacher.last_text() and await step_of(services, teacher, "need") == Step.SUMMARY
    )
    await teacher.tap(CONFIRM)
    (need,) = await needs_of(services, world.student_ids["HS0003"])
    assert need.category == PriorityGroup.NEAR_POOR and need.needs_device and need.needs_connectivity
    assert need.note == "Nhà chưa có Internet, học chung điện thoại với anh"


async def test_recorded_then_updated_with_audit(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    student_id = world.student_ids["HS0002"]
    teacher = harness.person("teacher")
    await enter_need(teacher, "binh", BINH, label("needs.group.near_poor"), label("needs.kind.device"))
    await teacher.send("Gia đình bán vé số")
    await teacher.tap(CONFIRM)
    (need,) = await needs_of(services, student_id)
    (created,) = await audit_of(services, "need_record", need.id)
    assert created.action == AuditAction.CREATE and created.after["category"] == "near_poor"

    # The same student again: the flow says so and offers to update.
    await teacher.send("/need")
    await teacher.send("binh")
    await teacher.tap(BINH)
    text = teacher.last_text()
    assert "đã có nhu cầu được ghi ngày 15/11/2021" in text
    assert "Hộ cận nghèo · 💻 Cần máy tính" in text and "Gia đình bán vé số" in text
    assert teacher.buttons() == [label("needs.update_button"), CANCEL]
    await teacher.tap(label("needs.update_button"))
    assert "Đang ghi: Hộ cận nghèo" in teacher.last_text()
    await teacher.tap(label("needs.group.poor"))
    assert "Đang ghi: 💻 Cần máy tính" in teacher.last_text()
    await teacher.tap(label("needs.kind.both"))
    assert "Ghi chú đang có: Gia đình bán vé số" in teacher.last_text()
    assert teacher.buttons() == [label("needs.keep_note"), label("needs.skip_note")]
    await teacher.tap(label("needs.keep_note"))
    assert "Bản ghi đã có của em sẽ được cập nhật" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert teacher.last_text() == f"✅ Đã cập nhật nhu cầu của <b>{BINH}</b>: Hộ nghèo · 💻📶 Cả hai."

    (updated,) = await needs_of(services, student_id)  # still one record, updated in place
    assert updated.id == need.id
    assert (updated.category, updated.needs_connectivity, updated.note) == (
        PriorityGroup.POOR,
        True,
        "Gia đình bán vé số",
    )
    _, change = await audit_of(services, "need_record", need.id)
    assert change.action == AuditAction.UPDATE and change.actor_id == world.staff_ids["teacher"]
    assert (change.before["category"], change.after["category"]) == ("near_poor", "poor")
    assert (change.before["needs_connectivity"], change.after["needs_connectivity"]) == (False, True)
    assert await priority_group(services, student_id) == PriorityGroup.POOR


async def test_already_recorded_and_cancel(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await record(services, world, "HS0002", PriorityGroup.NEAR_POOR, True, False)
    teacher = harness.person("teacher")
    await teacher.send("/need")
    await teacher.send("hs0002")
    await teacher.tap(BINH)
    await teacher.send("Hộ nghèo")  # typing instead of choosing update / cancel
    assert (
        "Hãy bấm một nút" in teacher.last_text() and await step_of(services, teacher, "need") == Step.EXISTING
    )
    await teacher.tap(CANCEL)
    assert "Đã huỷ <b>phiếu nhu cầu máy tính</b>" in teacher.last_text()
    (need,) = await needs_of(services, world.student_ids["HS0002"])
    assert need.category == PriorityGroup.NEAR_POOR and need.updated_at is None


async def test_recorded_by_someone_else_meanwhile_offers_update(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await enter_need(
        teacher, "hs0003", AN_3A2, label("needs.group.other_hardship"), label("needs.kind.connectivity")
    )
    await teacher.tap(SKIP)
    await record(services, world, "HS0003", PriorityGroup.POOR, True, False)  # the principal, meanwhile
    await teacher.tap(CONFIRM)
    texts = teacher.new_texts()
    assert any("đã có nhu cầu được ghi" in t and "«Cập nhật»" in t for t in texts)
    assert teacher.buttons() == [label("needs.update_button"), CANCEL]
    await teacher.tap(label("needs.update_button"))
    await teacher.tap(label("needs.group.other_hardship"))
    await teacher.tap(label("needs.kind.connectivity"))
    await teacher.tap(SKIP)
    await teacher.tap(CONFIRM)
    (need,) = await needs_of(services, world.student_ids["HS0003"])
    assert need.category == PriorityGroup.OTHER_HARDSHIP and not need.needs_device


async def test_edit_from_summary(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await enter_need(teacher, "hs0003", AN_3A2, label("needs.group.poor"), label("needs.kind.device"))
    await teacher.tap(SKIP)
    await teacher.tap(EDIT)
    assert teacher.buttons() == [
        "🏷 Diện ưu tiên",
        "🖥 Nhu cầu",
        "📝 Ghi chú",
        "📅 Tính từ ngày",
        "◀️ Quay lại bảng tóm tắt",
    ]
    await teacher.tap(label("needs.field.note"))
    await teacher.send("Mồ côi mẹ")
    assert "Ghi chú: Mồ côi mẹ" in teacher.last_text() and "Kiểm tra lại" in teacher.last_text()
    await teacher.tap(CONFIRM)
    (need,) = await needs_of(services, world.student_ids["HS0003"])
    assert need.note == "Mồ côi mẹ"


async def test_double_confirm_saves_one_row(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await enter_need(teacher, "hs0003", AN_3A2, label("needs.group.poor"), label("needs.kind.device"))
    await teacher.tap(SKIP)
    summary = teacher.bot_messages()[-1]
    data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):
        await harness.deliver(harness.api.callback_query(teacher.user, summary, data))
    assert len(await needs_of(services, world.student_ids["HS0003"])) == 1
    assert (
        len(
            await audit_of(
                services, "need_record", (await needs_of(services, world.student_ids["HS0003"]))[0].id
            )
        )
        == 1
    )
    assert len([t for t in teacher.texts() if t.startswith("✅ Đã lưu")]) == 1


async def test_other_school_student_not_visible(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher_thcs")
    await teacher.send("/need")
    await teacher.send("tran thi binh")
    assert "Không tìm thấy học sinh nào" in teacher.last_text()
    await teacher.send("HS0002")
    assert "Không tìm thấy học sinh nào" in teacher.last_text()


async def test_person_who_may_not_enter_records_is_refused(services: Services, harness: Harness) -> None:
    await make_world(services)
    specialist = harness.person("primary_specialist")
    await specialist.send("/need")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    await specialist.send("/need_summary")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    assert await step_of(services, specialist, "need") is None


async def test_need_summary_numbers_and_inconsistencies(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    # The list: HS0001 poor, HS0002 near-poor, HS0003 none, HS0004 parent died of COVID-19.
    await record(services, world, "HS0001", PriorityGroup.POOR, True, False)
    await record(services, world, "HS0002", PriorityGroup.NEAR_POOR, True, True)
    await record(services, world, "HS0004", PriorityGroup.COVID_ORPHAN, False, True)
    # An import then moves HS0001 to near-poor on the list: the need and the list disagree.
    async with services.sessionmaker.begin() as session:
        student = await session.get(Student, world.student_ids["HS0001"])
        assert student is not None
        student.priority_group = PriorityGroup.NEAR_POOR
    teacher = harness.person("teacher")
    await teacher.send("/need_summary")
    text = teacher.last_text()
    assert "Tổng hợp nhu cầu máy tính" in text and "Trường TH Lê Văn Lương" in text
    assert "Học sinh trong danh sách của trường: 4" in text
    assert "<b>Hộ nghèo</b>: 1 em có nhu cầu — cần máy 1, cần kết nối 0 (cả hai 0)." in text
    assert "Danh sách trường: 0 em thuộc diện này, 0 em chưa ghi nhu cầu." in text
    assert "<b>Hộ cận nghèo</b>: 1 em có nhu cầu — cần máy 1, cần kết nối 1 (cả hai 1)." in text
    assert "Danh sách trường: 2 em thuộc diện này, 1 em chưa ghi nhu cầu." in text
    assert (
        "<b>Cha, mẹ tử vong do COVID-19</b>: 1 em có nhu cầu — cần máy 0, cần kết nối 1 (cả hai 0)." in text
    )
    assert "<b>Khó khăn khác</b>: 0 em có nhu cầu" in text
    assert "<b>Cộng</b>: 3 em có nhu cầu — cần máy 2, cần kết nối 2 (cả hai 1)." in text
    assert "⚠️ Có 2 điểm chưa khớp" in text
    assert "Học sinh Nguyễn Văn An (HS0001, lớp 4A1): nhóm ưu tiên ghi ở nhu cầu khác" in text
    assert "Hộ nghèo: 1 học sinh có nhu cầu, nhưng danh sách học sinh chỉ có 0 em thuộc hộ nghèo." in text

    # The THCS school sees its own (empty) summary, consistent.
    other = harness.person("teacher_thcs")
    await other.send("/need_summary")
    assert "Trường THCS Nguyễn Bỉnh Khiêm" in other.last_text()
    assert "<b>Cộng</b>: 0 em có nhu cầu" in other.last_text()
    assert "✅ Số liệu khớp với danh sách học sinh của trường." in other.last_text()


async def test_english_speaker_gets_english_texts(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await services.staff.set_language(world.staff_ids["teacher"], "en")
    teacher = harness.person("teacher")
    # The English words as such a user sees them: literals on purpose, a check of the English catalogue.
    await enter_need(teacher, "hs0003", AN_3A2, "Poor household", "💻📶 Both")
    await teacher.tap("Skip")
    assert "Priority group: <b>Poor household</b>" in teacher.last_text()
    await teacher.tap("✅ Confirm")
    assert teacher.last_text().startswith("✅ Saved the need of")
