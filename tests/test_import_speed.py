"""The import's bulk write path (issue 17, item 5): Core INSERTs/UPDATEs of many rows, existing keys
looked up per chunk, cell conversions done once per distinct value, one audit row per record written in
bulk. The counts, idempotence and the audit trail stay what the row-by-row path gave, on both
databases. No timing here: `bench/import_bench.py` measures."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from storage.enums import AuditAction, DeviceType, DonationSource, PriorityGroup
from storage.models import AuditLog, Base, Handover, NeedHistory, NeedRecord, Student, VaccineDose
from storage.repositories import audit
from storage.schemas.devices import BatchIn
from storage.schemas.imports import ImportCheck, ReadLimits
from storage.services import Services
from tests import excel_files as files
from tests.factories import make_world

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp", "Giới tính"]
NAMES = ["Lê Minh Khang", "Tô Gia Huy", "Vũ Đức Long", "Hà Thu Vy", "Lò Văn Na", "Đinh Bảo Ngọc"]


async def run_import(
    services: Services, world: Any, rows: list[list[Any]], actor: str = "teacher"
) -> ImportCheck:
    """The command line's path (check + write in one transaction) for the world's primary school."""
    scope = await services.imports.scope_for_school("79785001")
    return await services.imports.import_file(
        scope, "danh-sach.xlsx", files.xlsx(rows), LIMITS, actor_id=world.staff_ids[actor]
    )


def counts(check: ImportCheck) -> tuple[int, int, int, int]:
    c = check.counts
    return c.created, c.updated, c.unchanged, c.rejected


def student_rows(count: int) -> list[list[Any]]:
    return [HEADER] + [
        [
            i,
            f"HS6{i:03d}",
            NAMES[i % len(NAMES)],
            date(2013, 1 + i % 12, 1 + i % 28),
            "3A1",
            "Nam" if i % 2 else "Nữ",
        ]
        for i in range(1, count + 1)
    ]


def same_instant(a: Any, b: Any) -> bool:
    """Audit JSON keeps datetimes as ISO text; the stored row may come back in another zone."""
    if isinstance(a, str) and isinstance(b, str) and "T" in a and "T" in b:
        try:
            return datetime.fromisoformat(a) == datetime.fromisoformat(b)
        except ValueError:
            return a == b
    return bool(a == b)


def assert_snapshot_is_the_row(after: dict[str, Any], row: Base) -> None:
    """The audit row written in bulk says what `audit.snapshot` of the stored row says."""
    stored = audit.snapshot(row)
    assert set(after) == set(stored)
    different = {key for key in stored if not same_instant(after[key], stored[key])}
    assert not different, {key: (after[key], stored[key]) for key in different}


async def audit_rows(services: Services, entity: str) -> list[AuditLog]:
    async with services.sessionmaker() as session:
        return list(
            await session.scalars(select(AuditLog).where(AuditLog.entity == entity).order_by(AuditLog.id))
        )


async def test_students_in_several_write_slices_count_audit_and_come_back_unchanged(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.services.imports.plans import students as students_plan

    monkeypatch.setattr(students_plan, "WRITE_SLICE", 7)  # several INSERT … RETURNING per school
    monkeypatch.setattr(students_plan, "PLAN_SLICE", 5)
    world = await make_world(services)
    rows = student_rows(40)
    first = await run_import(services, world, rows)
    assert counts(first) == (40, 0, 0, 0)
    async with services.sessionmaker() as session:
        students = {
            s.code: s for s in await session.scalars(select(Student).where(Student.code.like("HS6%")))
        }
    assert len(students) == 40
    created = [e for e in await audit_rows(services, "student") if e.action is AuditAction.CREATE]
    assert len(created) == 40
    for entry in created:
        assert entry.after is not None and entry.before is None
        student = students[entry.after["code"]]
        assert (entry.entity_id, entry.school_id, entry.actor_id) == (
            str(student.id),
            world.primary_school_id,
            world.staff_ids["teacher"],
        )
        assert_snapshot_is_the_row(entry.after, student)

    assert counts(await run_import(services, world, rows)) == (0, 0, 40, 0)  # the same file again
    assert len(await audit_rows(services, "student")) == 40  # and no audit row for it

    rows[3][4], rows[30][2] = "3A2", "Lê Minh Khôi"
    changed = await run_import(services, world, rows)
    assert counts(changed) == (0, 2, 38, 0)
    updates = [e for e in await audit_rows(services, "student") if e.action is AuditAction.UPDATE]
    async with services.sessionmaker() as session:
        for entry in updates:
            student = await session.get(Student, int(entry.entity_id))
            assert student is not None and entry.after is not None and entry.before is not None
            assert_snapshot_is_the_row(entry.after, student)
            changed_keys = {k for k in entry.after if entry.after[k] != entry.before[k]}
            assert changed_keys in ({"class_name", "updated_at"}, {"full_name", "search_name", "updated_at"})


async def test_a_refused_cell_value_repeated_on_many_rows_refuses_each_row(services: Services) -> None:
    world = await make_world(services)
    rows = student_rows(6)
    for row in rows[1:]:
        row[5] = "x"  # one gender refused, converted once
    rows[2][5] = 1  # a number where a word is expected: not the same cell as the text "1"
    rows[3][5] = "1"
    check = await run_import(services, world, rows)
    assert counts(check) == (0, 0, 0, 6)
    assert {issue.code for row in check.rows for issue in row.issues} == {"students.gender_invalid"}
    assert all(row.issues[0].field == "gender" for row in check.rows)


async def test_needs_written_in_bulk_set_the_group_with_history_and_audit(services: Services) -> None:
    world = await make_world(services)
    header = ["Mã HS", "Họ tên học sinh", "Nhóm ưu tiên", "Cần máy tính", "Cần kết nối Internet", "Ghi chú"]
    rows = [
        header,
        ["HS0001", "Nguyễn Văn An", "Hộ nghèo", "Có", "Không", ""],  # the group the student has
        ["HS0003", "Nguyễn Văn An", "Hộ cận nghèo", "Có", "Có", "ở xa"],  # a new group
    ]
    assert counts(await run_import(services, world, rows)) == (2, 0, 0, 0)
    rows[1][2] = "Hộ cận nghèo"
    assert counts(await run_import(services, world, rows)) == (0, 1, 1, 0)
    assert counts(await run_import(services, world, rows)) == (0, 0, 2, 0)
    async with services.sessionmaker() as session:
        needs = {n.student_id: n for n in await session.scalars(select(NeedRecord))}
        history = list(await session.scalars(select(NeedHistory).order_by(NeedHistory.id)))
        an = await session.get(Student, world.student_ids["HS0001"])
        other = await session.get(Student, world.student_ids["HS0003"])
    assert an is not None and other is not None
    assert an.priority_group is other.priority_group is PriorityGroup.NEAR_POOR
    assert [(h.student_id, h.category) for h in history] == [
        (an.id, PriorityGroup.POOR),
        (other.id, PriorityGroup.NEAR_POOR),
        (an.id, PriorityGroup.NEAR_POOR),
    ]
    need_entries = await audit_rows(services, "need_record")
    assert [e.action for e in need_entries] == [AuditAction.CREATE, AuditAction.CREATE, AuditAction.UPDATE]
    for entry in need_entries:
        assert entry.after is not None
        if entry.action is AuditAction.UPDATE:
            assert entry.before is not None and entry.before["category"] == "poor"
            assert_snapshot_is_the_row(entry.after, needs[an.id])
    # The students whose group changed: HS0003 on the first import, HS0001 on the second.
    regrouped = [e for e in await audit_rows(services, "student") if e.action is AuditAction.UPDATE]
    assert [(e.entity_id, e.before["priority_group"], e.after["priority_group"]) for e in regrouped] == [
        (str(other.id), "none", "near_poor"),
        (str(an.id), "poor", "near_poor"),
    ]
    assert_snapshot_is_the_row(regrouped[-1].after, an)


async def test_doses_written_in_bulk_update_in_place_with_audit(services: Services) -> None:
    world = await make_world(services)
    header = ["Mã học sinh", "Mũi thứ", "Ngày tiêm", "Loại vắc xin", "Nơi tiêm"]
    rows = [
        header,
        ["HS0001", 1, date(2021, 10, 1), "Comirnaty (Pfizer-BioNTech)", "Tại trường"],
        ["HS0001", 2, date(2021, 10, 25), "comirnaty", "tai truong"],
        ["HS0003", 1, date(2021, 11, 14), "Vero Cell (Sinopharm)", "Tại trường"],
    ]
    assert counts(await run_import(services, world, rows)) == (3, 0, 0, 0)
    assert counts(await run_import(services, world, rows)) == (0, 0, 3, 0)
    rows[3][2] = date(2021, 11, 13)
    assert counts(await run_import(services, world, rows)) == (0, 1, 2, 0)
    entries = await audit_rows(services, "vaccine_dose")
    assert [e.action for e in entries] == [AuditAction.CREATE] * 3 + [AuditAction.UPDATE]
    async with services.sessionmaker() as session:
        doses = {str(d.id): d for d in await session.scalars(select(VaccineDose))}
    for entry in entries[:3]:
        assert entry.after is not None and entry.school_id == world.primary_school_id
    moved = entries[-1]
    assert moved.before is not None and moved.after is not None
    assert (moved.before["given_on"], moved.after["given_on"]) == ("2021-11-14", "2021-11-13")
    assert_snapshot_is_the_row(moved.after, doses[moved.entity_id])
    # Entered on 15 Nov: 14 Nov was on time, 13 Nov is late (judged from when it was first entered).
    assert doses[moved.entity_id].entered_late and not moved.before["entered_late"]


async def test_handovers_written_in_bulk_are_audited_as_the_rows_stored(services: Services) -> None:
    world = await make_world(services)
    batch = await services.donations.create_batch(
        BatchIn(
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 10),
            quantity=5,
            device_type=DeviceType.LAPTOP,
        ),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    rows = [
        ["Lô thiết bị", "Mã học sinh", "Hình thức", "Ngày bàn giao"],
        [batch.id, "HS0001", "Tặng", date(2021, 11, 12)],
        [batch.id, "HS0002", "Cho mượn tạm", date(2021, 11, 15)],
    ]
    assert counts(await run_import(services, world, rows)) == (2, 0, 0, 0)
    assert counts(await run_import(services, world, rows)) == (0, 0, 2, 0)
    async with services.sessionmaker() as session:
        handovers = {str(h.id): h for h in await session.scalars(select(Handover))}
    entries = await audit_rows(services, "handover")
    assert len(entries) == 2
    for entry in entries:
        assert entry.after is not None
        assert_snapshot_is_the_row(entry.after, handovers[entry.entity_id])
    assert sorted(h.entered_late for h in handovers.values()) == [False, True]
