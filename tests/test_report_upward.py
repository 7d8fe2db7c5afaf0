"""Issue 15, item 4: the statistics officer's «đã báo cáo Sở» (/reported).

Transcripts (SQLite and PostgreSQL): the batches not yet reported upward, paged, with their 5-day due
day; one batch recorded (on time), then all the others (late), each with an audit row; nothing left
to report; a teacher refused; a button of a finished list refused as stale. The clock stands at
Monday 15/11/2021 09:00.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from storage.enums import DeviceType, DonationSource
from storage.models import AuditLog, BatchReport
from storage.schemas.devices import BatchIn
from storage.services import Services
from tests.chat import Harness, label
from tests.factories import World, make_world
from tests.helpers import laptops_with_one_gift

CONFIRM = label("upward.confirm")


async def older_batches(services: Services, world: World, days: range) -> None:
    """Tablets received on each of `days` of November at the primary school."""
    for day in days:
        await services.donations.create_batch(
            BatchIn(
                source=DonationSource.PROGRAM,
                received_on=date(2021, 11, day),
                quantity=1,
                device_type=DeviceType.TABLET,
            ),
            school_id=world.primary_school_id,
            actor_id=world.staff_ids["teacher"],
        )


async def reported(services: Services) -> dict[int, BatchReport]:
    async with services.sessionmaker() as session:
        return {r.batch_id: r for r in await session.scalars(select(BatchReport))}


async def test_the_officer_records_one_batch_then_all(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await older_batches(services, world, range(1, 10))  # due 06/11 … 14/11: overdue today
    latest = await laptops_with_one_gift(services, world)  # received 10/11: due today, 15/11
    officer = harness.person("statistics_officer")

    await officer.send("/reported")
    text = officer.last_text()
    assert "<b>10</b> đợt tài trợ chưa ghi nhận báo cáo Sở" in text and "Trang 1/2" in text
    buttons = officer.buttons()
    assert "79785001 · lô #1 · nhận 01/11/2021 · hạn 06/11/2021 ⏰" in buttons
    assert len([b for b in buttons if "· lô #" in b]) == 8
    assert "📨 Tất cả 10 đợt" in buttons
    await officer.tap(label("upward.next"))
    assert "Trang 2/2" in officer.last_text()
    # The batch received today-5 is due today: not marked overdue.
    await officer.tap("79785001 · lô #10 · nhận 10/11/2021 · hạn 15/11/2021")
    assert "lô #10 của Trường TH Lê Văn Lương" in officer.last_text()
    assert "đã báo cáo Sở hôm nay, 15/11/2021" in officer.last_text()
    await officer.tap(CONFIRM)
    assert "Đã ghi nhận 1 đợt báo cáo Sở ngày 15/11/2021: 1 đúng hạn, 0 quá hạn" in officer.last_text()
    stored = await reported(services)
    assert list(stored) == [latest] and stored[latest].reported_by_id == world.staff_ids["statistics_officer"]

    await officer.send("/reported")
    assert "<b>9</b> đợt" in officer.last_text() and "Trang 1/2" in officer.last_text()
    await officer.tap("📨 Tất cả 9 đợt")
    assert "Ghi nhận <b>9</b> đợt tài trợ" in officer.last_text()
    await officer.tap(label("upward.back"))  # back to the list, then all again
    await officer.tap("📨 Tất cả 9 đợt")
    await officer.tap(CONFIRM)
    assert "Đã ghi nhận 9 đợt báo cáo Sở ngày 15/11/2021: 0 đúng hạn, 9 quá hạn" in officer.last_text()
    assert len(await reported(services)) == 10
    async with services.sessionmaker() as session:
        audits = list(await session.scalars(select(AuditLog).where(AuditLog.entity == "batch_report")))
    assert len(audits) == 10 and {a.school_id for a in audits} == {world.primary_school_id}

    # The Biểu 3 of the district report now says so (on time for 10/11, late for the others).
    await officer.send("/reported")
    assert "Mọi đợt tài trợ đã được ghi nhận báo cáo Sở" in officer.last_text()


async def test_nothing_to_report(services: Services, harness: Harness) -> None:
    await make_world(services)
    officer = harness.person("statistics_officer")
    await officer.send("/reported")
    assert "không còn đợt nào chờ" in officer.last_text()
    assert not officer.buttons()


async def test_a_teacher_is_refused(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await laptops_with_one_gift(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/reported")
    assert "Vai trò của bạn không được làm việc này" in teacher.last_text()
    assert await reported(services) == {}
    assert "📨 Đã báo cáo Sở" not in teacher.reply_keyboard()
    await teacher.send("/help")
    assert "/reported" not in teacher.last_text()
    officer = harness.person("statistics_officer")
    await officer.send("/help")
    assert "/reported" in officer.last_text()


async def test_a_button_of_a_finished_list_is_stale(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await older_batches(services, world, range(1, 3))
    officer = harness.person("statistics_officer")
    await officer.send("/reported")
    listed = next(m for m in reversed(officer.bot_messages()) if m.get("reply_markup"))
    first = listed["reply_markup"]["inline_keyboard"][0][0]
    await officer.tap("📨 Tất cả 2 đợt")
    await officer.tap(CONFIRM)
    assert "Đã ghi nhận 2 đợt" in officer.last_text()
    # The list's first button, tapped after the record was made: refused, nothing recorded twice.
    await harness.deliver(harness.api.callback_query(officer.user, listed, first["callback_data"]))
    assert any("không còn dùng được" in alert for alert in officer.alerts())
    assert len(await reported(services)) == 2
