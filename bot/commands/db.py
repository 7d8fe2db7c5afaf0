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
    upgrade.set_defaults(handler=_upgrade)
    json_flag(upgrade)
    backup = db_sub.add_parser("backup", help=t("cli.db_backup_help"))
    backup.add_argument("path", type=Path)
    backup.set_defaults(handler=_backup)
    json_flag(backup)
    status = subparsers.add_parser("status", help=t("cli.status_help"))
    status.set_defaults(handler=_status)
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
    source_path = ctx.settings.sqlite_path()
    if source_path is None or not source_path.exists():
        ctx.emit(t("cli.db_backup_missing", path=source_path), {"error": "no database file"})
        return 1
    args.path.parent.mkdir(parents=True, exist_ok=True)
    # SQLite's online backup: consistent even while the bot is writing.
    # (`with sqlite3.connect()` only commits: `closing` really closes both files.)
    with closing(sqlite3.connect(source_path)) as source, closing(sqlite3.connect(args.path)) as target:
        source.backup(target)
    size = args.path.stat().st_size
    ctx.emit(t("cli.db_backup_done", path=args.path, size=size), {"path": str(args.path), "bytes": size})
    return 0


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
    ctx.emit(t("cli.status", **data), data)
    return 0
