"""/donation: a batch of donated devices received, through the chat (clock frozen: Mon 15 Nov 2021, 09:00)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from conversations.donation import Step
from storage.enums import AuditAction, DeviceCondition, DeviceType, DonationSource
from storage.models import AuditLog, DonationBatch, Donor
from storage.schemas.devices import DonorIn
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
from tests.factories import World, make_world

OTHER = label("devices.source.other")
PROGRAM = label("devices.source.program")
ADD_DONOR = label("devices.donation.donor_add")
LAPTOP = label("devices.device_type.laptop")
USED = label("devices.condition.used")
NEW = label("devices.condition.new")


async def batches(services: Services) -> list[DonationBatch]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(DonationBatch).order_by(DonationBatch.id)))


async def donors(services: Services) -> list[Donor]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Donor).order_by(Donor.id)))


async def known_donor(services: Services, world: World, name: str = "Hội Khuyến học xã Phước Kiển") -> int:
    donor = await services.donations.add_donor(
        DonorIn(name=name, kind="to chuc"), school_id=world.primary_school_id, actor_id=None
    )
    return donor.id


async def to_summary_program(teacher: Person, *, date_answer: str = TODAY_BUTTON) -> None:
    """Programme source: no donor asked; the quickest way to the summary."""
    await teacher.send("/donation")
    await teacher.tap(PROGRAM)
    if date_answer in (TODAY_BUTTON, YESTERDAY_BUTTON):
        await teacher.tap(date_answer)
    else:
        await teacher.send(date_answer)
    await teacher.send("10")
    await teacher.tap(LAPTOP)
    await teacher.send("Lenovo ThinkPad E14")
    await teacher.tap(NEW)
    await teacher.tap(SKIP)
    await teacher.tap(SKIP)


async def test_happy_path_other_source_with_a_new_donor(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/donation")
    assert "Thiết bị từ nguồn nào?" in teacher.last_text()
    assert teacher.buttons() == [PROGRAM, OTHER]
    await teacher.tap(OTHER)
    assert "chưa có nhà tài trợ nào" in teacher.last_text()
    await teacher.tap(ADD_DONOR)
    assert "Tên nhà tài trợ?" in teacher.last_text()
    await teacher.send("Công ty TNHH Ánh Dương")
    assert teacher.buttons() == [
        label("devices.donor_kind.organisation"),
        label("devices.donor_kind.individual"),
        label("devices.donor_kind.agency"),
        label("devices.donor_kind.business"),
    ]
    await teacher.tap(label("devices.donor_kind.business"))
    assert "Thông tin liên hệ" in teacher.last_text()
    await teacher.send("Anh Minh, 0909 123 456")
    assert "nhận thiết bị ngày nào" in teacher.last_text()
    assert teacher.buttons() == [TODAY_BUTTON, YESTERDAY_BUTTON]
    await teacher.tap(TODAY_BUTTON)
    assert "bao nhiêu thiết bị" in teacher.last_text()
    await teacher.send("10")
    assert LAPTOP in teacher.buttons() and label("devices.device_type.phone") in teacher.buttons()
    await teacher.tap(LAPTOP)
    assert "Hãng và mẫu máy" in teacher.last_text()
    await teacher.send("Dell Latitude 3420")
    assert teacher.buttons() == [NEW, USED]
    await teacher.tap(USED)
    assert "Cấu hình máy" in teacher.last_text()
    await teacher.send("Core i5, RAM 8GB, SSD 256GB")
    assert "ảnh biên bản" in teacher.last_text()
    await teacher.photo(b"\xff\xd8receipt", caption="")
    summary = teacher.last_text()
    assert "Kiểm tra lại trước khi lưu" in summary
    assert "Nguồn khác (4.8.3.2)" in summary
    assert "Công ty TNHH Ánh Dương · Doanh nghiệp (mới" in summary
    assert "Ngày nhận: <b>15/11/2021</b>" in summary and "Số lượng: <b>10</b>" in summary
    assert "Dell Latitude 3420</b> (đã qua sử dụng)" in summary and "Core i5" in summary
    assert "đã đính kèm" in summary and "nhập trễ" not in summary
    assert teacher.buttons() == [CONFIRM, EDIT, CANCEL]
    assert await donors(services) == []  # nothing is written before Confirm
    await teacher.tap(CONFIRM)
    texts = teacher.new_texts()
    saved = next(t for t in texts if "Đã lưu lô" in t)
    assert "10 máy tính xách tay Dell Latitude 3420 (đã qua sử dụng), nhận ngày 15/11/2021" in saved
    assert "trong 5 ngày kể từ ngày nhận" in saved and "20/11/2021" in saved
    assert "Nhập trễ" not in saved
    assert teacher.buttons() == [label("devices.donation.handover_button")]
    [batch] = await batches(services)
    [donor] = await donors(services)
    assert (donor.name, donor.kind.value, donor.contact) == (
        "Công ty TNHH Ánh Dương",
        "business",
        "Anh Minh, 0909 123 456",
    )
    assert donor.school_id == world.primary_school_id
    assert batch.source is DonationSource.OTHER and batch.donor_id == donor.id
    assert batch.quantity == 10 and batch.device_type is DeviceType.LAPTOP
    assert batch.condition is DeviceCondition.USED and batch.specs == "Core i5, RAM 8GB, SSD 256GB"
    assert batch.receipt_photo_file_id and batch.receipt_photo_file_id.startswith("FILE")
    assert batch.entered_by_id == world.staff_ids["teacher"] and not batch.entered_late
    assert await step_of(services, teacher, "donation") is None
    # The offered button goes straight into /handover with this batch.
    await teacher.tap(label("devices.donation.handover_button"))
    assert "Học sinh nhận máy là ai?" in teacher.last_text()


async def test_known_donor_typed_search_and_edit_from_the_summary(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    donor_id = await known_donor(services, world)
    await known_donor(services, world, "Hội Cha mẹ học sinh")
    teacher = harness.person("teacher")
    await to_summary_program(teacher)
    summary = teacher.last_text()
    assert "Chương trình «Sóng và máy tính cho em» (4.8.3.1)" in summary and "do Bộ phân bổ" in summary
    # Edit the quantity: back to the summary after the one answer.
    await teacher.tap(EDIT)
    assert label("devices.donation.field.donor") not in teacher.buttons()  # no donor for the programme
    await teacher.tap(label("devices.donation.field.quantity"))
    await teacher.send("12")
    assert "Số lượng: <b>12</b>" in teacher.last_text()
    # Edit the source: another source needs a donor, asked before going back to the summary.
    await teacher.tap(EDIT)
    await teacher.tap(label("devices.donation.field.source"))
    await teacher.tap(OTHER)
    assert "Nhà tài trợ là ai?" in teacher.last_text()
    assert teacher.buttons() == ["Hội Cha mẹ học sinh", "Hội Khuyến học xã Phước Kiển", ADD_DONOR]
    await teacher.send("hoi")  # two match: the list is narrowed, still at the donor step
    assert "khớp «hoi»" in teacher.last_text()
    await teacher.send("khuyen hoc")  # one matches: chosen
    summary = teacher.last_text()
    assert "Hội Khuyến học xã Phước Kiển · Tổ chức" in summary and "Số lượng: <b>12</b>" in summary
    # A "new" donor whose name is already known is taken from the list, not added twice.
    await teacher.tap(EDIT)
    await teacher.tap(label("devices.donation.field.donor"))
    await teacher.tap(ADD_DONOR)
    await teacher.send("HỘI KHUYẾN HỌC XÃ PHƯỚC KIỂN")
    assert any("đã có trong danh sách" in t for t in teacher.new_texts())
    await teacher.tap(CONFIRM)
    [batch] = await batches(services)
    assert batch.donor_id == donor_id and batch.quantity == 12 and batch.source is DonationSource.OTHER
    assert len(await donors(services)) == 2


async def test_a_wrong_answer_at_every_step_stays_at_the_step(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    await known_donor(services, world)
    teacher = harness.person("teacher")

    async def wrong(answer: str, hint: str, step: Step) -> None:
        await teacher.send(answer)
        assert hint in teacher.last_text(), teacher.last_text()
        assert await step_of(services, teacher, "donation") == step

    await teacher.send("/donation")
    await wrong("tivi", "Nguồn «tivi» không hợp lệ", Step.SOURCE)
    await teacher.tap(OTHER)
    await wrong("Ủy ban xã", "Không có nhà tài trợ nào khớp «Ủy ban xã»", Step.DONOR)
    await teacher.tap(ADD_DONOR)
    await wrong("x" * 201, "quá dài (tối đa 200 ký tự)", Step.DONOR_NAME)
    await teacher.send("Bà Năm")
    await wrong("hàng xóm", "Loại nhà tài trợ «hàng xóm» không hợp lệ", Step.DONOR_KIND)
    await teacher.tap(label("devices.donor_kind.individual"))
    await wrong("y" * 301, "quá dài (tối đa 300 ký tự)", Step.DONOR_CONTACT)
    await teacher.tap(SKIP)
    await wrong("31/02/2021", "không có trên lịch", Step.RECEIVED)
    await wrong("20/11/2021", "còn ở tương lai", Step.RECEIVED)
    await wrong("15/08/2021", "quá sớm", Step.RECEIVED)
    await teacher.send("12/11")
    await wrong("mười", "không phải là số nguyên", Step.QUANTITY)
    await wrong("0", "từ 1 trở lên", Step.QUANTITY)
    await teacher.send("5")
    await wrong("ti vi", "Loại thiết bị «ti vi» không hợp lệ", Step.DEVICE_TYPE)
    await teacher.send("may tinh bang")  # typed without diacritics: understood
    await wrong("z" * 201, "quá dài (tối đa 200 ký tự)", Step.MAKE_MODEL)
    await teacher.send("Samsung Galaxy Tab A7")
    await wrong("tốt", "Tình trạng «tốt» không hợp lệ", Step.CONDITION)
    await teacher.send("cu")
    await wrong("s" * 1001, "quá dài (tối đa 1000 ký tự)", Step.SPECS)
    await teacher.tap(SKIP)
    await wrong("không có ảnh", "Hãy gửi một ảnh", Step.PHOTO)
    await teacher.upload("bien-ban.pdf", b"%PDF-1.4", "application/pdf")
    assert "Hãy gửi một ảnh" in teacher.last_text()
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "Bà Năm · Cá nhân" in summary and "máy tính bảng" in summary and "(đã qua sử dụng)" in summary
    assert "12/11/2021" in summary and "nhập trễ" in summary  # received 3 days ago: will be flagged late
    await wrong("xác nhận", "Hãy bấm một nút", Step.SUMMARY)
    await teacher.tap(EDIT)
    await wrong("số lượng", "Hãy bấm một nút", Step.EDIT)
    assert await batches(services) == []


async def test_cancel_saves_nothing(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/donation")
    await teacher.tap(OTHER)
    await teacher.tap(ADD_DONOR)
    await teacher.send("Công ty Ánh Dương")
    await teacher.tap(label("devices.donor_kind.business"))
    await teacher.send("/cancel")
    assert "Đã huỷ <b>phiếu nhận thiết bị tài trợ</b>" in teacher.last_text()
    assert await step_of(services, teacher, "donation") is None
    assert await batches(services) == [] and await donors(services) == []


async def test_restart_mid_flow_and_continue(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/donation")
    await teacher.tap(PROGRAM)
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.send("3")
    assert "Loại thiết bị?" in teacher.last_text()
    await harness.restart()
    await teacher.tap(LAPTOP)  # the button sent before the restart still works
    await teacher.send("HP 240 G8")
    await teacher.tap(NEW)
    await teacher.tap(SKIP)
    await teacher.tap(SKIP)
    assert "Ngày nhận: <b>14/11/2021</b>" in teacher.last_text()
    await teacher.tap(CONFIRM)
    [batch] = await batches(services)
    assert (batch.quantity, batch.make_model, batch.source) == (3, "HP 240 G8", DonationSource.PROGRAM)


async def test_late_entry_is_saved_and_flagged(services: Services, harness: Harness, clock) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await to_summary_program(teacher)
    assert "nhập trễ" not in teacher.last_text()
    # The summary waits over two days before Confirm: the receipt is entered late.
    clock.freeze(datetime(2021, 11, 17, 8, 0, tzinfo=TZ))
    await teacher.tap(CONFIRM)
    saved = next(t for t in teacher.new_texts() if "Đã lưu lô" in t)
    assert "Nhập trễ" in saved
    [batch] = await batches(services)
    assert batch.entered_late


async def test_double_confirm_saves_one_batch(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await to_summary_program(teacher)
    summary = teacher.bot_messages()[-1]
    data = summary["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    for _ in range(2):
        await harness.deliver(harness.api.callback_query(teacher.user, summary, data))
    assert len(await batches(services)) == 1
    assert any("không còn dùng được" in a for a in teacher.alerts())
    async with services.sessionmaker() as session:
        audits = list(await session.scalars(select(AuditLog).where(AuditLog.entity == "donation_batch")))
    assert [a.action for a in audits] == [AuditAction.CREATE]


async def test_another_school_cannot_see_or_pick_this_schools_donor(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    donor_id = await known_donor(services, world)
    other = harness.person("teacher_thcs")
    await other.send("/donation")
    await other.tap(OTHER)
    assert "Hội Khuyến học" not in other.last_text() and other.buttons() == [ADD_DONOR]
    await other.send("khuyen hoc")
    assert "Không có nhà tài trợ nào khớp" in other.last_text()
    message = other.bot_messages()[-1]
    await harness.deliver(harness.api.callback_query(other.user, message, f"donation:donor:{donor_id}"))
    assert "Không tìm thấy nhà tài trợ này" in other.last_text()
    assert await step_of(services, other, "donation") == Step.DONOR


async def test_another_role_is_refused(services: Services, harness: Harness) -> None:
    await make_world(services)
    specialist = harness.person("primary_specialist")
    await specialist.send("/donation")
    assert "Vai trò của bạn không được làm việc này" in specialist.last_text()
    assert await step_of(services, specialist, "donation") is None
