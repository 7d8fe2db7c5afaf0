"""The student picker and date picker every flow reuses."""

from __future__ import annotations

import pytest

from tests.chat import BACK, TODAY_BUTTON, YESTERDAY_BUTTON, label, running_harness
from tests.factories import make_world
from tests.sample_flow import PickerFlow


@pytest.fixture
async def picker_harness(services, db_url):
    PickerFlow.picked = []
    async with running_harness(services, db_url, PickerFlow()) as harness:
        yield harness


async def test_search_without_diacritics_tells_namesakes_apart(services, picker_harness):
    world = await make_world(services)
    teacher = picker_harness.person("teacher")
    await teacher.send("/pickdemo")
    assert "mã học sinh" in teacher.last_text()
    await teacher.send("nguyen van an")
    assert "2 học sinh" in teacher.last_text()
    # The picker's own format spelled out (tests.factories.AN etc. stand for it elsewhere).
    assert "Nguyễn Văn An · 4A1 · 14/03/2012" in teacher.buttons()
    assert "Nguyễn Văn An · 3A2 · 20/01/2013" in teacher.buttons()
    await teacher.tap("Nguyễn Văn An · 3A2 · 20/01/2013")
    await teacher.tap(YESTERDAY_BUTTON)
    assert PickerFlow.picked == [(world.student_ids["HS0003"], "2021-11-14")]


async def test_search_by_code_and_other_school_invisible(services, picker_harness):
    world = await make_world(services)
    teacher = picker_harness.person("teacher")
    await teacher.send("/pickdemo")
    await teacher.send("Phạm Thị Dung")  # a student of the THCS school
    assert "Không tìm thấy" in teacher.last_text()
    await teacher.send("hs0002")
    await teacher.tap("Trần Thị Bình · 4A1 · 02/07/2012")
    await teacher.send("15/11")
    assert PickerFlow.picked == [(world.student_ids["HS0002"], "2021-11-15")]


async def test_too_short_query_and_paging(services, picker_harness):
    await make_world(services)
    from storage.schemas.students import StudentIn

    for i in range(10):
        data = StudentIn(
            code=f"P{i:03d}",
            full_name=f"Lê Văn Phúc {chr(65 + i)}",
            date_of_birth="2012-05-01",
            class_name="4A2",
        )
        await services.students.add(data, school_id=1, actor_id=None)
    teacher = picker_harness.person("teacher")
    await teacher.send("/pickdemo")
    await teacher.send("a")
    assert "2" in teacher.last_text()  # says how many letters are needed, stays at the step
    await teacher.send("le van phuc")
    assert "trang 1/2" in teacher.last_text()
    await teacher.tap(label("core.more"))
    assert "trang 2/2" in teacher.last_text()
    assert len([b for b in teacher.buttons() if "Phúc" in b]) == 2


async def test_add_missing_student_in_place(services, picker_harness):
    """The new student is checked at each step but not written: the flow's record adds them."""
    await make_world(services)
    teacher = picker_harness.person("teacher")
    await teacher.send("/pickdemo")
    await teacher.send("Hoàng Thị Mới")
    await teacher.tap(label("pickers.add_student"))
    await teacher.send("hoàng thị mới")
    await teacher.send("32/13/2012")
    assert "không" in teacher.last_text().lower()  # a clear error, still asking for the birth date
    await teacher.send("01/06/2013")
    await teacher.send("9A1")  # a primary school has no grade 9 / age does not fit
    assert "Lớp?" not in teacher.last_text()
    await teacher.send("3A1")
    assert teacher.buttons() == [label("pickers.skip_code"), BACK]
    await teacher.send("HS0001")  # taken
    assert "HS0001" in teacher.last_text()
    await teacher.send("HS9001")
    assert any(
        "Học sinh mới: Hoàng Thị Mới · 3A1 · 01/06/2013 (🆕 học sinh mới, mã HS9001)" in t
        for t in teacher.texts()
    )
    assert (await services.students.search(1, "HS9001")).total == 0  # nothing written yet
    await teacher.tap(TODAY_BUTTON)
    [(new, day)] = PickerFlow.picked
    assert new["code"] == "HS9001" and new["full_name"] == "Hoàng Thị Mới" and day == "2021-11-15"
