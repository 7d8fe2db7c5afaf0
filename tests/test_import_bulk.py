"""The driver's bulk path (`storage.repositories.bulk`: COPY on PostgreSQL, executemany on SQLite) stores
what Core's `insert()` stores, value for value, on both databases; reserved ids are the ones the
database would give; and /history shows a student created and changed by an import. No timing here:
`bench/import_bench.py` measures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Table, insert, select

from storage.enums import AuditAction, Gender, PriorityGroup
from storage.models import AuditLog, Student
from storage.repositories import audit, bulk
from storage.services import Services
from storage.services.students import COMPARED
from tests.factories import make_world
from tests.test_import_speed import counts, run_import, student_rows

STUDENTS: Table = Student.__table__
AUDIT: Table = AuditLog.__table__
AT = datetime(2021, 11, 15, 2, 3, 4, 567890, tzinfo=UTC)


def student_values(school_id: int, code: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "school_id": school_id,
        "code": code,
        "full_name": "Nguyễn Thị Ánh",
        "search_name": "nguyen thi anh",
        "date_of_birth": date(2013, 2, 28),
        "gender": Gender.FEMALE,
        "grade": 3,
        "class_name": "3A1",
        "priority_group": PriorityGroup.NONE,
        "active": True,
        "entered_by_id": None,
        "entered_at": AT,
        "updated_at": None,
    }
    return values | changes


async def stored(services: Services, table: Table, where: str, ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows as the driver returns them (no SQLAlchemy type processing), without their ids."""
    names = [c for c in list(table.c.keys()) if c != "id"]
    quoted = ", ".join(f'"{c}"' for c in names)
    async with services.sessionmaker() as session:
        connection = await session.connection()
        result = await connection.exec_driver_sql(
            f"SELECT {quoted} FROM {table.name} WHERE {where} ORDER BY id", tuple(ids)
        )
        return [tuple(row) for row in result]


async def test_students_and_audit_rows_stored_by_the_driver_as_core_stores_them(services: Services) -> None:
    world = await make_world(services)
    school_id = world.primary_school_id
    variants: list[dict[str, Any]] = [
        {},
        {"gender": None, "active": False, "entered_by_id": world.staff_ids["teacher"], "updated_at": AT},
        {"priority_group": PriorityGroup.POOR, "full_name": 'Đỗ "Văn" O\'Neil\n', "grade": 12},
    ]
    core = [student_values(school_id, f"CORE{n}", **v) for n, v in enumerate(variants)]
    fast = [student_values(school_id, f"FAST{n}", **v) for n, v in enumerate(variants)]
    entries = [
        audit.entry(
            at=AT,
            actor_id=world.staff_ids["teacher"] if n else None,
            action=AuditAction.CREATE if n < 2 else AuditAction.UPDATE,
            entity="student",
            entity_id=900 + n,
            school_id=school_id if n != 1 else None,
            before=None if n < 2 else audit.snapshot_values(Student, values),
            after=audit.snapshot_values(Student, values | {"id": 900 + n}),
        )
        for n, values in enumerate(core)
    ]
    async with services.sessionmaker.begin() as session:
        await session.execute(insert(STUDENTS), core)
        await session.execute(insert(AUDIT), [e | {"entity": "core"} for e in entries])
    async with services.sessionmaker.begin() as session:
        ids = await bulk.reserve_ids(session, STUDENTS, len(fast))
        order = STUDENTS.c.keys()
        await bulk.insert_rows(
            session,
            STUDENTS,
            order,
            [tuple((v | {"id": i})[c] for c in order) for i, v in zip(ids, fast, strict=True)],
        )
        await audit.record_many(session, [e | {"entity": "fast"} for e in entries])
    by_core = await stored(services, STUDENTS, "code LIKE 'CORE%'", [])
    by_driver = await stored(services, STUDENTS, "code LIKE 'FAST%'", [])
    assert len(by_core) == len(by_driver) == 3
    code = [c for c in list(STUDENTS.c.keys()) if c != "id"].index("code")
    assert [r[:code] + r[code + 1 :] for r in by_core] == [r[:code] + r[code + 1 :] for r in by_driver]
    audit_core = await stored(services, AUDIT, "entity = 'core'", [])
    audit_driver = await stored(services, AUDIT, "entity = 'fast'", [])
    entity = [c for c in list(AUDIT.c.keys()) if c != "id"].index("entity")
    assert len(audit_core) == 3
    assert [r[:entity] + r[entity + 1 :] for r in audit_core] == [
        r[:entity] + r[entity + 1 :] for r in audit_driver
    ]
    # The reserved ids are the ones given, and the next row the database numbers itself comes after.
    async with services.sessionmaker.begin() as session:
        got = dict(
            (await session.execute(select(Student.code, Student.id).where(Student.code.like("FAST%")))).all()
        )
        assert sorted(got.values()) == ids
        await session.execute(insert(STUDENTS), [student_values(school_id, "AFTER")])
        after = await session.scalar(select(Student.id).where(Student.code == "AFTER"))
        assert after is not None and after > max(ids)
        assert await bulk.reserve_ids(session, STUDENTS, 0) == []
        more = await bulk.reserve_ids(session, STUDENTS, 2)
        assert min(more) > after and len(set(more)) == 2


async def test_history_shows_the_students_an_import_created_and_changed(services: Services) -> None:
    world = await make_world(services)
    rows = student_rows(3)
    assert counts(await run_import(services, world, rows)) == (3, 0, 0, 0)
    rows[3][4] = "3A2"  # HS6003 (row 0 is the header)
    assert counts(await run_import(services, world, rows)) == (0, 1, 2, 0)
    history = await services.rounds.history(world.primary_school_id, limit=50)
    lines = [e for e in history if e.kind == "audit" and e.entity == "student"]
    async with services.sessionmaker() as session:
        ids = dict(
            (await session.execute(select(Student.code, Student.id).where(Student.code.like("HS6%")))).all()
        )
    created = {e.entity_id for e in lines if e.action is AuditAction.CREATE}
    assert created == {str(i) for i in ids.values()}
    (changed,) = [e for e in lines if e.action is AuditAction.UPDATE]
    assert changed.entity_id == str(ids["HS6003"])
    assert changed.actor_id == world.staff_ids["teacher"]
    assert [(c.field, c.old.value, c.new.value) for c in changed.changes] == [("class_name", "3A1", "3A2")]


@pytest.mark.parametrize("chunk", [5_000, 500])
async def test_students_looked_up_by_many_codes_in_one_statement(
    services: Services, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """`rows_by_codes` takes thousands of codes in one bound value (more than the 500 per statement
    the `IN (…)` of literals took), codes of any school, unknown codes left out, across chunks."""
    from storage.repositories import students as students_repo

    monkeypatch.setattr(students_repo, "CODE_CHUNK", chunk)
    world = await make_world(services)
    async with services.sessionmaker.begin() as session:
        await session.execute(
            insert(STUDENTS),
            [student_values(world.primary_school_id, f"MANY{n:05d}") for n in range(1_200)]
            + [student_values(world.secondary_school_id, "OTHER'S")],
        )
    wanted = [f"MANY{n:05d}" for n in range(0, 2_400, 2)] + ["OTHER'S", "NOBODY", "MANY00000"]
    async with services.sessionmaker() as session:
        found = await students_repo.rows_by_codes(session, iter(wanted))
        assert await students_repo.rows_by_codes(session, []) == {}
        compared = await students_repo.rows_by_codes(session, wanted, columns=COMPARED)
        whole = await students_repo.rows_by_ids(session, [row.id for row in found.values()] + [10**9])
    assert set(found) == {f"MANY{n:05d}" for n in range(0, 1_200, 2)} | {"OTHER'S"}
    assert found["OTHER'S"].school_id == world.secondary_school_id
    assert found["MANY00002"].code == "MANY00002" and found["MANY00002"].grade == 3
    # Only the columns asked for (a plan's comparison), the same values; by id, whole rows again.
    assert set(compared) == set(found)
    for code, row in compared.items():
        assert tuple(row._mapping) == COMPARED
        assert dict(row._mapping) == {name: found[code]._mapping[name] for name in COMPARED}
    assert {row.code: dict(row._mapping) for row in whole.values()} == {
        code: dict(row._mapping) for code, row in found.items()
    }


def test_full_collections_paused_while_imports_run_and_the_thresholds_come_back() -> None:
    """Imports overlapping on the event loop share one pause (entered A, B; left A, B); the young
    generations keep their thresholds; an error inside still gives the thresholds back."""
    import gc

    from storage.services.imports.plans.common import full_collections_paused

    before = gc.get_threshold()
    first, second = full_collections_paused(), full_collections_paused()
    first.__enter__()
    paused = gc.get_threshold()
    assert paused[:2] == before[:2] and paused[2] > 10_000
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold() == paused  # the second import still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
    with pytest.raises(ValueError), full_collections_paused():
        raise ValueError
    assert gc.get_threshold() == before


async def test_a_code_taken_meanwhile_refuses_the_bulk_insert_as_core_would(services: Services) -> None:
    """A student code stored by someone else between the plan and the write: the driver's refusal
    (COPY's unique violation on PostgreSQL) is SQLAlchemy's IntegrityError, which the import turns
    into «excel.conflict»; nothing of the write stays."""
    from sqlalchemy.exc import IntegrityError

    world = await make_world(services)
    taken = student_values(world.primary_school_id, "TAKEN")
    async with services.sessionmaker.begin() as session:
        await session.execute(insert(STUDENTS), [taken])
    order = list(STUDENTS.c.keys())
    with pytest.raises(IntegrityError):
        async with services.sessionmaker.begin() as session:
            ids = await bulk.reserve_ids(session, STUDENTS, 2)
            rows = [student_values(world.primary_school_id, code) for code in ("FRESH", "TAKEN")]
            await bulk.insert_rows(
                session,
                STUDENTS,
                order,
                [tuple((v | {"id": i})[c] for c in order) for i, v in zip(ids, rows, strict=True)],
            )
    async with services.sessionmaker() as session:
        assert await session.scalar(select(Student.id).where(Student.code == "FRESH")) is None
