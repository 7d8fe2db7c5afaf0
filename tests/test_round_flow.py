"""A reporting round through the chat (clock frozen at Mon 15 Nov 2021, 09:00): /round, /submit,
/review, /review_vaccine, /compile, /progress, /history."""

from __future__ import annotations

import io
from datetime import date, datetime

import openpyxl
import pytest
from sqlalchemy import select

from storage.enums import PriorityGroup, RoundStatus, SubmissionStatus, SubmissionTrack
from storage.models import CompiledReport
from storage.schemas.needs import NeedIn
from storage.schemas.rounds import RoundIn
from storage.services import Services
from tests.chat import CANCEL, CONFIRM, SKIP, TODAY_BUTTON, Harness, Person, label
from tests.factories import AN_3A2, BINH, World, make_world
from tests.helpers import laptops_with_one_gift

SUBMIT = label("rounds_chat.submit.confirm_button")
PROGRAMME = label("rounds.track.program")
BOTH = label("rounds_chat.submit.both")
TH = "79785001 · Trường TH Lê Văn Lương"
THCS = "79785101 · Trường THCS Nguyễn Bỉnh Khiêm"
REASON = "Thiếu nhu cầu của học sinh lớp 7A1 <Võ Minh Đức>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def directive_round() -> RoundIn:
    return RoundIn(
        name="Báo cáo CV 1128/GDĐT",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=datetime(2021, 11, 15, 15, 30),
        approve_deadline=datetime(2021, 11, 16, 11, 30),
        compile_deadline=datetime(2021, 11, 16, 17, 0),
    )


async def school_records(services: Services, world: World) -> None:
    """The primary school: a programme batch of 3 laptops and one gift; the lower-secondary school: a
    need, entered by its teacher."""
    await laptops_with_one_gift(services, world)
    await record_need(services, world, "HS0005", PriorityGroup.OTHER_HARDSHIP)


async def record_need(services: Services, world: World, code: str, group: PriorityGroup) -> None:
    await services.needs.record_need(
        NeedIn(
            student_id=world.student_ids[code], category=group, needs_device=True, needs_connectivity=False
        ),
        school_id=world.secondary_school_id,
        actor_id=world.staff_ids["teacher_thcs"],
        request_key=None,
    )


async def status(
    services: Services, round_id: int, school_id: int, track: SubmissionTrack
) -> SubmissionStatus:
    return (await services.rounds.submission(round_id, track, school_id=school_id)).status


async def submit_programme(principal: Person) -> None:
    await principal.send("/submit")
    await principal.tap(PROGRAMME)
    await principal.tap(SUBMIT)


async def test_round_is_created_in_the_chat(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    deputy = harness.person("deputy_head")
    await deputy.send("/round")
    assert "Tên đợt là gì?" in deputy.last_text()
    await deputy.send("Báo cáo CV 1128/GDĐT <tháng 11>")
    assert "bắt đầu từ ngày nào" in deputy.last_text()
    await deputy.send("01/09/2021")
    await deputy.send("15/11/2021")
    assert "Hạn các trường <b>gửi số liệu</b>" in deputy.last_text()
    await deputy.send("15/11/2021 <15:30>")  # not a time: said, escaped, asked again
    assert deputy.last_text().startswith("«15/11/2021 &lt;15:30&gt;» không phải là ngày giờ")
    await deputy.send("31/11/2021 15:30")
    assert "không có trên lịch" in deputy.last_text()
    await deputy.send("15h30 ngày 15/11/2021")
    await deputy.send("16/11/2021 11:30")
    # The compile deadline typed before the approval one: the service says so at the confirm.
    await deputy.send("16/11/2021 10:00")
    summary = deputy.last_text()
    assert "Tên: <b>Báo cáo CV 1128/GDĐT &lt;tháng 11&gt;</b>" in summary
    assert "Kỳ báo cáo: 01/09/2021 – 15/11/2021" in summary
    assert "Hạn trường gửi: <b>15:30 15/11/2021</b>" in summary
    await deputy.tap(CONFIRM)
    texts = deputy.new_texts()
    assert any("Chưa tạo được đợt" in text and "theo thứ tự" in text for text in texts), texts
    assert await services.rounds.list_rounds(world.district_id) == []
    await deputy.tap(label("rounds_chat.round.field.compile"))
    await deputy.send("16/11/2021 17:00")
    assert "Hạn tổng hợp: <b>17:00 16/11/2021</b>" in deputy.last_text()  # back to the summary
    await deputy.tap(CONFIRM)
    assert "Đã mở đợt báo cáo số" in deputy.last_text() and "cho 2 trường" in deputy.last_text()
    (created,) = await services.rounds.list_rounds(world.district_id)
    assert created.name == "Báo cáo CV 1128/GDĐT <tháng 11>"
    assert created.created_by_id == world.staff_ids["deputy_head"]
    assert created.submit_deadline == datetime(2021, 11, 15, 8, 30, tzinfo=created.submit_deadline.tzinfo)
    assert await services.drafts.get(deputy.id, "round") is None
    # Only the deputy head and the admin open rounds.
    principal = harness.person("principal")
    await principal.send("/round")
    assert "Vai trò của bạn không được làm việc này" in principal.last_text()


@pytest.mark.parametrize("report_executor", ["thread"])
async def test_whole_round_for_two_schools(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await school_records(services, world)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    principal, principal_thcs = harness.person("principal"), harness.person("principal_thcs")
    teacher, teacher_thcs = harness.person("teacher"), harness.person("teacher_thcs")
    primary_specialist = harness.person("primary_specialist")
    secondary_specialist = harness.person("secondary_specialist")
    health_officer, statistics = harness.person("health_officer"), harness.person("statistics_officer")

    # The primary principal sees the figures and submits the programme data.
    await principal.send("/submit")
    choice = principal.last_text()
    assert "Đợt báo cáo «Báo cáo CV 1128/GDĐT»" in choice and "hạn gửi <b>15:30 15/11/2021</b>" in choice
    assert principal.buttons() == [PROGRAMME, label("rounds.track.vaccine"), BOTH]
    await principal.tap(PROGRAMME)
    figures = principal.last_text()
    assert "• Máy nhận (Chương trình): <b>3</b>" in figures
    assert "• Máy đã tặng (Chương trình): <b>1</b>" in figures
    assert "Không thấy điểm chưa khớp" in figures
    assert "bị <b>khoá</b>" in figures
    await principal.tap(SUBMIT)
    done = principal.last_text()
    assert "✅ Đã gửi Chương trình" in done and "Đã báo cho: Trần Lê Hồng Phúc." in done
    assert "📥 Trường TH Lê Văn Lương vừa gửi" in primary_specialist.last_text()
    assert "/review" in primary_specialist.last_text()
    assert await status(services, rnd.id, world.primary_school_id, SubmissionTrack.PROGRAM) == "submitted"

    # Its period (to 15/11, today) is locked: a need changed today would alter it, so /need refuses
    # at once, before its questions, naming the round and period and who can reopen it.
    assert "need" in harness.app.registered_commands
    await teacher.send("/need")
    assert "đang bị khoá" in teacher.last_text() and "Báo cáo CV 1128/GDĐT" in teacher.last_text()
    assert "01/09/2021 – 15/11/2021" in teacher.last_text() and teacher.buttons() == []

    # The lower-secondary principal submits both parts at once: each reviewer is told.
    await principal_thcs.send("/submit")
    await principal_thcs.tap(BOTH)
    figures = principal_thcs.last_text()
    assert "Cần máy tính – khó khăn khác: <b>1</b>" in figures
    assert "Học sinh đã tiêm ít nhất 1 mũi" not in figures  # zero figures are summed up in one line
    await principal_thcs.tap(SUBMIT)
    done = principal_thcs.last_text()
    assert "Cam Văn Võ Kiêm Toàn" in done and "Nguyễn Thị Thanh Thủy" in done
    assert "/review_vaccine" in health_officer.last_text()
    assert "Nguyễn Bỉnh Khiêm" in secondary_specialist.last_text()

    # The primary specialist sees only the primary school, gets its workbook and approves at once.
    await primary_specialist.send("/review")
    assert primary_specialist.buttons() == [TH]
    await primary_specialist.tap(TH)
    summary = primary_specialist.last_text()
    assert "<b>Trường TH Lê Văn Lương</b> (79785001)" in summary and "người gửi: Ngô Văn Hải" in summary
    assert "Lần gửi thứ 1." in summary and "Máy nhận (Chương trình): <b>3</b>" in summary
    await primary_specialist.tap(label("rounds_chat.review.report_button"))
    name, content = primary_specialist.last_document()
    assert name.endswith(".xlsx")
    assert openpyxl.load_workbook(io.BytesIO(content)).sheetnames
    await primary_specialist.tap(label("rounds_chat.review.approve_button"))
    assert "Đã duyệt" in primary_specialist.last_text() and "Ngô Văn Hải" in primary_specialist.last_text()
    assert "đã được Phòng duyệt" in principal.last_text()
    assert await status(services, rnd.id, world.primary_school_id, SubmissionTrack.PROGRAM) == "approved"

    # Compile is refused while the lower-secondary school is pending.
    await statistics.send("/compile")
    refusal = statistics.last_text()
    assert "Chưa tổng hợp được" in refusal and "79785101 Trường THCS Nguyễn Bỉnh Khiêm" in refusal
    assert (
        "Tổng hợp" not in statistics.buttons()
        and label("rounds_chat.compile.compile_button") not in statistics.buttons()
    )
    await statistics.tap(CANCEL)
    assert (await services.rounds.get_round(rnd.id)).status is RoundStatus.OPEN

    # The lower-secondary specialist sends it back; the reason is required and reaches the school.
    await secondary_specialist.send("/review")
    await secondary_specialist.tap(THCS)
    await secondary_specialist.tap(label("rounds_chat.review.send_back_button"))
    assert "Vì sao trả lại" in secondary_specialist.last_text()
    await secondary_specialist.send("   ")
    assert "Hãy ghi lý do trả lại" in secondary_specialist.last_text()
    await secondary_specialist.send(REASON)
    escaped = "Thiếu nhu cầu của học sinh lớp 7A1 &lt;Võ Minh Đức&gt;"
    assert f"lý do: «{escaped}»" in secondary_specialist.last_text()
    for person in (principal_thcs, teacher_thcs):
        assert f"Lý do: «{escaped}»" in person.last_text(), person
    assert await status(services, rnd.id, world.secondary_school_id, SubmissionTrack.PROGRAM) == "returned"

    # Fixed: the teacher adds the missing need (unlocked again); the principal submits again.
    await record_need(services, world, "HS0006", PriorityGroup.POOR)
    await principal_thcs.send("/submit")  # only the programme data is left: straight to the figures
    figures = principal_thcs.last_text()
    assert f"Lần trước bị trả lại vì: «{escaped}»" in figures
    assert "Cần máy tính – hộ nghèo: <b>1</b>" in figures
    await principal_thcs.tap(SUBMIT)

    # The reviewer sees what changed since last time, and approves.
    await secondary_specialist.send("/review")
    assert secondary_specialist.buttons() == [THCS + label("rounds_chat.review.again_mark")]
    await secondary_specialist.tap(THCS + label("rounds_chat.review.again_mark"))
    summary = secondary_specialist.last_text()
    assert "Lần gửi thứ 2." in summary and f"Lần trước trả lại vì: «{escaped}»" in summary
    assert "Thay đổi so với lần gửi trước" in summary
    assert "• Cần máy tính – hộ nghèo: 0 → <b>1</b> (+1)" in summary
    assert "• Học sinh có nhu cầu: 1 → <b>2</b> (+1)" in summary
    await secondary_specialist.tap(label("rounds_chat.review.approve_button"))
    assert "Không còn trường nào chờ duyệt" in secondary_specialist.last_text()
    assert "đã được Phòng duyệt" in principal_thcs.last_text()

    # The health officer reviews the vaccination data on its own.
    await health_officer.send("/review_vaccine")
    assert health_officer.buttons() == [THCS]
    await health_officer.tap(THCS)
    await health_officer.tap(label("rounds_chat.review.approve_button"))
    assert await status(services, rnd.id, world.secondary_school_id, SubmissionTrack.VACCINE) == "approved"

    # Every school approved: compiled, the workbook arrives, the round is closed.
    await statistics.send("/compile")
    ready = statistics.last_text()
    assert "cả 2 trường đã được duyệt" in ready and "Trường TH Lê Văn Lương" in ready  # vaccine not approved
    await statistics.tap(label("rounds_chat.compile.compile_button"))
    name, content = statistics.last_document()
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    assert len(workbook.sheetnames) > 1
    assert "Đã tổng hợp đợt «Báo cáo CV 1128/GDĐT»" in statistics.last_text()
    compiled = await services.rounds.get_round(rnd.id)
    assert (
        compiled.status is RoundStatus.COMPILED
        and compiled.compiled_by_id == world.staff_ids["statistics_officer"]
    )
    async with services.sessionmaker() as session:
        (stored,) = list(await session.scalars(select(CompiledReport)))
    assert stored.filename == name and stored.content == content and stored.round_id == rnd.id
    sends = [c for c in harness.api.calls if c.method == "sendDocument"]
    assert sends and int(sends[-1].params["chat_id"]) == statistics.id
    # The round is closed: nothing is left to submit or compile.
    await principal.send("/submit")
    assert "Chưa có đợt báo cáo nào đang mở" in principal.last_text()
    await statistics.send("/compile")
    assert "Chưa có đợt báo cáo nào đang mở" in statistics.last_text()


@pytest.mark.parametrize("report_executor", ["thread"])
async def test_compile_with_the_missing_schools_confirmed(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    statistics = harness.person("statistics_officer")
    await statistics.send("/compile")
    assert "2/2 trường chưa được duyệt" in statistics.last_text()
    await statistics.tap("⚠️ Bỏ ra 2 trường chưa duyệt")
    confirm = statistics.last_text()
    assert "<b>thiếu 2 trường</b>" in confirm and "79785001 Trường TH Lê Văn Lương" in confirm
    await statistics.tap("⚠️ Đồng ý tổng hợp khi thiếu 2 trường")
    assert "Tổng hợp khi thiếu 2 trường" in statistics.last_text()
    assert (await services.rounds.get_round(rnd.id)).status is RoundStatus.COMPILED
    assert statistics.last_document()[0].endswith(".xlsx")


async def test_progress_sends_text_and_png(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await school_records(services, world)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    await services.rounds.submit(
        rnd.id,
        SubmissionTrack.PROGRAM,
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["principal"],
    )
    deputy = harness.person("deputy_head")
    await deputy.send("/progress")
    texts = deputy.new_texts()
    board = "\n".join(texts)
    assert "📊 Tiến độ đợt báo cáo «Báo cáo CV 1128/GDĐT»" in board
    assert "79785001 Trường TH Lê Văn Lương" in board and "CT chờ duyệt" in board
    assert "79785101 Trường THCS Nguyễn Bỉnh Khiêm" in board and "CT chưa nộp" in board
    (photo,) = [c for c in harness.api.calls if c.method == "sendPhoto"]
    assert int(photo.params["chat_id"]) == deputy.id
    stored = next(iter(photo.files.values()))
    assert stored.content.startswith(PNG_MAGIC)
    # The menu button does the same; a teacher may not see the board.
    await deputy.tap(label("menu.progress.button"))
    assert len([c for c in harness.api.calls if c.method == "sendPhoto"]) == 2
    teacher = harness.person("teacher")
    await teacher.send("/progress")
    assert len([c for c in harness.api.calls if c.method == "sendPhoto"]) == 2


async def test_history_of_a_school(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await school_records(services, world)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    result = await services.rounds.submit(
        rnd.id,
        SubmissionTrack.PROGRAM,
        school_id=world.secondary_school_id,
        actor_id=world.staff_ids["principal_thcs"],
    )
    await services.rounds.send_back(
        result.submission.id, reviewer_id=world.staff_ids["secondary_specialist"], reason=REASON
    )

    # A principal: their own school (no code needed), never another school.
    principal_thcs = harness.person("principal_thcs")
    await principal_thcs.send("/history")
    history = principal_thcs.last_text()
    assert history.startswith("🕘 Lịch sử của Trường THCS Nguyễn Bỉnh Khiêm (79785101)")
    # (Records' audit rows carry the database's time, the steps the frozen clock's: compare steps.)
    steps = [line for line in history.split("\n")[1:] if "đợt «Báo cáo CV 1128/GDĐT»: " in line]
    assert len(steps) == 2
    assert "chờ duyệt → <b>trả lại</b>" in steps[0] and "Cam Văn Võ Kiêm Toàn" in steps[0]
    assert "&lt;Võ Minh Đức&gt;" in steps[0] and steps[0].startswith("09:00 15/11/2021")
    assert "chưa nộp → <b>chờ duyệt</b>" in steps[1] and "Đặng Quốc Khánh" in steps[1]
    assert "thêm nhu cầu" in history and "Bùi Thị Lan" in history
    await principal_thcs.send("/history 79785001")
    assert "Lịch sử" not in principal_thcs.last_text()
    assert "chỉ xem và sửa được dữ liệu của trường" in principal_thcs.last_text()

    # Officers: the schools they see.
    deputy = harness.person("deputy_head")
    await deputy.send("/history 79785001")
    assert "Trường TH Lê Văn Lương" in deputy.last_text() and "thêm lô #1: 3 máy" in deputy.last_text()
    await deputy.send("/history")  # a picker of their schools (tests/test_history.py)
    assert {TH, THCS} <= set(deputy.buttons())
    await deputy.send("/history 99999999")
    assert "Không có trường nào khớp «99999999»" in deputy.texts()[-2]  # then the picker again
    primary_specialist = harness.person("primary_specialist")
    await primary_specialist.send("/history 79785101")
    assert "chỉ xem và sửa được dữ liệu của trường" in primary_specialist.last_text()
    # A teacher has no /history.
    teacher = harness.person("teacher")
    await teacher.send("/history")
    assert "Lịch sử" not in teacher.last_text()


async def enter_need(teacher: Person) -> None:
    await teacher.send("/need")
    await teacher.send("hs0003")
    await teacher.tap(AN_3A2)
    await teacher.tap(label("needs.group.poor"))
    await teacher.tap(label("needs.kind.device"))
    await teacher.tap(SKIP)
    await teacher.tap(CONFIRM)


async def test_records_are_locked_for_staff_after_submit(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    principal, teacher = harness.person("principal"), harness.person("teacher")
    await principal.send("/submit")
    await principal.tap(BOTH)
    await principal.tap(SUBMIT)
    assert principal.last_text().count("✅ Đã gửi") == 2
    commands = harness.app.registered_commands
    assert {"need", "vaccine"} <= commands

    # Programme data (needs) and vaccine data (doses) are refused with the locked text; nothing saved.
    # The need flow refuses before its questions (today is inside the locked period).
    await teacher.send("/need")
    assert "nên đang bị khoá: không thêm, sửa hay xoá nhu cầu được" in teacher.last_text()
    await teacher.send("/vaccine")
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)  # the dose is checked against the lock as soon as it is dated
    assert "nên đang bị khoá: không thêm, sửa hay xoá mũi tiêm có ngày tiêm trong kỳ" in teacher.last_text()
    await teacher.send("/cancel")
    assert (await services.rounds.school_figures(rnd.id, school_id=world.primary_school_id))[
        "needs.total"
    ] == 0

    # Sent back: the programme data is open again for the staff; the vaccine data stays locked.
    pending = await services.rounds.pending_reviews(world.staff_ids["primary_specialist"])
    await services.rounds.send_back(
        pending[0].submission_id, reviewer_id=world.staff_ids["primary_specialist"], reason=REASON
    )
    await enter_need(teacher)
    assert teacher.last_text().startswith("✅ Đã lưu nhu cầu")
    assert (await services.rounds.school_figures(rnd.id, school_id=world.primary_school_id))[
        "needs.total"
    ] == 1
