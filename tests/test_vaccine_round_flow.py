"""/vaccine_round: a vaccination round at school for a whole class, through the chat."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from conversations.vaccine_round import Step, list_numbers
from storage.enums import DosePlace
from storage.models import Student, VaccineDose
from storage.schemas.students import StudentIn
from storage.services import Services
from tests.chat import CANCEL, CONFIRM, EDIT, TODAY_BUTTON, Harness, Person, label, step_of
from tests.conftest import TZ
from tests.factories import World, make_world
from tests.helpers import count, seed_dose

TODAY = date(2021, 11, 15)
FAMILIES = ["Nguyễn Văn", "Trần Thị", "Lê Minh", "Phạm Thu", "Hoàng Gia"]
GIVEN = ["An", "Bảo", "Chi", "Dũng", "Giang", "Hà", "Khoa", "Lan"]


async def class_of_40(services: Services, world: World) -> dict[str, int]:
    """Class 4A2: 40 students, five of each given name. Returns full name -> student id."""
    rows = [
        StudentIn(
            code=f"R{i:03d}",
            full_name=f"{family} {given}",
            date_of_birth=date(2012, 1 + i % 12, 1 + i % 28),
            class_name="4A2",
        )
        for i, (family, given) in enumerate((f, g) for f in FAMILIES for g in GIVEN)
    ]
    result = await services.students.upsert_many(rows, school_id=world.primary_school_id, actor_id=None)
    assert result.created == 40
    return {row.full_name: result.student_ids[row.code] for row in rows}


async def doses_on(services: Services, given_on: date) -> list[VaccineDose]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(VaccineDose).where(VaccineDose.given_on == given_on)))


async def open_round(
    person: Person, class_button: str, dose_button: str = "Mũi tiếp theo của từng em"
) -> None:
    await person.send("/vaccine_round")
    await person.tap(class_button)
    await person.tap(TODAY_BUTTON)
    await person.tap("Comirnaty (Pfizer-BioNTech)")
    await person.tap(label("vaccines.place_button.school"))
    await person.tap(dose_button)


def test_list_numbers() -> None:
    assert list_numbers("1-3, 5", 10) == [1, 2, 3, 5]
    assert list_numbers("2 – 4 ; 7", 10) == [2, 3, 4, 7]
    assert list_numbers("12", 10) is None
    assert list_numbers("3-1", 10) is None
    assert list_numbers("a", 10) is None
    assert list_numbers("", 10) is None


async def test_class_of_40_some_ticked_some_already_at_that_dose(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    ids = await class_of_40(services, world)
    already = [f"{family} An" for family in FAMILIES]  # five students who already have dose 1
    for name in already:
        await seed_dose(services, world, ids[name], 1, date(2021, 10, 1))
    teacher = harness.person("teacher")
    taps = 0

    async def tap(button: str) -> None:
        nonlocal taps
        taps += 1
        await teacher.tap(button)

    await teacher.send("/vaccine_round")
    assert "4A2 (40)" in teacher.buttons() and "4A1 (2)" in teacher.buttons()
    await tap("4A2 (40)")
    await tap(TODAY_BUTTON)
    await tap("Comirnaty (Pfizer-BioNTech)")
    await tap(label("vaccines.place_button.school"))
    assert teacher.buttons() == [
        label("vaccines.round.dose_next"),
        label("vaccines.round.dose_button", dose_number=1),
        label("vaccines.round.dose_button", dose_number=2),
        label("vaccines.round.dose_button", dose_number=3),
    ]
    await tap(label("vaccines.round.dose_button", dose_number=1))
    text = teacher.last_text()
    assert "Đã chọn <b>0/40</b> em (trang 1/2)" in text
    assert "1. Hoàng Gia An · 1 mũi" in text  # class-list order: by given name
    toggles = [b for b in teacher.buttons() if b[0].isdigit() or b.startswith("✅")]
    assert len(toggles) == 24 and toggles[0] == "1. An (1)"
    assert label("vaccines.round.page_next") in teacher.buttons()

    messages_before = len(teacher.bot_messages())
    await tap(label("vaccines.round.select_all"))
    assert "Đã chọn <b>40/40</b>" in teacher.last_text()
    # Two pupils were absent: untick them (one on each page).
    await tap("✅6. Bảo (0)")  # 6th in the list: the first «Bảo»
    await tap(label("vaccines.round.page_next"))
    assert "(trang 2/2)" in teacher.last_text()
    await tap("✅40. Lan (0)")
    assert "Đã chọn <b>38/40</b>" in teacher.last_text()
    assert len(teacher.bot_messages()) == messages_before  # each tap redraws the list in place
    await tap("➡️ Xong (38 em)")

    summary = teacher.last_text()
    assert "Lớp <b>4A2</b> · ngày 15/11/2021 · Comirnaty (Pfizer-BioNTech) · Tại trường · mũi 1" in summary
    assert "Sẽ lưu <b>33</b> mũi:" in summary
    assert "Sẽ bỏ qua <b>5</b> em:" in summary
    assert "• 1. Hoàng Gia An — Đã có mũi 1 (tiêm ngày 01/10/2021)." in summary
    assert "• 7. Lê Minh Bảo — mũi 1" in summary and "Hoàng Gia Bảo" not in summary
    assert await count(services, VaccineDose) == 5  # the preview wrote nothing
    await tap(CONFIRM)
    result = teacher.last_text()
    assert result.startswith("✅ Đã lưu 33 mũi; bỏ qua 5:")
    for name in already:
        assert f"{name} — Đã có mũi 1 (tiêm ngày 01/10/2021)." in result
    assert taps <= 12  # 40 students: a handful of taps

    saved = await doses_on(services, TODAY)
    assert len(saved) == 33
    assert {d.dose_number for d in saved} == {1} and {d.place for d in saved} == {DosePlace.SCHOOL}
    saved_ids = {d.student_id for d in saved}
    absent = {ids["Hoàng Gia Bảo"], ids["Trần Thị Lan"]}
    assert saved_ids == set(ids.values()) - absent - {ids[n] for n in already}
    assert all(d.entered_by_id == world.staff_ids["teacher"] and not d.entered_late for d in saved)
    assert await step_of(services, teacher, "vaccine_round") is None


async def test_next_dose_mode_skips_a_short_interval(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await seed_dose(services, world, world.student_ids["HS0001"], 1, date(2021, 11, 10))
    teacher = harness.person("teacher")
    await open_round(teacher, "4A1 (2)")
    assert "1. Nguyễn Văn An · 1 mũi" in teacher.last_text()
    await teacher.tap(label("vaccines.round.select_all"))
    await teacher.tap("➡️ Xong (2 em)")
    summary = teacher.last_text()
    assert "• 2. Trần Thị Bình — mũi 1" in summary
    assert "• 1. Nguyễn Văn An — Mũi 2 cách mũi 1 (ngày 10/11/2021) chỉ 5 ngày" in summary
    await teacher.tap(CONFIRM)
    assert teacher.last_text().startswith("✅ Đã lưu 1 mũi; bỏ qua 1:")
    (saved,) = await doses_on(services, TODAY)
    assert saved.student_id == world.student_ids["HS0002"] and saved.dose_number == 1


async def test_typed_numbers_tick_quickly(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    ids = await class_of_40(services, world)
    teacher = harness.person("teacher")
    await open_round(teacher, "4A2 (40)")
    await teacher.send("1-12, 15")
    assert "Đã chọn <b>13/40</b>" in teacher.last_text()
    await teacher.send("99")
    assert "«99» không phải số thứ tự trong danh sách lớp" in teacher.last_text()
    assert "từ 1 đến 40" in teacher.last_text()
    await teacher.tap("✅15. Chi (0)")  # untick on the fresh list
    await teacher.tap("➡️ Xong (12 em)")
    await teacher.tap(CONFIRM)
    assert teacher.last_text().startswith("✅ Đã lưu 12 mũi cho lớp 4A2")
    assert len(await doses_on(services, TODAY)) == 12
    assert ids  # created


async def test_a_wrong_answer_at_every_step(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine_round")
    await teacher.send("abc")
    assert "abc" in teacher.last_text() and await step_of(services, teacher, "vaccine_round") == Step.CLASS
    await teacher.send("9Z9")
    assert "Trường không có lớp «9Z9»" in teacher.last_text()
    await teacher.send("lớp 4a1")
    assert await step_of(services, teacher, "vaccine_round") == Step.DATE
    await teacher.send("20/11/2021")
    assert (
        "còn ở tương lai" in teacher.last_text()
        and await step_of(services, teacher, "vaccine_round") == Step.DATE
    )
    await teacher.send("15/11")
    await teacher.send("vac xin la")
    assert "không có trong danh sách" in teacher.last_text()
    await teacher.send("pfizer")  # typed, matched to the list
    assert await step_of(services, teacher, "vaccine_round") == Step.PLACE
    await teacher.send("san bay")
    assert (
        "Chọn nơi tiêm bằng nút" in teacher.last_text()
        and await step_of(services, teacher, "vaccine_round") == Step.PLACE
    )
    await teacher.send("tai truong")
    await teacher.send("abc")
    assert "«abc» không phải là số mũi" in teacher.last_text()
    await teacher.send("0")
    assert (
        "số mũi phải từ 1 đến 10" in teacher.last_text()
        and await step_of(services, teacher, "vaccine_round") == Step.DOSE
    )
    await teacher.send("1")
    await teacher.tap("➡️ Xong (0 em)")
    assert (
        "Chưa chọn học sinh nào" in teacher.last_text()
        and await step_of(services, teacher, "vaccine_round") == Step.TICK
    )
    await teacher.send("3")
    assert "«3» không phải số thứ tự" in teacher.last_text()
    await teacher.send("1 2")
    await teacher.tap("➡️ Xong (2 em)")
    await teacher.send("ok")
    assert (
        "Hãy bấm một nút" in teacher.last_text()
        and await step_of(services, teacher, "vaccine_round") == Step.SUMMARY
    )
    await teacher.tap(CONFIRM)
    assert teacher.last_text().startswith("✅ Đã lưu 2 mũi cho lớp 4A1")


async def test_restart_mid_round_keeps_the_ticks(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    ids = await class_of_40(services, world)
    teacher = harness.person("teacher")
    await open_round(teacher, "4A2 (40)")
    for button in ("1. An (0)", "2. An (0)", "6. Bảo (0)"):
        await teacher.tap(button)
    assert "Đã chọn <b>3/40</b>" in teacher.last_text()
    await harness.restart()  # the process dies mid-round
    await teacher.tap("11. Chi (0)")  # a button of the list sent before the restart
    assert "Đã chọn <b>4/40</b>" in teacher.last_text()
    await teacher.send("/resume")  # the list again, as it stands
    assert "Đã chọn <b>4/40</b>" in teacher.last_text()
    await teacher.tap("➡️ Xong (4 em)")
    assert "Sẽ lưu <b>4</b> mũi:" in teacher.last_text()
    await teacher.tap(CONFIRM)
    saved = {d.student_id for d in await doses_on(services, TODAY)}
    assert saved == {ids["Hoàng Gia An"], ids["Lê Minh An"], ids["Hoàng Gia Bảo"], ids["Hoàng Gia Chi"]}


async def test_double_confirm_saves_once(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await open_round(teacher, "4A1 (2)")
    await teacher.tap(label("vaccines.round.select_all"))
    await teacher.tap("➡️ Xong (2 em)")
    summary = teacher.bot_messages()[-1]
    data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):
        await harness.deliver(harness.api.callback_query(teacher.user, summary, data))
    assert await count(services, VaccineDose) == 2
    assert len([t for t in teacher.texts() if t.startswith("✅ Đã lưu")]) == 1


async def test_edit_from_the_summary_and_late_round(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    clock.freeze(datetime(2021, 11, 18, 10, 0, tzinfo=TZ))
    teacher = harness.person("teacher")
    await open_round(teacher, "4A1 (2)")
    await teacher.tap("1. An (0)")
    await teacher.tap("➡️ Xong (1 em)")
    await teacher.tap(EDIT)
    await teacher.tap(label("vaccines.round.field.date"))
    await teacher.send("15/11")
    summary = teacher.last_text()
    assert "ngày 15/11/2021" in summary and "⏰ Nhập trễ" in summary
    await teacher.tap(EDIT)
    await teacher.tap(label("vaccines.round.field.ticks"))
    await teacher.tap("2. Bình (0)")
    await teacher.tap("➡️ Xong (2 em)")
    assert "Sẽ lưu <b>2</b> mũi:" in teacher.last_text()  # back at the summary
    await teacher.tap(CONFIRM)
    assert "⏰ Nhập trễ" in teacher.last_text()
    saved = await doses_on(services, TODAY)
    assert len(saved) == 2 and all(d.entered_late for d in saved)
    assert {d.student_id for d in saved} == {world.student_ids["HS0001"], world.student_ids["HS0002"]}


async def test_other_school_classes_not_visible(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher_thcs")
    await teacher.send("/vaccine_round")
    assert teacher.buttons() == ["7A1 (1)", "8A3 (1)"]
    await teacher.send("4A1")
    assert "Trường không có lớp «4A1»" in teacher.last_text()


async def test_cancel_mid_round_and_refusal(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await open_round(teacher, "4A1 (2)")
    await teacher.tap("1. An (0)")
    await teacher.tap(CANCEL)
    assert "Đã huỷ <b>phiếu tiêm cả lớp</b>" in teacher.last_text()
    assert (
        await step_of(services, teacher, "vaccine_round") is None and await count(services, VaccineDose) == 0
    )
    specialist = harness.person("primary_specialist")
    await specialist.send("/vaccine_round")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()


async def test_school_without_students(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    async with services.sessionmaker.begin() as session:
        for student in await session.scalars(
            select(Student).where(Student.school_id == world.secondary_school_id)
        ):
            student.active = False
    teacher = harness.person("teacher_thcs")
    await teacher.send("/vaccine_round")
    assert "chưa có danh sách học sinh" in teacher.last_text()
    assert await step_of(services, teacher, "vaccine_round") is None
