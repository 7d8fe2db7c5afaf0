"""`schoolbot db upgrade | backup PATH | status`."""

from __future__ import annotations

import argparse
import shlex
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from bot.texts import t

if TYPE_CHECKING:
    from bot.cli import CliContext


def register(subparsers: argparse._SubParsersAction) -> None:
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
    status = subparsers.add_parser("status", help=t("cli.status_help"))
    # Status reads: a missing database is an error, an unmigrated one is shown as such.
    status.set_defaults(handler=_status, needs_schema=False)
    json_flag(status)


async def _upgrade(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.migrate import current_revision, upgrade

    services = await ctx.services()
    await upgrade(services.engine)
    revision = await current_revision(services.engine)
    ctx.emit(t("cli.db_upgraded", revision=revision), {"revision": revision})
    return 0


async def _backup(ctx: CliContext, args: argparse.Namespace) -> int:
    url = make_url(ctx.settings.database_url)
    if url.get_backend_name() == "postgresql":
        command = ["pg_dump", "--format=custom", f"--file={args.path}"]
        if url.host:
            command.append(f"--host={url.host}")
        if url.port:
            command.append(f"--port={url.port}")
        if url.username:
            command.append(f"--username={url.username}")
        command.append(url.database or "")
        line = shlex.join(command)
        ctx.emit(t("cli.db_backup_pg", command=line), {"command": line})
        return 0
    from bot.cli import prepare_out
    from storage.db import sqlite_file

    source_path = sqlite_file(ctx.settings.database_url)
    if source_path is None or not source_path.exists():
        ctx.emit(t("cli.db_backup_missing", path=source_path), {"error": "no database file"})
        return 1
    prepare_out(args.path)
    # Into a new file beside the target, then renamed: a failure never leaves half a backup, and an
    # existing file at PATH (whatever it holds) is replaced whole.
    partial = args.path.with_name(f".{args.path.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        # SQLite's online backup: consistent even while the bot is writing.
        # (`with sqlite3.connect()` only commits: `closing` really closes both files.)
        with closing(sqlite3.connect(source_path)) as source:
            source.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # the source's own errors stay its own
            try:
                with closing(sqlite3.connect(partial)) as target:
                    source.backup(target)
            except sqlite3.Error as exc:
                raise _target_error(exc, args.path) from exc
        partial.replace(args.path)
    finally:
        partial.unlink(missing_ok=True)
    size = args.path.stat().st_size
    ctx.emit(t("cli.db_backup_done", path=args.path, size=size), {"path": str(args.path), "bytes": size})
    return 0


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
