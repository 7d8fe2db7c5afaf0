"""Reporting rounds: create, submit, review (approve or send back), compile, progress, history — and
the `schoolbot round …` command line."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.errors import render_error
from bot.texts import t
from storage.enums import HandoverKind, PriorityGroup, RoundStatus, SubmissionStatus, SubmissionTrack
from storage.errors import AccessDenied, DomainError
from storage.models import CompiledReport, Student, SubmissionEvent
from storage.repositories.locks import school_locks
from storage.schemas.devices import HandoverIn
from storage.schemas.needs import NeedIn
from storage.schemas.rounds import RoundIn, parse_local_datetime
from storage.services import Services
from tests.conftest import TZ
from tests.factories import World, make_world
from tests.helpers import audit_of, laptops_with_one_gift

PROGRAM, VACCINE = SubmissionTrack.PROGRAM, SubmissionTrack.VACCINE
REASON = "Thiếu biên bản bàn giao máy cho lớp 4A1"
SUBMIT_DEADLINE = datetime(2021, 11, 15, 15, 30, tzinfo=TZ)


def round_in(**changes: object) -> RoundIn:
    values: dict[str, object] = {
        "name": "Báo cáo CV 1128/GDĐT",
        "period_start": date(2021, 9, 1),
        "period_end": date(2021, 11, 15),
        "submit_deadline": datetime(2021, 11, 15, 15, 30),  # local wall time, as typed
        "approve_deadline": datetime(2021, 11, 16, 12, 0),
        "compile_deadline": datetime(2021, 11, 16, 17, 0),
        **changes,
    }
    return RoundIn.model_validate(values)


async def open_round(services: Services, world: World) -> int:
    rnd = await services.rounds.create_round(
        round_in(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    return rnd.id


async def primary_records(services: Services, world: World) -> int:
    """A programme batch of 3 laptops, one gift and one need at the primary school; the batch id."""
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    batch_id = await laptops_with_one_gift(services, world)
    await services.needs.record_need(
        NeedIn(
            student_id=world.student_ids["HS0002"],
            category=PriorityGroup.NEAR_POOR,
            needs_device=True,
            needs_connectivity=True,
        ),
        school_id=school,
        actor_id=teacher,
        request_key=None,
    )
    return batch_id


async def locked(services: Services, school_id: int, track: SubmissionTrack = PROGRAM) -> bool:
    async with services.sessionmaker() as session:
        return bool(await school_locks(session, school_id, track))


async def events_of(services: Services, submission_id: int) -> list[SubmissionEvent]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(
            select(SubmissionEvent)
            .where(SubmissionEvent.submission_id == submission_id)
            .order_by(SubmissionEvent.id)
        )
        return list(rows)


# --- creating a round -----------------------------------------------------------------------------


async def test_create_round_with_local_deadlines(services: Services) -> None:
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        round_in(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    assert rnd.status is RoundStatus.OPEN and rnd.schools == 2
    # 15:30 in Ho Chi Minh City is 08:30 UTC.
    assert rnd.submit_deadline == datetime(2021, 11, 15, 8, 30, tzinfo=UTC)
    assert rnd.approve_deadline == datetime(2021, 11, 16, 5, 0, tzinfo=UTC)
    assert [r.id for r in await services.rounds.open_rounds(world.district_id)] == [rnd.id]
    current = await services.rounds.current_round(world.district_id)
    assert current is not None and current.id == rnd.id
    for school in (world.primary_school_id, world.secondary_school_id):
        for track in SubmissionTrack:
            submission = await services.rounds.submission(rnd.id, track, school_id=school)
            assert submission.status is SubmissionStatus.NOT_SUBMITTED and not submission.late
    (created,) = await audit_of(services, "reporting_round", rnd.id)
    assert created.actor_id == world.staff_ids["deputy_head"]


async def test_create_round_rules(services: Services) -> None:
    world = await make_world(services)
    deputy = world.staff_ids["deputy_head"]
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.create_round(
            round_in(approve_deadline=datetime(2021, 11, 15, 15, 0)),
            district_id=world.district_id,
            actor_id=deputy,
        )
    assert excinfo.value.code == "rounds.deadlines_order"
    assert "15:30 15/11/2021" in render_error(excinfo.value, "vi")
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.create_round(
            round_in(period_start=date(2021, 11, 16)), district_id=world.district_id, actor_id=deputy
        )
    assert excinfo.value.code == "rounds.period_invalid"
    with pytest.raises(AccessDenied) as denied:
        await services.rounds.create_round(
            round_in(), district_id=world.district_id, actor_id=world.staff_ids["principal"]
        )
    assert denied.value.code == "access.role_cannot"
    assert await services.rounds.list_rounds(world.district_id) == []
    # An administrator may open one too.
    assert (
        await services.rounds.create_round(
            round_in(), district_id=world.district_id, actor_id=world.staff_ids["admin"]
        )
    ).id


def test_typed_local_date_times() -> None:
    expected = datetime(2021, 11, 15, 15, 30)
    for text in (
        "15/11/2021 15:30",
        "15:30 15/11/2021",
        "15h30 ngày 15/11/2021",
        "2021-11-15 15:30",
        "15-11-2021 lúc 15h30",
    ):
        assert parse_local_datetime(text) == expected, text
    assert parse_local_datetime("16/11/2021 12h") == datetime(2021, 11, 16, 12, 0)
    for text, code in (
        ("mai", "rounds.datetime_invalid"),
        ("31/11/2021 15:30", "rounds.datetime_impossible"),
        ("15/11/2021 25:00", "rounds.datetime_impossible"),
    ):
        with pytest.raises(DomainError) as excinfo:
            parse_local_datetime(text)
        assert excinfo.value.code == code, text
    with pytest.raises(ValidationError) as invalid:
        RoundIn.model_validate({**round_in().model_dump(), "name": "  "})
    assert render_error(invalid.value, "vi") == t("errors.text.empty", "vi")


# --- the whole round ------------------------------------------------------------------------------


async def test_a_whole_round_for_two_schools(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    primary, secondary = world.primary_school_id, world.secondary_school_id
    batch_id = await primary_records(services, world)
    round_id = await open_round(services, world)

    # The principal sees the school's figures before submitting.
    figures = await services.rounds.school_figures(round_id, school_id=primary)
    assert figures["students"] == 4 and figures["students_priority"] == 3
    assert figures["devices.program.received"] == 3
    assert figures["devices.program.given"] == 1 and figures["devices.program.left"] == 2
    assert figures["needs.device_near_poor"] == 1 and figures["needs.connectivity_near_poor"] == 1
    assert figures["needs.total"] == 1
    assert figures["late.batches"] == 1  # received on 10/11, entered on 15/11
    assert figures.inconsistencies == []

    # Both principals submit their programme data; their records are locked.
    first = await services.rounds.submit(round_id, PROGRAM, school_id=primary, actor_id=ids["principal"])
    assert first.submission.status is SubmissionStatus.SUBMITTED and not first.late
    assert first.notify_staff_ids == [ids["primary_specialist"]]
    assert await locked(services, primary)
    assert not await locked(services, primary, VACCINE)
    with pytest.raises(DomainError) as excinfo:
        await services.handovers.create_handover(
            HandoverIn(
                batch_id=batch_id,
                student_id=world.student_ids["HS0002"],
                kind=HandoverKind.GIFT,
                handed_on=date(2021, 11, 15),
            ),
            school_id=primary,
            actor_id=ids["teacher"],
        )
    assert excinfo.value.code == "devices.locked"
    second = await services.rounds.submit(
        round_id, PROGRAM, school_id=secondary, actor_id=ids["principal_thcs"]
    )
    assert second.notify_staff_ids == [ids["secondary_specialist"]]
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.submit(round_id, PROGRAM, school_id=primary, actor_id=ids["principal"])
    assert excinfo.value.code == "rounds.already_submitted"

    # Each specialist sees the schools of their level.
    (pending,) = await services.rounds.pending_reviews(ids["primary_specialist"], PROGRAM)
    assert pending.school_id == primary and pending.submission_id == first.submission.id
    assert not pending.resubmission and pending.submitted_by_name == "Ngô Văn Hải"
    (pending_thcs,) = await services.rounds.pending_reviews(ids["secondary_specialist"])
    assert pending_thcs.school_id == secondary

    # The lower-secondary school is approved at once; the principal is told.
    approved = await services.rounds.approve(
        pending_thcs.submission_id, reviewer_id=ids["secondary_specialist"]
    )
    assert approved.submission.status is SubmissionStatus.APPROVED
    assert approved.notify_staff_ids == [ids["principal_thcs"]]
    assert await locked(services, secondary)

    # The primary school is sent back with a reason: the principal and the teacher who entered
    # the records are told, and the records unlock.
    summary = await services.rounds.review_summary(
        pending.submission_id, reviewer_id=ids["primary_specialist"]
    )
    assert summary.previous is None and summary.changes == [] and summary.submissions == 1
    assert summary.submitted is not None and summary.submitted["devices.program.given"] == 1
    returned = await services.rounds.send_back(
        pending.submission_id, reviewer_id=ids["primary_specialist"], reason=f"  {REASON} "
    )
    assert returned.submission.status is SubmissionStatus.RETURNED
    assert returned.reason == REASON and returned.submission.return_reason == REASON
    assert returned.notify_staff_ids == [ids["principal"], ids["teacher"]]
    assert [r.telegram_user_id for r in returned.notify] == [1002, 1001]
    assert not await locked(services, primary)
    assert await services.rounds.pending_reviews(ids["primary_specialist"]) == []

    # The school fixes its data and submits again.
    await services.handovers.create_handover(
        HandoverIn(
            batch_id=batch_id,
            student_id=world.student_ids["HS0002"],
            kind=HandoverKind.GIFT,
            handed_on=date(2021, 11, 15),
        ),
        school_id=primary,
        actor_id=ids["teacher"],
    )
    again = await services.rounds.submit(round_id, PROGRAM, school_id=primary, actor_id=ids["principal"])
    assert again.submission.return_reason == ""
    (pending,) = await services.rounds.pending_reviews(ids["primary_specialist"])
    assert pending.resubmission

    # The reviewer sees what changed since the submission sent back.
    summary = await services.rounds.review_summary(
        pending.submission_id, reviewer_id=ids["primary_specialist"]
    )
    assert summary.submissions == 2 and summary.previous_reason == REASON
    assert summary.previous is not None and summary.previous["devices.program.given"] == 1
    changes = {c.key: (c.before, c.after, c.delta) for c in summary.changes}
    assert changes == {"devices.program.given": (1, 2, 1), "devices.program.left": (2, 1, -1)}
    await services.rounds.approve(pending.submission_id, reviewer_id=ids["primary_specialist"])

    # Everything approved: the statistics officer compiles; the round closes. What was reported stays
    # locked (issue 14: the period's records of an approved part, whatever the round's status).
    check = await services.rounds.compile_check(round_id)
    assert check.ready and {s.school_id for s in check.approved} == {primary, secondary}
    assert {s.school_id for s in check.vaccine_missing} == {primary, secondary}
    compiled = await services.rounds.mark_compiled(
        round_id,
        actor_id=ids["statistics_officer"],
        missing_school_ids_acknowledged=[],
        report=b"PK\x03\x04 workbook",
        filename="bao-cao-quan.xlsx",
    )
    assert compiled.size == 13 and compiled.missing_acknowledged == []
    rnd = await services.rounds.get_round(round_id)
    assert rnd.status is RoundStatus.COMPILED and rnd.compiled_by_id == ids["statistics_officer"]
    assert await locked(services, primary) and await locked(services, secondary)
    async with services.sessionmaker() as session:
        report = await session.get(CompiledReport, compiled.report_id)
        assert report is not None and report.content == b"PK\x03\x04 workbook" and report.round_id == round_id
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.mark_compiled(
            round_id,
            actor_id=ids["statistics_officer"],
            missing_school_ids_acknowledged=[],
            report=b"x",
            filename="again.xlsx",
        )
    assert excinfo.value.code == "rounds.already_compiled"
    assert await services.rounds.current_round(world.district_id) is None

    # Every step is in the events, with the figures and the reason; and in the audit log.
    events = await events_of(services, pending.submission_id)
    assert [(e.from_status.value, e.to_status.value) for e in events] == [
        ("not_submitted", "submitted"),
        ("submitted", "returned"),
        ("returned", "submitted"),
        ("submitted", "approved"),
    ]
    assert events[1].reason == REASON and events[1].actor_id == ids["primary_specialist"]
    assert events[0].figures is not None and events[0].figures["late"] is False
    updates = [a for a in await audit_of(services, "round_submission", pending.submission_id) if a.before]
    assert [a.after["status"] for a in updates if a.after] == [
        "submitted",
        "returned",
        "submitted",
        "approved",
    ]

    # /history of the school: newest first, with names.
    history = await services.rounds.history(primary, viewer_id=ids["principal"])
    steps = [h for h in history if h.kind == "submission"]
    assert [h.to_status.value for h in steps if h.to_status] == [
        "approved",
        "submitted",
        "returned",
        "submitted",
    ]
    assert steps[0].actor_name == "Trần Lê Hồng Phúc" and steps[2].reason == REASON
    assert any(h.kind == "audit" and h.entity == "handover" for h in history)
    assert all(
        not (h.entity == "round_submission" and h.action and h.action.value == "update") for h in history
    )
    with pytest.raises(AccessDenied):
        await services.rounds.history(primary, viewer_id=ids["principal_thcs"])


async def test_vaccine_track_is_reviewed_by_the_health_officer(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    result = await services.rounds.submit(
        round_id, VACCINE, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
    )
    assert result.notify_staff_ids == [ids["health_officer"]]
    assert await locked(services, world.secondary_school_id, VACCINE)
    assert not await locked(services, world.secondary_school_id, PROGRAM)
    assert await services.rounds.pending_reviews(ids["secondary_specialist"]) == []
    (pending,) = await services.rounds.pending_reviews(ids["health_officer"])
    assert pending.track is VACCINE
    with pytest.raises(AccessDenied) as denied:
        await services.rounds.approve(pending.submission_id, reviewer_id=ids["secondary_specialist"])
    assert denied.value.code == "access.role_cannot"
    outcome = await services.rounds.approve(pending.submission_id, reviewer_id=ids["health_officer"])
    assert outcome.submission.status is SubmissionStatus.APPROVED


# --- refusals -------------------------------------------------------------------------------------


async def test_submit_only_by_the_schools_principal(services: Services) -> None:
    world = await make_world(services)
    round_id = await open_round(services, world)
    with pytest.raises(AccessDenied) as denied:
        await services.rounds.submit(
            round_id, PROGRAM, school_id=world.primary_school_id, actor_id=world.staff_ids["teacher"]
        )
    assert denied.value.code == "access.role_cannot"
    with pytest.raises(AccessDenied) as denied:
        await services.rounds.submit(
            round_id, PROGRAM, school_id=world.primary_school_id, actor_id=world.staff_ids["principal_thcs"]
        )
    assert denied.value.code == "rounds.not_your_school"
    assert "Hiệu trưởng" in render_error(denied.value, "vi")
    with pytest.raises(AccessDenied):
        await services.rounds.submit(
            round_id,
            PROGRAM,
            school_id=world.primary_school_id,
            actor_id=world.staff_ids["primary_specialist"],
        )
    submission = await services.rounds.submission(round_id, PROGRAM, school_id=world.primary_school_id)
    assert submission.status is SubmissionStatus.NOT_SUBMITTED
    assert await events_of(services, submission.id) == []
    assert not await locked(services, world.primary_school_id)


async def test_review_only_by_the_specialist_of_the_level(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    submission_id = result.submission.id
    with pytest.raises(AccessDenied) as denied:
        await services.rounds.approve(submission_id, reviewer_id=ids["secondary_specialist"])
    assert denied.value.code == "rounds.wrong_level"
    assert "TH" in render_error(denied.value, "vi")
    for who in ("secondary_specialist", "health_officer", "principal", "deputy_head"):
        with pytest.raises(AccessDenied):
            await services.rounds.send_back(submission_id, reviewer_id=ids[who], reason=REASON)
        with pytest.raises(AccessDenied):
            await services.rounds.review_summary(submission_id, reviewer_id=ids[who])
    with pytest.raises(AccessDenied):
        await services.rounds.pending_reviews(ids["teacher"])
    assert (
        await services.rounds.submission(round_id, PROGRAM, school_id=world.primary_school_id)
    ).status is (SubmissionStatus.SUBMITTED)


async def test_send_back_needs_a_reason(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    for reason in ("", "   ", "\n"):
        with pytest.raises(DomainError) as excinfo:
            await services.rounds.send_back(
                result.submission.id, reviewer_id=ids["primary_specialist"], reason=reason
            )
        assert excinfo.value.code == "rounds.reason_required"
    assert await locked(services, world.primary_school_id)
    # NFC: a reason typed in decomposed form is stored composed.
    decomposed = "Thie\u0302\u0301u so\u0302\u0301 lie\u0323\u0302u"
    outcome = await services.rounds.send_back(
        result.submission.id, reviewer_id=ids["primary_specialist"], reason=decomposed
    )
    assert outcome.reason == "Thiếu số liệu"
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.approve(result.submission.id, reviewer_id=ids["primary_specialist"])
    assert excinfo.value.code == "rounds.review_already_returned"


async def test_compile_refused_while_a_school_is_pending(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    await services.rounds.approve(result.submission.id, reviewer_id=ids["primary_specialist"])
    check = await services.rounds.compile_check(round_id)
    assert not check.ready and [s.school_id for s in check.missing] == [world.secondary_school_id]
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.mark_compiled(
            round_id,
            actor_id=ids["statistics_officer"],
            missing_school_ids_acknowledged=[],
            report=b"xlsx",
            filename="r.xlsx",
        )
    assert excinfo.value.code == "rounds.not_all_approved"
    assert "Trường THCS Nguyễn Bỉnh Khiêm" in render_error(excinfo.value, "vi")
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.mark_compiled(
            round_id,
            actor_id=ids["statistics_officer"],
            missing_school_ids_acknowledged=[world.primary_school_id],
            report=b"xlsx",
            filename="r.xlsx",
        )
    assert excinfo.value.code == "rounds.missing_list_differs"
    with pytest.raises(AccessDenied):
        await services.rounds.mark_compiled(
            round_id,
            actor_id=ids["deputy_head"],
            missing_school_ids_acknowledged=[world.secondary_school_id],
            report=b"xlsx",
            filename="r.xlsx",
        )
    assert (await services.rounds.get_round(round_id)).status is RoundStatus.OPEN

    # With the explicit list of the missing schools it is allowed, and the audit says so.
    compiled = await services.rounds.mark_compiled(
        round_id,
        actor_id=ids["statistics_officer"],
        missing_school_ids_acknowledged=[world.secondary_school_id],
        report=b"xlsx",
        filename="r.xlsx",
    )
    assert [s.school_id for s in compiled.missing_acknowledged] == [world.secondary_school_id]
    round_audit = await audit_of(services, "reporting_round", round_id)
    assert round_audit[-1].after is not None
    assert round_audit[-1].after["status"] == "compiled"
    assert round_audit[-1].after["missing_school_ids_acknowledged"] == [world.secondary_school_id]
    with pytest.raises(DomainError) as excinfo:
        await services.rounds.submit(
            round_id, PROGRAM, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
        )
    assert excinfo.value.code == "rounds.closed"


# --- figures and inconsistencies ------------------------------------------------------------------


async def test_figures_show_inconsistencies(services: Services) -> None:
    world = await make_world(services)
    batch_id = await primary_records(services, world)
    round_id = await open_round(services, world)
    # The student list changes after the need was recorded, and a handover predates the receipt.
    async with services.sessionmaker.begin() as session:
        student = await session.get(Student, world.student_ids["HS0002"])
        assert student is not None
        student.priority_group = PriorityGroup.POOR
    await services.handovers.create_handover(
        HandoverIn(
            batch_id=batch_id,
            student_id=world.student_ids["HS0004"],
            kind=HandoverKind.LOAN,
            handed_on=date(2021, 11, 12),
        ),
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["teacher"],
    )
    async with services.sessionmaker.begin() as session:
        from storage.models import Handover

        handover = await session.scalar(
            select(Handover).where(Handover.student_id == world.student_ids["HS0004"])
        )
        assert handover is not None
        handover.handed_on = date(2021, 11, 5)
    figures = await services.rounds.school_figures(round_id, school_id=world.primary_school_id)
    codes = {i.code for i in figures.issues(PROGRAM)}
    assert {"need_category_mismatch", "handover_before_receipt"} <= codes
    assert figures.issues(VACCINE) == []
    assert figures["devices.program.on_loan"] == 1 and figures["devices.program.left"] == 1
    from bot.round_texts import issue_text

    texts = [issue_text(i, "vi") for i in figures.inconsistencies]
    assert any("hộ cận nghèo" in text and "hộ nghèo" in text for text in texts)
    assert any("05/11/2021" in text and "10/11/2021" in text for text in texts)
    # The principal submits anyway: the reviewer sees the same inconsistencies.
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=world.staff_ids["principal"]
    )
    assert {i.code for i in result.figures.issues(PROGRAM)} == codes
    summary = await services.rounds.review_summary(
        result.submission.id, reviewer_id=world.staff_ids["primary_specialist"]
    )
    assert {i.code for i in summary.inconsistencies} == codes


# --- progress and lateness ------------------------------------------------------------------------


async def test_progress_numbers_and_lateness(services: Services, clock) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    await primary_records(services, world)
    round_id = await open_round(services, world)
    progress = await services.rounds.progress(round_id)
    assert progress.totals.schools == 2 and progress.totals.records == 3
    by_code = {s.school_code: s for s in progress.schools}
    assert by_code["79785001"].records == 3 and by_code["79785101"].records == 0
    assert progress.totals.program == {"not_submitted": 2, "submitted": 0, "approved": 0, "returned": 0}
    assert progress.totals.program_late == 0

    # The primary school submits on time and is sent back; then the deadline passes.
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    await services.rounds.send_back(
        result.submission.id, reviewer_id=ids["primary_specialist"], reason=REASON
    )
    clock.freeze(SUBMIT_DEADLINE + timedelta(minutes=1))
    progress = await services.rounds.progress(round_id)
    primary, secondary = progress.schools
    assert primary.program is SubmissionStatus.RETURNED and primary.program_reason == REASON
    assert not primary.program_late  # first submitted before the deadline
    assert secondary.program is SubmissionStatus.NOT_SUBMITTED and secondary.program_late
    assert primary.vaccine_late and secondary.vaccine_late
    assert progress.totals.program == {"not_submitted": 1, "submitted": 0, "approved": 0, "returned": 1}
    assert progress.totals.program_late == 1 and progress.totals.returned == 1

    # Submitting after the deadline is accepted, flagged late in the event and on the board.
    late = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
    )
    assert late.late and late.submission.late
    (event,) = await events_of(services, late.submission.id)
    assert event.figures is not None and event.figures["late"] is True
    resubmitted = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    assert resubmitted.late and not resubmitted.submission.late  # its first submission was on time
    progress = await services.rounds.progress(round_id)
    assert progress.totals.program == {"not_submitted": 0, "submitted": 2, "approved": 0, "returned": 0}
    assert [s.program_late for s in progress.schools] == [False, True]
    (pending_late,) = [
        p for p in await services.rounds.pending_reviews(ids["secondary_specialist"]) if p.late
    ]
    assert pending_late.school_id == world.secondary_school_id

    from bot.round_texts import progress_text

    text = progress_text(progress, "vi", TZ)
    assert "79785101 Trường THCS Nguyễn Bỉnh Khiêm: 0 bản ghi · CT chờ duyệt · VX chưa nộp · trễ hạn" in text
    assert "15:30 15/11/2021" in text
    # Each part's history on the board: submitted at (late), sent back how often and why.
    lines = text.splitlines()
    primary_part = lines[lines.index(next(x for x in lines if x.startswith("79785001"))) + 1]
    assert primary_part.startswith("   Chương trình") or "nộp" in primary_part, primary_part
    assert "trả lại 1 lần" in primary_part and f"lý do lần cuối: «{REASON}»" in primary_part
    secondary_part = lines[lines.index(next(x for x in lines if x.startswith("79785101"))) + 1]
    assert "nộp " in secondary_part and "⏰ trễ hạn" in secondary_part
    # Approved: when and by whom.
    await services.rounds.approve(late.submission.id, reviewer_id=ids["secondary_specialist"])
    text = progress_text(await services.rounds.progress(round_id), "vi", TZ)
    lines = text.splitlines()
    secondary_part = lines[lines.index(next(x for x in lines if x.startswith("79785101"))) + 1]
    assert "duyệt " in secondary_part and "(" in secondary_part, secondary_part
    history = await services.rounds.history(world.secondary_school_id)
    assert any(h.kind == "submission" and h.late for h in history)


# --- the command line -----------------------------------------------------------------------------


def test_cli_round_create_list_progress(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert main(list(argv)) == code, capsys.readouterr()
        out, err = capsys.readouterr()
        return out + err

    run("db", "upgrade")
    run("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè")
    run(
        "school",
        "add",
        "--district",
        "NB",
        "--code",
        "79785001",
        "--name",
        "Trường TH Lê Văn Lương",
        "--level",
        "TH",
    )
    run(
        "school",
        "add",
        "--district",
        "NB",
        "--code",
        "79785101",
        "--name",
        "Trường THCS Nguyễn Bỉnh Khiêm",
        "--level",
        "THCS",
    )
    create = [
        "round", "create", "--name", "Báo cáo CV 1128/GDĐT",
        "--submit", "15/11/2021 15:30", "--approve", "16/11/2021 12:00", "--compile", "16/11/2021 17:00",
        "--from", "01/09/2021", "--to", "15/11/2021",
    ]  # fmt: skip
    out = run(*create)
    assert "Đã tạo đợt báo cáo số 1" in out and "2 trường" in out and "15:30 15/11/2021" in out
    created = json.loads(run(*create, "--district", "NB", "--json"))
    assert created["id"] == 2 and created["submit_deadline"].startswith("2021-11-15T08:30:00")
    out = run("round", "create", *create[2:4], "--submit", "16/11/2021 15:30", *create[6:], code=1)
    assert "thứ tự" in out
    out = run("round", "create", *create[2:4], "--submit", "32/11/2021", *create[6:], code=1)
    assert "32/11/2021" in out

    listing = run("round", "list")
    assert listing.count("Báo cáo CV 1128/GDĐT") == 2 and "đang mở" in listing
    assert [r["id"] for r in json.loads(run("round", "list", "--json"))] == [2, 1]

    png = tmp_path / "out" / "progress.png"
    out = run("round", "progress", "1", "--png", str(png))
    assert "Tiến độ đợt báo cáo «Báo cáo CV 1128/GDĐT»" in out and "79785001 Trường TH Lê Văn Lương" in out
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    data = json.loads(run("round", "progress", "1", "--json"))
    assert data["totals"]["schools"] == 2 and data["totals"]["program"]["not_submitted"] == 2
    out = run("round", "progress", "9", code=1)
    assert t("errors.rounds.unknown", "vi", id=9) in out


async def test_two_taps_at_once_submit_and_approve_once(services: Services) -> None:
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    results = await asyncio.gather(
        *[
            services.rounds.submit(
                round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
            )
            for _ in range(2)
        ],
        return_exceptions=True,
    )
    codes = sorted(type(r).__name__ if not isinstance(r, DomainError) else r.code for r in results)
    assert codes == ["SubmitResult", "rounds.already_submitted"]
    submission_id = next(r for r in results if not isinstance(r, BaseException)).submission.id
    results = await asyncio.gather(
        services.rounds.approve(submission_id, reviewer_id=ids["primary_specialist"]),
        services.rounds.send_back(submission_id, reviewer_id=ids["primary_specialist"], reason=REASON),
        return_exceptions=True,
    )
    assert sum(isinstance(r, DomainError) for r in results) == 1
    assert len(await events_of(services, submission_id)) == 2
