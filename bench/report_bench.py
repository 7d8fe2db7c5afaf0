"""How fast and lean is the district report, and does the bot stay responsive while it is built?

    .venv/bin/python bench/report_bench.py [--schools 100] [--students 100000] [--repeat 3]
                                           [--executor process|thread] [--db PATH] [--postgres URL|auto]

1. A district from the demo generator (`schoolbot demo-data`, storage/demo.py) in a SQLite file
   (kept under /tmp and reused), or a PostgreSQL database given by URL (filled when empty), or a
   throw-away local PostgreSQL cluster (`--postgres auto`, as the tests start one).
2. The raw writer: every row the district report writes (the long lists and the small tables), read
   into memory first, then written with plain xlsxwriter `write_row` in constant-memory mode. Only the
   writing is timed.
3. The report: `services.reports.build("district", …)` end to end (queries, streaming, the workbook in a
   worker process, reading the file back), while a ticker coroutine asks every 10 ms how late it
   was woken: the latency another user's update would see. Resident memory is sampled by the ticker.

Prints both timings and their ratio (goal ≤ 1.5), the memory above the process's baseline (goal
< 150 MB; the worker process's own peak is printed too), and the ticker's latency (p50 / p99 / max).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FROZEN_AT = datetime(2021, 11, 15, 9, 0, tzinfo=TZ)  # the directive's submission day, as in the tests
TICK_SECONDS = 0.010


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory now (VmRSS), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def prepare_database(
    url: str, schools: int, students: int, executor: str = "process"
) -> tuple[Any, int]:
    """Services over the bench database (reports written by `executor`), filled by the demo generator
    when empty."""
    from sqlalchemy import func, select

    from bot.texts import t
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.migrate import upgrade
    from storage.models import District, Student
    from storage.services import build_services

    engine = create_engine(url)
    await upgrade(engine)
    clock = Clock(tz=TZ)
    clock.freeze(FROZEN_AT)
    services = build_services(engine, clock, translate=t, report_executor=executor)
    async with services.sessionmaker() as session:
        existing = await session.scalar(select(func.count(Student.id)))
        district_id = await session.scalar(select(District.id).order_by(District.id).limit(1))
    if not existing:
        from storage.demo import DemoDataService
        from storage.schemas.demo import DemoDataIn

        started = time.perf_counter()
        result = await DemoDataService(services.sessionmaker, clock).generate(
            DemoDataIn(schools=schools, students=students)
        )
        district_id = result.district_id
        print(f"demo district generated in {time.perf_counter() - started:.1f} s: {result.counts}")
    return services, int(district_id)


async def report_rows(services: Any, district_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the district report writes, per sheet, as plain tuples (read before timing)."""
    from exports import reports as layout
    from storage.schemas.reports import ReportKind, ReportPeriod, ReportScope

    service = services.reports
    sheets: dict[str, list[tuple[Any, ...]]] = {}
    async with service._read_session() as session:
        scope = ReportScope.district(district_id)
        _, report_filter, resolved = await service._prepare(
            session, ReportKind.DISTRICT, scope, ReportPeriod(), "vi", None
        )
        for name in layout.STREAMS["district"]:
            statement = service._stream_statement(name, report_filter)
            key = "late" if name in layout.LATE_STREAMS else name
            rows = [tuple(row) for row in await session.execute(statement)]
            sheets.setdefault(key, []).extend(rows)
        data = await service._small_tables(session, "district", report_filter, resolved)
    for area, value in data.items():
        if isinstance(value, dict):
            for part, rows in value.items():
                if isinstance(rows, list):
                    sheets[f"{area}_{part}"] = [_plain(r) for r in rows]
        elif isinstance(value, list):
            sheets[area] = [_plain(r) for r in value]
    return sheets


def _plain(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(str(v) if isinstance(v, dict) else v for v in record.values())


def raw_write(sheets: dict[str, list[tuple[Any, ...]]], path: str) -> tuple[float, float]:
    """Plain xlsxwriter, constant-memory mode, `write_row` per row: the floor to compare against."""
    import xlsxwriter

    started = time.perf_counter()
    cpu = time.process_time()
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True, "remove_timezone": True})
    date_format = workbook.add_format({"num_format": "dd/mm/yyyy"})
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name[:31])
        sheet.set_column(0, 30, 14, date_format)
        for index, row in enumerate(rows):
            sheet.write_row(index, 0, row)
    workbook.close()
    return time.perf_counter() - started, time.process_time() - cpu


async def timed_report(services: Any, district_id: int) -> dict[str, Any]:
    """Build the district report while a ticker measures the event loop's latency and memory."""
    from storage.schemas.reports import ReportScope

    latencies: list[float] = []
    peak = {"rss": rss_mb()}
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            expected = loop.time() + TICK_SECONDS
            await asyncio.sleep(TICK_SECONDS)
            latencies.append(max(0.0, loop.time() - expected))
            peak["rss"] = max(peak["rss"], rss_mb())

    baseline = rss_mb()
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started, cpu = time.perf_counter(), time.process_time()
    report = await services.reports.build("district", ReportScope.district(district_id), prepared_by="Bench")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    await tick
    ordered = sorted(latencies)
    return {
        "seconds": elapsed,
        "cpu_main": cpu,
        "cpu_writer": report.writer_cpu_seconds,
        "writer_waited": report.writer_wait_seconds,
        "writer_peak_mb": report.writer_peak_rss_kb / 1024,
        "bytes": len(report.content),
        "rows": sum(report.rows.values()),
        "summary": report.summary,
        "rss_baseline": baseline,
        "rss_peak_above": peak["rss"] - baseline,
        "ticks": len(latencies),
        "p50_ms": 1000 * statistics.median(ordered) if ordered else 0.0,
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0,
        "max_ms": 1000 * ordered[-1] if ordered else 0.0,
    }


async def postgres_database(url: str) -> str:
    """A fresh database on the server of `url` (dropped and created again)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    admin = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text('DROP DATABASE IF EXISTS "schoolbot_bench"'))
        await connection.execute(text('CREATE DATABASE "schoolbot_bench"'))
    await admin.dispose()
    return make_url(url).set(database="schoolbot_bench").render_as_string(hide_password=False)


async def main(args: argparse.Namespace) -> None:
    url = f"sqlite+aiosqlite:///{args.db}"
    cluster = None
    if args.postgres == "auto":
        from tests.postgres import start_cluster

        cluster, reason = start_cluster()
        if cluster is None:
            raise SystemExit(f"no PostgreSQL: {reason}")
        url = await postgres_database(cluster.url)
    elif args.postgres:
        url = args.postgres
    try:
        await run(args, url)
    finally:
        if cluster is not None:
            cluster.stop()


async def run(args: argparse.Namespace, url: str) -> None:
    services, district_id = await prepare_database(url, args.schools, args.students, args.executor)
    print(f"database: {url.split('@')[-1]}  executor: {args.executor}  cores: {os.cpu_count()}")

    # Warm up (imports, connections, the catalogue) so that the first timing is not the odd one.
    await services.reports.build("timeliness", _scope(district_id))
    sheets = await report_rows(services, district_id)
    total_rows = sum(len(rows) for rows in sheets.values())
    print(f"rows in the district report: {total_rows:,} on {len(sheets)} tables")

    raw_runs, report_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(args.repeat):
            raw_runs.append(raw_write(sheets, os.path.join(tmp, f"raw{attempt}.xlsx")))
    raw_times = [wall for wall, _ in raw_runs]
    del sheets
    for _ in range(args.repeat):
        report_runs.append(await timed_report(services, district_id))
    await services.engine.dispose()

    raw = statistics.median(raw_times)
    built = statistics.median(run["seconds"] for run in report_runs)
    last = report_runs[-1]
    print(f"raw xlsxwriter (constant_memory, write_row): {raw:.2f} s  (runs: {_fmt(raw_times)})")
    runs = _fmt(r["seconds"] for r in report_runs)
    print(f"district report, end to end:                 {built:.2f} s  (runs: {runs})")
    print(f"ratio report / raw writer: {built / raw:.2f}  (goal ≤ 1.5)")
    print(
        f"memory above baseline ({last['rss_baseline']:.0f} MB): peak "
        f"{max(r['rss_peak_above'] for r in report_runs):.0f} MB in this process (goal < 150 MB); "
        + (
            f"the writer process's own peak {max(r['writer_peak_mb'] for r in report_runs):.0f} MB"
            if args.executor == "process"
            else "the writer is a thread of this process"
        )
    )
    print(
        f"CPU seconds (load-independent): raw writer {statistics.median(c for _, c in raw_runs):.2f}; "
        f"report: this process {statistics.median(r['cpu_main'] for r in report_runs):.2f} "
        f"+ writer process {statistics.median(r['cpu_writer'] for r in report_runs):.2f}; "
        f"the writer waited {statistics.median(r['writer_waited'] for r in report_runs):.2f} s for rows"
    )
    print(
        f"event loop latency while building ({last['ticks']} ticks of 10 ms): "
        f"p50 {statistics.median(r['p50_ms'] for r in report_runs):.1f} ms, "
        f"p99 {max(r['p99_ms'] for r in report_runs):.1f} ms, "
        f"max {max(r['max_ms'] for r in report_runs):.1f} ms"
    )
    print(f"workbook: {last['bytes'] / 1e6:.1f} MB, {last['rows']:,} data rows; {last['summary']}")
    with contextlib.suppress(OSError):
        print(f"load average: {os.getloadavg()[0]:.2f} (other work on the machine slows both timings)")


def _scope(district_id: int) -> Any:
    from storage.schemas.reports import ReportScope

    return ReportScope.district(district_id)


def _fmt(values: Any) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", choices=("process", "thread"), default="process")
    parser.add_argument("--db", default=None, help="SQLite file (default: /tmp/schoolbot-bench-S-N.sqlite3)")
    parser.add_argument(
        "--postgres",
        default=None,
        help="postgresql+asyncpg://… to use instead of SQLite, or 'auto' for a throw-away local cluster",
    )
    arguments = parser.parse_args()
    if arguments.db is None:
        arguments.db = (
            f"{tempfile.gettempdir()}/schoolbot-bench-{arguments.schools}-{arguments.students}.sqlite3"
        )
    asyncio.run(main(arguments))
