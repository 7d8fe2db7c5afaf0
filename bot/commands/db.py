"""`schoolbot db upgrade | backup PATH | restore FILE | copy --to URL | status`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from bot.texts import t

if TYPE_CHECKING:
    import sqlite3

    from bot.cli import CliContext
    from storage.dbcopy import CopyResult, TableCopy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    db = subparsers.add_parser("db", help=t("cli.db_help"))
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help=t("cli.db_upgrade_help"))
    # The one command that may create the database (a missing SQLite file) and meets it unmigrated.
    upgrade.set_defaults(handler=_upgrade, creates_database=True, needs_schema=False)
    json_flag(upgrade)
    backup = db_sub.add_parser("backup", help=t("cli.db_backup_help"))
    backup.add_argument("path", type=Path)
    backup.set_defaults(handler=_backup, needs_schema=False)
    json_flag(backup)
    restore = db_sub.add_parser("restore", help=t("cli.db_restore_help"))
    restore.add_argument("file", type=Path)
    # Restoring may (re)create the SQLite file; the backup's own revision is checked, not the database's.
    restore.set_defaults(handler=_restore, needs_schema=False)
    json_flag(restore)
    copy = db_sub.add_parser("copy", help=t("cli.db_copy_help"))
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help=t("cli.db_copy_to_help"))
    copy.add_argument("--from", dest="source", metavar="URL", help=t("cli.db_copy_from_help"))
    copy.add_argument("--force", action="store_true", help=t("cli.db_copy_force_help"))
    copy.add_argument("--batch", type=_positive, default=1000, metavar="N", help=t("cli.db_copy_batch_help"))
    copy.set_defaults(handler=_copy, needs_schema=False)
    json_flag(copy)
    status = subparsers.add_parser("status", help=t("cli.status_help"))
    # Status reads: a missing database is an error, an unmigrated one is shown as such.
    status.set_defaults(handler=_status, needs_schema=False)
    json_flag(status)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(t("cli.db_copy_batch_help"))
    return number


async def _upgrade(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.migrate import current_revision, upgrade

    services = await ctx.services()
    await upgrade(services.engine)
    revision = await current_revision(services.engine)
    ctx.emit(t("cli.db_upgraded", revision=revision), {"revision": revision})
    return 0


async def _backup(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.cli import prepare_out
    from storage.backup import backup_database

    prepare_out(args.path)
    with _known_failures(ctx):
        # Files and a subprocess: off the event loop (the CLI has nothing else to do, the job has).
        result = await asyncio.to_thread(backup_database, ctx.settings.database_url, args.path)
    data = {"path": str(result.path), "bytes": result.bytes, "kind": result.kind}
    ctx.emit(t("cli.db_backup_done", path=result.path, size=result.bytes), data)
    return 0


async def _restore(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.backup import known_revisions, restore_database

    with _known_failures(ctx):
        result = await asyncio.to_thread(restore_database, ctx.settings.database_url, args.file)
    lines = [t("cli.db_restore_done", database=result.database, path=result.path)]
    if result.previous is not None:
        lines.append(t("cli.db_restore_previous", path=result.previous))
    _, head = known_revisions()
    if result.revision is not None and result.revision != head:
        lines.append(t("cli.db_restore_upgrade", revision=result.revision, head=head))
    data = {
        "database": result.database,
        "path": str(result.path),
        "kind": result.kind,
        "revision": result.revision,
        "previous": str(result.previous) if result.previous else None,
    }
    ctx.emit("\n".join(lines), data)
    return 0


async def _copy(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.dbcopy import copy_database

    source = args.source or ctx.settings.database_url
    for url in (source, args.target):
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise _cli_error("db_copy_bad_url", scheme=url.split("://", 1)[0])
    live = not ctx.as_json and sys.stderr.isatty()

    def progress(table: str, rows: int) -> None:
        if live:  # a long copy shows it is moving; never in logs, pipes or --json
            print(f"\r{t('cli.db_copy_progress', table=table, rows=rows)}", end="", file=sys.stderr)

    with _known_failures(ctx):
        result = await copy_database(
            source, args.target, force=args.force, batch=args.batch, progress=progress
        )
    if live:
        print(file=sys.stderr)
    failed = [table for table in result.tables if not table.ok]
    data = {
        "source": result.source,
        "target": result.target,
        "revision": result.revision,
        "ok": result.ok,
        "rows": result.rows,
        "seconds": round(result.seconds, 2),
        "skipped": result.skipped,
        "tables": [
            {
                "table": table.name,
                "rows": table.source_rows,
                "target_rows": table.target_rows,
                "checksum": table.source_checksum,
                "target_checksum": table.target_checksum,
                "ok": table.ok,
            }
            for table in result.tables
        ],
    }
    ctx.emit(_copy_lines(result, failed), data)
    return 0 if result.ok else 1


def _copy_lines(result: CopyResult, failed: list[TableCopy]) -> str:
    """The table of tables (name, rows, OK or not), then one line per failure and the outcome."""
    seconds = f"{result.seconds:.1f}"
    lines = [
        t("cli.db_copy_header", source=result.source, target=result.target, revision=result.revision),
    ]
    heads = (t("cli.db_copy_column_table"), t("cli.db_copy_column_rows"), t("cli.db_copy_column_checksum"))
    width = max(len(heads[0]), *(len(table.name) for table in result.tables))
    lines.append(f"{heads[0]:<{width}}  {heads[1]:>10}  {heads[2]}")
    for table in result.tables:
        mark = t("cli.db_copy_ok") if table.ok else t("cli.db_copy_differs")
        lines.append(f"{table.name:<{width}}  {table.source_rows:>10,}  {mark}")
    for table in failed:
        lines.append(
            t(
                "cli.db_copy_failed",
                table=table.name,
                rows=table.source_rows,
                target_rows=table.target_rows,
                checksum=table.source_checksum[:12],
                target_checksum=table.target_checksum[:12],
            )
        )
    if result.skipped:
        lines.append(t("cli.db_copy_skipped", tables=", ".join(result.skipped)))
    if failed:
        lines.append(t("cli.db_copy_mismatch", count=len(failed)))
    else:
        lines.append(t("cli.db_copy_done", tables=len(result.tables), rows=result.rows, seconds=seconds))
    return "\n".join(lines)


def _cli_error(key: str, **params: object) -> Exception:
    from bot.cli import CliError

    return CliError(key, **params)


@contextmanager
def _known_failures(ctx: CliContext) -> Iterator[None]:
    """The storage layer's known failures as the CLI's one-line errors."""
    from bot.cli import _known_failure
    from storage.backup import Refused, TargetWriteError
    from storage.dbcopy import SideFailure

    try:
        yield
    except Refused as exc:
        params = {key: t("cli.none") if value is None else value for key, value in exc.params.items()}
        raise _cli_error(exc.key, **params) from exc
    except TargetWriteError as exc:
        raise _target_error(exc.error, exc.path) from exc
    except SideFailure as exc:
        # Said about the database it happened on (the copy's target is not DATABASE_URL).
        cause = exc.__cause__ or exc
        side = ctx.settings.model_copy(update={"database_url": exc.url})
        known = _known_failure(cause, side)
        if known is None:
            raise  # a bug: the traceback is what its report needs
        raise known from exc


def _target_error(exc: sqlite3.Error, path: Path) -> Exception:
    """A failure writing the backup, named after the backup's path, not the database's."""
    from bot.cli import CliError, read_only_filesystem

    message = str(exc).lower()
    if "disk is full" in message:
        return CliError("error_disk_full", path=path)
    if read_only_filesystem(path.parent):
        return CliError("error_read_only_disk", path=path)
    if "readonly" in message or "unable to open" in message:
        return CliError("error_file", path=path, reason=t("cli.reason_permission"))
    return exc


async def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.migrate import current_revision

    services = await ctx.services()
    revision = await current_revision(services.engine)
    counts = await services.organisation.counts() if revision else {"districts": 0, "schools": 0}
    staff = len(await services.staff.list_staff()) if revision else 0
    data = {
        "database": make_url(ctx.settings.database_url).render_as_string(hide_password=True),
        "revision": revision,
        "token_configured": ctx.settings.telegram_bot_token is not None,
        **counts,
        "staff": staff,
    }
    shown = {**data, "revision": revision or t("cli.status_unmigrated")}
    ctx.emit(t("cli.status", **shown), data)
    return 0
