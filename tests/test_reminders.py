"""Reminders of a round's deadlines, with a frozen clock: the right people at 24 h and 2 h before,
only schools whose step is not done, never twice, nothing in quiet hours, the late digest after."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot.texts import t
from storage.clock import Clock
from storage.enums import SubmissionStatus, SubmissionTrack
from storage.schemas.rounds import ReminderDue, RoundIn
from storage.services import Services
from storage.services.rounds import in_quiet_hours, reminder_offset
from tests.conftest import TZ
from tests.factories import TELEGRAM_IDS, World, make_world

PROGRAM = SubmissionTrack.PROGRAM
HOURS = (24, 2)
QUIET = {"quiet_start": 21, "quiet_end": 7}


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2021, 11, day, hour, minute, tzinfo=TZ)


async def open_round(
    services: Services,
    world: World,
    submit: datetime = datetime(2021, 11, 15, 15, 30),
    approve: datetime = datetime(2021, 11, 16, 12, 0),
    compile_: datetime = datetime(2021, 11, 16, 17, 0),
) -> int:
    data = RoundIn(
        name="Báo cáo CV 1128/GDĐT",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=submit,
        approve_deadline=approve,
        compile_deadline=compile_,
    )
    return (
        await services.rounds.create_round(
            data, district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
        )
    ).id


async def due(services: Services, clock: Clock, at: datetime) -> list[ReminderDue]:
    clock.freeze(at)
    return await services.rounds.due_reminders(hours_before=HOURS, **QUIET)


async def submit_reminders(services: Services, clock: Clock, at: datetime) -> list[ReminderDue]:
    return [r for r in await due(services, clock, at) if r.reminder_key.startswith("submit:")]


def who(reminders: list[ReminderDue]) -> set[tuple[int, str]]:
    """(telegram id, reminder key) of each reminder."""
    return {(r.telegram_user_id, r.reminder_key) for r in reminders}


async def send(services: Services, reminders: list[ReminderDue]) -> None:
    for reminder in reminders:
        assert await services.rounds.mark_sent(reminder.round_id, reminder.staff_id, reminder.reminder_key)


def test_quiet_hours_and_offsets() -> None:
    assert in_quiet_hours(local(15, 21), 21, 7) and in_quiet_hours(local(15, 6, 59), 21, 7)
    assert not in_quiet_hours(local(15, 7), 21, 7) and not in_quiet_hours(local(15, 20, 59), 21, 7)
    assert in_quiet_hours(local(15, 13), 12, 14) and not in_quiet_hours(local(15, 14), 12, 14)
    assert not in_quiet_hours(local(15, 3), 0, 0)  # equal hours: no quiet period
    deadline = local(15, 15, 30)
    assert reminder_offset(local(14, 15, 29), deadline, HOURS) is None
    assert reminder_offset(local(14, 15, 30), deadline, HOURS) == 24
    assert reminder_offset(local(15, 13, 30), deadline, HOURS) == 2
    assert reminder_offset(local(15, 15, 30), deadline, HOURS) is None


async def test_submit_reminders_at_24_and_2_hours_before(services: Services, clock: Clock) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)

    assert await due(services, clock, local(14, 15, 29)) == []
    reminders = await due(services, clock, local(14, 15, 30))
    assert who(reminders) == {
        (TELEGRAM_IDS["principal"], "submit:24h"),
        (TELEGRAM_IDS["principal_thcs"], "submit:24h"),
    }
    first = next(r for r in reminders if r.staff_id == ids["principal"])
    assert (
        first.round_id == round_id and first.language == "vi" and first.text_key == "rounds.reminder.submit"
    )
    text = t(first.text_key, first.language, **first.params)
    assert "Trường TH Lê Văn Lương" in text and "15:30 15/11/2021" in text and "24 giờ" in text

    # Sent once: not again, across runs (and restarts: it is in the database).
    await send(services, reminders)
    assert await services.rounds.mark_sent(round_id, ids["principal"], "submit:24h") is False
    assert await due(services, clock, local(14, 16)) == []

    # The lower-secondary school submits; 2 h before the deadline only the primary school is reminded.
    await services.rounds.submit(
        round_id, PROGRAM, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
    )
    # (The lower-secondary specialist is reminded to review it from 12:00, 24 h before that deadline.)
    assert await submit_reminders(services, clock, local(15, 13, 29)) == []
    reminders = await submit_reminders(services, clock, local(15, 13, 30))
    assert who(reminders) == {(TELEGRAM_IDS["principal"], "submit:2h")}
    assert reminders[0].params["hours_left"] == 2
    await send(services, reminders)
    assert await submit_reminders(services, clock, local(15, 15, 29)) == []


async def test_a_school_sent_back_is_reminded_again(services: Services, clock: Clock) -> None:
    clock.freeze(local(15, 9))
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    for key in ("principal", "principal_thcs"):
        await services.rounds.mark_sent(round_id, ids[key], "submit:24h")
    result = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    await services.rounds.send_back(
        result.submission.id, reviewer_id=ids["primary_specialist"], reason="Thiếu số liệu lớp 4A1"
    )
    reminders = await due(services, clock, local(15, 14))
    submit_reminders = {
        (r.telegram_user_id, r.params.get("status")) for r in reminders if r.reminder_key == "submit:2h"
    }
    assert submit_reminders == {
        (TELEGRAM_IDS["principal"], SubmissionStatus.RETURNED.value),
        (TELEGRAM_IDS["principal_thcs"], SubmissionStatus.NOT_SUBMITTED.value),
    }


async def test_nothing_in_quiet_hours_then_sent_at_seven(services: Services, clock: Clock) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    # Schools submit by 08:00: the 2-hour reminder falls at 06:00, in the quiet hours.
    await open_round(services, world, submit=datetime(2021, 11, 15, 8, 0))
    await send(services, await due(services, clock, local(14, 9)))  # the 24-hour reminders
    for at in (local(14, 21), local(14, 23, 59), local(15, 6), local(15, 6, 59)):
        assert await due(services, clock, at) == [], at
    reminders = await due(services, clock, local(15, 7))
    assert who(reminders) == {
        (TELEGRAM_IDS["principal"], "submit:2h"),
        (TELEGRAM_IDS["principal_thcs"], "submit:2h"),
    }
    assert reminders[0].params["hours_left"] == 1


async def test_a_deadline_passed_in_the_quiet_hours_leaves_only_the_late_digest(
    services: Services, clock: Clock
) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    await open_round(services, world, submit=datetime(2021, 11, 15, 6, 30))
    await send(services, await due(services, clock, local(14, 9)))
    assert await due(services, clock, local(15, 4, 30)) == []  # the 2-hour reminder: quiet
    reminders = await due(services, clock, local(15, 7))
    assert who(reminders) == {(TELEGRAM_IDS["deputy_head"], "late:submit")}


async def test_late_digest_to_the_deputy_head(services: Services, clock: Clock) -> None:
    clock.freeze(local(15, 9))
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    await services.rounds.submit(
        round_id, PROGRAM, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
    )
    await send(
        services, [r for r in await due(services, clock, local(15, 9)) if r.reminder_key.startswith("submit")]
    )
    assert [
        r for r in await due(services, clock, local(15, 15, 29)) if r.reminder_key.startswith("late")
    ] == []

    reminders = await due(services, clock, local(15, 15, 31))
    late = [r for r in reminders if r.reminder_key == "late:submit"]
    assert who(late) == {(TELEGRAM_IDS["deputy_head"], "late:submit")}
    assert late[0].params["count"] == 1 and late[0].params["schools"] == "Trường TH Lê Văn Lương"
    assert "Trường TH Lê Văn Lương" in t(late[0].text_key, "vi", **late[0].params)
    # After the deadline no principal is reminded to submit any more.
    assert not any(r.reminder_key.startswith("submit") for r in reminders)
    await send(services, late)
    assert not any(r.reminder_key == "late:submit" for r in await due(services, clock, local(15, 16)))


async def test_reviewer_and_statistics_reminders(services: Services, clock: Clock) -> None:
    clock.freeze(local(15, 9))
    world = await make_world(services)
    ids = world.staff_ids
    round_id = await open_round(services, world)
    primary = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.primary_school_id, actor_id=ids["principal"]
    )
    secondary = await services.rounds.submit(
        round_id, PROGRAM, school_id=world.secondary_school_id, actor_id=ids["principal_thcs"]
    )
    # 24 h before the approve deadline: each specialist about the schools of their level.
    reminders = await due(services, clock, local(15, 12))
    approve = [r for r in reminders if r.reminder_key.startswith("approve")]
    assert who(approve) == {
        (TELEGRAM_IDS["primary_specialist"], "approve:24h"),
        (TELEGRAM_IDS["secondary_specialist"], "approve:24h"),
    }
    assert {r.params["schools"] for r in approve} == {
        "Trường TH Lê Văn Lương",
        "Trường THCS Nguyễn Bỉnh Khiêm",
    }
    await send(services, reminders)

    # All approved: the statistics officer is told once that the report can be compiled.
    await services.rounds.approve(primary.submission.id, reviewer_id=ids["primary_specialist"])
    await services.rounds.approve(secondary.submission.id, reviewer_id=ids["secondary_specialist"])
    reminders = await due(services, clock, local(15, 16))
    assert who(reminders) == {(TELEGRAM_IDS["statistics_officer"], "compile:ready")}
    await send(services, reminders)
    # The compile deadline draws near: the statistics officer again (a different reminder).
    reminders = await due(services, clock, local(16, 15))
    assert who(reminders) == {(TELEGRAM_IDS["statistics_officer"], "compile:2h")}
    await send(services, reminders)
    # Not compiled after its deadline: a digest to the deputy head; a compiled round is silent.
    reminders = await due(services, clock, local(16, 17, 5))
    assert who(reminders) == {(TELEGRAM_IDS["deputy_head"], "late:compile")}
    await services.rounds.mark_compiled(
        round_id,
        actor_id=ids["statistics_officer"],
        missing_school_ids_acknowledged=[],
        report=b"xlsx",
        filename="r.xlsx",
    )
    assert await due(services, clock, local(16, 17, 10)) == []


@pytest.mark.parametrize("hours", [(24, 2), (2, 24), (6,)])
def test_offsets_in_any_order(hours: tuple[int, ...]) -> None:
    deadline = local(15, 15, 30)
    assert reminder_offset(deadline - timedelta(hours=1), deadline, hours) == min(hours)
