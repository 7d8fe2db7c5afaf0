"""Issue 16, item 4: batches carry their school's own number («lô #2», never the district-wide id);
the programme is a source of its own, never a donor of «Nguồn khác»; a programme device to a student
with no recorded need and no priority group is warned about (chat) and noted (Excel import)."""

from __future__ import annotations

from datetime import date

import pytest

from storage.enums import DeviceType, DonationSource, DonorKind, HandoverKind, PriorityGroup
from storage.errors import DomainError
from storage.models import Donor
from storage.rules.devices import judge_handover
from storage.schemas.devices import BatchIn, DonorIn, HandoverIn
from storage.schemas.imports import ImportKind
from storage.services import Services
from tests import excel_files as files
from tests.chat import CANCEL, CONFIRM, EDIT, SKIP, TODAY_BUTTON, Harness, label
from tests.factories import AN, AN_3A2, World, make_world
from tests.test_import import check_as

GIFT = label("devices.kind.gift")
CHECKED = label("devices.handover.second_button")
PROGRAM_DONOR = "Chương trình «Sóng và máy tính cho em» (Bộ GD&ĐT, Bộ TT&TT)"


async def program_batch(
    services: Services, school_id: int, quantity: int = 3, donor_id: int | None = None
) -> int:
    batch = await services.donations.create_batch(
        BatchIn(
            source=DonationSource.PROGRAM,
            donor_id=donor_id,
            received_on=date(2021, 11, 10),
            quantity=quantity,
            device_type=DeviceType.LAPTOP,
        ),
        school_id=school_id,
        actor_id=None,
    )
    return batch.id


async def three_batches(services: Services, world: World) -> tuple[int, int, int]:
    """The lower-secondary school's batch first, then two of the primary school: ids 1, 2, 3."""
    first = await program_batch(services, world.secondary_school_id)
    return (
        first,
        await program_batch(services, world.primary_school_id),
        await program_batch(services, world.primary_school_id, quantity=2),
    )


async def test_batches_are_numbered_per_school_and_shown_by_that_number(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    theirs, first, second = await three_batches(services, world)
    numbers = [
        (await services.donations.get_batch(batch_id, school_id=school)).number
        for batch_id, school in (
            (theirs, world.secondary_school_id),
            (first, world.primary_school_id),
            (second, world.primary_school_id),
        )
    ]
    assert numbers == [1, 1, 2]  # the primary school's second batch is its «lô #2», not #3

    teacher = harness.person("teacher")
    await teacher.send("/handover")
    assert sorted(teacher.buttons()) == [
        "#1 máy tính xách tay · 10/11/2021 · nhận 3 / giao 0 / còn 3",
        "#2 máy tính xách tay · 10/11/2021 · nhận 2 / giao 0 / còn 2",
    ]
    # The button carries the batch's id, the label its number.
    keyboard = teacher.bot_messages()[-1]["reply_markup"]["inline_keyboard"]
    data = {row[0]["text"]: row[0]["callback_data"] for row in keyboard}
    assert data["#2 máy tính xách tay · 10/11/2021 · nhận 2 / giao 0 / còn 2"].endswith(f":batch:{second}")
    await teacher.tap("#2 máy tính xách tay · 10/11/2021 · nhận 2 / giao 0 / còn 2")
    await teacher.send("HS0001")
    await teacher.tap(AN)
    await teacher.tap(GIFT)
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    assert "Lô: <b>#2 · máy tính xách tay" in teacher.last_text()
    await teacher.tap(CONFIRM)
    texts = teacher.new_texts()
    assert any("(lô #2)" in text for text in texts) and texts[-1] == "Lô #2 còn 1 thiết bị."
    assert not any("#3" in text for text in teacher.texts())

    # The handover template's drop-down offers the batches by their numbers.
    scope = await services.imports.scope_for_school("79785001")
    context = await services.imports.template_context(ImportKind.HANDOVERS, scope)
    assert sorted(b.number for b in context.batches) == [1, 2]


async def test_the_import_names_a_batch_by_its_schools_number(services: Services) -> None:
    world = await make_world(services)
    theirs, _first, second = await three_batches(services, world)
    header = ["Lô thiết bị", "Mã học sinh", "Họ và tên", "Hình thức", "Ngày bàn giao"]
    content = files.xlsx(
        [
            header,
            ["Lô #2 · 10/11/2021 · Máy tính xách tay", "HS0001", None, "Tặng", "12/11/2021"],
            ["Lô 3", "HS0002", None, "Tặng", "12/11/2021"],  # the id of the school's #2: unknown here
        ]
    )
    check = await check_as(services, "teacher", content)
    outcomes = {row.row: row.outcome.value for row in check.rows}
    assert outcomes == {2: "created", 3: "rejected"}
    assert [issue.code for issue in check.rows[1].issues] == ["excel.batch.unknown"]
    assert theirs != second


async def test_the_programme_is_never_a_donor_of_other_sources(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    # As the demo district has it: the programme as a district-wide donor of programme batches.
    async with services.sessionmaker.begin() as session:
        donor = Donor(
            school_id=None,
            name=PROGRAM_DONOR,
            kind=DonorKind.AGENCY,
            contact="",
            entered_at=services.clock.now(),
        )
        session.add(donor)
        await session.flush()
        program_donor_id = donor.id
    await program_batch(services, world.primary_school_id, donor_id=program_donor_id)
    company = await services.donations.add_donor(
        DonorIn(name="Công ty TNHH Ánh Dương", kind="business"),
        school_id=world.primary_school_id,
        actor_id=None,
    )

    teacher = harness.person("teacher")
    await teacher.send("/donation")
    await teacher.tap(label("devices.source.other"))
    buttons = teacher.buttons()
    assert company.name in buttons and PROGRAM_DONOR not in buttons
    assert not any("Sóng và máy tính" in b for b in buttons)
    # Typed as a donor: it is the programme, chosen as the source 4.8.3.1.
    await teacher.send("chuong trinh song va may tinh cho em")
    texts = teacher.new_texts()
    assert any("là Chương trình của Bộ (mục 4.8.3.1), không phải nhà tài trợ" in t for t in texts)
    assert "Trường nhận thiết bị ngày nào?" in teacher.last_text()

    # The same typed as a new donor's name.
    await teacher.send("/cancel")
    await teacher.send("/donation")
    await teacher.tap(label("devices.source.other"))
    await teacher.tap(label("devices.donation.donor_add"))
    await teacher.send("Sóng và máy tính cho em")
    assert "Trường nhận thiết bị ngày nào?" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    await teacher.send("5")
    await teacher.tap(label("devices.device_type.laptop"))
    await teacher.send("Dell")
    await teacher.tap(label("devices.condition.new"))
    await teacher.tap(SKIP)
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "Chương trình «Sóng và máy tính cho em» (4.8.3.1)" in summary
    assert "không cần: thiết bị do Bộ phân bổ" in summary

    # The service refuses it too, whoever asks.
    other = BatchIn(
        source=DonationSource.OTHER,
        donor_id=program_donor_id,
        received_on=date(2021, 11, 12),
        quantity=2,
        device_type=DeviceType.LAPTOP,
    )
    with pytest.raises(DomainError) as refused:
        await services.donations.create_batch(other, school_id=world.primary_school_id, actor_id=None)
    assert refused.value.code == "devices.donor_is_program"
    with pytest.raises(DomainError) as refused:
        await services.donations.add_donor(
            DonorIn(name="CT Sóng và máy tính cho em", kind="agency"),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    assert refused.value.code == "devices.donor_is_program"


def test_the_rule_of_a_programme_device() -> None:
    def codes(**facts: object) -> list[str]:
        values = {"student": "An", "priority_group": PriorityGroup.NONE, "needs_device": False, "held": None}
        values.update(facts)
        return [f.code for f in judge_handover(DonationSource.PROGRAM, **values)]  # type: ignore[arg-type]

    assert codes() == ["devices.program_without_need"]
    assert codes(needs_device=True) == []
    assert codes(priority_group=PriorityGroup.NEAR_POOR) == []
    assert codes(priority_group=PriorityGroup.POOR, held=(date(2021, 11, 2), HandoverKind.GIFT, 1)) == [
        "devices.second_program_device"
    ]
    assert (
        judge_handover(
            DonationSource.OTHER,
            student="An",
            priority_group=PriorityGroup.NONE,
            needs_device=False,
            held=None,
        )
        == []
    )


async def test_a_programme_device_to_a_student_with_no_need_is_warned(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    batch_id = await program_batch(services, world.primary_school_id)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap("#1 máy tính xách tay · 10/11/2021 · nhận 3 / giao 0 / còn 3")
    await teacher.send("HS0003")
    await teacher.tap(AN_3A2)
    await teacher.tap(GIFT)
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "⚠️ Học sinh Nguyễn Văn An chưa được ghi nhu cầu máy tính và không thuộc diện ưu tiên" in summary
    assert "/need" in summary
    assert teacher.buttons() == [CHECKED, EDIT, CANCEL]  # no plain Confirm
    await teacher.tap(CHECKED)
    assert any("Đã lưu: tặng máy tính xách tay (lô #1)" in t for t in teacher.new_texts())

    # Unconfirmed, the service refuses with the same warning; confirmed, it saves.
    data = HandoverIn(
        batch_id=batch_id, student_id=world.student_ids["HS0003"], kind="gift", handed_on=date(2021, 11, 15)
    )
    assert [
        f.code for f in await services.handovers.check_handover(data, school_id=world.primary_school_id)
    ] == [
        "devices.second_program_device",
        "devices.program_without_need",
    ]
    # A student of a priority group gets no such word.
    poor = data.model_copy(update={"student_id": world.student_ids["HS0001"]})
    assert await services.handovers.check_handover(poor, school_id=world.primary_school_id) == []


async def test_the_import_notes_a_programme_device_to_a_student_with_no_need(services: Services) -> None:
    world = await make_world(services)
    await program_batch(services, world.primary_school_id)
    header = ["Lô thiết bị", "Mã học sinh", "Họ và tên", "Hình thức", "Ngày bàn giao"]
    content = files.xlsx(
        [
            header,
            ["Lô 1", "HS0001", None, "Tặng", "12/11/2021"],
            ["Lô 1", "HS0003", None, "Tặng", "12/11/2021"],
        ]
    )
    check = await check_as(services, "teacher", content)
    assert [row.outcome.value for row in check.rows] == ["created", "created"]
    assert check.rows[0].issues == []
    [note] = check.rows[1].issues
    assert (note.field, note.code, note.warning) == ("student_code", "devices.program_without_need", True)
    assert check.counts.warned == 1
