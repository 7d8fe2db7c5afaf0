"""The audit log: services record who created, changed or deleted what, with before/after JSON."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from storage.enums import AuditAction, Role, SchoolLevel
from storage.errors import NotFound
from storage.models import AuditLog, School, Student
from storage.repositories import audit
from storage.schemas.organisation import DistrictIn, InviteIn, SchoolIn
from storage.services import Services
from tests.factories import make_world


async def entries(services: Services, entity: str | None = None) -> list[AuditLog]:
    async with services.sessionmaker() as session:
        query = select(AuditLog).order_by(AuditLog.id)
        if entity is not None:
            query = query.where(AuditLog.entity == entity)
        return list(await session.scalars(query))


def school_row(code: str = "79785201", name: str = "Trường TH Phước Kiển", **overrides: str) -> SchoolIn:
    values = {"district_code": "NB", "code": code, "name": name, "level": "TH", "address": "Xã Phước Kiển"}
    values.update(overrides)
    return SchoolIn.model_validate(values)


async def test_create_and_update_of_a_school(services: Services, clock) -> None:
    district_id = await services.organisation.add_district(DistrictIn(code="NB", name="Huyện Nhà Bè"))
    (district_entry,) = await entries(services, "district")
    assert district_entry.action is AuditAction.CREATE
    assert district_entry.entity_id == str(district_id)

    assert await services.organisation.upsert_schools([school_row()], actor_id=None) == (1, 0, 0)
    (created,) = await entries(services, "school")
    assert created.action is AuditAction.CREATE
    assert created.before is None
    assert created.after is not None
    assert created.after["code"] == "79785201"
    assert created.after["name"] == "Trường TH Phước Kiển"
    assert created.after["level"] == "TH"  # enums as their values
    assert created.after["district_id"] == district_id
    assert isinstance(created.after["created_at"], str)  # datetimes as ISO text
    school_id = created.after["id"]
    assert created.entity_id == str(school_id)
    assert created.school_id == school_id
    assert created.at is not None and created.at.tzinfo is not None

    renamed = school_row(name="Trường TH Phước Kiển 2", level="TH&THCS")
    assert await services.organisation.upsert_schools([renamed], actor_id=None) == (0, 1, 0)
    created_again, updated = await entries(services, "school")
    assert created_again.id == created.id
    assert updated.action is AuditAction.UPDATE
    assert updated.entity_id == str(school_id)
    assert updated.before is not None and updated.after is not None
    assert updated.before["name"] == "Trường TH Phước Kiển"
    assert updated.after["name"] == "Trường TH Phước Kiển 2"
    assert updated.before["level"] == "TH"
    assert updated.after["level"] == SchoolLevel.COMBINED.value
    changed = {key for key in updated.after if updated.after[key] != updated.before.get(key)}
    assert changed == {"name", "level"}

    # The same list again changes nothing and writes no audit entry.
    assert await services.organisation.upsert_schools([renamed], actor_id=None) == (0, 0, 1)
    assert len(await entries(services, "school")) == 2


async def test_the_actor_is_recorded(services: Services) -> None:
    world = await make_world(services)
    admin = world.staff_ids["admin"]
    await services.organisation.upsert_schools([school_row()], actor_id=admin)
    (entry,) = await entries(services, "school")
    assert entry.actor_id == admin


async def test_registration_and_deactivation_of_staff(services: Services) -> None:
    world = await make_world(services)
    admin = world.staff_ids["admin"]
    invite = await services.staff.create_invite(
        InviteIn(role=Role.TEACHER, school_code="79785001", full_name="nguyễn thị hoa"), actor_id=admin
    )
    (invite_created,) = await entries(services, "invite")
    assert invite_created.action is AuditAction.CREATE
    assert invite_created.actor_id == admin
    assert invite_created.after is not None
    assert invite_created.after["role"] == "teacher"
    assert invite_created.after["used_at"] is None

    staff = await services.staff.register(9001, invite.code, full_name="Hoa", username="hoa_nb")
    (staff_created,) = await entries(services, "staff")
    assert staff_created.action is AuditAction.CREATE
    assert staff_created.actor_id == staff.id
    assert staff_created.entity_id == str(staff.id)
    assert staff_created.before is None
    assert staff_created.after is not None
    assert staff_created.after["telegram_user_id"] == 9001
    assert staff_created.after["full_name"] == "Nguyễn Thị Hoa"
    assert staff_created.after["role"] == "teacher"
    assert staff_created.after["school_id"] == world.primary_school_id
    assert staff_created.school_id == world.primary_school_id
    # The invite is marked used, and that is an update with before/after.
    invite_used = (await entries(services, "invite"))[1]
    assert invite_used.action is AuditAction.UPDATE
    assert invite_used.before is not None and invite_used.after is not None
    assert invite_used.before["used_at"] is None and invite_used.before["used_by_id"] is None
    assert invite_used.after["used_by_id"] == staff.id and invite_used.after["used_at"]

    await services.staff.set_active(staff.id, False, actor_id=admin)
    deactivated = (await entries(services, "staff"))[-1]
    assert deactivated.action is AuditAction.UPDATE
    assert deactivated.actor_id == admin
    assert deactivated.before is not None and deactivated.after is not None
    assert deactivated.before["active"] is True
    assert deactivated.after["active"] is False
    assert {k for k in deactivated.after if deactivated.after[k] != deactivated.before[k]} == {"active"}


async def test_delete_keeps_the_row_as_it_was(services: Services) -> None:
    world = await make_world(services)
    student_id = world.student_ids["HS0003"]
    async with services.sessionmaker.begin() as session:
        student = await session.get(Student, student_id)
        assert student is not None
        await session.delete(student)
        await session.flush()
        await audit.record(
            session, actor_id=world.staff_ids["principal"], action=AuditAction.DELETE, row=student
        )
    async with services.sessionmaker() as session:
        assert await session.get(Student, student_id) is None
    (deleted,) = await entries(services, "student")
    assert deleted.action is AuditAction.DELETE
    assert deleted.entity_id == str(student_id)
    assert deleted.actor_id == world.staff_ids["principal"]
    assert deleted.school_id == world.primary_school_id
    assert deleted.after is None
    assert deleted.before is not None
    assert deleted.before["code"] == "HS0003"
    assert deleted.before["full_name"] == "Nguyễn Văn An"
    assert deleted.before["date_of_birth"] == date(2013, 1, 20).isoformat()
    assert deleted.before["priority_group"] == "none"
    # Before/after are real JSON: the history survives a round trip through text.
    assert json.loads(json.dumps(deleted.before)) == deleted.before


async def test_delete_with_before_taken_earlier(services: Services) -> None:
    world = await make_world(services)
    async with services.sessionmaker.begin() as session:
        # A school with students cannot go (RESTRICT), so take one without: add and delete it.
        spare = School(
            district_id=world.district_id, code="79785999", name="Trường tạm", level=SchoolLevel.PRIMARY
        )
        session.add(spare)
        await session.flush()
        before = audit.snapshot(spare)
        await session.delete(spare)
        await session.flush()
        await audit.record(session, actor_id=None, action=AuditAction.DELETE, row=spare, before=before)
    (deleted,) = [e for e in await entries(services, "school") if e.action is AuditAction.DELETE]
    assert deleted.before == before
    assert deleted.after is None


async def test_history_of_one_row(services: Services) -> None:
    await services.organisation.add_district(DistrictIn(code="NB", name="Huyện Nhà Bè"))
    await services.organisation.upsert_schools([school_row()])
    await services.organisation.upsert_schools([school_row(name="Trường TH Phước Kiển B")])
    school = await services.organisation.school_by_code("79785201")
    assert school is not None
    async with services.sessionmaker() as session:
        rows = await audit.history(session, "school", school.id)
    assert [row.action for row in rows] == [AuditAction.CREATE, AuditAction.UPDATE]


async def test_a_failed_change_leaves_no_audit_entry(services: Services) -> None:
    await services.organisation.add_district(DistrictIn(code="NB", name="Huyện Nhà Bè"))
    rows = [school_row(), school_row(code="79785202", district_code="XX")]  # the second district is unknown
    with pytest.raises(NotFound) as info:
        await services.organisation.upsert_schools(rows)
    assert info.value.code == "not_found.district"
    assert await entries(services, "school") == []
    assert await services.organisation.school_by_code("79785201") is None
