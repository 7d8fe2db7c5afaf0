"""Time `schoolbot demo-data` on a fresh SQLite file, with peak memory.

    .venv/bin/python bench/demo_bench.py            # 30 × 20 000 and 100 × 100 000
    .venv/bin/python bench/demo_bench.py 30:20000   # chosen sizes, SCHOOLS:STUDENTS

Each size runs in its own process (peak RSS is per process) against a new database file.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = ((30, 20_000), (100, 100_000))


def run_one(schools: int, students: int) -> dict[str, object]:
    """In a child process: migrate a fresh file, generate, report time and peak RSS as JSON."""
    import asyncio

    from storage.clock import Clock
    from storage.db import create_engine
    from storage.demo import DemoDataService
    from storage.migrate import upgrade
    from storage.schemas.demo import DemoDataIn
    from storage.services import build_services

    async def main(path: Path) -> dict[str, object]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        services = build_services(engine, Clock())
        started = time.perf_counter()
        result = await DemoDataService(services.sessionmaker, services.clock).generate(
            DemoDataIn(schools=schools, students=students)
        )
        seconds = time.perf_counter() - started
        await engine.dispose()
        return {"seconds": round(seconds, 2), "counts": result.counts}

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.sqlite3"
        figures = asyncio.run(main(path))
        figures["file_mb"] = round(path.stat().st_size / 2**20, 1)
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures.update(schools=schools, students=students)
    return figures


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(int(argv[1]), int(argv[2]))))
        return 0
    sizes = [tuple(int(n) for n in arg.split(":")) for arg in argv] or list(DEFAULT_SIZES)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for schools, students in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(schools), str(students)],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        counts = figures["counts"]
        print(
            f"demo-data --schools {schools} --students {students}: {figures['seconds']} s, "
            f"peak RSS {figures['peak_rss_mb']} MB, file {figures['file_mb']} MB; "
            f"handovers {counts['handover']}, doses {counts['vaccine_dose']}, needs {counts['need_record']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
