"""Time the Excel import: a 50,000-row student list and a 10,000-row vaccine file, with peak memory.

    .venv/bin/python bench/import_bench.py                 # both files, on a fresh SQLite file each
    .venv/bin/python bench/import_bench.py students:20000  # chosen sizes, KIND:ROWS
    .venv/bin/python bench/import_bench.py --postgres      # on a throw-away PostgreSQL cluster
    BENCH_DATABASE_URL=postgresql+asyncpg://… .venv/bin/python bench/import_bench.py  # a server of yours

`BENCH_DATABASE_URL` names an empty database (migrated here); without it each run gets a new SQLite file.

Each file runs in its own process (peak RSS is per process). Phases, each timed on its own:
- read: python-calamine reads the workbook and the table is found (`exports.reader.read_table`), in
  the capped worker process (`exports.upload_worker`: its start-up included, its peak RSS reported);
- check: read + every row validated and compared with the database (what the bot answers with);
- annotated: the checked copy with one rejected row in ten (the vaccine file only: doses of
  students not on the list);
- import: read + check again + write, in one transaction (what «Nhập N dòng hợp lệ» does);
- again: the same file a second time (every row unchanged, nothing written).
Each phase reports wall seconds, rows/s, CPU seconds (all threads) and the peak RSS so far.
The clock is frozen on 15 Nov 2021 (the directive's round), so the generated dates are valid.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_RUNS = (("students", 50_000), ("doses", 10_000))
FAMILY = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Gia", "Hoàng", "Thanh", "Bảo", "Quốc", "Thu", "Anh", "Đức"]
GIVEN = [
    "An",
    "Bình",
    "Châu",
    "Dũng",
    "Giang",
    "Hà",
    "Hải",
    "Hân",
    "Khang",
    "Linh",
    "Mai",
    "Nam",
    "Phúc",
    "Quân",
]
SCHOOL_CODE = "79785999"


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


class LoopLag:
    """The longest the event loop was held while the block ran: a heartbeat that wakes every 5 ms and
    notes how late it woke (what every other chat's reply waits, at most). `worst` is wall time (it
    includes waiting for a core on a busy machine); `worst_cpu` the CPU time the loop's thread spent
    between two beats, i.e. the longest piece of work that did not yield (steady on a busy machine)."""

    PERIOD = 0.005

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_cpu = 0.0
        self._task: Any = None

    async def _beat(self) -> None:
        import asyncio

        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.PERIOD)
            self.worst = max(self.worst, time.perf_counter() - before - self.PERIOD)
            self.worst_cpu = max(self.worst_cpu, time.thread_time() - cpu)

    async def __aenter__(self) -> LoopLag:
        import asyncio

        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio
        import contextlib

        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def student_rows(count: int, seed: int = 1) -> list[list[Any]]:
    """A ministry-style list: STT, code, name, date of birth, gender, class (grades 1–9)."""
    rng = random.Random(seed)
    rows: list[list[Any]] = []
    for index in range(count):
        grade = 1 + index % 9
        born = date(2021 - grade - 5, 1, 1) + timedelta(days=rng.randrange(365))
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        gender = "Nam" if rng.random() < 0.5 else "Nữ"
        rows.append([index + 1, f"79{index:08d}", name, born, gender, f"{grade}A{1 + index % 12}"])
    return rows


def write_xlsx(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Danh sách")
    dates = workbook.add_format({"num_format": "dd/mm/yyyy"})
    sheet.write_string(0, 0, "DANH SÁCH (tệp thử tốc độ)")
    sheet.write_row(2, 0, header)
    for r, row in enumerate(rows, start=3):
        for c, value in enumerate(row):
            if isinstance(value, date):
                sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), dates)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            else:
                sheet.write_string(r, c, str(value))
    workbook.close()


def run_one(kind: str, rows: int) -> dict[str, Any]:
    import asyncio
    from zoneinfo import ZoneInfo

    from exports.annotate import annotated_copy
    from exports.upload_worker import read_in_worker
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.migrate import upgrade
    from storage.models import District, School, SchoolLevel
    from storage.schemas.imports import ImportScope, ReadLimits
    from storage.services import build_services

    limits = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)

    async def main(directory: Path) -> dict[str, Any]:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}"
        engine = create_engine(url)
        await upgrade(engine)
        clock = Clock(tz=ZoneInfo("Asia/Ho_Chi_Minh"))
        clock.freeze(datetime(2021, 11, 15, 9, 0, tzinfo=clock.tz))
        services = build_services(engine, clock)
        async with services.sessionmaker.begin() as session:
            district = District(code="BENCH", name="Huyện thử tốc độ")
            session.add(district)
            await session.flush()
            school = School(
                district_id=district.id, code=SCHOOL_CODE, name="Trường thử", level=SchoolLevel.COMBINED
            )
            session.add(school)
            await session.flush()
            scope = ImportScope(school_id=school.id, school_code=SCHOOL_CODE)
        students = student_rows(rows if kind == "students" else max(rows, 10_000))
        header = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Giới tính", "Lớp"]
        path = directory / "hoc-sinh.xlsx"
        write_xlsx(path, header, students)
        if kind == "doses":
            await services.imports.import_file(
                scope, path.name, path.read_bytes(), limits, actor_id=None
            )  # the students first, untimed
            rng = random.Random(2)
            products = ["Comirnaty (Pfizer-BioNTech)", "Vero Cell (Sinopharm)"]
            dose_rows = []
            for index, student in enumerate(students[:rows]):
                code = student[1] if index % 10 else f"80{index:08d}"  # one in ten: not on the list
                given = date(2021, 10, 1) + timedelta(days=rng.randrange(40))
                dose_rows.append([index + 1, code, student[2], 1, given, rng.choice(products), "Tại trường"])
            header = ["STT", "Mã học sinh", "Họ và tên", "Mũi thứ", "Ngày tiêm", "Loại vắc xin", "Nơi tiêm"]
            path = directory / "tiem-vac-xin.xlsx"
            write_xlsx(path, header, dose_rows)
        content = path.read_bytes()
        cpu: list[float] = [0.0]
        figures: dict[str, Any] = {
            "kind": kind,
            "rows": rows,
            "file_mb": round(len(content) / 2**20, 2),
            "database": engine.dialect.name,
            "rss_before_mb": rss_mb(),
        }

        def timed(name: str, seconds: float) -> None:
            """Wall time, rows/s, CPU time of the phase (all threads), and the peak RSS so far."""
            figures[f"{name}_s"] = round(seconds, 2)
            figures[f"{name}_rows_per_s"] = round(rows / seconds) if seconds else None
            now = time.process_time()
            figures[f"{name}_cpu_s"] = round(now - cpu[0], 2)
            figures[f"{name}_peak_rss_mb"] = rss_mb()
            cpu[0] = now

        cpu[0] = time.process_time()
        started = time.perf_counter()
        outcome = await read_in_worker(content, path.name, limits)
        timed("read", time.perf_counter() - started)
        assert outcome.table is not None, outcome.error
        assert len(outcome.table.data_rows) == rows, len(outcome.table.data_rows)
        figures["read_worker_peak_rss_mb"] = round(outcome.peak_rss_kb / 1024, 1)
        del outcome
        started = time.perf_counter()
        async with LoopLag() as lag:
            check = await services.imports.check(scope, path.name, content, limits)
        timed("check", time.perf_counter() - started)
        figures["check_loop_lag_max_s"] = round(lag.worst, 3)
        figures["check_loop_lag_max_cpu_s"] = round(lag.worst_cpu, 3)
        if check.needs_annotated_copy:
            started = time.perf_counter()
            copy = annotated_copy(check, "vi")
            timed("annotated", time.perf_counter() - started)
            figures["annotated_mb"] = round(len(copy) / 2**20, 2)
            del copy
        del check
        started = time.perf_counter()
        async with LoopLag() as lag:
            result = await services.imports.import_file(scope, path.name, content, limits, actor_id=None)
        timed("import", time.perf_counter() - started)
        figures["import_loop_lag_max_s"] = round(lag.worst, 3)
        figures["import_loop_lag_max_cpu_s"] = round(lag.worst_cpu, 3)
        figures["counts"] = result.as_dict()["counts"]
        del result
        started = time.perf_counter()
        async with LoopLag() as lag:
            again = await services.imports.check(scope, path.name, content, limits)
        timed("again", time.perf_counter() - started)
        figures["again_loop_lag_max_s"] = round(lag.worst, 3)
        figures["again_loop_lag_max_cpu_s"] = round(lag.worst_cpu, 3)
        figures["again_unchanged"] = again.counts.unchanged
        await engine.dispose()
        return figures

    with tempfile.TemporaryDirectory() as directory:
        figures = asyncio.run(main(Path(directory)))
    figures["peak_rss_mb"] = rss_mb()
    return figures


def _postgres_database(cluster_url: str, name: str) -> str:
    """A new empty database on the throw-away cluster; its URL."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    async def create() -> None:
        admin = create_async_engine(cluster_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(create())
    return make_url(cluster_url).set(database=name).render_as_string(hide_password=False)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(argv[1], int(argv[2]))))
        return 0
    cluster = None
    if "--postgres" in argv:
        # The tests' throw-away cluster (tests/postgres.py: initdb + pg_ctl, fsync off).
        from tests.postgres import start_cluster

        argv = [a for a in argv if a != "--postgres"]
        cluster, reason = start_cluster()
        if cluster is None:
            print(reason, file=sys.stderr)
            return 2
    runs = [(a.split(":")[0], int(a.split(":")[1])) for a in argv] or list(DEFAULT_RUNS)
    try:
        for kind, rows in runs:
            env = dict(os.environ)
            if cluster is not None:
                env["BENCH_DATABASE_URL"] = _postgres_database(cluster.url, f"bench_{kind}_{rows}")
            child = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(rows)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
                check=False,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return child.returncode
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            print(json.dumps(figures, ensure_ascii=False))
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
