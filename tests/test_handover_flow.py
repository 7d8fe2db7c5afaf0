"""/handover and /return through the chat (clock frozen at Mon 15 Nov 2021, 09:00)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from sqlalchemy import func, select

from conversations.handover import Step
from conversations.loan_return import Step as ReturnStep
from storage.enums import HandoverKind, Role
from storage.models import AuditLog, Handover, Staff
from storage.schemas.devices import BatchIn, BatchOut, DonorIn, HandoverIn
from storage.services import Services
from tests.chat import (
    CANCEL,
    CONFIRM,
    EDIT,
    SKIP,
    TODAY_BUTTON,
    YESTERDAY_BUTTON,
    Harness,
    Person,
    label,
    step_of,
)
from tests.conftest import TZ
from tests.factories import AN, BINH, CUONG, World, make_world
from tests.helpers import allocated

GIFT = label("devices.kind.gift")
LOAN = label("devices.kind.loan")
AGAIN = label("devices.handover.again")
SECOND = label("devices.handover.second_button")


async def make_batch(
    services: Services,
    world: World,
    *,
    quantity: int = 2,
    source: str = "other",
    received_on: date = date(2021, 11, 12),
    school: str = "primary",
    make_model: str = "Dell Latitude 3420",
) -> BatchOut:
    school_id = world.primary_school_id if school == "primary" else world.secondary_school_id
    donor_id = None
    if source == "other":
        found = await services.donations.donor_by_name(school_id, "Công ty TNHH Ánh Dương")
        donor = found or await services.donations.add_donor(
            DonorIn(name="Công ty TNHH Ánh Dương", kind="business"), school_id=school_id, actor_id=None
        )
        donor_id = donor.id
    data = BatchIn(
        source=source,
        donor_id=donor_id,
        received_on=received_on,
        quantity=quantity,
        device_type="laptop",
        make_model=make_model,
    )
    return await services.donations.create_batch(data, school_id=school_id, actor_id=None)


def batch_label(batch: BatchOut, handed: int = 0) -> str:
    return (
        f"#{batch.number} máy tính xách tay · {batch.received_on:%d/%m/%Y} · "
        f"nhận {batch.quantity} / giao {handed} / còn {batch.quantity - handed}"
    )


async def handovers(services: Services) -> list[Handover]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Handover).order_by(Handover.id)))


async def to_summary(
    person: Person, batch: BatchOut, query: str, student: str, *, kind: str = GIFT, handed: int = 0
) -> None:
    await person.send("/handover")
    await person.tap(batch_label(batch, handed))
    await person.send(query)
    await person.tap(student)
    await person.tap(kind)
    await person.tap(TODAY_BUTTON)
    await person.tap(SKIP)


async def test_happy_path_gift_then_continue_with_the_same_batch(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    assert "Chọn lô thiết bị" in teacher.last_text()
    assert teacher.buttons() == [batch_label(batch)]
    await teacher.tap(batch_label(batch))
    assert "Học sinh nhận máy là ai?" in teacher.last_text()
    await teacher.send("nguyen van an")
    await teacher.tap(AN)
    text = teacher.last_text()
    assert "Tặng hẳn hay cho mượn tạm?" in text and "<b>không</b> được tính là học sinh đã có máy" in text
    assert teacher.buttons() == [GIFT, LOAN]
    await teacher.tap(GIFT)
    assert "Lô này nhận ngày 12/11/2021" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    assert "ảnh biên bản bàn giao" in teacher.last_text()
    await teacher.photo(b"\xff\xd8signed")
    summary = teacher.last_text()
    assert f"Lô: <b>#{batch.number} · máy tính xách tay Dell Latitude 3420</b>" in summary
    assert f"Học sinh: <b>{AN}</b>" in summary and "Hình thức: <b>tặng</b>" in summary
    assert "Ngày bàn giao: <b>15/11/2021</b>" in summary and "đã đính kèm" in summary
    assert teacher.buttons() == [CONFIRM, EDIT, CANCEL]
    await teacher.tap(CONFIRM)
    texts = teacher.new_texts()
    assert any(
        f"Đã lưu: tặng máy tính xách tay (lô #{batch.number}) cho <b>{AN}</b> ngày 15/11/2021" in t
        for t in texts
    )
    assert texts[-1] == f"Lô #{batch.number} còn 1 thiết bị."
    [saved] = await handovers(services)
    assert saved.student_id == world.student_ids["HS0001"] and saved.kind is HandoverKind.GIFT
    assert saved.receipt_photo_file_id and not saved.entered_late
    assert saved.entered_by_id == world.staff_ids["teacher"]
    # «Bàn giao tiếp từ lô này»: a new handover, the batch already chosen, straight to the student.
    await teacher.tap(AGAIN)
    assert "Học sinh nhận máy là ai?" in teacher.last_text()
    await teacher.send("binh")
    await teacher.tap(BINH)
    await teacher.tap(GIFT)
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    assert "Ảnh biên bản: (không có)" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert teacher.last_text() == f"Lô #{batch.number} đã bàn giao hết 2 thiết bị."
    assert len(await handovers(services)) == 2 and await allocated(services, batch.id) == 2
    await teacher.send("/handover")
    assert "chưa có lô thiết bị nào còn máy" in teacher.last_text()


async def test_a_wrong_answer_at_every_step_stays_at_the_step(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    teacher = harness.person("teacher")
    await to_summary(teacher, batch, "HS0001", AN)
    await teacher.tap(CONFIRM)

    async def wrong(answer: str, hint: str, step: Step) -> None:
        await teacher.send(answer)
        assert hint in teacher.last_text(), teacher.last_text()
        assert await step_of(services, teacher, "handover") == step

    await teacher.send("/handover")
    await wrong("lô 1", "Hãy bấm một nút", Step.BATCH)
    await teacher.tap(batch_label(batch, handed=1))
    await wrong("a", "Gõ ít nhất 2 ký tự", Step.SEARCH)
    await teacher.send("nguyen van an")
    await teacher.tap(AN)  # already holds a device of this batch: said now, still choosing the student
    assert "đã nhận thiết bị từ lô này ngày 15/11/2021" in teacher.last_text()
    assert await step_of(services, teacher, "handover") == Step.SEARCH
    await teacher.send("HS0004")
    await teacher.tap(CUONG)
    await wrong("bán", "Hình thức «bán» không hợp lệ", Step.KIND)
    await teacher.send("cho muon")  # typed without diacritics: understood
    await wrong("16/11/2021", "còn ở tương lai", Step.DATE)
    await wrong("10/11/2021", "trước ngày trường nhận lô (12/11/2021)", Step.DATE)
    await wrong("hôm kìa nữa", "không phải là ngày", Step.DATE)
    await teacher.send("hôm qua")
    await wrong("không chụp", "Hãy gửi một ảnh", Step.PHOTO)
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "Hình thức: <b>cho mượn tạm</b>" in summary and "không tính là học sinh đã có máy" in summary
    await wrong("ok", "Hãy bấm một nút", Step.SUMMARY)
    await teacher.tap(EDIT)
    await wrong("ngày", "Hãy bấm một nút", Step.EDIT)
    assert len(await handovers(services)) == 1


async def test_edit_from_the_summary(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    first = await make_batch(services, world, quantity=2, received_on=date(2021, 11, 10), make_model="Dell")
    later = await make_batch(services, world, quantity=2, received_on=date(2021, 11, 14), make_model="HP")
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(first))
    await teacher.send("binh")
    await teacher.tap(BINH)
    await teacher.tap(GIFT)
    await teacher.send("12/11/2021")
    await teacher.tap(SKIP)
    await teacher.tap(EDIT)
    assert teacher.buttons() == [
        "📦 Lô thiết bị",
        "👤 Học sinh",
        "🎁 Tặng / cho mượn",
        "📅 Ngày bàn giao",
        "🖼 Ảnh biên bản",
        "◀️ Quay lại bảng tóm tắt",
    ]
    await teacher.tap(label("devices.handover.field.student"))
    await teacher.send("cuong")
    await teacher.tap(CUONG)
    assert f"Học sinh: <b>{CUONG}</b>" in teacher.last_text()  # back at the summary
    # Another batch received after the handover date: the date is asked again, then the summary.
    await teacher.tap(EDIT)
    await teacher.tap(label("devices.handover.field.batch"))
    await teacher.tap(batch_label(later))
    assert "Lô này nhận ngày 14/11/2021" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    summary = teacher.last_text()
    assert (
        f"#{later.number} · máy tính xách tay HP" in summary and "Ngày bàn giao: <b>15/11/2021</b>" in summary
    )
    await teacher.tap(CONFIRM)
    [saved] = await handovers(services)
    assert (saved.batch_id, saved.student_id) == (later.id, world.student_ids["HS0004"])


async def test_cancel_saves_nothing(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    await to_summary(teacher, batch, "an", AN)
    await teacher.tap(CANCEL)
    assert "Đã huỷ <b>phiếu bàn giao thiết bị</b>. 4 câu trả lời" in teacher.last_text()
    assert await handovers(services) == [] and await allocated(services, batch.id) == 0
    assert await step_of(services, teacher, "handover") is None


async def test_restart_mid_flow_and_continue(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await harness.restart()
    await teacher.send("tang")
    assert "Bàn giao ngày nào?" in teacher.last_text()
    await harness.restart()
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.tap(SKIP)
    assert "Ngày bàn giao: <b>14/11/2021</b>" in teacher.last_text()
    await teacher.tap(CONFIRM)
    [saved] = await handovers(services)
    assert saved.student_id == world.student_ids["HS0002"] and saved.handed_on == date(2021, 11, 14)


async def test_another_school_cannot_see_or_pick_this_schools_batch_or_students(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    ours = await make_batch(services, world)
    theirs = await make_batch(services, world, school="secondary", make_model="Asus")
    other = harness.person("teacher_thcs")
    await other.send("/handover")
    assert other.buttons() == [batch_label(theirs)]  # only their own school's batch
    message = other.bot_messages()[-1]
    await harness.deliver(harness.api.callback_query(other.user, message, f"handover:batch:{ours.id}"))
    assert "Không tìm thấy lô thiết bị này" in other.last_text()
    assert await step_of(services, other, "handover") == Step.BATCH
    await other.tap(batch_label(theirs))
    await other.send("Nguyễn Văn An")
    assert "Không tìm thấy học sinh nào" in other.last_text()
    message = other.bot_messages()[-1]
    student = world.student_ids["HS0001"]
    await harness.deliver(harness.api.callback_query(other.user, message, f"handover:pick:id:{student}"))
    assert "Không tìm thấy học sinh này trong trường của bạn" in other.last_text()
    assert await step_of(services, other, "handover") == Step.SEARCH
    # «Bàn giao tiếp» with the other school's batch: refused, nothing started.
    await other.send("/cancel")
    await harness.deliver(harness.api.callback_query(other.user, message, f"handover:again:{ours.id}"))
    assert "Không tìm thấy lô thiết bị này" in other.last_text()
    assert await step_of(services, other, "handover") is None
    assert await handovers(services) == []


async def test_late_handover_is_saved_and_flagged(services: Services, harness: Harness, clock) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, received_on=date(2021, 11, 1))
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("an")
    await teacher.tap(AN)
    await teacher.tap(GIFT)
    await teacher.send("13/11")
    await teacher.tap(SKIP)
    assert "nhập trễ" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert any("Nhập trễ" in t for t in teacher.new_texts())
    # A handover dated yesterday is on time... until the clock moves past the grace day.
    await teacher.tap(AGAIN)
    await teacher.send("binh")
    await teacher.tap(BINH)
    await teacher.tap(GIFT)
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.tap(SKIP)
    assert "nhập trễ" not in teacher.last_text()
    clock.freeze(datetime(2021, 11, 16, 8, 0, tzinfo=TZ))
    await teacher.tap(CONFIRM)
    assert any("Nhập trễ" in t for t in teacher.new_texts())
    assert [h.entered_late for h in await handovers(services)] == [True, True]


async def add_teacher(services: Services, world: World) -> None:
    """A second teacher of the primary school (Telegram id 1005)."""
    async with services.sessionmaker.begin() as session:
        session.add(
            Staff(
                telegram_user_id=1005,
                full_name="Phan Thị Mai",
                role=Role.TEACHER,
                school_id=world.primary_school_id,
                district_id=world.district_id,
            )
        )


async def test_two_confirms_of_the_last_device_at_once(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await add_teacher(services, world)
    batch = await make_batch(services, world, quantity=1)
    first, second = harness.person("teacher"), harness.person("1005", "Mai")
    await to_summary(first, batch, "an", AN)
    await to_summary(second, batch, "binh", BINH)
    confirms = []
    for person in (first, second):
        summary = person.bot_messages()[-1]
        data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        confirms.append(harness.api.callback_query(person.user, summary, data))
    await asyncio.gather(*(harness.deliver(update) for update in confirms))
    saved = await handovers(services)
    assert len(saved) == 1 and await allocated(services, batch.id) == 1
    winner, loser = (
        (first, second) if saved[0].entered_by_id == world.staff_ids["teacher"] else (second, first)
    )
    assert any("Đã lưu" in t for t in winner.texts())
    assert "Lô này đã hết thiết bị" in loser.last_text() and "Chưa có gì được lưu" in loser.last_text()
    # nothing else changed: the summary is still there
    assert await step_of(services, loser, "handover") == Step.SUMMARY
    async with services.sessionmaker() as session:
        audits = await session.scalar(select(func.count(AuditLog.id)).where(AuditLog.entity == "handover"))
    assert audits == 1


async def test_double_confirm_saves_one_handover(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=5)
    teacher = harness.person("teacher")
    await to_summary(teacher, batch, "an", AN)
    summary = teacher.bot_messages()[-1]
    data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):
        await harness.deliver(harness.api.callback_query(teacher.user, summary, data))
    assert len(await handovers(services)) == 1 and await allocated(services, batch.id) == 1
    assert any("không còn dùng được" in a for a in teacher.alerts())


async def test_a_second_programme_device_needs_a_confirmed_warning(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    held = await make_batch(services, world, source="program", received_on=date(2021, 11, 1))
    await services.handovers.create_handover(
        HandoverIn(
            batch_id=held.id, student_id=world.student_ids["HS0001"], kind="gift", handed_on=date(2021, 11, 2)
        ),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    batch = await make_batch(services, world, source="program", make_model="Lenovo")
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("an")
    await teacher.tap(AN)
    await teacher.tap(GIFT)
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "đã nhận một thiết bị của Chương trình «Sóng và máy tính cho em» ngày 02/11/2021" in summary
    assert teacher.buttons() == [SECOND, EDIT, CANCEL]  # no plain Confirm
    await teacher.tap(SECOND)
    assert any("Đã lưu" in t for t in teacher.new_texts())
    assert len(await handovers(services)) == 2


async def test_loan_then_return(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=1)
    teacher = harness.person("teacher")
    await to_summary(teacher, batch, "an", AN, kind=LOAN)
    await teacher.tap(CONFIRM)
    texts = teacher.new_texts()
    assert any("Đã lưu: cho mượn tạm" in t and "không tính là học sinh đã có máy" in t for t in texts)
    assert await allocated(services, batch.id) == 1
    await teacher.send("/return")
    assert "Ghi nhận thiết bị cho mượn đã được trả lại" in teacher.last_text()
    loan = f"Nguyễn Văn An · 4A1 · lô #{batch.number} · 15/11/2021"
    assert teacher.buttons() == [loan]
    await teacher.tap(loan)
    assert "mượn máy tính xách tay" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    summary = teacher.last_text()
    assert "Ngày mượn: 15/11/2021" in summary and "Ngày trả: <b>15/11/2021</b>" in summary
    assert teacher.buttons() == [CONFIRM, CANCEL]
    await teacher.tap(CONFIRM)
    assert f"Máy đã về lại lô #{batch.number} (lô còn 1 thiết bị)" in teacher.last_text()
    [loan] = await handovers(services)
    assert loan.returned_on == date(2021, 11, 15) and await allocated(services, batch.id) == 0
    await teacher.send("/return")
    assert "không có thiết bị nào đang cho mượn" in teacher.last_text()


async def test_return_wrong_answers_filter_cancel_and_restart(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3, received_on=date(2021, 11, 1))
    for code, handed in (("HS0001", date(2021, 11, 10)), ("HS0002", date(2021, 11, 11))):
        await services.handovers.create_handover(
            HandoverIn(batch_id=batch.id, student_id=world.student_ids[code], kind="loan", handed_on=handed),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    teacher = harness.person("teacher")
    await teacher.send("/return")
    assert len(teacher.buttons()) == 2
    await teacher.send("Võ Minh Đức")
    assert "Không có lượt cho mượn nào khớp" in teacher.last_text()
    assert await step_of(services, teacher, "return") == ReturnStep.LOAN
    await teacher.send("tran thi")  # one match: chosen
    assert "Trần Thị Bình · 4A1</b> mượn" in teacher.last_text()
    await harness.restart()
    await teacher.send("09/11/2021")
    assert "trước ngày cho mượn (11/11/2021)" in teacher.last_text()
    await teacher.send("18/11/2021")
    assert "còn ở tương lai" in teacher.last_text()
    assert await step_of(services, teacher, "return") == ReturnStep.DATE
    await teacher.send("12/11")
    await teacher.send("xong")
    assert "Hãy bấm một nút" in teacher.last_text()
    await teacher.send("/cancel")
    assert "Đã huỷ" in teacher.last_text()
    assert all(h.returned_on is None for h in await handovers(services))
    # Another school sees none of these loans.
    other = harness.person("teacher_thcs")
    await other.send("/return")
    assert "không có thiết bị nào đang cho mượn" in other.last_text()


async def test_another_role_is_refused(services: Services, harness: Harness) -> None:
    await make_world(services)
    specialist = harness.person("primary_specialist")
    for command in ("/handover", "/return"):
        await specialist.send(command)
        assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    assert await step_of(services, specialist, "handover") is None
