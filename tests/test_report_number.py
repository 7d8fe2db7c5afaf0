"""Issue 15: the cover's document number («Số: 125/BC-GDĐT») asked in the chat's /report.

The district report of the whole district (or a level) is the office's numbered document: after the
period, the officer types the number or skips it (the clerk writes it when the paper is issued). A
wrong answer is refused at the step, which stays. Reports of one school, and the other kinds, are
built without the question.
"""

from __future__ import annotations

import pytest

from storage.schemas.reports import ReportCover
from storage.services import Services
from tests.chat import BACK, Harness, Person, step_of
from tests.reports_world import ReportWorld, make_report_world, open_workbook, sheet
from tests.test_report_flow import (
    ALL_DATA,
    DISTRICT,
    NEEDS,
    OWN_SCHOOL,
    ROUND,
    SKIP_NUMBER,
    WHOLE_DISTRICT,
    ask,
    built,
)

BLANK = "\u00a0" * 8  # the number line's blank, for the clerk's pen


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    return await make_report_world(services)


async def cover_lines(person: Person) -> tuple[str, list[str]]:
    """The cover's number cell (A4) and every text on the cover, from the last document's bytes."""
    _, content = person.last_document()
    cover = sheet(open_workbook(content), "cover")
    texts = [str(c.value) for row in cover.iter_rows() for c in row if c.value is not None]
    return str(cover["A4"].value), texts


async def test_a_typed_number_is_on_the_cover(services: Services, harness: Harness, rw: ReportWorld) -> None:
    officer = harness.person("statistics_officer")
    await officer.send("/report")
    await officer.tap(DISTRICT)
    await officer.tap(WHOLE_DISTRICT)
    await officer.tap(ROUND)
    question = officer.last_text()
    assert "Số văn bản (trên bìa: «Số: …/BC-GDĐT»)" in question
    assert "Kỳ: <b>Đợt báo cáo 15/11/2021" in question
    assert officer.buttons() == [SKIP_NUMBER, BACK]

    # Letters only, too long, another office's symbol: refused, the question stays, nothing is built.
    for wrong, said in (
        ("abc", "«abc» không phải số văn bản. Chỉ gõ số, ví dụ 125"),
        ("1234567", "Số văn bản dài quá: tối đa 6 chữ số."),
        ("125/QĐ-UBND", "«125/QĐ-UBND» không phải số văn bản."),
    ):
        await officer.send(wrong)
        assert said in officer.last_text(), wrong
        assert await step_of(services, officer, "report") == 6
    assert harness.app is not None and not getattr(harness.app, "report_jobs", {})

    await officer.send("125")
    assert officer.last_text().startswith("⏳ Đang tạo báo cáo…")
    await built(harness)
    number, texts = await cover_lines(officer)
    assert number == "Số: 125/BC-GDĐT"
    assert "Kính gửi: Sở Giáo dục và Đào tạo TP. Hồ Chí Minh (Phòng Chính trị tư tưởng)" in texts
    assert "Nơi nhận:" in texts and "TRƯỞNG PHÒNG" in texts
    assert await step_of(services, officer, "report") is None


SETTINGS_COVER = ReportCover(
    head_name="Nguyễn Văn Trưởng", head_title="KT. TRƯỞNG PHÒNG", number_suffix="BC-PGDĐT", place="Nhà Bè"
)


@pytest.mark.parametrize("report_cover", [SETTINGS_COVER])
async def test_the_number_as_it_is_written_and_the_settings_suffix(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    """«Số: 125/…» typed whole is taken; the symbol and the signer come from the cover settings."""
    officer = harness.person("statistics_officer")
    await ask(officer, DISTRICT, WHOLE_DISTRICT, ALL_DATA, number="Số: 42/BC-PGDĐT")
    await built(harness)
    number, texts = await cover_lines(officer)
    assert number == "Số: 42/BC-PGDĐT"
    assert "Nguyễn Văn Trưởng" in texts and "KT. TRƯỞNG PHÒNG" in texts


async def test_skipped_the_number_line_is_left_blank(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    officer = harness.person("statistics_officer")
    await ask(officer, DISTRICT, WHOLE_DISTRICT, ALL_DATA)  # taps «Bỏ qua»
    await built(harness)
    number, _ = await cover_lines(officer)
    assert number == f"Số: {BLANK}/BC-GDĐT"


async def test_back_from_the_number_goes_to_the_period(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    officer = harness.person("statistics_officer")
    await officer.send("/report")
    await officer.tap(DISTRICT)
    await officer.tap(WHOLE_DISTRICT)
    await officer.tap(ALL_DATA)
    await officer.tap(BACK)
    assert ALL_DATA in officer.buttons() and await step_of(services, officer, "report") == 3
    await officer.tap(ROUND)
    await officer.send("7")
    await built(harness)
    number, texts = await cover_lines(officer)
    assert number == "Số: 7/BC-GDĐT" and "Đợt báo cáo 15/11/2021" in texts


async def test_no_number_asked_for_one_school_or_another_kind(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    principal = harness.person("principal")
    await ask(principal, DISTRICT, OWN_SCHOOL, ALL_DATA)
    assert principal.last_text().startswith("⏳ Đang tạo báo cáo…")
    officer = harness.person("statistics_officer")
    await ask(officer, NEEDS, WHOLE_DISTRICT, ALL_DATA)
    assert officer.last_text().startswith("⏳ Đang tạo báo cáo…")
    await built(harness)
    number, _ = await cover_lines(principal)
    assert number == f"Số: {BLANK}/BC-GDĐT"
