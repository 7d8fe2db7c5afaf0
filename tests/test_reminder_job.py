"""The reminder job, as the job queue runs it, with a frozen clock: the right people at 24 h and 2 h
before the submission deadline, only schools that have not submitted, nothing in the quiet hours,
never twice (across a restart too), a person who blocked the bot marked and not retried."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from bot.fakeapi import JSON, BotApiError, StoredFile
from conversations.reminders import INTERVAL_SECONDS, JOB_NAME
from storage.clock import Clock
from storage.models import SentReminder
from storage.schemas.rounds import RoundIn
from storage.services import Services
from tests.chat import Harness, label
from tests.conftest import TZ
from tests.factories import TELEGRAM_IDS, World, make_world


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2021, 11, day, hour, minute, tzinfo=TZ)


async def open_round(
    services: Services, world: World, submit: datetime = datetime(2021, 11, 15, 15, 30)
) -> int:
    data = RoundIn(
        name="Báo cáo CV 1128/GDĐT",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=submit,
        approve_deadline=datetime(2021, 11, 16, 12, 0),
        compile_deadline=datetime(2021, 11, 16, 17, 0),
    )
    return (
        await services.rounds.create_round(
            data, district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
        )
    ).id


async def run_job(harness: Harness, clock: Clock, at: datetime) -> dict[int, list[str]]:
    """Run the application's scheduled reminder job at `at`; the texts each chat got from it."""
    clock.freeze(at)
    assert harness.app is not None and harness.app.job_queue is not None
    (job,) = harness.app.job_queue.get_jobs_by_name(JOB_NAME)
    before = {chat: len(messages) for chat, messages in harness.api.chats.items()}
    await job.run(harness.app)
    await harness.settle()
    return {
        chat: [m["text"] for m in messages[before.get(chat, 0) :] if m["from"]["is_bot"]]
        for chat, messages in harness.api.chats.items()
        if len(messages) > before.get(chat, 0)
    }


async def sent_keys(services: Services) -> set[tuple[int, str]]:
    async with services.sessionmaker() as session:
        rows = await session.scalars(select(SentReminder))
        return {(row.staff_id, row.reminder_key) for row in rows}


def refuse(harness: Harness, chat_id: int, code: int, description: str) -> list[int]:
    """The fake Bot API answers sendMessage to `chat_id` with an error; the attempts are counted."""
    attempts: list[int] = []
    original = harness.api._m_sendmessage

    async def send(params: JSON, files: dict[str, StoredFile]) -> JSON:
        if int(params["chat_id"]) == chat_id:
            attempts.append(chat_id)
            raise BotApiError(code, description)
        return await original(params, files)

    harness.api._m_sendmessage = send  # type: ignore[method-assign]
    return attempts


async def test_the_job_is_scheduled_every_few_minutes(harness: Harness) -> None:
    assert harness.app is not None and harness.app.job_queue is not None
    (job,) = harness.app.job_queue.get_jobs_by_name(JOB_NAME)
    assert job.trigger.interval.total_seconds() == INTERVAL_SECONDS  # type: ignore[attr-defined]


async def test_reminders_at_24_and_2_hours_only_to_late_schools_and_once(
    services: Services, harness: Harness, clock: Clock
) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    await open_round(services, world)
    principal, principal_thcs = TELEGRAM_IDS["principal"], TELEGRAM_IDS["principal_thcs"]

    assert await run_job(harness, clock, local(14, 15, 29)) == {}
    got = await run_job(harness, clock, local(14, 15, 30))  # 24 h before 15:30 on Monday
    assert set(got) == {principal, principal_thcs}
    (text,) = got[principal]
    assert text.startswith("⏰ Nhắc hạn đợt báo cáo «Báo cáo CV 1128/GDĐT»: Trường TH Lê Văn Lương chưa nộp")
    assert "Hạn nộp: 15:30 15/11/2021 (còn khoảng 24 giờ)" in text and "/submit" in text
    assert "Trường THCS Nguyễn Bỉnh Khiêm" in got[principal_thcs][0]
    assert await run_job(harness, clock, local(14, 16)) == {}  # already sent

    # The lower-secondary school submits in the chat; 2 h before only the primary school is chased.
    thcs = harness.person("principal_thcs")
    clock.freeze(local(15, 9))
    await thcs.send("/submit")
    await thcs.tap(label("rounds.track.program"))
    await thcs.tap(label("rounds_chat.submit.confirm_button"))
    assert "✅ Đã gửi" in thcs.last_text()
    got = await run_job(harness, clock, local(15, 13, 29))  # (24 h before the review deadline)
    assert set(got) == {TELEGRAM_IDS["secondary_specialist"]}
    assert got[TELEGRAM_IDS["secondary_specialist"]][0].startswith(
        "⏰ Nhắc hạn duyệt đợt «Báo cáo CV 1128/GDĐT»"
    )
    got = await run_job(harness, clock, local(15, 13, 30))
    assert set(got) == {principal} and "còn khoảng 2 giờ" in got[principal][0]

    # A restart: the job runs again in the new process and sends nothing twice.
    await harness.restart()
    assert await run_job(harness, clock, local(15, 13, 35)) == {}
    assert await run_job(harness, clock, local(15, 15, 0)) == {}
    ids = world.staff_ids
    assert {
        (ids["principal"], "submit:24h"),
        (ids["principal_thcs"], "submit:24h"),
        (ids["principal"], "submit:2h"),
    } <= await sent_keys(services)
    assert (ids["principal_thcs"], "submit:2h") not in await sent_keys(services)

    # After the deadline: the late digest to the deputy head, once.
    got = await run_job(harness, clock, local(15, 15, 31))
    assert set(got) == {TELEGRAM_IDS["deputy_head"]}
    assert "1 trường nộp trễ hoặc chưa nộp: Trường TH Lê Văn Lương" in got[TELEGRAM_IDS["deputy_head"]][0]
    assert await run_job(harness, clock, local(15, 16)) == {}


async def test_nothing_in_quiet_hours_then_at_seven(
    services: Services, harness: Harness, clock: Clock
) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    # Schools submit by 08:00 on Monday: the 2-hour reminder falls at 06:00, in the quiet hours.
    await open_round(services, world, submit=datetime(2021, 11, 15, 8, 0))
    assert set(await run_job(harness, clock, local(14, 9))) == {
        TELEGRAM_IDS["principal"],
        TELEGRAM_IDS["principal_thcs"],
    }
    for at in (local(14, 21), local(14, 23, 30), local(15, 6), local(15, 6, 59)):
        assert await run_job(harness, clock, at) == {}, at
    got = await run_job(harness, clock, local(15, 7))
    assert set(got) == {TELEGRAM_IDS["principal"], TELEGRAM_IDS["principal_thcs"]}
    assert "còn khoảng 1 giờ" in got[TELEGRAM_IDS["principal"]][0]


async def test_quiet_hours_follow_the_settings(services: Services, db_url: str, clock: Clock) -> None:
    from tests.chat import running_harness

    clock.freeze(local(14, 9))
    world = await make_world(services)
    await open_round(services, world)
    async with running_harness(services, db_url, quiet_hours_start=12, quiet_hours_end=18) as harness:
        assert await run_job(harness, clock, local(14, 15, 30)) == {}  # quiet from noon here
        assert len(await run_job(harness, clock, local(14, 18))) == 2
    async with running_harness(services, db_url, reminder_hours_before=[1]) as harness:
        assert await run_job(harness, clock, local(15, 13, 30)) == {}  # only 1 h before, here
        assert len(await run_job(harness, clock, local(15, 14, 30))) == 2


async def test_blocked_person_is_marked_not_retried_and_network_errors_retry(
    services: Services, harness: Harness, clock: Clock
) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    await open_round(services, world)
    principal, principal_thcs = TELEGRAM_IDS["principal"], TELEGRAM_IDS["principal_thcs"]
    blocked = refuse(harness, principal, 403, "Forbidden: bot was blocked by the user")
    got = await run_job(harness, clock, local(14, 15, 30))
    assert set(got) == {principal_thcs}
    assert blocked == [principal]
    assert (world.staff_ids["principal"], "submit:24h") in await sent_keys(services)
    assert await run_job(harness, clock, local(14, 15, 40)) == {}
    assert blocked == [principal]  # not tried again

    # A server error is not the person's doing: left unmarked, sent on the next run. (A new reminder
    # is tried once for the person who blocked the bot: they may have unblocked it since.)
    failing = refuse(harness, principal_thcs, 502, "Bad Gateway")
    got = await run_job(harness, clock, local(15, 13, 30))
    assert got == {} and failing == [principal_thcs] and blocked == [principal, principal]
    assert (world.staff_ids["principal_thcs"], "submit:2h") not in await sent_keys(services)
    del harness.api._m_sendmessage  # the real answer again
    got = await run_job(harness, clock, local(15, 13, 35))
    assert set(got) == {principal_thcs} and "còn khoảng 2 giờ" in got[principal_thcs][0]
    assert (world.staff_ids["principal_thcs"], "submit:2h") in await sent_keys(services)


async def test_reminders_speak_the_person_language(
    services: Services, harness: Harness, clock: Clock
) -> None:
    clock.freeze(local(14, 9))
    world = await make_world(services)
    await services.staff.set_language(world.staff_ids["principal"], "en")
    await open_round(services, world)
    got = await run_job(harness, clock, local(14, 15, 30))
    assert got[TELEGRAM_IDS["principal"]][0].startswith("⏰ Deadline reminder for the round")
    assert got[TELEGRAM_IDS["principal_thcs"]][0].startswith("⏰ Nhắc hạn")
