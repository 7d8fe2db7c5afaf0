"""`schoolbot …` (also `python -m bot …`): the admin command line.

Every command that prints a result also takes `--json` for scripts.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import socket
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from bot import event_loop
from bot.commands import COMMAND_MODULES
from bot.errors import render_error
from bot.settings import Settings, SettingsError, load_settings
from bot.texts import t
from storage.errors import DomainError

Handler = Callable[["CliContext", argparse.Namespace], Awaitable[int]]


class CliError(Exception):
    """A known failure, said in one line: the text `cli.<key>` with its values."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def render(self, language: str | None = None) -> str:
        return t(f"cli.{self.key}", language, **self.params)


@dataclass
class CliContext:
    settings: Settings
    as_json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    # Only `db upgrade` and `run` may create a missing SQLite file; others say it is missing.
    may_create: bool = False
    # Commands that read or write tables first check the schema is migrated, to say so in one line.
    needs_schema: bool = True
    # `schoolbot report --executor`: where the report service writes workbooks, fixed when it is built.
    report_executor: str = "process"
    _services: Any = None

    async def services(self) -> Any:
        """Engine and services, built on first use (some commands need no database)."""
        if self._services is None:
            from storage.clock import Clock
            from storage.db import create_engine, sqlite_file
            from storage.services import build_services

            path = sqlite_file(self.settings.database_url)
            if path is not None and not self.may_create and not path.is_file():
                # Opening it would create an empty database: a typo in the path would look like zeros.
                raise CliError("error_no_database", path=path)
            engine = create_engine(self.settings.database_url)
            self._services = build_services(
                engine,
                Clock(tz=self.settings.tz),
                translate=t,
                report_executor=self.report_executor,
                report_cover=self.settings.report_cover(),
            )
            if self.needs_schema:
                await check_schema(engine, self.settings.database_url)
        return self._services

    async def close(self) -> None:
        if self._services is not None:
            await self._services.engine.dispose()

    def emit(self, human: str, data: Any = None) -> None:
        """Print a human line, or `data` as JSON with --json."""
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False, default=str, indent=2), file=self.out)
        else:
            print(human, file=self.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="schoolbot", description=t("cli.description"))
    parser.add_argument("--json", action="store_true", help=t("cli.json_help"))
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


async def _dispatch(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        code: int = await args.handler(ctx, args)
        return code
    finally:
        await ctx.close()


def _print_error(ctx: CliContext, message: str) -> None:
    if ctx.as_json:
        print(json.dumps({"error": message}, ensure_ascii=False), file=sys.stdout)
    else:
        print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from bot.logging_setup import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    configure_logging(settings)
    ctx = CliContext(
        settings=settings,
        as_json=getattr(args, "json", False),
        may_create=getattr(args, "creates_database", False),
        needs_schema=getattr(args, "needs_schema", True),
        report_executor=getattr(args, "report_executor", "process"),
    )
    try:
        return event_loop.run(_dispatch(ctx, args), settings.event_loop)
    except (DomainError, ValidationError) as exc:
        _print_error(ctx, render_error(exc))
        return 1
    except SettingsError as exc:
        _print_error(ctx, str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        known = describe_failure(exc, settings)
        if known is None:
            raise  # a bug: the traceback is what its report needs
        _print_error(ctx, known)
        return 1


def json_flag(parser: argparse.ArgumentParser) -> None:
    """Let `--json` stand after the subcommand too (`schoolbot staff list --json`)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=t("cli.json_help"))


# --- known failures: one line each ------------------------------------------------------------------


async def check_schema(engine: Any, url: str) -> None:
    """The database is migrated to this code's head revision, or a `CliError` says what to run."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, current_revision

    revision = await current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head() or ""
    if revision == head:
        return
    database = _database_label(url)
    if revision is not None and revision not in {rev.revision for rev in script.walk_revisions()}:
        raise CliError("error_unknown_revision", database=database, revision=revision, head=head)
    raise CliError("error_unmigrated", database=database, revision=revision or t("cli.none"), head=head)


def _head() -> str:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def _database_label(url: str) -> str:
    from sqlalchemy.engine import make_url

    from storage.db import sqlite_file

    path = sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def _server(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the driver's error SQLAlchemy wraps (`.orig`), and what caused them."""
    seen: set[int] = set()
    queue = [exc]
    while queue and len(seen) < 20:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for inner in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                queue.append(inner)


_FILE_REASONS = {
    errno.ENOTDIR: "reason_not_a_directory",
    errno.EEXIST: "reason_not_a_directory",  # mkdir of a directory where a file is
    errno.ENOENT: "reason_not_found",
    errno.EISDIR: "reason_is_a_directory",
    errno.EACCES: "reason_permission",
    errno.EPERM: "reason_permission",
    errno.EROFS: "reason_read_only",
    errno.ENOSPC: "reason_disk_full",
}
_NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


def read_only_filesystem(path: Path) -> bool:
    """Is `path` (or the nearest existing folder above it) on a file system mounted read-only?"""
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
    return False


def prepare_out(path: Path) -> None:
    """Check an output path (`--out`, `--png`, a backup) before any work, and make its folder."""
    if path.is_dir():
        raise CliError("error_file", path=path, reason=t("cli.reason_is_a_directory"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = _FILE_REASONS.get(exc.errno or 0)
        if reason is None:
            raise
        raise CliError("error_file", path=path, reason=t(f"cli.{reason}")) from exc


def describe_failure(exc: BaseException, settings: Settings) -> str | None:
    """One line for a failure people cause or meet (the database, the disk, a path), or None."""
    known = _known_failure(exc, settings)
    return known.render() if known is not None else None


def _known_failure(exc: BaseException, settings: Settings) -> CliError | None:
    from storage.db import sqlite_file

    url = settings.database_url
    path = sqlite_file(url)
    where = str(path) if path is not None else _server(url)
    for cause in _causes(exc):
        if isinstance(cause, CliError):
            return cause
        name = type(cause).__name__
        message = str(cause).lower()
        # PostgreSQL (asyncpg's errors, by name: asyncpg is only imported when PostgreSQL is used).
        if name == "InvalidCatalogNameError":
            from sqlalchemy.engine import make_url

            return CliError("error_unknown_database", where=where, name=make_url(url).database or "")
        if name in ("InvalidAuthorizationSpecificationError", "InvalidPasswordError"):
            from sqlalchemy.engine import make_url

            return CliError("error_auth", where=where, role=make_url(url).username or "")
        if name in ("UndefinedTableError", "UndefinedColumnError") or "no such table" in message:
            return CliError(
                "error_unmigrated", database=_database_label(url), revision=t("cli.none"), head=_head()
            )
        if name in ("CannotConnectNowError", "TooManyConnectionsError"):
            return CliError("error_unreachable", where=where)
        if name == "DiskFullError":
            return CliError("error_disk_full", path=where)
        if name == "ReadOnlySQLTransactionError":
            return CliError("error_read_only", path=where)
        # SQLite.
        if isinstance(cause, sqlite3.Error):
            if "file is not a database" in message or "file is encrypted" in message:
                return CliError("error_not_database", path=where)
            if "readonly database" in message:
                return CliError("error_read_only", path=where)
            if "disk is full" in message:
                return CliError("error_disk_full", path=where)
            if "database is locked" in message:
                return CliError("error_locked", path=where)
            if "unable to open database file" in message or "disk i/o error" in message:
                if path is not None and read_only_filesystem(path):
                    return CliError("error_read_only_disk", path=where)
                return CliError("error_cannot_open", path=where)
        # The database server's network: connection refused, unknown host, no route. (Not any broken
        # pipe: `schoolbot faq export | head` is not a database problem.)
        if path is None and isinstance(cause, socket.gaierror):
            return CliError("error_unknown_host", where=where)
        if path is None and (
            isinstance(cause, ConnectionRefusedError | TimeoutError)
            or (isinstance(cause, OSError) and cause.errno in _NETWORK_ERRNOS and cause.filename is None)
        ):
            return CliError("error_unreachable", where=where)
        # Files and folders: --out under a file, a missing folder, no permission, read-only, full.
        if isinstance(cause, OSError) and cause.errno in _FILE_REASONS:
            # A failed write() names no file (open() does): then the line cannot name it either.
            reason = t(f"cli.{_FILE_REASONS[cause.errno]}")
            if cause.filename is None:
                return CliError("error_file_unnamed", reason=reason)
            if cause.errno == errno.ENOSPC:
                return CliError("error_disk_full", path=cause.filename)
            if cause.errno == errno.EROFS:
                return CliError("error_read_only_disk", path=cause.filename)
            return CliError("error_file", path=cause.filename, reason=reason)
    return None


def write_out(path: Path, content: bytes) -> None:
    """Write an output file; a failure (disk full midway) names the file."""
    try:
        path.write_bytes(content)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
