"""Backups: `db backup` and `db restore` on SQLite and PostgreSQL, the restore drill (entries → backup →
more entries → restore → exactly the first entries), the refusals in one line, and the daily job
(its schedule, its file names, keeping the newest BACKUP_KEEP of its own files and nothing else)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.backups import JOB_NAME, run_backup, schedule_backup_job
from bot.cli import main
from bot.settings import SettingsError, load_settings
from bot.texts import t
from storage.backup import (
    BACKUP_NAME,
    backup_filename,
    known_revisions,
    libpq_connection,
    prune_backups,
)
from storage.clock import Clock
from storage.db import create_engine
from storage.dbcopy import table_checksums
from storage.migrate import upgrade
from tests.conftest import TZ
from tests.test_db_copy import new_postgres_database

HEAD = known_revisions()[1]


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str, code: int = 0) -> str:
        self.capsys.readouterr()
        result = main(list(argv))
        out, err = self.capsys.readouterr()
        assert result == code, (argv, out, err)
        assert "Traceback" not in err
        self.err = err
        return out

    def json(self, *argv: str) -> Any:
        return json.loads(self(*argv, "--json"))

    def fails(self, *argv: str) -> str:
        """The one line a failing command prints."""
        out = self(*argv, code=1)
        assert out == ""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty migrated database of the test's own: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'schoolbot.sqlite3'}"
        drop = None
    else:
        url, drop = new_postgres_database(request.getfixturevalue("postgres_url"))

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    yield url
    if drop is not None:
        drop()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL", "BACKUP_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    return Cli(capsys)


def checksums(url: str) -> dict[str, tuple[int, str]]:
    async def read() -> dict[str, tuple[int, str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await table_checksums(connection)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def districts(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as connection:
        return [code for (code,) in connection.execute("SELECT code FROM district ORDER BY code")]


def add_school(cli: Cli, code: str, name: str) -> None:
    cli("school", "add", "--district", "NB", "--code", code, "--name", name, "--level", "TH")


# --- the restore drill -------------------------------------------------------------------------------


def test_restore_drill(
    cli: Cli, database_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè", "--province", "TP. Hồ Chí Minh")
    add_school(cli, "79785001", "Trường TH Lê Văn Lương")
    cli("invite", "create", "--role", "admin", "--district", "NB", "--name", "Trần Kim Ngân")
    first = checksums(database_url)

    backup = tmp_path / "backups" / ("drill.sqlite3" if backend == "sqlite" else "drill.dump")
    done = cli.json("db", "backup", str(backup))
    assert done == {"path": str(backup), "bytes": backup.stat().st_size, "kind": done["kind"]}
    assert done["kind"] == ("sqlite" if backend == "sqlite" else "postgresql")

    # More entries after the backup, then the restore.
    add_school(cli, "79785101", "Trường TH Hiệp Phước")
    cli("district", "add", "--code", "CG", "--name", "Huyện Cần Giờ")
    cli("invite", "create", "--role", "teacher", "--school", "79785101", "--name", "Lê Thị Hoa")
    assert checksums(database_url) != first

    restored = cli.json("db", "restore", str(backup))
    assert restored["path"] == str(backup)

    assert checksums(database_url) == first  # exactly the first entries, every table
    assert [school["code"] for school in cli.json("school", "list")] == ["79785001"]
    assert cli.json("status")["revision"] == HEAD
    # The restored database takes new entries (PostgreSQL's sequences came back with the data).
    add_school(cli, "79785201", "Trường TH&THCS Hiệp Phước")
    assert {school["code"] for school in cli.json("school", "list")} == {"79785001", "79785201"}


def test_sqlite_restore_keeps_the_database_it_replaces(cli: Cli, tmp_path: Path, monkeypatch: Any) -> None:
    database = tmp_path / "schoolbot.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    cli("db", "upgrade")
    cli("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè")
    backup = tmp_path / "nb.sqlite3"
    cli("db", "backup", str(backup))
    cli("district", "add", "--code", "CG", "--name", "Huyện Cần Giờ")
    human = cli("db", "restore", str(backup))
    previous = Path(cli.json("db", "restore", str(backup))["previous"])
    assert t("cli.db_restore_done", database=database, path=backup) in human
    assert previous.parent == database.parent and previous.name.startswith("schoolbot.before-restore-")
    with closing(sqlite3.connect(previous)) as kept:
        # The second restore kept the first restore's result: NB only.
        assert kept.execute("SELECT code FROM district").fetchall() == [("NB",)]
    # And a missing database file is created from the backup.
    database.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    assert cli.json("db", "restore", str(backup))["previous"] is None
    assert districts(database) == ["NB"]


def test_restore_over_a_database_that_is_not_one_any_more(cli: Cli, tmp_path: Path, monkeypatch: Any) -> None:
    database = tmp_path / "schoolbot.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    cli("db", "upgrade")
    cli("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè")
    backup = tmp_path / "nb.sqlite3"
    cli("db", "backup", str(backup))
    garbage = b"\x00\xff overwritten by a broken disk " * 500
    database.write_bytes(garbage)
    assert cli.fails("status") == t("cli.error_not_database", path=database)
    previous = Path(cli.json("db", "restore", str(backup))["previous"])
    assert previous.read_bytes() == garbage  # kept as it was, whatever it was
    assert districts(database) == ["NB"]
    assert cli.json("status")["revision"] == HEAD


def test_an_older_backup_says_to_upgrade(cli: Cli, tmp_path: Path, monkeypatch: Any) -> None:
    database = tmp_path / "schoolbot.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    cli("db", "upgrade")
    backup = tmp_path / "old.sqlite3"
    cli("db", "backup", str(backup))
    with closing(sqlite3.connect(backup)) as old:
        old.execute("UPDATE alembic_version SET version_num = '0001'")
        old.commit()
    out = cli("db", "restore", str(backup))
    assert t("cli.db_restore_upgrade", revision="0001", head=HEAD) in out


# --- refusals in one line ----------------------------------------------------------------------------


def test_restore_refuses_what_is_not_a_backup(cli: Cli, tmp_path: Path, monkeypatch: Any) -> None:
    database = tmp_path / "schoolbot.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    cli("db", "upgrade")
    cli("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè")
    before = database.read_bytes()

    notes = tmp_path / "notes.txt"
    notes.write_text("Danh sách học sinh lớp 4A1\n" * 100)
    assert cli.fails("db", "restore", str(notes)) == t("cli.error_not_sqlite_backup", path=notes)
    torn = tmp_path / "torn.sqlite3"
    torn.write_bytes(before[:1000])  # a backup cut short: the header, and not much more
    assert cli.fails("db", "restore", str(torn)) == t("cli.error_not_sqlite_backup", path=torn)
    other = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE hoc_sinh (ten TEXT)")
    assert cli.fails("db", "restore", str(other)) == t("cli.error_not_schoolbot_backup", path=other)
    dump = tmp_path / "pg.dump"
    dump.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)
    assert cli.fails("db", "restore", str(dump)) == t("cli.error_not_sqlite_backup", path=dump)
    missing = tmp_path / "missing.sqlite3"
    assert cli.fails("db", "restore", str(missing)) == t(
        "cli.error_file", path=missing, reason=t("cli.reason_not_found")
    )
    assert cli.fails("db", "restore", str(database)) == t("cli.error_restore_same_file", path=database)
    newer = tmp_path / "newer.sqlite3"
    cli("db", "backup", str(newer))
    with closing(sqlite3.connect(newer)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'fffffff'")
        connection.commit()
    assert cli.fails("db", "restore", str(newer)) == t(
        "cli.error_unknown_revision", database=newer, revision="fffffff", head=HEAD
    )
    assert districts(database) == ["NB"]  # untouched by all of that


@pytest.mark.postgres
def test_postgresql_refusals(cli: Cli, postgres_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    sqlite_file = tmp_path / "a.sqlite3"
    with closing(sqlite3.connect(sqlite_file)) as connection:
        connection.execute("CREATE TABLE x (a)")
    assert cli.fails("db", "restore", str(sqlite_file)) == t("cli.error_not_pg_backup", path=sqlite_file)
    # A server nobody listens on: pg_dump's own reason, in one line.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:{port}/schoolbot")
    line = cli.fails("db", "backup", str(tmp_path / "x.dump"))
    assert line.startswith(t("cli.error_tool_failed", tool="pg_dump", message="")) and str(port) in line
    assert not (tmp_path / "x.dump").exists() and not list(tmp_path.glob(".x.dump*"))


def test_pg_tools_missing_is_one_line(cli: Cli, tmp_path: Path, monkeypatch: Any) -> None:
    import storage.backup

    monkeypatch.setattr(storage.backup.shutil, "which", lambda name: None)
    monkeypatch.setattr(storage.backup.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@127.0.0.1:5432/schoolbot")
    assert cli.fails("db", "backup", str(tmp_path / "x.dump")) == t("cli.error_tool_missing", tool="pg_dump")


def test_libpq_connection() -> None:
    libpq, env = libpq_connection("postgresql+asyncpg://bot:s%40cret@db.example:5433/schoolbot?ssl=require")
    assert libpq == "postgresql://bot@db.example:5433/schoolbot?sslmode=require"
    assert env == {"PGPASSWORD": "s@cret"}  # never on the command line
    libpq, env = libpq_connection(
        "postgresql+asyncpg://schoolbot@/schoolbot?host=/var/run/postgresql&prepared_statement_cache_size=0"
    )
    assert libpq == "postgresql://schoolbot@/schoolbot?host=%2Fvar%2Frun%2Fpostgresql"
    assert env == {}


# --- the daily job -----------------------------------------------------------------------------------


def test_backup_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("BACKUP_DIR", "BACKUP_TIME", "BACKUP_KEEP"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.backup_dir is None and settings.backup_time == time(2, 30) and settings.backup_keep == 14
    monkeypatch.setenv("BACKUP_DIR", "")
    assert load_settings().backup_dir is None
    monkeypatch.setenv("BACKUP_DIR", "/var/backups/schoolbot")
    monkeypatch.setenv("BACKUP_TIME", "3:05")
    monkeypatch.setenv("BACKUP_KEEP", "30")
    settings = load_settings()
    assert settings.backup_dir == Path("/var/backups/schoolbot") and settings.backup_time == time(3, 5)
    assert settings.backup_keep == 30
    for name, value in (("BACKUP_TIME", "24:00"), ("BACKUP_TIME", "02:30+07:00"), ("BACKUP_KEEP", "0")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name):
            load_settings()
        monkeypatch.delenv(name)


def test_prune_keeps_the_newest_of_its_own_files_only(tmp_path: Path) -> None:
    start = datetime(2021, 11, 1, 2, 30)
    names = [backup_filename("sqlite+aiosqlite:///x", start + timedelta(days=i)) for i in range(5)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    others = ["notes.txt", "schoolbot.sqlite3", "schoolbot-manual.sqlite3", "schoolbot-20211101-0230.sqlite3"]
    for name in others:
        (tmp_path / name).write_bytes(b"y")
    assert all(BACKUP_NAME.match(name) for name in names)
    deleted = prune_backups(tmp_path, 2)
    assert sorted(p.name for p in deleted) == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[3:], *others])


def application(settings: Any, clock: Clock) -> Any:
    from telegram.ext import ApplicationBuilder

    from bot.context import SchoolBotApplication

    app = ApplicationBuilder().token("123456:TEST-TOKEN").application_class(SchoolBotApplication).build()
    app.settings = settings
    app.services = SimpleNamespace(clock=clock)
    return app


def test_the_job_is_scheduled_at_backup_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = application(load_settings(backup_dir=None), Clock(tz=TZ))
    schedule_backup_job(app)
    assert app.job_queue.get_jobs_by_name(JOB_NAME) == ()  # no BACKUP_DIR, no job

    app = application(load_settings(backup_dir=tmp_path / "b", backup_time="03:15"), Clock(tz=TZ))
    schedule_backup_job(app)
    (job,) = app.job_queue.get_jobs_by_name(JOB_NAME)
    trigger = job.job.trigger
    fields = {field.name: str(field) for field in trigger.fields}
    assert (fields["hour"], fields["minute"], fields["second"]) == ("3", "15", "0")
    assert str(trigger.timezone) == "Asia/Ho_Chi_Minh"


def test_the_job_backs_up_and_keeps_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "schoolbot.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "keep-me.sqlite3").write_bytes(b"not the job's")
    clock = Clock(tz=TZ)
    app = application(load_settings(database_url=url, backup_dir=folder, backup_keep=2), clock)
    context = SimpleNamespace(application=app)
    written = []
    for day in range(3):
        clock.freeze(datetime(2021, 11, 15 + day, 2, 30, tzinfo=TZ))
        result = asyncio.run(run_backup(context))  # type: ignore[arg-type]
        assert result is not None and result.bytes > 0
        written.append(result.path.name)
    assert written == [f"schoolbot-202111{15 + day}-023000.sqlite3" for day in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["keep-me.sqlite3", *written[1:]])
    with closing(sqlite3.connect(folder / written[-1])) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)


def test_a_failed_job_is_logged_and_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "backups"
    folder.mkdir()
    old = folder / "schoolbot-20211101-023000.sqlite3"
    old.write_bytes(b"an old backup")
    clock = Clock(tz=TZ)
    clock.freeze(datetime(2021, 11, 15, 2, 30, tzinfo=TZ))
    missing = tmp_path / "missing.sqlite3"
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{missing}", backup_dir=folder, backup_keep=1)
    app = application(settings, clock)
    with caplog.at_level("ERROR", logger="bot.backups"):
        assert asyncio.run(run_backup(SimpleNamespace(application=app))) is None  # type: ignore[arg-type]
    assert "Daily backup" in caplog.text and "failed" in caplog.text
    assert [p.name for p in folder.iterdir()] == [old.name]
    shutil.rmtree(folder)
