"""Migrations: `upgrade head` on an empty database gives exactly the models, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, Enum, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.db import create_engine
from storage.enums import DosePlace
from storage.migrate import (
    MigrationError,
    alembic_config,
    current_revision,
    downgrade,
    migration_transaction,
    upgrade,
)
from storage.models import Base, VaccineDose, VaccineProduct

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def server_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The session's PostgreSQL server (a sync fixture: the server starts outside the event loop)."""
    return request.getfixturevalue("postgres_url") if backend == "postgres" else None


@pytest.fixture
async def empty_engine(server_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a brand-new empty database of the backend."""
    if server_url is None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")
        yield engine
        await engine.dispose()
        return
    server = make_url(server_url)
    name = f"schoolbot_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await admin.dispose()


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, Base.metadata)


def _check_constraints(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {check["name"] for check in inspector.get_check_constraints(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def _model_check_constraints() -> dict[str, set[str]]:
    """Named CHECK constraints of the models, enum columns' included (what CREATE TABLE would emit)."""
    expected: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        names = {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        for column in table.columns:
            if isinstance(column.type, Enum) and column.type.create_constraint:
                names.add(f"ck_{table.name}_{column.type.name}")
        expected[table.name] = names
    return expected


async def test_upgrade_head_equals_the_models(empty_engine: AsyncEngine) -> None:
    assert await current_revision(empty_engine) is None
    await upgrade(empty_engine)
    assert await current_revision(empty_engine) == HEAD
    async with empty_engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
        tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        checks = await conn.run_sync(_check_constraints)
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    # Autogenerate does not compare CHECK constraints: compare their names here.
    assert checks == _model_check_constraints()


async def test_partial_unique_index_is_partial(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("handover"))
    (active,) = [index for index in indexes if index["name"] == "uq_handover_active_student_batch"]
    assert active["unique"]
    assert active["column_names"] == ["batch_id", "student_id"]
    where = (active.get("dialect_options") or {}).get(f"{empty_engine.dialect.name}_where")
    assert where is not None and "returned_on is null" in str(where).lower()


async def test_upgrade_seeds_the_vaccine_products(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)
    await upgrade(empty_engine)  # a second run is a no-op
    async with empty_engine.connect() as conn:
        codes = list(await conn.scalars(select(VaccineProduct.code).order_by(VaccineProduct.sort_order)))
    assert len(codes) == 10 and codes[0] == "COMIRNATY" and codes[-1] == "OTHER"


async def test_downgrade_base_then_upgrade_head_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.sqlite3'}")
    try:
        await upgrade(engine)
        await downgrade(engine, "base")
        assert await current_revision(engine) is None
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await upgrade(engine)
        assert await current_revision(engine) == HEAD
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            # Foreign keys are back on after migrating.
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()


async def _seed_student_with_dose(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO district (code, name, province, created_at) "
                "VALUES ('NB', 'Nhà Bè', '', CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO school (district_id, code, name, level, address, active, created_at) "
                "VALUES (1, '79785001', 'Trường TH', 'TH', '', true, CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO student (school_id, code, full_name, search_name, date_of_birth, grade, "
                "class_name, priority_group, entered_at) VALUES (1, 'HS1', 'Lê An', 'le an', '2012-01-01', "
                "4, '4A1', 'none', CURRENT_TIMESTAMP)"
            )
        )
        product = await conn.scalar(select(VaccineProduct.id).where(VaccineProduct.code == "COMIRNATY"))
        await conn.execute(
            VaccineDose.__table__.insert().values(
                student_id=1,
                dose_number=1,
                given_on=date(2021, 11, 1),
                product_id=product,
                product_other_name="",
                place=DosePlace.SCHOOL,
                entered_late=False,
                entered_at=func.current_timestamp(),
            )
        )


async def test_sqlite_batch_migration_keeps_child_rows(tmp_path: Path) -> None:
    """A later migration that changes `student` in batch mode (copy, drop, rename) must not take the
    doses with it: the vaccine_dose foreign key is ON DELETE CASCADE."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'batch.sqlite3'}")
    try:
        await upgrade(engine)
        await _seed_student_with_dose(engine)

        def recreate_student(sync: Connection) -> None:
            with migration_transaction(sync):
                operations = Operations(MigrationContext.configure(sync, opts={"render_as_batch": True}))
                with operations.batch_alter_table("student", recreate="always"):
                    pass

        async with engine.connect() as conn:
            await conn.run_sync(recreate_student)
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(VaccineDose)) == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_key_check")).fetchall() == []
    finally:
        await engine.dispose()


async def test_sqlite_migration_breaking_a_foreign_key_is_rolled_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'broken.sqlite3'}")
    try:
        await upgrade(engine)
        await _seed_student_with_dose(engine)

        def orphan_the_dose(sync: Connection) -> None:
            with migration_transaction(sync):
                sync.exec_driver_sql("DELETE FROM student")

        async with engine.connect() as conn:
            with pytest.raises(MigrationError):
                await conn.run_sync(orphan_the_dose)
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM student")) == 1
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()


async def test_0002_keeps_submitted_rounds_working(empty_engine: AsyncEngine) -> None:
    """Issue 14: existing needs get their day and history; a submitted round gets its snapshot from
    the data as it stands at upgrade time, an approved one stamped approved."""
    await upgrade(empty_engine, "0001")
    async with empty_engine.begin() as conn:
        for statement in (
            "INSERT INTO district (code, name, province, created_at) "
            "VALUES ('NB', 'Nhà Bè', '', CURRENT_TIMESTAMP)",
            "INSERT INTO school (district_id, code, name, level, address, active, created_at) "
            "VALUES (1, '79785001', 'Trường TH', 'TH', '', true, CURRENT_TIMESTAMP)",
            "INSERT INTO student (school_id, code, full_name, search_name, date_of_birth, grade, class_name, "
            "priority_group, active, entered_at) VALUES (1, 'HS1', 'Lê An', 'le an', '2012-01-01', 4, '4A1', "
            "'poor', true, '2021-11-10 02:00:00+00:00')",
            "INSERT INTO need_record (student_id, category, needs_device, needs_connectivity, note, "
            "entered_late, entered_at) "
            "VALUES (1, 'poor', true, false, '', false, '2021-11-09 20:00:00+00:00')",
            "INSERT INTO reporting_round (district_id, name, period_start, period_end, submit_deadline, "
            "approve_deadline, compile_deadline, status, created_at) VALUES (1, 'Đợt 1', '2021-09-01', "
            "'2021-11-15', '2021-11-15 08:30:00+00:00', '2021-11-16 04:30:00+00:00', "
            "'2021-11-16 10:00:00+00:00', 'open', CURRENT_TIMESTAMP)",
            "INSERT INTO round_submission (round_id, school_id, track, status, submitted_at, return_reason, "
            "reviewed_at) VALUES (1, 1, 'program', 'approved', '2021-11-15 02:00:00+00:00', '', "
            "'2021-11-15 03:00:00+00:00')",
            "INSERT INTO round_submission (round_id, school_id, track, status, return_reason) "
            "VALUES (1, 1, 'vaccine', 'not_submitted', '')",
        ):
            await conn.execute(text(statement))
    await upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        need = (await conn.execute(text("SELECT opened_on, changed_on FROM need_record"))).one()
        assert str(need[0]) == "2021-11-10" and str(need[1]) == "2021-11-10"  # 03:00 local on 10/11
        history = (await conn.execute(text("SELECT changed_on, closed FROM need_history"))).all()
        assert [(str(day), bool(closed)) for day, closed in history] == [("2021-11-10", False)]
        rows = (
            await conn.execute(
                text("SELECT submission_id, number, figures, approved_at FROM submission_snapshot")
            )
        ).all()
    assert len(rows) == 1 and rows[0][0] == 1 and rows[0][1] == 1 and rows[0][3] is not None
    figures = rows[0][2] if isinstance(rows[0][2], dict) else __import__("json").loads(rows[0][2])
    assert figures["values"]["needs.total"] == 1 and figures["values"]["students"] == 1


async def test_0006_numbers_the_batches_of_each_school_in_order_of_id(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine, "0005")
    async with empty_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO district (code, name, province, created_at) "
                "VALUES ('NB', 'Nhà Bè', '', CURRENT_TIMESTAMP)"
            )
        )
        for code in ("79785001", "79785101"):
            await conn.execute(
                text(
                    "INSERT INTO school (district_id, code, name, level, address, active, created_at) "
                    f"VALUES (1, '{code}', 'Trường {code}', 'TH', '', true, CURRENT_TIMESTAMP)"
                )
            )
        for school_id in (1, 2, 1, 1, 2):  # ids 1..5, the schools interleaved as in a district
            await conn.execute(
                text(
                    "INSERT INTO donation_batch (school_id, source, received_on, quantity, device_type, "
                    "make_model, condition, specs, note, allocated, entered_late, entered_at) VALUES "
                    f"({school_id}, 'program', '2021-11-01', 2, 'laptop', '', 'new', '', '', 0, false, "
                    "CURRENT_TIMESTAMP)"
                )
            )
    await upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, school_id, number FROM donation_batch ORDER BY id"))
        ).all()
        assert [tuple(row) for row in rows] == [(1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 1, 3), (5, 2, 2)]
        assert await conn.run_sync(_differences) == []
    await downgrade(empty_engine, "0005")
    async with empty_engine.connect() as conn:
        columns = await conn.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns("donation_batch")]
        )
        assert "number" not in columns
