"""Needs for a computer (4.8.1) and the school's summary by priority group (4.8.2)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from bot.errors import render_error
from storage.enums import AuditAction, Gender, PriorityGroup, SubmissionStatus, SubmissionTrack
from storage.errors import DomainError
from storage.models import NeedRecord, Student
from storage.schemas.needs import NeedChange, NeedIn
from storage.services import Services
from storage.text import fold
from tests.factories import World, make_world
from tests.helpers import audit_of, count, priority_group, staff_of
from tests.test_vaccines_service import lock_school, set_submission_status


def need(
    student_id: int,
    category: PriorityGroup | str = PriorityGroup.POOR,
    *,
    device: bool = True,
    connectivity: bool = False,
    note: str = "",
) -> NeedIn:
    return NeedIn(
        student_id=student_id,
        category=category,
        needs_device=device,
        needs_connectivity=connectivity,
        note=note,
    )


async def test_need_recorded_refused_again_then_updated_with_audit(services: Services) -> None:
    world = await make_world(services)
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    student = world.student_ids["HS0003"]  # on the list without a priority group
    assert await services.needs.existing_need(student, school_id=school) is None

    saved = await services.needs.record_need(
        need(student, PriorityGroup.NEAR_POOR, note="  Nhà chưa có   máy tính "),
        school_id=school,
        actor_id=teacher,
        request_key="need-1",
    )

    assert (saved.category, saved.needs_device, saved.needs_connectivity) == (
        PriorityGroup.NEAR_POOR,
        True,
        False,
    )
    assert saved.note == "Nhà chưa có máy tính" and saved.student_name == "Nguyễn Văn An"
    assert await priority_group(services, student) is PriorityGroup.NEAR_POOR
    (created,) = await audit_of(services, "need_record", saved.id)
    assert (
        created.action is AuditAction.CREATE and created.school_id == school and created.actor_id == teacher
    )
    (group_change,) = await audit_of(services, "student", student)
    assert group_change.before is not None and group_change.after is not None
    assert (group_change.before["priority_group"], group_change.after["priority_group"]) == (
        "none",
        "near_poor",
    )

    # A second record is refused with a text that offers the update.
    with pytest.raises(DomainError) as excinfo:
        await services.needs.record_need(
            need(student, PriorityGroup.POOR, connectivity=True),
            school_id=school,
            actor_id=teacher,
            request_key="need-2",
        )
    assert excinfo.value.code == "needs.already_recorded"
    assert excinfo.value.params == {"student": "Nguyễn Văn An", "entered_on": date(2021, 11, 15)}
    assert "Cập nhật" in render_error(excinfo.value, "vi") and "Update" in render_error(excinfo.value, "en")
    existing = await services.needs.existing_need(student, school_id=school)
    assert existing is not None and existing.id == saved.id

    updated = await services.needs.record_need(
        need(student, PriorityGroup.POOR, connectivity=True),
        school_id=school,
        actor_id=teacher,
        request_key="need-2",
        update=True,
    )

    assert updated.id == saved.id and await count(services, NeedRecord) == 1
    assert (updated.category, updated.needs_device, updated.needs_connectivity) == (
        PriorityGroup.POOR,
        True,
        True,
    )
    assert updated.note == "" and updated.updated_at is not None
    _, change = await audit_of(services, "need_record", saved.id)
    assert change.action is AuditAction.UPDATE and change.before is not None and change.after is not None
    assert (change.before["category"], change.after["category"]) == ("near_poor", "poor")
    assert (change.before["needs_connectivity"], change.after["needs_connectivity"]) == (False, True)
    assert await priority_group(services, student) is PriorityGroup.POOR
    assert len(await audit_of(services, "student", student)) == 2

    # The update confirmed twice changes nothing more.
    again = await services.needs.record_need(
        need(student, PriorityGroup.POOR, connectivity=True),
        school_id=school,
        actor_id=teacher,
        request_key="need-2",
        update=True,
    )
    assert again.id == saved.id and len(await audit_of(services, "need_record", saved.id)) == 2


async def test_unchanged_priority_group_writes_no_student_audit(services: Services) -> None:
    world = await make_world(services)
    student = world.student_ids["HS0001"]  # poor on the list
    await services.needs.record_need(
        need(student), school_id=world.primary_school_id, actor_id=None, request_key=None
    )
    assert await audit_of(services, "student", student) == []


async def test_update_flag_on_a_new_student_creates_the_record(services: Services) -> None:
    world = await make_world(services)
    saved = await services.needs.record_need(
        need(world.student_ids["HS0001"]),
        school_id=world.primary_school_id,
        actor_id=None,
        request_key=None,
        update=True,
    )
    assert saved.id and await count(services, NeedRecord) == 1


def test_a_need_needs_a_device_or_connectivity_and_a_group() -> None:
    with pytest.raises(ValidationError) as excinfo:
        need(1, device=False, connectivity=False)
    assert "ít nhất một nhu cầu" in render_error(excinfo.value, "vi")
    for category in (PriorityGroup.NONE, "rich"):
        with pytest.raises(ValidationError) as excinfo:
            need(1, category)
        assert "nhóm ưu tiên" in render_error(excinfo.value, "vi")
    assert need(1, "covid_orphan", device=False, connectivity=True).category is PriorityGroup.COVID_ORPHAN


async def test_another_schools_student_is_not_found(services: Services) -> None:
    world = await make_world(services)
    other = world.student_ids["HS0005"]  # of the THCS school
    for call in (
        services.needs.record_need(
            need(other), school_id=world.primary_school_id, actor_id=None, request_key=None
        ),
        services.needs.existing_need(other, school_id=world.primary_school_id),
    ):
        with pytest.raises(DomainError) as excinfo:
            await call
        assert excinfo.value.code == "not_found.student"
    assert await count(services, NeedRecord) == 0


async def test_repeated_confirm_with_the_same_request_key_saves_one_row(services: Services) -> None:
    world = await make_world(services)
    data = need(world.student_ids["HS0001"])
    first = await services.needs.record_need(
        data, school_id=world.primary_school_id, actor_id=None, request_key="tap"
    )
    again = await services.needs.record_need(
        data, school_id=world.primary_school_id, actor_id=None, request_key="tap"
    )
    assert again.id == first.id and await count(services, NeedRecord) == 1


async def test_update_and_delete_from_my_are_audited(services: Services) -> None:
    world = await make_world(services)
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    saved = await services.needs.record_need(
        need(world.student_ids["HS0001"]), school_id=school, actor_id=teacher, request_key=None
    )

    changed = await services.needs.update_need(
        saved.id, NeedChange(needs_connectivity=True, note="Cần wifi"), school_id=school, actor_id=teacher
    )
    assert (changed.needs_device, changed.needs_connectivity, changed.note) == (True, True, "Cần wifi")
    with pytest.raises(DomainError) as excinfo:
        await services.needs.update_need(
            saved.id,
            NeedChange(needs_device=False, needs_connectivity=False),
            school_id=school,
            actor_id=teacher,
        )
    assert excinfo.value.code == "needs.nothing_needed"

    (entry,) = (await services.entries.page(await staff_of(services, "teacher"), kind="need")).items
    assert entry.kind == "need" and entry.id == saved.id and entry.subject == "Nguyễn Văn An"
    assert entry.details["needs_connectivity"] is True and entry.editable is True

    gone = await services.needs.delete_need(saved.id, school_id=school, actor_id=teacher)
    assert gone.id == saved.id and await count(services, NeedRecord) == 0
    actions = [row.action for row in await audit_of(services, "need_record", saved.id)]
    assert actions == [AuditAction.CREATE, AuditAction.UPDATE, AuditAction.DELETE]
    with pytest.raises(DomainError) as excinfo:
        await services.needs.get_need(saved.id, school_id=school)
    assert excinfo.value.code == "not_found.record"


async def test_a_submitted_programme_round_locks_the_schools_needs(services: Services) -> None:
    world = await make_world(services)
    school, teacher = world.primary_school_id, world.staff_ids["teacher"]
    saved = await services.needs.record_need(
        need(world.student_ids["HS0001"]), school_id=school, actor_id=teacher, request_key=None
    )
    # The vaccine track does not lock needs.
    await lock_school(services, world, school, SubmissionTrack.VACCINE)
    await services.needs.update_need(saved.id, NeedChange(note="Cần gấp"), school_id=school, actor_id=teacher)

    submission_id = await lock_school(services, world, school, SubmissionTrack.PROGRAM)
    for call in (
        services.needs.record_need(
            need(world.student_ids["HS0002"]), school_id=school, actor_id=teacher, request_key=None
        ),
        services.needs.update_need(saved.id, NeedChange(note="x"), school_id=school, actor_id=teacher),
        services.needs.delete_need(saved.id, school_id=school, actor_id=teacher),
    ):
        with pytest.raises(DomainError) as excinfo:
            await call
        assert excinfo.value.code == "needs.locked"
    assert "chuyên viên" in render_error(excinfo.value, "vi")
    entry = await services.entries.entry(await staff_of(services, "teacher"), "need", saved.id)
    assert entry.editable is False and entry.locked_round == "Đợt 15/11/2021"
    assert entry.refusal is not None and entry.refusal.code == "needs.locked"

    await set_submission_status(services, submission_id, SubmissionStatus.RETURNED)
    await services.needs.delete_need(saved.id, school_id=school, actor_id=teacher)


async def add_students(
    services: Services, world: World, rows: list[tuple[str, PriorityGroup, bool]]
) -> list[int]:
    """Students of the primary school: (code, priority group, active)."""
    ids = []
    async with services.sessionmaker.begin() as session:
        for n, (code, group, active) in enumerate(rows):
            name = f"Học Sinh Số {n + 1}"
            student = Student(
                school_id=world.primary_school_id,
                code=code,
                full_name=name,
                search_name=fold(name),
                date_of_birth=date(2012, 1, 1) + timedelta(days=n),
                gender=Gender.FEMALE,
                grade=4,
                class_name="4A2",
                priority_group=group,
                active=active,
            )
            session.add(student)
            await session.flush()
            ids.append(student.id)
    return ids


async def test_need_summary_by_group_with_the_lists_totals_and_inconsistencies(services: Services) -> None:
    world = await make_world(services)
    school = world.primary_school_id
    # The world's primary school lists HS0001 poor, HS0002 near-poor, HS0003 none, HS0004 covid orphan.
    poor_a, poor_b, _poor_without_need, hardship, leaver = await add_students(
        services,
        world,
        [
            ("HS0101", PriorityGroup.POOR, True),
            ("HS0102", PriorityGroup.POOR, True),
            ("HS0103", PriorityGroup.POOR, True),
            ("HS0104", PriorityGroup.OTHER_HARDSHIP, True),
            ("HS0105", PriorityGroup.NEAR_POOR, True),
        ],
    )
    ids = world.student_ids
    for student_id, category, device, connectivity in [
        (ids["HS0001"], PriorityGroup.POOR, True, False),
        (poor_a, PriorityGroup.POOR, True, True),
        (poor_b, PriorityGroup.POOR, False, True),
        (ids["HS0002"], PriorityGroup.NEAR_POOR, True, True),
        (ids["HS0004"], PriorityGroup.COVID_ORPHAN, False, True),
        (hardship, PriorityGroup.OTHER_HARDSHIP, True, False),
        (leaver, PriorityGroup.NEAR_POOR, True, False),
    ]:
        await services.needs.record_need(
            need(student_id, category, device=device, connectivity=connectivity),
            school_id=school,
            actor_id=None,
            request_key=None,
        )
    # Later the student list says otherwise: HS0002 is now "other hardship"; HS0105 has left.
    async with services.sessionmaker.begin() as session:
        changed = await session.get(Student, ids["HS0002"])
        left = await session.get(Student, leaver)
        assert changed is not None and left is not None
        changed.priority_group = PriorityGroup.OTHER_HARDSHIP
        left.active = False
    # And a need of another school's student does not count here.
    await services.needs.record_need(
        need(ids["HS0005"], PriorityGroup.OTHER_HARDSHIP),
        school_id=world.secondary_school_id,
        actor_id=None,
        request_key=None,
    )

    summary = await services.needs.need_summary(school)

    figures = {
        g.category: (g.device_only, g.connectivity_only, g.both, g.total, g.listed, g.listed_without_need)
        for g in summary.groups
    }
    assert [g.category for g in summary.groups] == [
        PriorityGroup.POOR,
        PriorityGroup.NEAR_POOR,
        PriorityGroup.COVID_ORPHAN,
        PriorityGroup.OTHER_HARDSHIP,
    ]
    assert figures == {
        # poor: HS0001 device, HS0101 both, HS0102 connectivity; listed HS0001, HS0101-0103
        PriorityGroup.POOR: (1, 1, 1, 3, 4, 1),
        # near-poor: HS0002 both, though the list now says other hardship; the leaver is not counted
        PriorityGroup.NEAR_POOR: (0, 0, 1, 1, 0, 0),
        PriorityGroup.COVID_ORPHAN: (0, 1, 0, 1, 1, 0),
        # other hardship: HS0104 device; listed HS0104 and HS0002 (whose need says near-poor)
        PriorityGroup.OTHER_HARDSHIP: (1, 0, 0, 1, 2, 1),
    }
    poor = summary.groups[0]
    assert (poor.needs_device, poor.needs_connectivity) == (2, 2)
    totals = summary.totals
    assert (totals.device_only, totals.connectivity_only, totals.both, totals.total) == (2, 2, 2, 6)
    assert (totals.needs_device, totals.needs_connectivity, totals.listed) == (4, 4, 7)
    assert summary.students_listed == 8  # HS0001-HS0004 and HS0101-HS0104

    found = [(f.code, f.params.get("code")) for f in summary.inconsistencies]
    assert sorted(found, key=str) == sorted(
        [
            ("needs.inconsistency.category_differs", "HS0002"),
            ("needs.inconsistency.student_not_on_list", "HS0105"),
            ("needs.inconsistency.group_exceeds_list.near_poor", None),
        ],
        key=str,
    )
    exceeds = next(f for f in summary.inconsistencies if f.code.endswith("near_poor"))
    assert exceeds.params == {"needs": 1, "listed": 0}
    for finding in summary.inconsistencies:
        text = render_error(finding.as_error(), "vi")
        assert not text.startswith("Không thực hiện được"), text
    assert "Hộ cận nghèo: 1 học sinh" in render_error(exceeds.as_error(), "vi")


async def test_need_summary_of_a_school_without_needs(services: Services) -> None:
    world = await make_world(services)
    summary = await services.needs.need_summary(world.secondary_school_id)
    assert summary.totals.total == 0 and summary.inconsistencies == []
    assert summary.students_listed == 2 and summary.totals.listed == 2
    assert summary.totals.listed_without_need == 2
