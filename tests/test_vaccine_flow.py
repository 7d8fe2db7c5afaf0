"""/vaccine: one dose of one student, through the chat (clock frozen at Mon 15 Nov 2021, 09:00)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from conversations.vaccine import Step
from storage.enums import DosePlace
from storage.models import VaccineDose
from storage.services import Services
from tests.chat import CANCEL, CONFIRM, EDIT, TODAY_BUTTON, YESTERDAY_BUTTON, Harness, Person, label, step_of
from tests.conftest import TZ
from tests.factories import AN, BINH, make_world
from tests.helpers import product_id, seed_dose


async def doses_of(services: Services, student_id: int) -> list[VaccineDose]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(VaccineDose).where(VaccineDose.student_id == student_id).order_by(VaccineDose.dose_number)
        )
        return list(rows)


async def start(person: Person, query: str, student: str) -> None:
    await person.send("/vaccine")
    await person.send(query)
    await person.tap(student)


async def first_dose_to_summary(person: Person) -> None:
    """Bình's first dose, today, Comirnaty, at school: up to the summary."""
    await start(person, "hs0002", BINH)
    await person.tap(label("vaccines.dose.next_button", dose_number=1))
    await person.tap(TODAY_BUTTON)
    await person.tap("Comirnaty (Pfizer-BioNTech)")
    await person.tap(label("vaccines.place_button.school"))


async def test_happy_path_one_dose(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    assert "Học sinh được tiêm là ai?" in teacher.last_text()
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    assert "Chưa có mũi nào được ghi." in teacher.last_text()
    assert teacher.buttons()[0] == label("vaccines.dose.next_button", dose_number=1)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    assert "Mũi 1 tiêm ngày nào?" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    assert "Comirnaty (Pfizer-BioNTech)" in teacher.buttons()
    assert label("vaccines.product_other") in teacher.buttons()
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    assert teacher.buttons() == [
        label("vaccines.place_button.school"),
        label("vaccines.place_button.community"),
        label("vaccines.place_button.elsewhere"),
    ]
    await teacher.tap(label("vaccines.place_button.school"))
    summary = teacher.last_text()
    assert "Kiểm tra lại trước khi lưu" in summary
    assert "Mũi thứ: <b>1</b>" in summary and "Ngày tiêm: <b>15/11/2021</b>" in summary
    assert "Cần bạn kiểm tra" not in summary and "Nhập trễ" not in summary
    assert teacher.buttons() == [CONFIRM, EDIT, CANCEL]
    assert await doses_of(services, world.student_ids["HS0002"]) == []  # nothing before the confirm
    await teacher.tap(CONFIRM)
    assert teacher.last_text() == (
        f"✅ Đã lưu mũi 1 cho <b>{BINH}</b>: ngày 15/11/2021 · Comirnaty (Pfizer-BioNTech) · Tại trường."
    )
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert (dose.dose_number, dose.given_on, dose.place) == (1, date(2021, 11, 15), DosePlace.SCHOOL)
    assert dose.entered_by_id == world.staff_ids["teacher"] and not dose.entered_late
    assert await step_of(services, teacher, "vaccine") is None  # the draft is gone
    assert "💉 Mũi tiêm" in teacher.reply_keyboard()  # the menu is back


async def test_a_wrong_answer_at_every_step(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await seed_dose(services, world, world.student_ids["HS0001"], 1, date(2021, 10, 1))
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.send("a")
    assert "2" in teacher.last_text() and await step_of(services, teacher, "vaccine") == Step.SEARCH
    await teacher.send("hs0001")
    await teacher.tap(AN)
    # The dose step shows what is recorded and suggests the next number.
    text = teacher.last_text()
    assert "Các mũi đã ghi:" in text
    assert "• Mũi 1: 01/10/2021 · Comirnaty (Pfizer-BioNTech) · Tại cộng đồng" in text
    assert teacher.buttons()[0] == label("vaccines.dose.next_button", dose_number=2)
    assert label("vaccines.dose.number_button", dose_number=1) not in teacher.buttons()
    await teacher.send("abc")
    assert "«abc» không phải là số mũi" in teacher.last_text()
    await teacher.send("11")
    assert "số mũi phải từ 1 đến 10" in teacher.last_text()
    await teacher.send("1")  # duplicate dose number
    assert "đã có mũi 1 (tiêm ngày 01/10/2021)" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine") == Step.DOSE
    await teacher.send("mũi 2")
    assert await step_of(services, teacher, "vaccine") == Step.DATE
    # Date: impossible, future, before the previous dose.
    await teacher.send("32/13")
    assert "không có trên lịch" in teacher.last_text()
    await teacher.send("20/11/2021")
    assert "còn ở tương lai" in teacher.last_text()
    await teacher.send("20/09/2021")
    assert "Mũi 2 (ngày 20/09/2021) không thể tiêm trước mũi 1 (ngày 01/10/2021)" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine") == Step.DATE
    await teacher.send("05/11/2021")
    assert await step_of(services, teacher, "vaccine") == Step.PRODUCT
    # Product: not in the list; too young for the product; "other" needs a sensible name.
    await teacher.send("xyz")
    assert "không có trong danh sách" in teacher.last_text()
    await teacher.tap("Vaxzevria (AstraZeneca)")
    assert (
        "chưa đủ 18 tuổi" in teacher.last_text()
        and await step_of(services, teacher, "vaccine") == Step.PRODUCT
    )
    await teacher.tap(label("vaccines.product_other"))
    assert "Tên vắc xin đã tiêm?" in teacher.last_text()
    await teacher.send("x" * 201)
    assert (
        "quá dài" in teacher.last_text() and await step_of(services, teacher, "vaccine") == Step.PRODUCT_NAME
    )
    await teacher.send("Corbevax")
    # Place: a word that names no place; then typed without diacritics.
    await teacher.send("abc")
    assert (
        "Chọn nơi tiêm bằng nút" in teacher.last_text()
        and await step_of(services, teacher, "vaccine") == Step.PLACE
    )
    await teacher.send("cong dong")
    summary = teacher.last_text()
    assert "Vắc xin: <b>Corbevax</b>" in summary and "Tại cộng đồng" in summary
    assert "⏰ Nhập trễ" in summary  # 05/11 entered on 15/11
    await teacher.send("ok")  # typing at the summary
    assert (
        "Hãy bấm một nút" in teacher.last_text()
        and await step_of(services, teacher, "vaccine") == Step.SUMMARY
    )
    await teacher.tap(CONFIRM)
    assert "✅ Đã lưu mũi 2" in teacher.last_text() and "⏰ Nhập trễ" in teacher.last_text()
    _, dose = await doses_of(services, world.student_ids["HS0001"])
    assert dose.product_other_name == "Corbevax" and dose.place == DosePlace.COMMUNITY and dose.entered_late


async def test_duplicate_dose_saved_meanwhile_is_refused_at_confirm(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await first_dose_to_summary(teacher)
    # someone else, meanwhile
    await seed_dose(services, world, world.student_ids["HS0002"], 1, date(2021, 11, 14))
    await teacher.tap(CONFIRM)
    assert "đã có mũi 1 (tiêm ngày 14/11/2021)" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine") == Step.SUMMARY
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert dose.given_on == date(2021, 11, 14)
    # Fix it from the summary: it is dose 2... which is too soon after dose 1: the flow says so.
    await teacher.tap(EDIT)
    await teacher.tap(label("vaccines.dose.field.dose_number"))
    await teacher.send("2")
    assert "Kiểm tra lại trước khi lưu" in teacher.last_text()  # back to the summary
    assert "chỉ 1 ngày" in teacher.last_text()


async def test_out_of_order_dates_refused(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await seed_dose(services, world, world.student_ids["HS0001"], 1, date(2021, 9, 20))
    await seed_dose(services, world, world.student_ids["HS0001"], 3, date(2021, 11, 1))
    teacher = harness.person("teacher")
    await start(teacher, "hs0001", AN)
    await teacher.tap(label("vaccines.dose.number_button", dose_number=2))  # the gap between 1 and 3
    await teacher.send("05/11/2021")
    assert "Mũi 2 (ngày 05/11/2021) không thể tiêm sau mũi 3 (ngày 01/11/2021)" in teacher.last_text()
    await teacher.send("18/09/2021")
    assert "không thể tiêm trước mũi 1 (ngày 20/09/2021)" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine") == Step.DATE
    await teacher.send("12/10/2021")
    assert await step_of(services, teacher, "vaccine") == Step.PRODUCT


async def test_short_interval_is_warned_and_needs_a_second_confirm(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    await seed_dose(services, world, world.student_ids["HS0001"], 1, date(2021, 11, 1))
    teacher = harness.person("teacher")
    await start(teacher, "hs0001", AN)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=2))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    summary = teacher.last_text()
    assert "⚠️ Cần bạn kiểm tra:" in summary
    assert "Mũi 2 cách mũi 1 (ngày 01/11/2021) chỉ 14 ngày, ngắn hơn khoảng cách tối thiểu 21 ngày" in summary
    await teacher.tap(CONFIRM)
    assert "Nếu thông tin đúng" in teacher.last_text()
    assert teacher.buttons() == [label("vaccines.dose.warnings_button"), EDIT, CANCEL]
    assert len(await doses_of(services, world.student_ids["HS0001"])) == 1  # not yet
    await teacher.tap(label("vaccines.dose.warnings_button"))
    assert "✅ Đã lưu mũi 2" in teacher.last_text()
    assert [d.dose_number for d in await doses_of(services, world.student_ids["HS0001"])] == [1, 2]


async def test_missing_earlier_dose_is_a_warning_too(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await start(teacher, "hs0002", BINH)
    await teacher.tap(label("vaccines.dose.number_button", dose_number=2))
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.tap("Vero Cell (Sinopharm)")
    await teacher.tap(label("vaccines.place_button.elsewhere"))
    assert "chưa được ghi mũi 1 mà bạn đang ghi mũi 2" in teacher.last_text()
    await teacher.tap(CONFIRM)
    await teacher.tap(EDIT)  # decides to fix it instead
    await teacher.tap(label("vaccines.dose.field.dose_number"))
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    assert "Cần bạn kiểm tra" not in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert "✅ Đã lưu mũi 1" in teacher.last_text()
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert dose.given_on == date(2021, 11, 14) and dose.place == DosePlace.ELSEWHERE


async def test_late_entry_is_flagged(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    clock.freeze(datetime(2021, 11, 18, 8, 0, tzinfo=TZ))  # three days after the dose
    teacher = harness.person("teacher")
    await start(teacher, "hs0002", BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.send("15/11")
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    assert "⏰ Nhập trễ" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert teacher.last_text().endswith(
        "⏰ Nhập trễ: quá 1 ngày kể từ ngày diễn ra (vẫn được lưu, có đánh dấu trễ)."
    )
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert dose.entered_late
    # The day after is still on time.
    await start(teacher, "hs0001", AN)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    await teacher.tap(CONFIRM)
    assert "Nhập trễ" not in teacher.last_text()


async def test_edit_one_answer_from_the_summary(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await first_dose_to_summary(teacher)
    await teacher.tap(EDIT)
    assert teacher.buttons() == [
        "💉 Số mũi",
        "📅 Ngày tiêm",
        "🧪 Vắc xin",
        "📍 Nơi tiêm",
        "◀️ Quay lại bảng tóm tắt",
    ]
    await teacher.tap(label("vaccines.dose.field.date"))
    await teacher.tap(YESTERDAY_BUTTON)
    assert "Ngày tiêm: <b>14/11/2021</b>" in teacher.last_text()  # straight back to the summary
    await teacher.tap(EDIT)
    await teacher.tap(label("vaccines.dose.field.product"))
    await teacher.tap("Spikevax (Moderna)")
    assert "Vắc xin: <b>Spikevax (Moderna)</b>" in teacher.last_text()
    await teacher.tap(CONFIRM)
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert dose.given_on == date(2021, 11, 14)
    assert dose.product_id == await product_id(services, "SPIKEVAX")


async def test_double_confirm_saves_one_dose(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await first_dose_to_summary(teacher)
    summary = teacher.bot_messages()[-1]
    data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):
        await harness.deliver(harness.api.callback_query(teacher.user, summary, data))
    assert len(await doses_of(services, world.student_ids["HS0002"])) == 1
    assert len([t for t in teacher.texts() if t.startswith("✅ Đã lưu")]) == 1


async def test_same_request_key_saves_once(services: Services, harness: Harness) -> None:
    """The service sees the draft's request key: a confirm repeated after a lost reply adds nothing."""
    world = await make_world(services)
    teacher = harness.person("teacher")
    await first_dose_to_summary(teacher)
    draft = await services.drafts.get(teacher.id, "vaccine")
    assert draft is not None
    await teacher.tap(CONFIRM)
    (dose,) = await doses_of(services, world.student_ids["HS0002"])
    assert dose.request_key == draft.data["request_key"]


async def test_other_school_student_not_visible(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher_thcs")
    await teacher.send("/vaccine")
    await teacher.send("Nguyễn Văn An")
    assert "Không tìm thấy học sinh nào" in teacher.last_text()
    await teacher.send("HS0001")
    assert "Không tìm thấy học sinh nào" in teacher.last_text()
    assert teacher.buttons() == [label("pickers.add_student")]


async def test_person_who_may_not_enter_records_is_refused(services: Services, harness: Harness) -> None:
    await make_world(services)
    specialist = harness.person("primary_specialist")
    await specialist.send("/vaccine")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    assert await step_of(services, specialist, "vaccine") is None
    await specialist.send("hs0001")  # not taken as an answer: no flow is open
    assert "Học sinh" not in specialist.last_text()


async def test_cancel_mid_flow(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await start(teacher, "hs0002", BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.send("/cancel")
    assert "Đã huỷ <b>phiếu ghi mũi tiêm</b>" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine") is None
    assert await doses_of(services, world.student_ids["HS0002"]) == []


async def test_restart_mid_flow_continues(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await start(teacher, "hs0002", BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    await harness.restart()
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    await teacher.tap(CONFIRM)
    assert len(await doses_of(services, world.student_ids["HS0002"])) == 1
