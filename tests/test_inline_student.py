"""A student missing from the list, added inside /vaccine, /handover or /need: the CSDL code can be
skipped, nothing is written before the flow's confirm, and the confirm saves the student and the record
in one transaction (clock frozen at Mon 15 Nov 2021, 09:00)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from storage.enums import AuditAction
from storage.models import AuditLog, Handover, NeedRecord, Student, VaccineDose
from storage.schemas.csdl import CsdlMenu
from storage.schemas.students import is_provisional_code
from storage.services import Services
from storage.services.csdl import CsdlService
from tests.chat import BACK, CONFIRM, SKIP, TODAY_BUTTON, Harness, Person, label, step_of
from tests.factories import make_world
from tests.helpers import count
from tests.test_my_entries import teacher_batch

SKIP_CODE = label("pickers.skip_code")
ADD = label("pickers.add_student")
NEW_LABEL = "Hoàng Thị Mới · 3A1 · 01/06/2013 (🆕 học sinh mới, chưa có mã CSDL)"


async def students_named(services: Services, name: str) -> list[Student]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Student).where(Student.full_name == name)))


async def add_new(person: Person, *, code: str | None = None) -> None:
    """From the picker's question: search, «add», name, birth date, class, code or «skip»."""
    await person.send("Hoàng Thị Mới")
    await person.tap(ADD)
    await person.send("hoàng thị mới")
    await person.send("01/06/2013")
    await person.send("3a1")
    if code is None:
        await person.tap(SKIP_CODE)
    else:
        await person.send(code)


async def test_dose_for_a_new_student_without_a_code(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await add_new(teacher)
    texts = teacher.new_texts()
    assert any("Chưa lưu gì" in t and NEW_LABEL in t for t in texts)
    assert await students_named(services, "Hoàng Thị Mới") == []  # nothing written at the picker
    assert "Chưa có mũi nào được ghi." in teacher.last_text()
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Vero Cell (Sinopharm)")
    await teacher.tap(label("vaccines.place_button.school"))
    summary = teacher.last_text()
    assert f"Học sinh: <b>{NEW_LABEL}</b>" in summary  # the summary says the student is new
    assert await students_named(services, "Hoàng Thị Mới") == []
    await teacher.tap(CONFIRM)
    assert "✅ Đã lưu mũi 1" in teacher.last_text()
    [student] = await students_named(services, "Hoàng Thị Mới")
    assert is_provisional_code(student.code) and student.school_id == world.primary_school_id
    assert student.class_name == "3A1" and student.entered_by_id == world.staff_ids["teacher"]
    async with services.sessionmaker() as session:
        [dose] = list(await session.scalars(select(VaccineDose).where(VaccineDose.student_id == student.id)))
        creates = list(
            await session.scalars(
                select(AuditLog.entity).where(AuditLog.action == AuditAction.CREATE).order_by(AuditLog.id)
            )
        )
    assert dose.dose_number == 1 and creates[-2:] == ["student", "vaccine_dose"]
    # The CSDL file for 4.9.1 carries the dose with an empty code cell, never the placeholder.
    csdl = CsdlService(services.sessionmaker, services.clock)
    export = await csdl.export(await csdl.school_by_code("79785001"), CsdlMenu.DOSES)
    [row] = [r for r in export.records if r.values["full_name"] == "Hoàng Thị Mới"]
    assert row.values["student_code"] == "" and row.who == "Hoàng Thị Mới"
    # The district's workbooks show the same empty code, never the placeholder.
    from io import BytesIO

    from openpyxl import load_workbook

    from storage.schemas.reports import ReportScope

    for kind in ("vaccination", "district"):
        report = await services.reports.build(kind, ReportScope.district(world.district_id))
        book = load_workbook(BytesIO(report.content), read_only=True)
        cells = [c for sheet in book.worksheets for r in sheet.iter_rows(values_only=True) for c in r]
        assert "Hoàng Thị Mới" in cells or kind == "district"
        assert not any(isinstance(c, str) and c == student.code for c in cells), kind


async def test_cancel_before_the_confirm_leaves_no_student(services: Services, harness: Harness) -> None:
    await make_world(services)
    students = await count(services, Student)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await add_new(teacher)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.send("/cancel")
    assert "không có gì được lưu" in teacher.last_text()
    assert await count(services, Student) == students
    assert await step_of(services, teacher, "vaccine") is None


async def test_handover_to_a_new_student_with_a_code(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await teacher_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(teacher.buttons()[0])  # the one batch
    await add_new(teacher, code="hs 9001")
    await teacher.tap(label("devices.kind.gift"))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    shown = "Hoàng Thị Mới · 3A1 · 01/06/2013 (🆕 học sinh mới, mã HS9001)"
    assert shown in teacher.last_text()
    assert await students_named(services, "Hoàng Thị Mới") == []
    await teacher.tap(CONFIRM)
    [student] = await students_named(services, "Hoàng Thị Mới")
    assert student.code == "HS9001"
    async with services.sessionmaker() as session:
        [handover] = list(await session.scalars(select(Handover).where(Handover.student_id == student.id)))
    assert handover.batch_id == batch.id


async def test_need_of_a_new_student_and_a_refused_record_leaves_no_student(
    services: Services, harness: Harness
) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/need")
    await add_new(teacher)
    assert "thuộc diện ưu tiên nào" in teacher.last_text()  # no «already recorded» for a new student
    await teacher.tap(label("needs.group.poor"))
    await teacher.tap(label("needs.kind.device"))
    await teacher.tap(SKIP)
    assert NEW_LABEL in teacher.last_text()
    await teacher.tap(CONFIRM)
    [student] = await students_named(services, "Hoàng Thị Mới")
    async with services.sessionmaker() as session:
        need = await session.scalar(select(NeedRecord).where(NeedRecord.student_id == student.id))
    assert need is not None


async def test_a_refused_record_rolls_the_new_student_back(services: Services, harness: Harness) -> None:
    """The dose and its new student are one transaction: a dose refused at the confirm adds neither."""
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await add_new(teacher, code="HS9002")
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Vero Cell (Sinopharm)")
    await teacher.tap(label("vaccines.place_button.school"))
    # Meanwhile someone adds a student with the same code: the confirm is refused, nothing written.
    from storage.schemas.students import StudentIn

    other = StudentIn(code="HS9002", full_name="Lê Văn Khác", date_of_birth="2013-02-02", class_name="3A2")
    await services.students.add(other, school_id=world.primary_school_id, actor_id=None)
    doses = await count(services, VaccineDose)
    await teacher.tap(CONFIRM)
    assert "HS9002" in teacher.last_text()  # the code is taken: said plainly
    assert await students_named(services, "Hoàng Thị Mới") == []
    assert await count(services, VaccineDose) == doses


async def test_a_wrong_answer_at_each_new_step(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.send("Hoàng Thị Mới")
    await teacher.tap(ADD)

    async def wrong(answer: str, hint: str) -> None:
        step = await step_of(services, teacher, "vaccine")
        await teacher.send(answer)
        assert hint in teacher.last_text(), teacher.last_text()
        assert await step_of(services, teacher, "vaccine") == step

    await wrong("😀😀", "")  # a name without letters
    await teacher.send("Hoàng Thị Mới")
    await wrong("32/13/2013", "không")
    await wrong("01/06/2000", "2000")  # too old for a primary school
    await teacher.send("01/06/2013")
    await wrong("lớp ba", "lớp")
    await wrong("9A1", "9")  # no grade 9 in a primary school
    await teacher.send("3A1")
    await wrong("mã số 1", "")  # spaces are dropped, but «Ố» is not a code character
    await wrong("HS0001", "HS0001")  # taken by Nguyễn Văn An
    assert teacher.buttons() == [SKIP_CODE, BACK]
    await teacher.tap(SKIP_CODE)
    assert "Mũi thứ mấy" in teacher.last_text() or "mũi thứ mấy" in teacher.last_text()
    assert await students_named(services, "Hoàng Thị Mới") == []


async def test_interrupted_and_resumed_mid_way(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.send("Hoàng Thị Mới")
    await teacher.tap(ADD)
    await teacher.send("Hoàng Thị Mới")
    await teacher.send("01/06/2013")
    await harness.restart()
    await teacher.send("3A1")
    await harness.restart()
    await teacher.tap(SKIP_CODE)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await harness.restart()
    await teacher.send("/resume")
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Vero Cell (Sinopharm)")
    await teacher.tap(label("vaccines.place_button.school"))
    await teacher.tap(CONFIRM)
    [student] = await students_named(services, "Hoàng Thị Mới")
    assert student.date_of_birth == date(2013, 6, 1) and is_provisional_code(student.code)
