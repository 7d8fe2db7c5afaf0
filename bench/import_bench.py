"""Time the Excel import: a 50,000-row student list and a 10,000-row vaccine file, with peak memory,
against the raw reader (python-calamine + pydantic) on the same file.

    .venv/bin/python bench/import_bench.py                 # both files, on a fresh SQLite file each
    .venv/bin/python bench/import_bench.py students:20000  # chosen sizes, KIND:ROWS
    .venv/bin/python bench/import_bench.py --repeat 3      # each file three times (noisy machine)
    .venv/bin/python bench/import_bench.py --postgres      # on a throw-away PostgreSQL cluster
    BENCH_DATABASE_URL=postgresql+asyncpg://… .venv/bin/python bench/import_bench.py  # a server of yours

`BENCH_DATABASE_URL` names a database (migrated here); without it each run gets a new SQLite file. Every
run makes its own district, school and student codes and deletes what it wrote at the end, so the same
database takes any number of runs (and one left half-way by a killed run is in nobody's way).

The files are written first, by this process; each file is then imported by a process of its own (peak
RSS is per process, and the file's generation is not in it). Phases, each timed on its own:
- raw: python-calamine reads the sheet and pydantic validates every row into a model of the columns'
  plain types (`TypeAdapter(list[Model])`), in another process: what reading the file costs at least;
- read: python-calamine reads the workbook and the table is found (`exports.reader.read_table`), in
  the capped worker process (`exports.upload_worker`: started ahead, as the bot keeps one ready; its
  peak RSS reported);
- check: read + every row validated and compared with the database (what the bot answers with);
  `check_vs_raw` is its rows/s over the raw rows/s;
- annotated: the checked copy with one rejected row in ten (the vaccine file only: doses of
  students not on the list);
- import: read + check again + write, in one transaction (what «Nhập N dòng hợp lệ» does); `write_s`
  is the write alone (the plan's `apply`: INSERTs, UPDATEs, audit rows), `write_rows_per_s` the rows
  written per second of it;
- again: the same file a second time (every row unchanged, nothing written).
Each phase reports wall seconds, rows/s, CPU seconds (all threads) and the peak RSS so far.
The clock is frozen on 15 Nov 2021 (the directive's round), so the generated dates are valid.
"""

from __future__ import annotations

import io
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
STUDENT_HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Giới tính", "Lớp"]
DOSE_HEADER = ["STT", "Mã học sinh", "Họ và tên", "Mũi thứ", "Ngày tiêm", "Loại vắc xin", "Nơi tiêm"]


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


def student_rows(count: int, tag: str = "79", seed: int = 1) -> list[list[Any]]:
    """A ministry-style list: STT, code (`tag` and a number), name, date of birth, gender, class (grades
    1–9)."""
    rng = random.Random(seed)
    rows: list[list[Any]] = []
    for index in range(count):
        grade = 1 + index % 9
        born = date(2021 - grade - 5, 1, 1) + timedelta(days=rng.randrange(365))
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        gender = "Nam" if rng.random() < 0.5 else "Nữ"
        rows.append([index + 1, f"{tag}{index:08d}", name, born, gender, f"{grade}A{1 + index % 12}"])
    return rows


def dose_rows(students: list[list[Any]], count: int, tag: str) -> list[list[Any]]:
    """One dose per student; one row in ten a student not on the list (rejected)."""
    rng = random.Random(2)
    products = ["Comirnaty (Pfizer-BioNTech)", "Vero Cell (Sinopharm)"]
    rows = []
    for index, student in enumerate(students[:count]):
        code = student[1] if index % 10 else f"X{tag}{index:08d}"
        given = date(2021, 10, 1) + timedelta(days=rng.randrange(40))
        rows.append([index + 1, code, student[2], 1, given, rng.choice(products), "Tại trường"])
    return rows


def write_files(directory: Path, kind: str, rows: int, tag: str) -> tuple[Path, Path | None]:
    """(the file to import, the student list to import first, untimed, for doses)."""
    students = student_rows(rows if kind == "students" else max(rows, 10_000), tag)
    students_path = directory / "hoc-sinh.xlsx"
    write_xlsx(students_path, STUDENT_HEADER, students)
    if kind == "students":
        return students_path, None
    doses_path = directory / "tiem-vac-xin.xlsx"
    write_xlsx(doses_path, DOSE_HEADER, dose_rows(students, rows, tag))
    return doses_path, students_path


def raw_baseline(kind: str, path: Path) -> dict[str, Any]:
    """python-calamine + pydantic on the file, nothing else: the sheet read into Python values, every
    data row validated into a model of the columns' plain types in one `TypeAdapter(list[…])` call.
    Run in a process of its own (`--raw`), best of three."""
    from pydantic import BaseModel, TypeAdapter
    from python_calamine import CalamineWorkbook

    class StudentRow(BaseModel):
        number: int
        code: str
        full_name: str
        date_of_birth: date
        gender: str
        class_name: str

    class DoseRow(BaseModel):
        number: int
        code: str
        full_name: str
        dose_number: int
        given_on: date
        product: str
        place: str

    model: type[BaseModel] = StudentRow if kind == "students" else DoseRow
    names = list(model.model_fields)
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    content = path.read_bytes()
    best = float("inf")
    count = 0
    for _ in range(3):
        started = time.perf_counter()
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(0).to_python()
        count = len(adapter.validate_python([dict(zip(names, row, strict=True)) for row in sheet[3:]]))
        best = min(best, time.perf_counter() - started)
    return {"raw_s": round(best, 3), "raw_rows_per_s": round(count / best), "raw_peak_rss_mb": rss_mb()}


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


def run_one(kind: str, rows: int, path: Path, students_path: Path | None, tag: str) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    from bot import event_loop
    from bot.import_texts import annotated_copy
    from bot.settings import Settings
    from exports.upload_worker import prestart, read_in_worker
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.enums import SchoolLevel
    from storage.migrate import upgrade
    from storage.models import District, School
    from storage.schemas.imports import ImportScope, ReadLimits
    from storage.services import build_services
    from storage.services import imports as imports_service

    limits = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
    # The write alone: the time spent in the plan's `apply` (the import's INSERTs, UPDATEs, audit),
    # wall and CPU (this process's threads: the event loop's and the database driver's).
    writing = [0.0, 0.0]

    def timing(apply: Any) -> Any:
        async def timed(self: Any, session: Any, actor_id: int | None) -> None:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                await apply(self, session, actor_id)
            finally:
                writing[0] += time.perf_counter() - started
                writing[1] += time.process_time() - cpu

        return timed

    for plan in imports_service.PLANS.values():
        plan.apply = timing(plan.apply)  # type: ignore[method-assign]

    async def main(directory: Path) -> dict[str, Any]:
        # The bot keeps a reading process started ahead of each upload (`upload_worker.prestart`):
        # the first one is started here, as a running bot has one ready.
        prestart()
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{directory / 'bench.sqlite3'}"
        engine = create_engine(url)
        await upgrade(engine)
        clock = Clock(tz=ZoneInfo("Asia/Ho_Chi_Minh"))
        clock.freeze(datetime(2021, 11, 15, 9, 0, tzinfo=clock.tz))
        services = build_services(engine, clock)
        async with services.sessionmaker.begin() as session:
            # Codes of this run only: a database that kept an earlier run's rows takes this one too.
            district = District(code=f"BENCH-{tag}", name=f"Huyện thử tốc độ {tag}")
            session.add(district)
            await session.flush()
            school = School(
                district_id=district.id, code=f"BENCH-{tag}", name="Trường thử", level=SchoolLevel.COMBINED
            )
            session.add(school)
            await session.flush()
            scope = ImportScope(school_id=school.id, school_code=school.code)
            ids = (district.id, school.id)
        try:
            return await phases(services, scope, engine.dialect.name)
        finally:
            await clean_up(services, *ids)
            await engine.dispose()

    async def phases(services: Any, scope: Any, database: str) -> dict[str, Any]:
        if students_path is not None:
            await services.imports.import_file(
                scope, students_path.name, students_path.read_bytes(), limits, actor_id=None
            )  # the students first, untimed
        content = path.read_bytes()
        cpu: list[float] = [0.0, 0.0]  # this process's, its reaped children's
        figures: dict[str, Any] = {
            "kind": kind,
            "rows": rows,
            "file_mb": round(len(content) / 2**20, 2),
            "database": database,
            "rss_before_mb": rss_mb(),
        }

        def children_cpu() -> float:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime

        def timed(name: str, seconds: float) -> None:
            """Wall time, rows/s, CPU time of the phase (all threads), the CPU time of the reading
            process it used (its start-up included, though done ahead), and the peak RSS so far."""
            figures[f"{name}_s"] = round(seconds, 2)
            figures[f"{name}_rows_per_s"] = round(rows / seconds) if seconds else None
            now = time.process_time()
            figures[f"{name}_cpu_s"] = round(now - cpu[0], 2)
            figures[f"{name}_worker_cpu_s"] = round(children_cpu() - cpu[1], 2)
            figures[f"{name}_peak_rss_mb"] = rss_mb()
            cpu[0], cpu[1] = now, children_cpu()

        cpu[0], cpu[1] = time.process_time(), children_cpu()
        started = time.perf_counter()
        outcome = await read_in_worker(content, path.name, limits)
        timed("read", time.perf_counter() - started)
        assert outcome.table is not None, outcome.error
        assert len(outcome.table.data_rows) == rows, len(outcome.table.data_rows)
        figures["read_worker_s"] = round(outcome.seconds, 2)
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
        writing[0] = writing[1] = 0.0
        started = time.perf_counter()
        async with LoopLag() as lag:
            result = await services.imports.import_file(scope, path.name, content, limits, actor_id=None)
        timed("import", time.perf_counter() - started)
        figures["import_loop_lag_max_s"] = round(lag.worst, 3)
        figures["import_loop_lag_max_cpu_s"] = round(lag.worst_cpu, 3)
        figures["counts"] = result.as_dict()["counts"]
        written = result.counts.to_write
        figures["write_s"] = round(writing[0], 2)
        figures["write_cpu_s"] = round(writing[1], 2)
        figures["write_rows_per_s"] = round(written / writing[0]) if writing[0] else None
        del result
        started = time.perf_counter()
        async with LoopLag() as lag:
            again = await services.imports.check(scope, path.name, content, limits)
        timed("again", time.perf_counter() - started)
        figures["again_loop_lag_max_s"] = round(lag.worst, 3)
        figures["again_loop_lag_max_cpu_s"] = round(lag.worst_cpu, 3)
        figures["again_unchanged"] = again.counts.unchanged
        return figures

    with tempfile.TemporaryDirectory() as directory:
        # On the event loop the bot runs on (`EVENT_LOOP`, uvloop by default).
        figures = event_loop.run(main(Path(directory)), Settings().event_loop)
    figures["peak_rss_mb"] = rss_mb()
    return figures


async def clean_up(services: Any, district_id: int, school_id: int) -> None:
    """Delete what the run wrote (its school's doses, students, audit rows, the school, the district)."""
    from sqlalchemy import delete, select

    from storage.models import AuditLog, District, School, Student, VaccineDose

    async with services.sessionmaker.begin() as session:
        students = select(Student.id).where(Student.school_id == school_id).scalar_subquery()
        await session.execute(delete(VaccineDose).where(VaccineDose.student_id.in_(students)))
        await session.execute(delete(Student).where(Student.school_id == school_id))
        await session.execute(delete(AuditLog).where(AuditLog.school_id == school_id))
        await session.execute(delete(School).where(School.id == school_id))
        await session.execute(delete(District).where(District.id == district_id))


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


def summary(figures: dict[str, Any]) -> str:
    """One line to read: raw reader, check and its ratio, whole import, write, peak RSS."""
    return (
        f"{figures['kind']} {figures['rows']} on {figures['database']}: "
        f"raw calamine+pydantic {figures['raw_rows_per_s']} rows/s; "
        f"check {figures['check_s']} s ({figures['check_rows_per_s']} rows/s, "
        f"{figures['check_vs_raw']}× raw); "
        f"import {figures['import_s']} s ({figures['import_rows_per_s']} rows/s), "
        f"of which write {figures['write_s']} s ({figures['write_rows_per_s']} rows/s, "
        f"CPU {figures['write_cpu_s']} s); CPU check {figures['check_cpu_s']} s, "
        f"import {figures['import_cpu_s']} s; "
        f"again {figures['again_s']} s; peak RSS {figures['peak_rss_mb']} MB"
    )


def _child(argv: list[str]) -> dict[str, Any]:
    if argv[0] == "--raw":
        return raw_baseline(argv[1], Path(argv[2]))
    kind, rows, path, students, tag = argv[1:6]
    return run_one(kind, int(rows), Path(path), Path(students) if students else None, tag)


def _run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    if child.returncode != 0:
        raise RuntimeError(child.stderr)
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    if argv[:1] in (["--child"], ["--raw"]):
        print(json.dumps(_child(argv)))
        return 0
    repeat = 1
    if "--repeat" in argv:
        at = argv.index("--repeat")
        repeat = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
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
        env = dict(os.environ)
        if cluster is not None:
            env["BENCH_DATABASE_URL"] = _postgres_database(cluster.url, "bench")
        for kind, rows in runs:
            for _ in range(repeat):
                tag = f"{random.randrange(10**6):06d}"
                with tempfile.TemporaryDirectory() as directory:
                    path, students = write_files(Path(directory), kind, rows, tag)
                    raw = _run_child(["--raw", kind, str(path)], env)
                    figures = _run_child(
                        ["--child", kind, str(rows), str(path), str(students or ""), tag], env
                    )
                figures.update(raw)
                figures["check_vs_raw"] = round(figures["check_rows_per_s"] / raw["raw_rows_per_s"], 2)
                print(json.dumps(figures, ensure_ascii=False))
                print(summary(figures), file=sys.stderr)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
