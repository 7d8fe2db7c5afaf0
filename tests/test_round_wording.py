"""Issue 16, item 11 (last two points): a round's long name is shown in a short form, never as nested
«« »»; the deputy head's late notices arrive in the order of their deadlines."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import pytest

from bot.fakeapi import JSON, StoredFile
from conversations.reminders import JOB_NAME
from storage.clock import Clock
from storage.enums import SubmissionTrack
from storage.rules import round_label
from storage.schemas.rounds import RoundIn
from storage.services import Services
from tests.chat import Harness
from tests.conftest import TZ
from tests.factories import TELEGRAM_IDS, make_world

LONG_NAME = "Báo cáo Chương trình «Sóng và máy tính cho em» và tiêm vắc xin (CV 1128/GDĐT)"
SHORT = "Báo cáo Chương trình “Sóng và máy tính cho em”… (CV 1128/GDĐT)"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (LONG_NAME, SHORT),
        ("Báo cáo CV 1128/GDĐT", "Báo cáo CV 1128/GDĐT"),  # short: as typed
        ("Đợt «15/11»", "Đợt “15/11”"),  # its own «» never nest inside the message's
        (
            "Báo cáo tháng 11 năm 2021 về việc hỗ trợ máy tính cho học sinh có hoàn cảnh khó khăn",
            "Báo cáo tháng 11 năm 2021 về việc hỗ trợ máy tính cho học…",
        ),
    ],
)
def test_round_label(name: str, shown: str) -> None:
    assert round_label(name) == shown
    assert len(round_label(name)) <= 64
    assert "«" not in round_label(name) and "»" not in round_label(name)


def test_round_label_in_full_for_official_documents() -> None:
    assert round_label(LONG_NAME, limit=None) == (
        "Báo cáo Chương trình “Sóng và máy tính cho em” và tiêm vắc xin (CV 1128/GDĐT)"
    )


def long_round(submit: datetime = datetime(2021, 11, 15, 15, 30)) -> RoundIn:
    return RoundIn(
        name=LONG_NAME,
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=submit,
        approve_deadline=datetime(2021, 11, 16, 11, 30),
        compile_deadline=datetime(2021, 11, 16, 17, 0),
    )


async def test_the_long_name_is_short_and_never_nested_in_the_chat(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    await services.rounds.create_round(
        long_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    principal = harness.person("principal")
    specialist = harness.person("primary_specialist")
    deputy = harness.person("deputy_head")

    await principal.send("/submit")
    assert f"Đợt báo cáo «{SHORT}»" in principal.last_text()
    await principal.tap("Chương trình «Sóng và máy tính cho em»")
    await principal.tap("📤 Gửi lên Phòng")
    assert f"(đợt «{SHORT}»)" in principal.last_text()
    assert f"đợt «{SHORT}»" in specialist.last_text()
    await deputy.send("/progress")
    await deputy.send("/history 79785001")

    for person in (principal, specialist, deputy):
        for text in person.texts():
            assert "«Báo cáo Chương trình «" not in text and "»»" not in text, text
            assert "và tiêm vắc xin (CV" not in text, text  # the long form is nowhere


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2021, 11, day, hour, minute, tzinfo=TZ)


async def test_the_deputy_heads_late_notices_arrive_in_the_order_of_their_deadlines(
    services: Services, harness: Harness, clock: Clock
) -> None:
    clock.freeze(local(15, 9))
    world = await make_world(services)
    rnd = await services.rounds.create_round(
        long_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )
    # The lower-secondary school submits and waits for review; the primary school never submits.
    await services.rounds.submit(
        rnd.id,
        SubmissionTrack.PROGRAM,
        school_id=world.secondary_school_id,
        actor_id=world.staff_ids["principal_thcs"],
    )
    # Both deadlines passed in the quiet hours: the next run has both notices for the deputy head.
    due = await services.rounds.due_reminders(hours_before=(24, 2), quiet_start=21, quiet_end=7)
    clock.freeze(local(16, 12))
    due = await services.rounds.due_reminders(hours_before=(24, 2), quiet_start=21, quiet_end=7)
    deputy_id = TELEGRAM_IDS["deputy_head"]
    assert [r.reminder_key for r in due if r.telegram_user_id == deputy_id] == ["late:submit", "late:approve"]
    assert [r.due_at for r in due] == sorted(r.due_at for r in due if r.due_at is not None)

    # The first notice is slow to send: the second still comes after it.
    original = harness.api._m_sendmessage

    async def slow_first(params: JSON, files: dict[str, StoredFile]) -> JSON:
        if "quá hạn nộp" in str(params.get("text", "")):
            await asyncio.sleep(0.05)
        return await original(params, files)

    harness.api._m_sendmessage = slow_first  # type: ignore[method-assign]
    assert harness.app is not None and harness.app.job_queue is not None
    (job,) = harness.app.job_queue.get_jobs_by_name(JOB_NAME)
    await job.run(harness.app)
    await harness.settle()
    texts = [m["text"] for m in harness.api.chats[deputy_id] if m["from"]["is_bot"]]
    assert len(texts) == 2
    assert texts[0].startswith("⚠️ Đã quá hạn nộp (15:30 15/11/2021)")
    assert texts[1].startswith("⚠️ Đã quá hạn duyệt (11:30 16/11/2021)")
    assert f"đợt «{SHORT}»" in texts[0] and "»»" not in texts[0]
