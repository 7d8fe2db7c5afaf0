"""Every known failure of the command line is one line in the person's language and a non-zero code:
the database server down or unknown, the database missing, unmigrated, not SQLite, read-only, the disk
full or read-only, a bad output path, webhook mode without its settings."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bot.cli import main
from bot.texts import t
from storage.migrate import alembic_config

ROOT = Path(__file__).resolve().parent.parent
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def use(self, url: str) -> None:
        self.monkeypatch.setenv("DATABASE_URL", url)

    def __call__(self, *argv: str, code: int = 0) -> str:
        self.capsys.readouterr()
        result = main(list(argv))
        out, err = self.capsys.readouterr()
        assert result == code, (argv, out, err)
        self.out = out
        return err

    def json(self, *argv: str) -> object:
        self(*argv, "--json")
        return json.loads(self.out)

    def fails(self, *argv: str, code: int = 1) -> str:
        """The one line a failing command prints (on stderr), checked to be one line."""
        err = self(*argv, code=code)
        assert self.out == "", self.out
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        return lines[0]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "BOT_TIMEZONE",
        "LOG_LEVEL",
        "TELEGRAM_API_BASE_URL",
        "WEBHOOK_URL",
        "WEBHOOK_SECRET_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    return Cli(capsys, monkeypatch)


@pytest.fixture
def migrated(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite file of its own."""
    path = tmp_path / "db" / "schoolbot.sqlite3"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    return path


def sqlite_url(path: Path | str) -> str:
    return f"sqlite+aiosqlite:///{path}"


# --- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_down_is_one_line(cli: Cli) -> None:
    cli.use("postgresql+asyncpg://u:p@127.0.0.1:1/x")  # nothing listens on port 1
    expected = t("cli.error_unreachable", where="127.0.0.1:1")
    assert cli.fails("staff", "list") == expected
    assert cli.fails("db", "upgrade") == expected
    assert cli.fails("status") == expected


def test_unknown_host_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(host: object, *args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # The lookup fails here instead of asking a DNS server: no test touches the network.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    cli.use("postgresql+asyncpg://u:p@db.example.invalid:5432/x")
    assert cli.fails("round", "list") == t("cli.error_unknown_host", where="db.example.invalid:5432")


def test_postgres_unknown_database_and_role(cli: Cli, postgres_url: str) -> None:
    url = make_url(postgres_url)
    server = f"{url.host}:{url.port}"
    cli.use(url.set(database="no_such_db").render_as_string(hide_password=False))
    assert cli.fails("staff", "list") == t("cli.error_unknown_database", where=server, name="no_such_db")
    cli.use(url.set(username="no_such_role").render_as_string(hide_password=False))
    assert cli.fails("status") == t("cli.error_auth", where=server, role="no_such_role")


def test_postgres_unmigrated_database(cli: Cli, postgres_url: str) -> None:
    url = make_url(postgres_url)
    name = f"schoolbot_empty_{uuid.uuid4().hex[:8]}"

    async def database(statement: str) -> None:
        admin = create_async_engine(
            url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        async with admin.connect() as conn:
            await conn.execute(text(statement))
        await admin.dispose()

    asyncio.run(database(f'CREATE DATABASE "{name}"'))
    try:
        empty = url.set(database=name).render_as_string(hide_password=False)
        cli.use(empty)
        shown = url.set(database=name).render_as_string(hide_password=True)
        expected = t("cli.error_unmigrated", database=shown, revision=t("cli.none"), head=HEAD)
        assert cli.fails("staff", "list") == expected
        assert cli.json("status")["revision"] is None  # status says so, rc 0
    finally:
        asyncio.run(database(f'DROP DATABASE "{name}"'))


# --- SQLite: missing, unmigrated, not a database ---------------------------------------------------


def test_a_reading_command_never_creates_the_database(cli: Cli, tmp_path: Path) -> None:
    mistyped = tmp_path / "dta" / "schoolbot.sqlite3"
    cli.use(sqlite_url(mistyped))
    for argv in (("status",), ("staff", "list"), ("round", "list"), ("school", "list")):
        assert cli.fails(*argv) == t("cli.error_no_database", path=mistyped)
    # Writing commands neither: only `db upgrade` (and `run`) create a database.
    assert cli.fails("district", "add", "--code", "NB", "--name", "Nhà Bè") == t(
        "cli.error_no_database", path=mistyped
    )
    assert not mistyped.exists() and not mistyped.parent.exists()
    cli("db", "upgrade")
    assert mistyped.exists()
    assert cli.json("status")["revision"] == HEAD


def test_unmigrated_database(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()  # a valid SQLite file without tables
    empty.touch()
    cli.use(sqlite_url(empty))
    expected = t("cli.error_unmigrated", database=empty, revision=t("cli.none"), head=HEAD)
    assert cli.fails("staff", "list") == expected
    assert cli.fails("invite", "create", "--role", "admin") == expected
    # Status shows it as unmigrated, and says what to run.
    cli("status")
    assert t("cli.status_unmigrated") in cli.out
    cli("db", "upgrade")
    cli("staff", "list")


def test_unknown_revision(cli: Cli, migrated: Path) -> None:
    with contextlib.closing(sqlite3.connect(migrated)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'fffffff'")
        connection.commit()
    cli.use(sqlite_url(migrated))
    assert cli.fails("staff", "list") == t(
        "cli.error_unknown_revision", database=migrated, revision="fffffff", head=HEAD
    )


def test_a_file_that_is_not_sqlite(cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.sqlite3"
    notes.write_text("Danh sách học sinh lớp 4A1\n" * 200)
    cli.use(sqlite_url(notes))
    expected = t("cli.error_not_database", path=notes)
    assert cli.fails("staff", "list") == expected
    assert cli.fails("status") == expected
    assert cli.fails("db", "upgrade") == expected
    assert cli.fails("db", "backup", str(tmp_path / "copy.sqlite3")) == expected


def test_json_errors_are_json(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    cli.use(sqlite_url(missing))
    cli("status", "--json", code=1)
    assert json.loads(cli.out) == {"error": t("cli.error_no_database", path=missing)}


# --- read-only, disk full --------------------------------------------------------------------------


def test_read_only_database(cli: Cli, migrated: Path) -> None:
    # Tests run as root, for whom a 0444 file is writable: SQLite's read-only mode is the same refusal.
    cli.use(f"sqlite+aiosqlite:///file:{migrated}?mode=ro&uri=true")
    assert cli.json("status")["revision"] == HEAD  # reading works
    assert cli.fails("district", "add", "--code", "NB", "--name", "Nhà Bè") == t(
        "cli.error_read_only", path=migrated
    )


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at `where` (needs root and mount rights); skips the test where there are none."""
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_read_only_disk(cli: Cli, migrated: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "2m") as disk:
        database = disk / "schoolbot.sqlite3"
        shutil.copyfile(migrated, database)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        cli.use(sqlite_url(database))
        assert cli.fails("district", "add", "--code", "NB", "--name", "Nhà Bè") == t(
            "cli.error_read_only_disk", path=database
        )
        cli.use(sqlite_url(migrated))
        assert cli.fails("faq", "export", "--out", str(disk / "faq.csv")) == t(
            "cli.error_read_only_disk", path=disk / "faq.csv"
        )


def test_disk_full(cli: Cli, migrated: Path, tmp_path: Path) -> None:
    size = migrated.stat().st_size
    with tmpfs(tmp_path / "mnt", f"{(size // 1024) + 96}k") as disk:
        database = disk / "schoolbot.sqlite3"
        shutil.copyfile(migrated, database)
        cli.use(sqlite_url(database))
        # A demo district fills the little room left.
        assert cli.fails("demo-data", "--schools", "5", "--students", "2000") == t(
            "cli.error_disk_full", path=database
        )
        cli.use(sqlite_url(migrated))
        filler = disk / "filler"
        with contextlib.suppress(OSError):
            filler.write_bytes(b"\0" * (4 * 1024 * 1024))  # whatever room is left
        assert cli.fails("faq", "export", "--out", str(disk / "faq.csv")) == t(
            "cli.error_disk_full", path=disk / "faq.csv"
        )


def test_disk_full_without_a_tmpfs(cli: Cli, migrated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same lines where no tmpfs can be mounted: SQLite's and the OS's own errors, raised."""
    from storage.services.organisation import OrganisationService

    async def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(OrganisationService, "add_district", full)
    cli.use(sqlite_url(migrated))
    assert cli.fails("district", "add", "--code", "NB", "--name", "Nhà Bè") == t(
        "cli.error_disk_full", path=migrated
    )

    def no_space(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", no_space)
    out = migrated.parent / "faq.csv"
    assert cli.fails("faq", "export", "--out", str(out)) == t("cli.error_disk_full", path=out)


# --- output paths ----------------------------------------------------------------------------------


def test_bad_out_paths(cli: Cli, migrated: Path, tmp_path: Path) -> None:
    cli.use(sqlite_url(migrated))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    under_a_file = a_file / "faq.csv"
    assert cli.fails("faq", "export", "--out", str(under_a_file)) == t(
        "cli.error_file", path=under_a_file, reason=t("cli.reason_not_a_directory")
    )
    deeper = a_file / "sub" / "report.xlsx"
    assert cli.fails("report", "needs", "--out", str(deeper)) == t(
        "cli.error_file", path=deeper, reason=t("cli.reason_not_a_directory")
    )
    assert cli.fails("faq", "export", "--out", str(tmp_path)) == t(
        "cli.error_file", path=tmp_path, reason=t("cli.reason_is_a_directory")
    )
    assert cli.fails("round", "progress", "1", "--png", str(under_a_file)) == t(
        "cli.error_file", path=under_a_file, reason=t("cli.reason_not_a_directory")
    )
    assert cli.fails("db", "backup", str(under_a_file)) == t(
        "cli.error_file", path=under_a_file, reason=t("cli.reason_not_a_directory")
    )
    # A file to read that is not there.
    missing = tmp_path / "contacts.csv"
    assert cli.fails("faq", "import", str(missing)) == t(
        "cli.error_file", path=missing, reason=t("cli.reason_not_found")
    )


def test_backup_replaces_whatever_was_at_the_path(cli: Cli, migrated: Path, tmp_path: Path) -> None:
    cli.use(sqlite_url(migrated))
    target = tmp_path / "backup.sqlite3"
    target.write_text("an old file that is not a database")
    cli("db", "backup", str(target))
    with contextlib.closing(sqlite3.connect(target)) as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    assert not list(tmp_path.glob(".backup.sqlite3.partial"))


# --- run --webhook ---------------------------------------------------------------------------------


def test_webhook_mode_without_its_settings_is_one_line(cli: Cli, tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    cli.use(sqlite_url(database))
    cli.monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:TEST-TOKEN")
    assert cli.fails("run", "--webhook", code=2) == t(
        "cli.webhook_missing", missing="WEBHOOK_URL, WEBHOOK_SECRET_TOKEN"
    )
    cli.monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.vn/hook")
    assert cli.fails("run", code=2) == t("cli.webhook_missing", missing="WEBHOOK_SECRET_TOKEN")
    assert not database.exists()  # said before anything was touched


# --- as people run it: a real process, stderr only the line ----------------------------------------


def test_the_real_command_prints_one_line(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "WEBHOOK_", "DATABASE_", "LOG_"))
    }
    missing = tmp_path / "typo.sqlite3"
    for url, argv, expected in (
        (sqlite_url(missing), ["status"], t("cli.error_no_database", path=missing)),
        (
            "postgresql+asyncpg://u:p@127.0.0.1:1/x",
            ["staff", "list"],
            t("cli.error_unreachable", where="127.0.0.1:1"),
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *argv],
            cwd=tmp_path,
            env={**env, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert done.stderr == expected + "\n"
    assert not missing.exists()
