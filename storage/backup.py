"""Backups and restores of the bot's database: SQLite's online backup, or `pg_dump -Fc`/`pg_restore`.

Plain functions over a database URL and files, no Telegram: `schoolbot db backup|restore` and the daily
job (bot/backups.py) call them. Blocking (files, subprocesses): async callers run them in a thread.
A known failure is a `Refused` naming the CLI text that says it in one line.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlencode

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"  # pg_dump's custom format (-Fc)
# The daily job's files, and the only ones its clean-up ever deletes.
BACKUP_NAME = re.compile(r"^schoolbot-\d{8}-\d{6}\.(?:sqlite3|dump)$")
# asyncpg's URL options that mean the same to libpq; the others (timeouts, caches) are the driver's own.
_LIBPQ_OPTIONS = {"host", "port", "sslmode", "application_name", "connect_timeout"}


class Refused(Exception):
    """A known failure, said in one line: the text `cli.<key>` with its values."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(f"{key}: {params}")
        self.key = key
        self.params = params


class TargetWriteError(Exception):
    """Writing the backup failed (not reading the database): the caller names the backup's path."""

    def __init__(self, path: Path, error: sqlite3.Error) -> None:
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error


@dataclass
class BackupResult:
    path: Path
    bytes: int
    kind: str  # "sqlite" or "postgresql"
    deleted: list[Path] = field(default_factory=list)  # old backups the daily job removed


@dataclass
class RestoreResult:
    database: str
    path: Path
    kind: str
    revision: str | None = None
    previous: Path | None = None  # SQLite: the database as it was, kept beside it


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def database_label(url: str) -> str:
    """The database as people see it: the SQLite file, or the URL without its password."""
    from sqlalchemy.engine import make_url

    from storage.db import sqlite_file

    path = sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def known_revisions() -> tuple[set[str], str]:
    """Every migration revision this code has, and its head."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}, script.get_current_head() or ""


# --- PostgreSQL: libpq's view of the URL, the client programs ---------------------------------------


def libpq_connection(url: str) -> tuple[str, dict[str, str]]:
    """`postgresql+asyncpg://u:p@h:5432/db?ssl=require` → (`postgresql://u@h:5432/db?sslmode=require`,
    {"PGPASSWORD": p}): the password goes in the environment, never on a command line others can see."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    options: dict[str, str] = {}
    for key, value in parsed.query.items():
        value = value[-1] if isinstance(value, tuple) else value
        key = "sslmode" if key == "ssl" else key  # asyncpg says ssl=require, libpq sslmode=require
        if key in _LIBPQ_OPTIONS:
            options[key] = str(value)
    user = quote(parsed.username or "", safe="")
    host = quote(parsed.host or "", safe="")
    netloc = f"{user}@{host}" if user else host
    if parsed.port:
        netloc += f":{parsed.port}"
    libpq = f"postgresql://{netloc}/{quote(parsed.database or '', safe='')}"
    if options:
        libpq += "?" + urlencode(options)
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return libpq, env


def find_tool(name: str) -> str:
    """`pg_dump`/`pg_restore` on the PATH, else the newest under /usr/lib/postgresql (Debian)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key, reverse=True)
    if candidates:
        return candidates[0]
    raise Refused("error_tool_missing", tool=name)


def _version_key(path: str) -> int:
    found = re.search(r"/postgresql/(\d+)/", path)
    return int(found.group(1)) if found else 0


def _run_tool(name: str, arguments: list[str], env: dict[str, str]) -> None:
    tool = find_tool(name)
    done = subprocess.run(
        [tool, *arguments], capture_output=True, env={**os.environ, **env}, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        # pg_dump's first error line says what is wrong (connection refused, no such database…).
        errors = [line for line in lines if "error" in line.lower()] or lines
        message = errors[0].strip() if errors else f"exit code {done.returncode}"
        raise Refused("error_tool_failed", tool=name, message=message)


# --- backup -----------------------------------------------------------------------------------------


def backup_database(url: str, target: Path) -> BackupResult:
    """Back up the database of `url` to the file `target`, replacing what is there only on success."""
    from storage.db import sqlite_file

    if is_postgres(url):
        return BackupResult(target, pg_dump(url, target), "postgresql")
    source = sqlite_file(url)
    if source is None or not source.is_file():
        raise Refused("db_backup_missing", path=source)
    return BackupResult(target, sqlite_backup(source, target), "sqlite")


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def sqlite_backup(source: Path, target: Path) -> int:
    """SQLite's online backup: consistent while the bot writes. Returns the backup's size."""
    # Into a new file beside the target, then renamed: a failure never leaves half a backup, and an
    # existing file at the target (whatever it holds) is replaced whole.
    partial = _partial(target)
    partial.unlink(missing_ok=True)
    try:
        # (`with sqlite3.connect()` only commits: `closing` really closes both files.)
        with closing(sqlite3.connect(source)) as database:
            database.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # the source's own errors stay its own
            try:
                with closing(sqlite3.connect(partial)) as copy:
                    database.backup(copy)
            except sqlite3.Error as exc:
                raise TargetWriteError(target, exc) from exc
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def pg_dump(url: str, target: Path) -> int:
    """`pg_dump -Fc` into `target` (through a partial file, as for SQLite). Returns the dump's size."""
    libpq, env = libpq_connection(url)
    partial = _partial(target)
    partial.unlink(missing_ok=True)
    try:
        _run_tool("pg_dump", ["--format=custom", f"--file={partial}", f"--dbname={libpq}"], env)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


# --- restore ----------------------------------------------------------------------------------------


def restore_database(url: str, backup: Path, *, now: datetime | None = None) -> RestoreResult:
    """Replace the database of `url` with the backup `backup` (the bot should be stopped)."""
    from storage.db import sqlite_file

    with backup.open("rb") as file:  # a missing or unreadable file fails here, naming itself
        head = file.read(len(SQLITE_MAGIC))
    if is_postgres(url):
        if not head.startswith(PG_DUMP_MAGIC):
            raise Refused("error_not_pg_backup", path=backup)
        pg_restore(url, backup)
        return RestoreResult(database_label(url), backup, "postgresql")
    database = sqlite_file(url)
    if database is None:
        raise Refused("error_not_sqlite_backup", path=backup)  # an in-memory database: nothing to restore
    if head != SQLITE_MAGIC:
        raise Refused("error_not_sqlite_backup", path=backup)
    revision = check_sqlite_backup(backup)
    previous = sqlite_restore(backup, database, now=now)
    return RestoreResult(str(database), backup, "sqlite", revision, previous)


def check_sqlite_backup(backup: Path) -> str:
    """The backup is an intact SQLite database of this bot, at a revision this code knows."""
    try:
        with closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as copy:
            if copy.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise Refused("error_not_sqlite_backup", path=backup)
            row = copy.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if row is None:
                raise Refused("error_not_schoolbot_backup", path=backup)
            version = copy.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:  # "file is not a database", a torn file
        raise Refused("error_not_sqlite_backup", path=backup) from exc
    if version is None:
        raise Refused("error_not_schoolbot_backup", path=backup)
    revision = str(version[0])
    known, head = known_revisions()
    if revision not in known:
        raise Refused("error_unknown_revision", database=backup, revision=revision, head=head)
    return revision


def sqlite_restore(backup: Path, database: Path, *, now: datetime | None = None) -> Path | None:
    """Copy the backup into the database, keeping the database as it was beside it first. Returns
    where that copy is (None when there was no database).

    SQLite's backup API writes into the database under its own locking (never half a file, the WAL
    consistent). A database that is not one any more (the reason for many a restore) cannot be
    opened: it is kept as the bytes it is, and the restored file takes its place."""
    if backup.resolve() == database.resolve():
        raise Refused("error_restore_same_file", path=backup)
    previous = None
    intact = True
    if database.is_file() and database.stat().st_size > 0:
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        previous = database.with_name(f"{database.stem}.before-restore-{stamp}{database.suffix}")
        try:
            sqlite_backup(database, previous)
        except sqlite3.DatabaseError:
            shutil.copyfile(database, previous)
            intact = False
    database.parent.mkdir(parents=True, exist_ok=True)
    if intact:
        try:
            with (
                closing(sqlite3.connect(f"file:{backup}?mode=ro", uri=True)) as source,
                closing(sqlite3.connect(database)) as target,
            ):
                source.backup(target)
            return previous
        except sqlite3.DatabaseError as exc:
            if "full" in str(exc).lower():
                raise
    # In a new file beside it, then renamed over it; the old WAL and shared memory belong to the old file.
    restored = _partial(database)
    sqlite_backup(backup, restored)
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    restored.replace(database)
    return previous


def pg_restore(url: str, backup: Path) -> None:
    """`pg_restore --clean --if-exists --no-owner` in one transaction: all of it or, on error, nothing."""
    libpq, env = libpq_connection(url)
    arguments = ["--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction"]
    _run_tool("pg_restore", [*arguments, f"--dbname={libpq}", str(backup)], env)


# --- the daily job's files ---------------------------------------------------------------------------


def backup_filename(url: str, now: datetime) -> str:
    """`schoolbot-YYYYMMDD-HHMMSS.sqlite3` or `.dump`: sorted by name is sorted by time."""
    suffix = "dump" if is_postgres(url) else "sqlite3"
    return f"schoolbot-{now.strftime('%Y%m%d-%H%M%S')}.{suffix}"


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` of the job's own backups in `directory`; other files stay."""
    ours = sorted(p for p in directory.iterdir() if p.is_file() and BACKUP_NAME.match(p.name))
    old = ours[: max(len(ours) - keep, 0)]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def scheduled_backup(url: str, directory: Path, keep: int, now: datetime) -> BackupResult:
    """The daily job's work: a new backup in `directory`, then old ones beyond `keep` deleted (only
    after the new one succeeded, so a failing job never eats the backups there are)."""
    directory.mkdir(parents=True, exist_ok=True)
    result = backup_database(url, directory / backup_filename(url, now))
    result.deleted = prune_backups(directory, keep)
    return result
