"""Moving a district from SQLite to PostgreSQL (`schoolbot db copy`), and backing both up and restoring.

    .venv/bin/python bench/db_copy_bench.py [--schools 30] [--students 20000] [--batch 1000]
                                            [--postgres URL]

1. A demo district (storage/demo.py, as `schoolbot demo-data`) in a SQLite file under /tmp,
   kept and reused.
2. A throw-away local PostgreSQL cluster (as the tests start one), or the server of `--postgres URL`
   (a maintenance database: a new database is created on it and dropped after).
3. The copy, timed: every table's rows and checksum compared (the command's own check).
4. The district report built from both databases with the same frozen clock: every cell of every
   sheet must be equal.
5. Backup and restore timed on both: SQLite's online backup and `db restore`, `pg_dump -Fc` and
   `pg_restore --clean`; after each restore the tables' checksums equal the copied ones.

Prints the figures docs/operations.md records. Nothing here is asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FROZEN_AT = datetime(2021, 11, 15, 9, 0, tzinfo=TZ)


async def demo_file(schools: int, students: int) -> Path:
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.demo import DemoDataService
    from storage.migrate import upgrade
    from storage.schemas.demo import DemoDataIn
    from storage.services import build_services

    path = Path(tempfile.gettempdir()) / f"schoolbot-copy-bench-{schools}-{students}.sqlite3"
    if path.exists():
        return path
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
        clock = Clock(tz=TZ)
        clock.freeze(FROZEN_AT)
        services = build_services(engine, clock)
        started = time.perf_counter()
        result = await DemoDataService(services.sessionmaker, clock).generate(
            DemoDataIn(schools=schools, students=students)
        )
        print(f"demo district generated in {time.perf_counter() - started:.1f} s: {result.counts}")
    finally:
        await engine.dispose()
    return path


async def admin(server: str, statement: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def workbook_cells(url: str) -> dict[str, list[list[Any]]]:
    import io

    from openpyxl import load_workbook
    from sqlalchemy import text

    from bot.texts import t
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.schemas.reports import ReportScope
    from storage.services import build_services

    engine = create_engine(url)
    try:
        clock = Clock(tz=TZ)
        clock.freeze(FROZEN_AT)
        services = build_services(engine, clock, translate=t)
        async with engine.connect() as connection:
            district_id = await connection.scalar(text("SELECT MIN(id) FROM district"))
        report = await services.reports.build("district", ReportScope.district(district_id))
    finally:
        await engine.dispose()
    workbook = load_workbook(io.BytesIO(report.content), read_only=True)
    return {ws.title: [list(row) for row in ws.iter_rows(values_only=True)] for ws in workbook.worksheets}


async def checksums(url: str) -> dict[str, tuple[int, str]]:
    from storage.db import create_engine
    from storage.dbcopy import table_checksums

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await table_checksums(connection)
    finally:
        await engine.dispose()


def timed(label: str, action: Any) -> Any:
    started = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - started:.2f} s")
    return result


async def run(args: argparse.Namespace) -> None:
    from sqlalchemy.engine import make_url

    from storage.backup import backup_database, restore_database
    from storage.dbcopy import copy_database

    source_path = await demo_file(args.schools, args.students)
    source = f"sqlite+aiosqlite:///{source_path}"
    cluster = None
    server = args.postgres
    if server is None:
        from tests.postgres import start_cluster

        cluster, reason = start_cluster()
        if cluster is None:
            raise SystemExit(f"no PostgreSQL: {reason}")
        server = cluster.url
    name = f"schoolbot_bench_{uuid.uuid4().hex[:8]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    target = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        size = source_path.stat().st_size / 1e6
        print(f"source {source_path} ({size:.1f} MB), target {make_url(target).render_as_string()}")
        result = await copy_database(source, target, batch=args.batch)
        print(f"{'table':<22} {'rows':>8}  checksum")
        for table in result.tables:
            print(f"{table.name:<22} {table.source_rows:>8,}  {'OK' if table.ok else 'DIFFERS'}")
        rate = result.rows / result.seconds if result.seconds else 0
        print(
            f"copy: {len(result.tables)} tables, {result.rows:,} rows in {result.seconds:.1f} s "
            f"({rate:,.0f} rows/s, including migrating the target and reading it back); "
            f"all equal: {result.ok}"
        )

        started = time.perf_counter()
        on_sqlite = await workbook_cells(source)
        middle = time.perf_counter()
        on_postgres = await workbook_cells(target)
        ended = time.perf_counter()
        cells = sum(len(row) for rows in on_sqlite.values() for row in rows)
        same = on_sqlite == on_postgres
        print(
            f"district report: {len(on_sqlite)} sheets, {cells:,} cells, equal on both: {same} "
            f"(built in {middle - started:.1f} s on SQLite, {ended - middle:.1f} s on PostgreSQL)"
        )

        copied = await checksums(target)
        with tempfile.TemporaryDirectory() as folder:
            for label, url, file in (
                ("SQLite", source, Path(folder) / "bench.sqlite3"),
                ("PostgreSQL", target, Path(folder) / "bench.dump"),
            ):
                backup = timed(f"{label} backup", lambda url=url, file=file: backup_database(url, file))
                print(f"  {file.name}: {backup.bytes / 1e6:.1f} MB")
                timed(f"{label} restore", lambda url=url, file=file: restore_database(url, file))
                print(f"  tables equal after the restore: {await checksums(url) == copied}")
                for stale in Path(folder).glob("*.before-restore-*"):
                    stale.unlink()
            for stale in source_path.parent.glob(f"{source_path.stem}.before-restore-*"):
                stale.unlink()
    finally:
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if cluster is not None:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schools", type=int, default=30)
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", help="postgresql+asyncpg://… of a maintenance database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
