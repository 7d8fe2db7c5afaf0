"""Issue 14: a round locks one period of one school's data, never the school.

Transcripts (SQLite and PostgreSQL): daily entry goes on after a school is approved; records dated in
the locked period are refused as soon as the flow knows the day, naming the round, the period and who
can reopen it; a need added after a send-back is counted in the new snapshot and shown as a change.
Compile from approved snapshots with two schools not approved, both choices, built twice the same.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest

from storage.clock import Clock
from storage.enums import HandoverKind, SchoolLevel, SubmissionStatus, SubmissionTrack
from storage.errors import DomainError
from storage.models import CompiledReport, School
from storage.schemas.devices import HandoverIn
from storage.schemas.rounds import CompileChoice, RoundIn
from storage.services import Services
from tests.chat import CONFIRM, EDIT, SKIP, TODAY_BUTTON, Harness, label
from tests.conftest import TZ
from tests.factories import AN, BINH, World, make_world
from tests.helpers import laptops_with_one_gift
from tests.test_round_flow import BOTH, PROGRAMME, SUBMIT, TH, THCS

PROGRAM, VACCINE = SubmissionTrack.PROGRAM, SubmissionTrack.VACCINE


def round_to_14_november() -> RoundIn:
    """The period ends the day before the schools submit (Monday 15/11, 15:30)."""
    return RoundIn(
        name="Báo cáo CV 1128/GDĐT",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 14),
        submit_deadline=datetime(2021, 11, 15, 15, 30),
        approve_deadline=datetime(2021, 11, 16, 11, 30),
        compile_deadline=datetime(2021, 11, 16, 17, 0),
    )


def next_round() -> RoundIn:
    return RoundIn(
        name="Đợt 30/11",
        period_start=date(2021, 11, 15),
        period_end=date(2021, 11, 30),
        submit_deadline=datetime(2021, 12, 1, 15, 30),
        approve_deadline=datetime(2021, 12, 2, 11, 30),
        compile_deadline=datetime(2021, 12, 2, 17, 0),
    )


async def test_daily_entry_goes_on_after_approval(services: Services, harness: Harness, clock: Clock) -> None:
    world = await make_world(services)
    batch_id = await laptops_with_one_gift(services, world)  # received 10/11, one given 14/11
    rnd = await services.rounds.create_round(
        round_to_14_november(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    clock.freeze(datetime(2021, 11, 15, 16, 0, tzinfo=TZ))  # 16:00, after the 15:30 deadline
    principal, teacher = harness.person("principal"), harness.person("teacher")
    specialist, health = harness.person("primary_specialist"), harness.person("health_officer")

    await principal.send("/submit")
    await principal.tap(BOTH)
    await principal.tap(SUBMIT)
    assert principal.last_text().count("✅ Đã gửi") == 2
    await specialist.send("/review")
    await specialist.tap(TH + label("rounds_chat.review.late_mark"))
    await specialist.tap(label("rounds_chat.review.approve_button"))
    await health.send("/review_vaccine")
    await health.tap(TH + label("rounds_chat.review.late_mark"))
    await health.tap(label("rounds_chat.review.approve_button"))
    for track in (PROGRAM, VACCINE):
        assert (
            await services.rounds.submission(rnd.id, track, school_id=world.primary_school_id)
        ).status == "approved"
    (approved,) = await services.rounds.snapshots(rnd.id, PROGRAM, school_id=world.primary_school_id)
    frozen = approved.figures.values
    assert frozen["devices.program.given"] == 1 and approved.approved_at is not None

    # The same afternoon: a dose dated today is accepted (the date step says nothing of a lock) ...
    await teacher.send("/vaccine")
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    assert "khoá" not in teacher.last_text()
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    await teacher.tap(CONFIRM)
    assert "khoá" not in teacher.last_text()
    # ... and so is a handover dated today.
    handover = await services.handovers.create_handover(
        HandoverIn(
            batch_id=batch_id,
            student_id=world.student_ids["HS0002"],
            kind=HandoverKind.GIFT,
            handed_on=date(2021, 11, 15),
        ),
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["teacher"],
    )
    assert handover.id

    # Neither is in the approved snapshot; both are in the next round's period.
    (still,) = await services.rounds.snapshots(rnd.id, PROGRAM, school_id=world.primary_school_id)
    assert still.figures.values == frozen and still.approved_at == approved.approved_at
    (vaccine,) = await services.rounds.snapshots(rnd.id, VACCINE, school_id=world.primary_school_id)
    assert vaccine.figures.values.get("vaccination.doses", 0) == 0
    later = await services.rounds.create_round(
        next_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    figures = await services.rounds.school_figures(later.id, school_id=world.primary_school_id)
    assert figures["vaccination.doses"] == 1
    board = await services.rounds.progress(later.id)
    (primary,) = [s for s in board.schools if s.school_id == world.primary_school_id]
    assert primary.records == 2  # the dose and the handover of 15/11

    # A dose dated inside the locked period is refused at the date step, with the reopen path.
    await teacher.send("/vaccine")
    await teacher.send("nguyen van an")
    await teacher.tap(AN)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.send("10/11/2021")
    refusal = teacher.last_text()
    assert "«Báo cáo CV 1128/GDĐT»" in refusal and "01/09/2021 – 14/11/2021" in refusal
    assert "đã được Phòng GD&amp;ĐT duyệt" in refusal and "/reopen" in refusal
    assert "bộ phận Thống kê hoặc quản trị viên" in refusal and "ngày 15/11/2021 trở đi" in refusal
    assert "Comirnaty (Pfizer-BioNTech)" not in teacher.buttons()  # not asked further
    await teacher.send("/cancel")

    # A need change dated inside the period is refused as soon as its day is given.
    await teacher.send("/need")
    await teacher.send("hs0004")
    await teacher.tap(teacher.buttons()[0])
    await teacher.tap(label("needs.group.poor"))
    await teacher.tap(label("needs.kind.device"))
    await teacher.tap(SKIP)
    assert "Tính từ ngày: <b>hôm nay</b>" in teacher.last_text()
    await teacher.tap(EDIT)
    await teacher.tap(label("needs.field.since"))
    await teacher.send("10/11/2021")
    refusal = teacher.last_text()
    assert "đến hết ngày 14/11/2021" in refusal and "/reopen" in refusal and "từ ngày 15/11/2021" in refusal
    await teacher.send("/cancel")

    # The board and the status: submitted at 16:00 (late), approved at and by whom, both parts.
    states = (await services.rounds.progress(rnd.id)).schools
    (ours,) = [s for s in states if s.school_id == world.primary_school_id]
    for state in (ours.program_state, ours.vaccine_state):
        assert state.late and state.status is SubmissionStatus.APPROVED and state.sent_back == 0
        assert state.submitted_at == datetime(2021, 11, 15, 9, 0, tzinfo=state.submitted_at.tzinfo)
    assert ours.program_state.approved_by == "Trần Lê Hồng Phúc"


async def test_need_added_after_a_send_back_is_in_the_new_snapshot(
    services: Services, harness: Harness, clock: Clock
) -> None:
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        round_to_14_november(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    principal = harness.person("principal_thcs")
    teacher = harness.person("teacher_thcs")
    specialist = harness.person("secondary_specialist")
    await principal.send("/submit")
    await principal.tap(PROGRAMME)
    await principal.tap(SUBMIT)
    pending = await services.rounds.pending_reviews(world.staff_ids["secondary_specialist"])
    await services.rounds.send_back(
        pending[0].submission_id,
        reviewer_id=world.staff_ids["secondary_specialist"],
        reason="Thiếu nhu cầu lớp 7A1",
    )

    # The next day, after the period, the teacher adds the need that stood since 10/11.
    clock.freeze(datetime(2021, 11, 16, 8, 0, tzinfo=TZ))
    await teacher.send("/need")
    await teacher.send("hs0006")
    await teacher.tap(teacher.buttons()[0])
    await teacher.tap(label("needs.group.poor"))
    await teacher.tap(label("needs.kind.device"))
    await teacher.tap(SKIP)
    await teacher.tap(EDIT)
    await teacher.tap(label("needs.field.since"))
    await teacher.send("10/11/2021")
    assert "Tính từ ngày: <b>10/11/2021</b>" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert teacher.last_text().startswith("✅ Đã lưu nhu cầu")

    await principal.send("/submit")
    await principal.tap(PROGRAMME)
    assert "Cần máy tính – hộ nghèo: <b>1</b>" in principal.last_text()
    await principal.tap(SUBMIT)
    first, second = await services.rounds.snapshots(rnd.id, PROGRAM, school_id=world.secondary_school_id)
    assert first.figures["needs.total"] == 0 and second.figures["needs.total"] == 1

    await specialist.send("/review")
    await specialist.tap(THCS + label("rounds_chat.review.again_mark"))
    summary = specialist.last_text()
    assert "Lần gửi thứ 2." in summary and "Thay đổi so với lần gửi trước" in summary
    assert "• Cần máy tính – hộ nghèo: 0 → <b>1</b> (+1)" in summary
    await specialist.tap(label("rounds_chat.review.approve_button"))
    board = await services.rounds.progress(rnd.id)
    (ours,) = [s for s in board.schools if s.school_id == world.secondary_school_id]
    assert ours.program_state.sent_back == 1 and ours.program_state.last_reason == "Thiếu nhu cầu lớp 7A1"


async def test_reopen_is_for_the_statistics_officer_with_a_reason(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        round_to_14_november(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    ids = world.staff_ids
    result = await services.rounds.submit(
        rnd.id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    await services.rounds.approve(result.submission.id, reviewer_id=ids["primary_specialist"])
    # The reviewer cannot undo an approval; the statistics officer can, with a reason.
    with pytest.raises(DomainError):
        await services.rounds.reopen(
            result.submission.id, actor_id=ids["primary_specialist"], reason="sai số"
        )
    statistics = harness.person("statistics_officer")
    principal, specialist = harness.person("principal"), harness.person("primary_specialist")
    await statistics.send("/reopen")
    await statistics.tap(statistics.buttons()[0])
    assert "Vì sao mở lại" in statistics.last_text()
    await statistics.send("  ")
    assert "Hãy ghi lý do" in statistics.last_text()
    await statistics.send("Sai số máy nhận <lô 10/11>")
    assert "🔓 Đã mở lại" in statistics.last_text()
    for person in (principal, specialist):
        assert "đã được mở lại" in person.last_text() and "&lt;lô 10/11&gt;" in person.last_text()
    submission = await services.rounds.submission(rnd.id, PROGRAM, school_id=world.primary_school_id)
    assert submission.status is SubmissionStatus.RETURNED
    (snapshot,) = await services.rounds.snapshots(rnd.id, PROGRAM, school_id=world.primary_school_id)
    assert snapshot.approved_at is not None and snapshot.reopen_reason == "Sai số máy nhận <lô 10/11>"
    history = await services.rounds.history(world.primary_school_id, viewer_id=ids["deputy_head"])
    assert any(e.kind == "submission" and e.reason == "Sai số máy nhận <lô 10/11>" for e in history)
    # Reopened: the period unlocks; the school submits again for a new review.
    await services.rounds.check_entry_day(world.primary_school_id, "devices", date(2021, 11, 10))
    again = await services.rounds.submit(
        rnd.id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    assert again.submission.status is SubmissionStatus.SUBMITTED


# --- compile --------------------------------------------------------------------------------------


async def add_schools(services: Services, world: World) -> list[int]:
    """Two more schools (one of each level), which will stay unapproved."""
    async with services.sessionmaker.begin() as session:
        schools = [
            School(
                district_id=world.district_id,
                code="79785002",
                name="Trường TH Kim Đồng",
                level=SchoolLevel.PRIMARY,
            ),
            School(
                district_id=world.district_id,
                code="79785102",
                name="Trường THCS Lê Lợi",
                level=SchoolLevel.LOWER_SECONDARY,
            ),
        ]
        session.add_all(schools)
        await session.flush()
        return [s.id for s in schools]


def cells(content: bytes) -> dict[str, list[tuple[Any, ...]]]:
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return {name: list(workbook[name].iter_rows(values_only=True)) for name in workbook.sheetnames}


def sheet_rows(sheets: dict[str, list[tuple[Any, ...]]], name: str) -> list[tuple[Any, ...]]:
    return [row for row in sheets[name] if row and row[0] is not None]


async def approved_round_with_two_missing(services: Services, world: World) -> int:
    await laptops_with_one_gift(services, world)
    await add_schools(services, world)
    ids = world.staff_ids
    rnd = await services.rounds.create_round(
        round_to_14_november(), district_id=world.district_id, actor_id=ids["deputy_head"]
    )
    for school_id, principal, reviewer in (
        (world.primary_school_id, "principal", "primary_specialist"),
        (world.secondary_school_id, "principal_thcs", "secondary_specialist"),
    ):
        result = await services.rounds.submit(rnd.id, PROGRAM, school_id=school_id, actor_id=ids[principal])
        await services.rounds.approve(result.submission.id, reviewer_id=ids[reviewer])
    return rnd.id


async def test_compile_leaves_out_or_marks_the_unapproved_and_is_reproducible(
    services: Services, clock: Clock
) -> None:
    world = await make_world(services)
    round_id = await approved_round_with_two_missing(services, world)

    left, _, data = await services.rounds.compiled_workbook(round_id, CompileChoice.LEAVE_OUT)
    assert data.approved == 2 and data.total == 4
    assert [s.school_code for s in data.left_out] == ["79785002", "79785102"]
    sheets = cells(left)
    cover = "\n".join(str(row[0]) for row in sheets["Bìa"] if row and row[0])
    assert "Đã duyệt 2/4 trường" in cover
    assert (
        "Không tính 2 trường chưa được duyệt: 79785002 Trường TH Kim Đồng; 79785102 Trường THCS Lê Lợi"
        in cover
    )
    status = sheet_rows(sheets, "Tình trạng")
    assert sum(1 for row in status if "không tính" in row) == 2
    programme = sheet_rows(sheets, "Chương trình")
    codes = [row[0] for row in programme]
    assert "79785001" in codes and "79785101" in codes and "79785002" not in codes
    header = next(row for row in sheets["Chương trình"] if row and row[0] == "Mã trường")
    received = header.index("Máy nhận (Chương trình)")
    total = next(row for row in sheets["Chương trình"] if row and row[1] == "Cộng")
    assert total[received] == 3

    # Entered after the snapshots (a batch today, after the period): the compiled figures do not move.
    from storage.enums import DeviceType, DonationSource
    from storage.schemas.devices import BatchIn

    await services.donations.create_batch(
        BatchIn(
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 15),
            quantity=5,
            device_type=DeviceType.LAPTOP,
        ),
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["teacher"],
    )
    again, _, _ = await services.rounds.compiled_workbook(round_id, CompileChoice.LEAVE_OUT)
    assert cells(again) == sheets  # cell for cell

    included, _, data = await services.rounds.compiled_workbook(round_id, CompileChoice.INCLUDE_LIVE)
    assert data.left_out == [] and len(data.included_unapproved) == 2
    sheets = cells(included)
    cover = "\n".join(str(row[0]) for row in sheets["Bìa"] if row and row[0])
    assert "Đã duyệt 2/4 trường" in cover and "Có 2 trường chưa được duyệt được đưa vào" in cover
    programme = sheet_rows(sheets, "Chương trình")
    marks = {row[0]: row[3] for row in programme if row[0] != "Mã trường" and str(row[0]).isdigit()}
    assert marks == {
        "79785001": "đã duyệt",
        "79785101": "đã duyệt",
        "79785002": "chưa duyệt",
        "79785102": "chưa duyệt",
    }
    assert cells((await services.rounds.compiled_workbook(round_id, CompileChoice.INCLUDE_LIVE))[0]) == sheets

    # Stored: the officer's choice and the acknowledged list are in the audit log; the stored workbook
    # is the one built again from the same snapshots.
    missing = [s.school_id for s in data.included_unapproved]
    compiled, content = await services.rounds.compile(
        round_id,
        actor_id=world.staff_ids["statistics_officer"],
        choice=CompileChoice.LEAVE_OUT,
        missing_school_ids_acknowledged=missing,
    )
    async with services.sessionmaker() as session:
        stored = await session.get(CompiledReport, compiled.report_id)
        assert stored is not None and stored.content == content
    rebuilt, _, _ = await services.rounds.compiled_workbook(
        round_id, CompileChoice.LEAVE_OUT, prepared_by="Lý Thị Mai"
    )
    assert cells(content) == cells(rebuilt)  # same snapshots, same figures, cell for cell
    assert {k: v for k, v in cells(content).items() if k != "Bìa"} == {
        k: v for k, v in cells(left).items() if k != "Bìa"
    }
