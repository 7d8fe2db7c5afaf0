"""`schoolbot db copy`: a district outgrowing SQLite moves to PostgreSQL with every record.

A demo district (plus a row in every table the demo leaves empty, with JSON null and SQL NULL, bytes,
times) is copied from SQLite to a fresh PostgreSQL database: every table's rows and checksum equal, the
district report's workbook identical cell for cell on both, the sequences continuing after the copied
ids. Then the refusals: a non-empty target without --force, the same database, an unmigrated source.
The 20,000-student run is `bench/db_copy_bench.py` (figures in docs/operations.md).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    insert,
    null,
    select,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.cli import main
from bot.texts import t
from storage.clock import Clock
from storage.db import create_engine
from storage.dbcopy import copy_database, table_checksums, tables
from storage.demo import DemoDataService
from storage.enums import SchoolLevel
from storage.migrate import upgrade
from storage.models import School, UTCDateTime
from storage.schemas.demo import DemoDataIn
from storage.schemas.reports import ReportScope
from storage.services import build_services
from tests.conftest import FROZEN_AT, TZ
from tests.reports_world import open_workbook

pytestmark = pytest.mark.postgres

SCHOOLS, STUDENTS = 30, 3000


# --- databases ---------------------------------------------------------------------------------------


def new_postgres_database(server_url: str) -> tuple[str, Any]:
    """A new empty database on the test server: (its URL, a function that drops it)."""
    name = f"schoolbot_copy_{uuid.uuid4().hex[:8]}"

    async def run(statement: str) -> None:
        admin = create_async_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(statement))
        finally:
            await admin.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """An empty, unmigrated PostgreSQL database of its own."""
    url, drop = new_postgres_database(postgres_url)
    yield url
    drop()


@pytest.fixture(scope="module")
def district_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite district as `make run` + `demo-data` leave it, and a row in every other table."""
    path = tmp_path_factory.mktemp("district") / "schoolbot.sqlite3"

    async def make() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
            clock = Clock(tz=TZ)
            clock.freeze(FROZEN_AT)
            services = build_services(engine, clock)
            data = DemoDataIn(schools=SCHOOLS, students=STUDENTS, seed=7)
            await DemoDataService(services.sessionmaker, clock).generate(data)
            await fill_empty_tables(engine)
        finally:
            await engine.dispose()

    asyncio.run(make())
    return path


async def fill_empty_tables(engine: AsyncEngine) -> None:
    """One row in each table the demo leaves empty, from the column types: foreign keys point at the
    first row of their table; nullable JSON gets JSON null (to tell it from SQL NULL), other nullable
    columns SQL NULL; text in Vietnamese, bytes that are not UTF-8."""
    async with engine.begin() as connection:
        for table in tables():
            if await connection.scalar(select(func.count()).select_from(table)):
                continue
            row: dict[str, Any] = {}
            for column in table.columns:
                if column is table.autoincrement_column:
                    continue  # the database numbers it
                if column.foreign_keys:
                    (key,) = column.foreign_keys
                    target = key.column
                    row[column.name] = await connection.scalar(select(func.min(target)))
                elif isinstance(column.type, JSON):
                    row[column.name] = JSON.NULL if column.nullable else {"ý": [1, None, "Nhà Bè"], "n": 2.5}
                elif column.nullable and not isinstance(column.type, SAEnum):
                    row[column.name] = None
                else:
                    row[column.name] = _value(column)
            await connection.execute(insert(table).values(row))
        # Audit rows with SQL NULL and with JSON null side by side.
        audit = next(t for t in tables() if t.name == "audit_log")
        first = (await connection.execute(select(audit).limit(1))).mappings().one()
        values = {k: v for k, v in first.items() if k != "id"}
        await connection.execute(insert(audit).values({**values, "before": JSON.NULL, "after": null()}))


def _value(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, SAEnum):
        return kind.enums[0]
    if isinstance(kind, UTCDateTime):
        return datetime(2021, 11, 15, 1, 2, 3, 456789, tzinfo=UTC)
    if isinstance(kind, Date):
        return date(2021, 11, 15)
    if isinstance(kind, Boolean):
        return True
    if isinstance(kind, LargeBinary):
        return bytes(range(256))
    if isinstance(kind, BigInteger | Integer):
        return 7
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 40
        return f"Trường Lê Văn Lương {column.name}"[:length]
    raise AssertionError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def checksums(url: str) -> dict[str, tuple[int, str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await table_checksums(connection)
    finally:
        await engine.dispose()


# --- the copy ----------------------------------------------------------------------------------------


async def test_sqlite_to_postgresql_keeps_every_record(district_file: Path, fresh_postgres: str) -> None:
    source = sqlite_url(district_file)
    before = await checksums(source)
    assert all(rows for rows, _ in before.values()), "every table has rows to copy"

    result = await copy_database(source, fresh_postgres, batch=500)  # unmigrated target: migrated first

    assert result.ok and not result.skipped
    assert [table.name for table in result.tables] == [table.name for table in tables()]
    for table in result.tables:
        assert table.source_rows == table.target_rows == before[table.name][0], table.name
        assert table.source_checksum == table.target_checksum == before[table.name][1], table.name
    assert await checksums(fresh_postgres) == before
    assert await checksums(source) == before  # the source is only read

    target = create_engine(fresh_postgres)
    try:
        async with target.connect() as connection:
            # JSON null stayed JSON null, SQL NULL stayed SQL NULL.
            pairs = (await connection.execute(text("SELECT before::text, after::text FROM audit_log"))).all()
            assert ("null", None) in pairs
            # Sequences continue after the copied ids.
            largest = await connection.scalar(select(func.max(School.id)))
        services = build_services(target, Clock(tz=TZ))
        async with services.sessionmaker.begin() as session:
            school = School(
                district_id=1, code="79785999", name="Trường TH Mới", level=SchoolLevel.PRIMARY, address=""
            )
            session.add(school)
            await session.flush()
            assert school.id == largest + 1
    finally:
        await target.dispose()


async def test_the_district_report_is_the_same_on_both(district_file: Path, fresh_postgres: str) -> None:
    source = sqlite_url(district_file)
    assert (await copy_database(source, fresh_postgres)).ok

    async def district_report(url: str) -> dict[str, list[list[Any]]]:
        engine = create_engine(url)
        try:
            clock = Clock(tz=TZ)
            clock.freeze(FROZEN_AT)
            services = build_services(engine, clock, translate=t, report_executor="thread")
            async with engine.connect() as connection:
                district_id = await connection.scalar(text("SELECT MIN(id) FROM district"))
            report = await services.reports.build("district", ReportScope.district(district_id))
        finally:
            await engine.dispose()
        workbook = open_workbook(report.content)
        return {
            sheet.title: [[cell.value for cell in row] for row in sheet.iter_rows()]
            for sheet in workbook.worksheets
        }

    on_sqlite = await district_report(source)
    on_postgres = await district_report(fresh_postgres)
    assert list(on_sqlite) == list(on_postgres)
    for title, rows in on_sqlite.items():
        assert rows == on_postgres[title], title
    # Not an empty report: the demo's students, devices and doses are in it.
    assert sum(len(rows) for rows in on_sqlite.values()) > STUDENTS // 10


async def test_postgresql_back_to_sqlite(district_file: Path, fresh_postgres: str, tmp_path: Path) -> None:
    source = sqlite_url(district_file)
    assert (await copy_database(source, fresh_postgres)).ok
    back = sqlite_url(tmp_path / "again.sqlite3")
    result = await copy_database(fresh_postgres, back)
    assert result.ok
    assert await checksums(back) == await checksums(source)


# --- the command line --------------------------------------------------------------------------------


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str, code: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        result = main(list(argv))
        out, err = self.capsys.readouterr()
        assert result == code, (argv, out, err)
        assert "Traceback" not in err
        return out, err


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], district_file: Path
) -> Cli:
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL", "BACKUP_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    copy = tmp_path / "schoolbot.sqlite3"
    copy.write_bytes(district_file.read_bytes())
    monkeypatch.setenv("DATABASE_URL", sqlite_url(copy))
    return Cli(capsys)


def test_copy_command_table_then_refusals(cli: Cli, fresh_postgres: str) -> None:
    out, _ = cli("db", "copy", "--to", fresh_postgres)
    lines = out.splitlines()
    assert lines[0].startswith("Sao chép ") and "0" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert set(rows) == {table.name for table in tables()}
    assert all(parts[-1] == t("cli.db_copy_ok") for parts in rows.values())
    assert rows["student"][1] == f"{STUDENTS:,}"
    assert lines[-1].startswith("Xong: ")

    # Again: the target is not empty any more.
    _, err = cli("db", "copy", "--to", fresh_postgres, code=1)
    assert err.count("\n") == 1 and "--force" in err and "student" in err
    # --force empties it first, and the result is the same.
    data = json.loads(cli("db", "copy", "--to", fresh_postgres, "--force", "--json")[0])
    assert data["ok"] is True and all(table["ok"] for table in data["tables"])
    assert {table["table"]: table["rows"] for table in data["tables"]}["student"] == STUDENTS

    # The same database on both sides, an unsupported URL: one line each.
    _, err = cli("db", "copy", "--to", fresh_postgres, "--from", fresh_postgres, code=1)
    assert err.strip() == t("cli.db_copy_same_database", database=data["target"])
    _, err = cli("db", "copy", "--to", "mysql://root@127.0.0.1/x", code=1)
    assert err.strip() == t("cli.db_copy_bad_url", scheme="mysql")


def test_copy_refuses_an_unmigrated_source_and_a_missing_one(
    cli: Cli, tmp_path: Path, fresh_postgres: str
) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.write_bytes(b"")
    _, err = cli("db", "copy", "--from", sqlite_url(empty), "--to", fresh_postgres, code=1)
    assert err.strip() == t("cli.error_unmigrated", database=empty, revision=t("cli.none"), head=_head())
    missing = tmp_path / "missing.sqlite3"
    _, err = cli("db", "copy", "--from", sqlite_url(missing), "--to", fresh_postgres, code=1)
    assert err.strip() == t("cli.error_no_database", path=missing)
    assert not missing.exists()


def test_copy_into_an_unreachable_server_is_one_line(cli: Cli) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, err = cli("db", "copy", "--to", f"postgresql+asyncpg://u@127.0.0.1:{port}/x", code=1)
    assert err.strip() == t("cli.error_unreachable", where=f"127.0.0.1:{port}")


def test_a_mismatch_is_one_line_per_table(
    cli: Cli, fresh_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storage.dbcopy as dbcopy

    real = dbcopy.table_checksums

    async def tampered(connection: Any, batch: int = 1000, names: Any = None) -> dict[str, tuple[int, str]]:
        found = await real(connection, batch, names)
        rows, _ = found["student"]
        found["student"] = (rows - 1, "0" * 64)
        found["handover"] = (found["handover"][0], "f" * 64)
        return found

    monkeypatch.setattr(dbcopy, "table_checksums", tampered)
    out, _ = cli("db", "copy", "--to", fresh_postgres, code=1)
    failures = [line for line in out.splitlines() if line.startswith(("Bảng student", "Bảng handover"))]
    assert len(failures) == 2
    assert f"đích {STUDENTS - 1} dòng" in failures[0]
    assert out.splitlines()[-1] == t("cli.db_copy_mismatch", count=2)


def _head() -> str:
    from storage.backup import known_revisions

    return known_revisions()[1]
