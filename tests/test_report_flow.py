"""/report through the chat (clock frozen at Mon 15 Nov 2021, 09:00), on the hand-made district of
`tests.reports_world`: pick the report → the scope → a round or a date range → the workbook arrives as
a document with the one-line summary; the progress message is edited; the build never holds up other
people; a principal gets only their school, a teacher nothing."""

from __future__ import annotations

import asyncio
import html
import re
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from openpyxl.workbook import Workbook as OpenpyxlWorkbook
from sqlalchemy import func, select
from telegram.error import BadRequest

from bot.report_jobs import ReportJob, ReportRequest, running_reports
from conversations.report import Step
from exports import worker
from exports.reports import (
    devices_columns,
    needs_columns,
    stream_columns,
    timeliness_columns,
    vaccination_columns,
)
from storage.enums import HandoverKind, SchoolLevel
from storage.errors import AccessDenied
from storage.models import Handover, School
from storage.schemas.reports import ReportKind, ReportPeriod, ReportProgress, ReportScope
from storage.services import Services
from tests.chat import BACK, Harness, Person, label, step_of
from tests.reports_world import (
    P_CODE,
    P_NAME,
    S_CODE,
    ReportWorld,
    make_report_world,
    open_workbook,
    read_table,
    words,
)
from tests.reports_world import sheet as sheet_of

W = words()
NEEDS = label("report_chat.kind.needs")
DEVICES = label("report_chat.kind.devices")
VACCINATION = label("report_chat.kind.vaccination")
TIMELINESS = label("report_chat.kind.timeliness")
DISTRICT = label("report_chat.kind.district")
WHOLE_DISTRICT = label("report_chat.district_button", district="Huyện Nhà Bè")
PRIMARY_LEVEL = label("report_chat.level_button", level=label("reports.label.level_scope.TH"))
OWN_SCHOOL = f"{P_CODE} · {P_NAME}"
ALL_DATA = label("report_chat.period_all")
ROUND = label("report_chat.period_round", name="Đợt báo cáo 15/11/2021", start="01/09/2021", end="15/11/2021")
FROM_TO = label("report_chat.period_dates")
TO_TODAY = label("report_chat.to_today")
STOP = label("report_chat.stop_button")
SKIP_NUMBER = label("report_chat.number_skip")
BOUND = 60  # seconds: a bound so that a blocked loop fails the test instead of hanging it


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process is used where a test says so


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    return await make_report_world(services)


async def built(harness: Harness) -> None:
    """Wait for the reports being built (each runs in a task of its own)."""
    assert harness.app is not None
    tasks = running_reports(harness.app)
    if tasks:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), BOUND)
    await harness.settle()


async def ask(person: Person, kind: str, scope: str, period: str, number: str | None = None) -> None:
    """Ask for a report; the district report of the whole district also asks for the cover's number
    (typed when `number` is given, else skipped)."""
    await person.send("/report")
    assert "Chọn loại báo cáo" in person.last_text()
    await person.tap(kind)
    await person.tap(scope)
    await person.tap(period)
    if kind == DISTRICT and scope == WHOLE_DISTRICT:
        if number is None:
            await person.tap(SKIP_NUMBER)
        else:
            await person.send(number)


async def workbook_of(person: Person) -> tuple[str, OpenpyxlWorkbook, str]:
    """The last document: file name, workbook, caption."""
    filename, content = person.last_document()
    assert content[:2] == b"PK"
    caption = next(m for m in reversed(person.bot_messages()) if "document" in m).get("caption", "")
    return filename, open_workbook(content), str(caption)


def meta_of(workbook: OpenpyxlWorkbook) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for row in sheet_of(workbook, "meta").iter_rows(values_only=True):
        if row[0] == "Quy ước số liệu":
            break
        if row[0]:
            meta[row[0]] = row[1]
    return meta


def calls(harness: Harness, method: str, chat_id: int | None = None) -> list[int]:
    """Indexes of the Bot API calls of `method` (to `chat_id`), in the order they were made."""
    return [
        i
        for i, call in enumerate(harness.api.calls)
        if call.method == method and (chat_id is None or int(call.params.get("chat_id", 0)) == chat_id)
    ]


async def gifts_in_district(services: Services, district_id: int) -> int:
    async with services.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count(Handover.id))
                .join(Handover.batch)
                .join(School)
                .where(School.district_id == district_id, Handover.kind == HandoverKind.GIFT)
            )
            or 0
        )


# --- an officer gets each report --------------------------------------------------------------------


# As the bot runs: the workbook is written by a worker process.
@pytest.mark.parametrize("report_executor", ["process"])
async def test_officer_gets_each_report_with_the_right_numbers(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    officer = harness.person("statistics_officer")
    assert "📈 Báo cáo Excel" in (await _menu(officer))

    # Needs (4.8.1/4.8.2): totals of both schools; a loan is not a device.
    await ask(officer, NEEDS, WHOLE_DISTRICT, ALL_DATA)
    progress = officer.last_text()
    assert "Đang tạo báo cáo" in progress and "Nhu cầu hỗ trợ máy tính" in progress
    assert STOP in officer.buttons()
    assert await step_of(services, officer, "report") is None  # accepted: the conversation is over
    await built(harness)
    filename, wb, caption = await workbook_of(officer)
    assert filename.startswith("bao-cao-nhu-cau_NB_") and filename.endswith(".xlsx")
    assert "2 trường, 7 học sinh: 5 em cần máy tính (4 em thuộc diện Chương trình)" in caption
    assert "Toàn Huyện Nhà Bè · toàn bộ số liệu đến 15/11/2021" in caption
    needs = read_table(wb, "needs", needs_columns(W))
    total = needs.totals[-1]
    assert (total["needs_total"], total["device_total"], total["device_met"], total["device_unmet"]) == (
        6,
        5,
        4,
        1,
    )
    assert [r["school_code"] for r in needs.rows] == [P_CODE, S_CODE]
    assert len(read_table(wb, "needs_students", stream_columns(W, "needs_students")).rows) == 6
    assert "Đã tạo xong báo cáo" in officer.texts()[-1] or "Đã tạo xong báo cáo" in _text_of(officer, -2)

    # Devices (4.8.3), for the round.
    await ask(officer, DEVICES, WHOLE_DISTRICT, ROUND)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    assert "2 trường, 7 đợt tài trợ: nhận 15 thiết bị, đã tặng 7, đang cho mượn 2, còn lại 6" in caption
    assert "Đợt báo cáo 15/11/2021 (từ 01/09/2021 đến 15/11/2021)" in caption
    devices = read_table(wb, "devices", devices_columns(W))
    every_source = devices.totals[-1]
    assert {k: every_source[k] for k in ("batches", "received", "given", "on_loan", "returned", "left")} == {
        "batches": 7, "received": 15, "given": 7, "on_loan": 2, "returned": 1, "left": 6
    }  # fmt: skip
    assert every_source["given"] == await gifts_in_district(services, rw.district_id)  # counted apart
    assert len(read_table(wb, "device_loans", stream_columns(W, "device_loans")).rows) == 3

    # Vaccination (4.9).
    await ask(officer, VACCINATION, WHOLE_DISTRICT, ALL_DATA)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    assert "5 em đã tiêm ít nhất 1 mũi (71,4%), 4 em đã tiêm từ 2 mũi" in caption
    vaccination = read_table(wb, "vaccination", vaccination_columns(W))
    total = vaccination.totals[-1]
    assert (total["enrolled"], total["dose1"], total["dose2"], total["dose3"], total["doses"]) == (
        7,
        5,
        4,
        1,
        10,
    )

    # Timeliness: the 1-day rule.
    await ask(officer, TIMELINESS, WHOLE_DISTRICT, ALL_DATA)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    # The records of the 1-day rule only (batches, handovers, returns, doses; never needs: issue 15).
    assert "2 trường, 28 bản ghi: 3 bản ghi nhập muộn, đúng hạn 89,3%." in caption
    timeliness = read_table(wb, "timeliness", timeliness_columns(W))
    assert (timeliness.totals[-1]["records_total"], timeliness.totals[-1]["records_late"]) == (28, 3)

    # The district's report for the province, for the round: cover, status, signatures.
    await ask(officer, DISTRICT, WHOLE_DISTRICT, ROUND)
    await built(harness)
    filename, wb, caption = await workbook_of(officer)
    assert filename == "bao-cao-tong-hop_NB_20211115-0900.xlsx"
    assert "đã tặng 7 thiết bị, cho mượn 2; tiêm ít nhất 1 mũi 71,4%" in caption
    assert wb.sheetnames[0] == "Bìa" and "Tình trạng gửi-duyệt" in wb.sheetnames
    meta = meta_of(wb)
    assert meta["Người lập"] == "Lý Thị Mai" and meta["Đợt báo cáo"] == "Đợt báo cáo 15/11/2021"
    # The menu comes back with the document.
    assert "📈 Báo cáo Excel" in officer.reply_keyboard()


async def _menu(person: Person) -> list[str]:
    await person.send("/help")
    return person.reply_keyboard()


def _text_of(person: Person, index: int) -> str:
    texts = person.texts()
    return texts[index] if len(texts) >= -index else ""


async def test_a_level_a_school_found_by_typing_and_paging(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    async with services.sessionmaker.begin() as session:
        for number in range(1, 11):  # 12 schools in the district: two pages of buttons
            session.add(
                School(
                    district_id=rw.district_id,
                    code=f"7978520{number:02d}",
                    name=f"Trường TH Số {number}",
                    level=SchoolLevel.PRIMARY,
                )
            )
    officer = harness.person("deputy_head")
    await officer.send("/report")
    await officer.tap(NEEDS)
    text, buttons = officer.last_text(), officer.buttons()
    assert "12 trường, trang 1/2" in text
    assert buttons[:3] == [WHOLE_DISTRICT, PRIMARY_LEVEL, "🏫 Cấp THCS (gồm trường liên cấp)"]
    assert len([b for b in buttons if " · " in b]) == 8 and "Trang sau ▶️" in buttons
    await officer.tap(label("report_chat.page_next"))
    assert "trang 2/2" in officer.last_text() and label("report_chat.page_previous") in officer.buttons()
    assert f"{S_CODE} · Trường THCS Nguyễn Bỉnh Khiêm" in officer.buttons()

    # Typing finds schools: several matches are listed, one match is picked at once.
    await officer.send("so 1")
    assert "Các trường khớp «so 1» (2 trường" in officer.last_text()  # Số 1 and Số 10
    await officer.send("xyz")
    assert "Không có trường nào khớp «xyz»" in officer.last_text()
    assert await step_of(services, officer, "report") == Step.SCOPE
    await officer.send("le van luong")
    assert f"Phạm vi: <b>{P_NAME} (mã {P_CODE})</b>" in officer.last_text()
    await officer.tap(BACK)
    await officer.tap(PRIMARY_LEVEL)
    assert "Phạm vi: <b>Cấp Tiểu học (gồm trường liên cấp)</b>" in officer.last_text()
    await officer.tap(ALL_DATA)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    needs = read_table(wb, "needs", needs_columns(W))
    assert [r["school_code"] for r in needs.rows if r["needs_total"]] == [P_CODE]
    assert S_CODE not in [r["school_code"] for r in needs.rows]
    assert caption.startswith("📈 <b>Nhu cầu hỗ trợ máy tính (4.8.1, 4.8.2)</b>\nCấp Tiểu học")


async def test_a_specialist_sees_only_their_level(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    specialist = harness.person("secondary_specialist")
    await specialist.send("/report")
    await specialist.tap(VACCINATION)
    assert specialist.buttons() == [
        "🏫 Cấp THCS (gồm trường liên cấp)",
        f"{S_CODE} · Trường THCS Nguyễn Bỉnh Khiêm",
        BACK,
    ]


# --- who may have what ------------------------------------------------------------------------------


async def test_a_principal_gets_only_their_school(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    principal = harness.person("principal")
    await principal.send("/report")
    await principal.tap(DEVICES)
    assert principal.buttons() == [OWN_SCHOOL, BACK]  # no other school, no district, no level

    # A forged button for another school, then for the district: refused, still at the scope.
    scope_message = principal.bot_messages()[-1]
    for forged in (
        f"report:scope:school:{rw.secondary_id}",
        "report:scope:district",
        "report:scope:level:TH",
    ):
        await harness.deliver(harness.api.callback_query(principal.user, scope_message, forged))
        assert "Bạn chỉ lập được báo cáo của trường mình" in principal.last_text()
        assert await step_of(services, principal, "report") == Step.SCOPE
    assert not running_reports(harness.app)  # type: ignore[arg-type]

    await principal.tap(OWN_SCHOOL)
    await principal.tap(ALL_DATA)
    await built(harness)
    filename, wb, caption = await workbook_of(principal)
    assert filename.startswith(f"bao-cao-thiet-bi_{P_CODE}_")
    assert caption.startswith(f"📈 <b>Tiếp nhận và bàn giao thiết bị (4.8.3)</b>\n{P_NAME} (mã {P_CODE})")
    devices = read_table(wb, "devices", devices_columns(W))
    assert {r["school_code"] for r in devices.rows} == {P_CODE}
    assert "1 trường, 3 đợt tài trợ" in caption


async def test_a_teacher_is_refused(services: Services, harness: Harness, rw: ReportWorld) -> None:
    teacher = harness.person("teacher")
    await teacher.send("/report")
    assert (
        teacher.last_text()
        == "Vai trò của bạn không được làm việc này. Gõ /help để xem những việc bạn làm được."
    )
    assert await step_of(services, teacher, "report") is None
    assert not teacher.buttons()
    assert "📈 Báo cáo Excel" not in (await _menu(teacher))


# --- the period ---------------------------------------------------------------------------------------


async def test_a_typed_date_range_wrong_then_right(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    officer = harness.person("health_officer")
    await officer.send("/report")
    await officer.tap(VACCINATION)
    await officer.tap(WHOLE_DISTRICT)
    period_question = officer.last_text()
    assert "<code>01/09/2021 - 15/11/2021</code>" in period_question
    assert officer.buttons() == [ALL_DATA, ROUND, FROM_TO, BACK]

    await officer.send("01/11/2021")  # one day is not a range
    hint = officer.last_text()
    assert "«01/11/2021» không phải là một khoảng ngày" in hint
    assert "Gõ khoảng ngày theo mẫu <code>01/09/2021 - 15/11/2021</code>" in hint
    assert await step_of(services, officer, "report") == Step.PERIOD
    await officer.send("15/11/2021 - 01/11/2021")
    assert "Ngày bắt đầu 15/11/2021 sau ngày kết thúc 01/11/2021" in officer.last_text()
    await officer.send("31/02/2021 - <b>1/3</b>")  # escaped where it is quoted back
    assert "&lt;b&gt;" in officer.last_text() or "không có trên lịch" in officer.last_text()
    assert await step_of(services, officer, "report") == Step.PERIOD
    assert not running_reports(harness.app)  # type: ignore[arg-type]

    await officer.send("01/10/2021 đến 31/10/2021")
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    assert "từ 01/10/2021 đến 31/10/2021" in caption
    meta = meta_of(wb)
    assert meta["Từ ngày"].date().isoformat() == "2021-10-01" and meta["Đến ngày"].day == 31
    doses = read_table(wb, "vaccination_doses", stream_columns(W, "vaccination_doses"))
    assert len(doses.rows) == 8  # the two doses given in November are outside October
    assert all(r["given_on"].month == 10 for r in doses.rows)


def code_in(text: str) -> str:
    """The example the bot shows between <code>…</code> (as a person reads it, unescaped)."""
    found = re.search(r"<code>(.*?)</code>", text, re.DOTALL)
    assert found is not None, text
    return html.unescape(found.group(1))


async def at_the_period(officer: Person) -> str:
    await officer.send("/report")
    await officer.tap(VACCINATION)
    await officer.tap(WHOLE_DISTRICT)
    return officer.last_text()


async def test_the_range_the_question_shows_is_accepted(
    services: Services, harness: Harness, rw: ReportWorld
) -> None:
    """Typing exactly the example of the period question (read from the bot's message, so the test
    follows the catalogue) builds the report for that range."""
    officer = harness.person("health_officer")
    shown = code_in(await at_the_period(officer))
    await officer.send(shown)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    assert "từ 01/09/2021 đến 15/11/2021" in caption
    meta = meta_of(wb)
    assert meta["Từ ngày"].date().isoformat() == "2021-09-01"
    assert meta["Đến ngày"].date().isoformat() == "2021-11-15"


@pytest.mark.parametrize(
    "typed",
    [
        "01/09/2021-15/11/2021",
        "01/09/2021 – 15/11/2021",  # the en dash of a round's button
        "01/09/2021 đến 15/11/2021",
        "từ 01/09/2021 đến 15/11/2021",  # a report's caption
        "tu 01/09/2021 den 15/11/2021",
        "1/9 - 15/11",  # this school year
        "tu 1/9 den 15/11",
    ],
)
async def test_the_usual_ways_to_type_a_range(
    services: Services, harness: Harness, rw: ReportWorld, typed: str
) -> None:
    officer = harness.person("health_officer")
    await at_the_period(officer)
    await officer.send(typed)
    await built(harness)
    _, _, caption = await workbook_of(officer)
    assert "từ 01/09/2021 đến 15/11/2021" in caption


async def test_the_hints_examples_are_accepted(services: Services, harness: Harness, rw: ReportWorld) -> None:
    """A reversed range is refused, saying which day is after which, and the hint offers the range
    the other way round: typing that (as shown) builds the report. So does the plain hint's example."""
    officer = harness.person("health_officer")
    await at_the_period(officer)
    await officer.send("15/11/2021 - 01/10/2021")
    refusal = officer.last_text()
    assert "Ngày bắt đầu 15/11/2021 sau ngày kết thúc 01/10/2021" in refusal
    assert code_in(refusal) == "01/10/2021 - 15/11/2021"
    assert await step_of(services, officer, "report") == Step.PERIOD
    assert not running_reports(harness.app)  # type: ignore[arg-type]
    await officer.send("không biết")
    hint = officer.last_text()
    assert "không phải là một khoảng ngày" in hint
    assert code_in(hint) == "01/09/2021 - 15/11/2021"
    await officer.send(code_in(refusal))
    await built(harness)
    _, _, caption = await workbook_of(officer)
    assert "từ 01/10/2021 đến 15/11/2021" in caption


async def test_a_range_typed_at_the_from_step(services: Services, harness: Harness, rw: ReportWorld) -> None:
    officer = harness.person("health_officer")
    shown = code_in(await at_the_period(officer))
    await officer.tap(FROM_TO)
    assert "Báo cáo từ ngày nào?" in officer.last_text()
    await officer.send(shown)
    await built(harness)
    _, _, caption = await workbook_of(officer)
    assert "từ 01/09/2021 đến 15/11/2021" in caption


async def test_from_and_to_in_two_steps(services: Services, harness: Harness, rw: ReportWorld) -> None:
    officer = harness.person("admin")
    await officer.send("/report")
    await officer.tap(TIMELINESS)
    await officer.tap(WHOLE_DISTRICT)
    await officer.tap(FROM_TO)
    assert "Báo cáo từ ngày nào?" in officer.last_text()
    await officer.send("hôm kìa nữa")
    assert "Gõ một ngày theo mẫu" in officer.last_text()
    assert await step_of(services, officer, "report") == Step.DATE_FROM
    await officer.send("10/11/2021")
    assert "Từ ngày 10/11/2021 đến ngày nào?" in officer.last_text()
    await officer.send("01/11/2021")
    assert "sau ngày kết thúc" in officer.last_text()
    assert await step_of(services, officer, "report") == Step.DATE_TO
    await officer.tap(TO_TODAY)
    await built(harness)
    _, wb, caption = await workbook_of(officer)
    assert "từ 10/11/2021 đến nay" in caption
    assert meta_of(wb)["Từ ngày"].day == 10


# --- the build: progress, other people, cancelling ------------------------------------------------


async def test_the_progress_message_is_edited(services: Services, harness: Harness, rw: ReportWorld) -> None:
    officer = harness.person("statistics_officer")
    await ask(officer, DISTRICT, WHOLE_DISTRICT, ALL_DATA)
    progress = officer.bot_messages()[-1]
    assert progress["text"].startswith("⏳ Đang tạo báo cáo…")
    await built(harness)
    edits = [
        harness.api.calls[i].params
        for i in calls(harness, "editMessageText", officer.id)
        if int(harness.api.calls[i].params["message_id"]) == progress["message_id"]
    ]
    assert len(edits) >= 2
    assert "Đang tạo báo cáo… 0%" in edits[0]["text"]  # a stage, with the cancel button
    assert "reportjob:stop:" in str(edits[0].get("reply_markup"))
    assert edits[-1]["text"].startswith("✅ Đã tạo xong báo cáo.")
    assert "reply_markup" not in progress  # the button went with the last edit
    assert progress["text"].startswith("✅ Đã tạo xong báo cáo.")
    # The document comes after the last edit.
    assert calls(harness, "sendDocument", officer.id)[-1] > calls(harness, "editMessageText", officer.id)[-1]


class FakeBot:
    """Only edit_message_text, failing as Telegram does."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.edits: list[str] = []

    async def edit_message_text(self, text: str, **_: Any) -> None:
        self.edits.append(text)
        if self.error is not None:
            raise self.error


async def test_not_modified_and_other_edit_errors_are_ignored() -> None:
    request = ReportRequest(
        key="k",
        kind=ReportKind.NEEDS,
        scope=ReportScope.district(1),
        period=ReportPeriod(),
        language="vi",
        staff_id=1,
        user_id=1,
        chat_id=1,
        kind_label="Nhu cầu",
        scope_label="Toàn Huyện Nhà Bè",
        period_label="toàn bộ số liệu",
    )
    for error in (
        BadRequest("Message is not modified: specified new message content …"),
        BadRequest("x"),
        None,
    ):
        bot = FakeBot(error)
        job = ReportJob(request, None, bot, 5, None, {})  # type: ignore[arg-type]
        job.progress(ReportProgress("summary", 0, 10))
        job.progress(ReportProgress("summary", 1, 10))  # too soon after the first: skipped
        await job.close("xong")
        assert bot.edits[0].startswith("⏳ Đang tạo báo cáo… 0%") and bot.edits[-1] == "xong"
        assert len(bot.edits) == 2


@pytest.fixture
async def held_writer(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[], None]]:
    """The workbook writer (thread mode) waits for the test's word before it writes: `release()`.
    Its own wait is bounded too, so a blocked event loop cannot hang the test (it fails instead)."""
    released = threading.Event()
    timed_out: list[bool] = []
    original = worker._write

    def held(*args: Any) -> dict[str, int]:
        if not released.wait(BOUND):
            timed_out.append(True)
        return original(*args)

    monkeypatch.setattr(worker, "_write", held)
    yield released.set
    released.set()
    assert not timed_out, "the writer was never released"


async def test_someone_else_is_answered_before_the_report_is_sent(
    services: Services, harness: Harness, rw: ReportWorld, held_writer: Callable[[], None]
) -> None:
    officer, teacher = harness.person("statistics_officer"), harness.person("teacher")
    # The officer's request returns at once (the writer is held): the handler does not wait for it.
    await asyncio.wait_for(ask(officer, DISTRICT, WHOLE_DISTRICT, ROUND), BOUND)
    assert running_reports(harness.app)  # type: ignore[arg-type]

    await asyncio.wait_for(teacher.send("/me"), BOUND)
    assert "Đỗ Thị Hoa" in teacher.last_text()
    await asyncio.wait_for(officer.send("/cancel"), BOUND)  # the officer's own messages too
    assert "Không có việc gì đang làm dở" in officer.last_text()
    with pytest.raises(AssertionError):
        officer.last_document()  # not yet: the writer is still held

    held_writer()
    await built(harness)
    _, wb, _ = await workbook_of(officer)
    assert meta_of(wb)["Đợt báo cáo"] == "Đợt báo cáo 15/11/2021"
    answered = calls(harness, "sendMessage", teacher.id)[-1]
    assert answered < calls(harness, "sendDocument", officer.id)[-1]


async def test_one_report_at_a_time_and_the_cancel_button(
    services: Services, harness: Harness, rw: ReportWorld, held_writer: Callable[[], None]
) -> None:
    officer = harness.person("deputy_head")
    await ask(officer, NEEDS, WHOLE_DISTRICT, ALL_DATA)
    progress = officer.bot_messages()[-1]

    # A second report while the first is being built: said so, and the choice stays.
    await ask(officer, TIMELINESS, WHOLE_DISTRICT, ALL_DATA)
    assert "Báo cáo trước của bạn vẫn đang được tạo" in officer.last_text()
    assert await step_of(services, officer, "report") == Step.PERIOD
    await officer.send("/cancel")

    # «Cancel this report» on the progress message stops the build; nothing is sent.
    stop = progress["reply_markup"]["inline_keyboard"][0][0]
    assert stop["text"] == STOP
    await harness.deliver(harness.api.callback_query(officer.user, progress, stop["callback_data"]))
    held_writer()
    await built(harness)
    assert progress["text"].startswith("⏹ Đã huỷ tạo báo cáo <b>Nhu cầu hỗ trợ máy tính")
    assert "reply_markup" not in progress
    assert not calls(harness, "sendDocument", officer.id)
    assert not running_reports(harness.app)  # type: ignore[arg-type]
    # The button again: nothing left to cancel.
    await harness.deliver(harness.api.callback_query(officer.user, progress, stop["callback_data"]))
    assert "Báo cáo này đã xong hoặc đã huỷ." in officer.alerts()

    # And a new report goes through.
    await ask(officer, TIMELINESS, WHOLE_DISTRICT, ALL_DATA)
    await built(harness)
    _, _, caption = await workbook_of(officer)
    assert "28 bản ghi" in caption


async def test_a_failure_is_told_in_vietnamese(
    services: Services, harness: Harness, rw: ReportWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> dict[str, int]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(worker, "_write", broken)
    officer = harness.person("statistics_officer")
    await ask(officer, DEVICES, WHOLE_DISTRICT, ALL_DATA)
    await built(harness)
    assert "⚠️ Có lỗi khi tạo báo cáo <b>Tiếp nhận và bàn giao thiết bị (4.8.3)</b>" in officer.last_text()
    assert not calls(harness, "sendDocument", officer.id)

    # The service refuses (e.g. the account lost its rights after asking): it says why.
    monkeypatch.undo()

    async def refused(*args: Any, **kwargs: Any) -> None:
        raise AccessDenied("reports.own_school_only")

    monkeypatch.setattr(services.reports, "build", refused)
    await ask(officer, DEVICES, WHOLE_DISTRICT, ALL_DATA)
    await built(harness)
    assert officer.last_text() == (
        "⚠️ Không tạo được báo cáo <b>Tiếp nhận và bàn giao thiết bị (4.8.3)</b>: "
        "Bạn chỉ lập được báo cáo của trường mình. Chọn phạm vi «trường của tôi»."
    )
    assert not calls(harness, "sendDocument", officer.id)
