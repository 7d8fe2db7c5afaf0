"""CPU of one update of a flow, in-process (no HTTP, no rate limiter): where the time goes.

    .venv/bin/python bench/flow_profile.py [--flows 40] [--flow both] [--trace] [--profile out.prof]
        [--database-url URL]

One teacher of the test world runs `--flows` whole flows through the application's update queue, the
Bot API answered in-process by bot.fakeapi.FakeBotApi, pressing what bench/load_bench.py presses:
/handover (a programme batch, a student's code typed and the student picked, gift, today, no photo,
confirm) and /vaccine (the code typed and picked, the next dose, today, the first product, the first
place, confirm), each flow for a student of its own, every flow saving a record. `--flow` runs one of
them only. Prints the process CPU per update, statements per update through SQLAlchemy and calls on
SQLite's one-hop path; `--trace` lists the statements of each step of the last flow of each kind;
`--profile` writes a cProfile of the run and prints its top functions. `--database-url` (or
BENCH_DATABASE_URL; emptied first) instead of a temporary SQLite file, e.g. PostgreSQL:

    .venv/bin/python bench/pg_cluster.py -- .venv/bin/python bench/flow_profile.py --flows 30
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.pool import Pool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.clock import Clock
from storage.db import create_engine, direct_postgres, direct_sqlite
from storage.enums import Gender, PriorityGroup
from storage.migrate import upgrade
from storage.models import Handover, Student, VaccineDose
from storage.services import Services, build_services
from storage.text import fold
from tests.chat import Harness, Person, make_settings
from tests.factories import World, make_world
from tests.test_handover_flow import make_batch

FLOWS = ("handover", "vaccine")


async def add_students(services: Services, world: World, count: int) -> list[str]:
    """Students with no records, one per flow (codes BP00001…), as the load bench's demo district."""
    codes = [f"BP{n:05d}" for n in range(1, count + 1)]
    async with services.sessionmaker.begin() as session:
        session.add_all(
            Student(
                school_id=world.primary_school_id,
                code=code,
                full_name=f"Học Sinh {n}",
                search_name=fold(f"Học Sinh {n}"),
                date_of_birth=date(2012, 1, 1),
                gender=Gender.FEMALE,
                grade=4,
                class_name="4A1",
                priority_group=PriorityGroup.POOR,
            )
            for n, code in enumerate(codes, 1)
        )
    return codes


async def handover(teacher: Person, code: str) -> int:
    await teacher.send("/handover")
    await teacher.tap(teacher.buttons()[0])  # the batch
    await teacher.send(code)
    for _ in range(4):  # the student, gift, today, no photo
        await teacher.tap(teacher.buttons()[0])
    await teacher.tap(teacher.buttons()[0])  # confirm
    return 8


async def vaccine(teacher: Person, code: str) -> int:
    await teacher.send("/vaccine")
    await teacher.send(code)
    for _ in range(5):  # the student, the dose, today, the product, the place
        await teacher.tap(teacher.buttons()[0])
    await teacher.tap(teacher.buttons()[0])  # confirm
    return 8


async def empty(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def run(
    flows: int, kinds: tuple[str, ...], trace: bool, profile: str, url: str, draft_cache: bool = True
) -> None:
    if url:
        if not url.startswith("postgresql"):
            raise SystemExit("--database-url: a PostgreSQL URL (SQLite is a temporary file of its own)")
        await empty(url)
    else:
        folder = Path(tempfile.mkdtemp(prefix="flow-profile-"))
        url = f"sqlite+aiosqlite:///{folder / 'p.sqlite3'}"
    engine = create_engine(url)
    await upgrade(engine)
    services = build_services(engine, Clock())
    # As the leader runs (bot/leader.py): drafts answered from memory, unless --no-draft-cache.
    services.drafts.use_cache(draft_cache)
    world = await make_world(services)
    await make_batch(services, world, quantity=999, source="program")
    codes = iter(await add_students(services, world, (flows + 2) * len(kinds)))
    harness = Harness(services, make_settings(url))
    await harness.start()
    teacher = harness.person("teacher")
    steps = {"handover": handover, "vaccine": vaccine}

    for kind in kinds:  # warm up: imports, caches, the first connections
        await steps[kind](teacher, next(codes))
    statements: Counter[str] = Counter()  # through the sessions (aiosqlite)
    in_hops: Counter[str] = Counter()  # inside one-hop calls (storage.db.read_core / write_core)
    step_log: list[str] = []
    direct = direct_sqlite(services.sessionmaker)
    direct_before = direct.calls if direct is not None else 0
    direct_cpu = direct.cpu if direct is not None else 0.0
    postgres = direct_postgres(services.sessionmaker)
    postgres_before = postgres.calls if postgres is not None else 0

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split())
        # The one-hop path's SQLAlchemy connections are made on an engine of no URL of its own.
        session = bool(conn.engine.url.database)
        (statements if session else in_hops)[text[:70]] += 1
        step_log.append(("" if session else "(one-hop) ") + text[:110])

    checkouts = 0  # connections taken from a pool (a session's, or the one-hop path's engine)

    @event.listens_for(Pool, "checkout")
    def _checkout(*_: Any) -> None:
        nonlocal checkouts
        checkouts += 1

    profiler = cProfile.Profile() if profile else None
    updates = 0
    began_cpu, began = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(flows):
        for kind in kinds:
            updates += await steps[kind](teacher, next(codes))
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
    checked_out = checkouts
    postgres_calls = postgres.calls - postgres_before if postgres is not None else 0
    counted_statements, counted_in_hops = Counter(statements), Counter(in_hops)
    if trace:
        await traced(services, teacher, kinds, steps, codes, step_log, direct)
    async with services.sessionmaker() as session:
        saved = {
            "handover": await session.scalar(select(func.count()).select_from(Handover)),
            "vaccine": await session.scalar(select(func.count()).select_from(VaccineDose)),
        }
    await harness.stop()
    await engine.dispose()
    print(f"{updates} updates: {cpu / updates * 1000:.2f} ms CPU per update ({updates / wall:.0f} updates/s)")
    print(", ".join(f"{saved[k]} {k} records saved of {flows + 1 + trace} flows" for k in kinds))
    if direct is not None:
        hops = (direct.calls - direct_before) / updates
        in_threads = (direct.cpu - direct_cpu) / updates * 1000
        where = "storage.db.SqliteDirect"
        print(f"{hops:.2f} one-hop calls per update ({where}): {in_threads:.2f} ms CPU in its threads")
    if postgres is not None:
        print(f"{postgres_calls / updates:.2f} plain asyncpg calls per update (storage.db.PostgresDirect)")
    print(f"{checked_out / updates:.2f} connection checkouts per update")
    for title, counted in (
        ("through SQLAlchemy sessions", counted_statements),
        ("inside one-hop calls", counted_in_hops),
    ):
        total = sum(counted.values())
        kinds_text = "\n  ".join(f"{k} {v / updates:.2f}" for k, v in counted.most_common(14))
        print(f"{total / updates:.2f} statements per update {title}:\n  {kinds_text}")
    if profiler:
        profiler.dump_stats(profile)
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


async def traced(
    services: Services,
    teacher: Person,
    kinds: tuple[str, ...],
    steps: dict[str, Any],
    codes: Any,
    step_log: list[str],
    direct: Any,
) -> None:
    """One more flow of each kind, the statements and one-hop calls of each update printed."""
    for kind in kinds:
        print(f"--- {kind}: statements through SQLAlchemy and one-hop calls of each update")
        hops = direct.calls if direct is not None else 0
        cpu = direct.cpu if direct is not None else 0.0
        step_log.clear()
        number = 0

        async def mark(label: str) -> None:
            nonlocal hops, number, cpu
            number += 1
            now, cpu_now = (direct.calls, direct.cpu) if direct is not None else (0, 0.0)
            spent = (cpu_now - cpu) * 1000
            calls = f"{now - hops} one-hop calls ({spent:.2f} ms CPU)"
            print(f"{number}. {label}: {calls}; {len(step_log)} statements")
            for line in step_log:
                print(f"     {line}")
            step_log.clear()
            hops, cpu = now, cpu_now

        code = next(codes)
        if kind == "handover":
            await teacher.send("/handover")
            await mark("/handover")
            await teacher.tap(teacher.buttons()[0])
            await mark("batch")
            await teacher.send(code)
            await mark("code typed")
            for label in ("student", "gift", "today", "no photo", "confirm"):
                await teacher.tap(teacher.buttons()[0])
                await mark(label)
        else:
            await teacher.send("/vaccine")
            await mark("/vaccine")
            await teacher.send(code)
            await mark("code typed")
            for label in ("student", "dose", "today", "product", "place", "confirm"):
                await teacher.tap(teacher.buttons()[0])
                await mark(label)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=40)
    parser.add_argument("--flow", choices=("both", *FLOWS), default="both")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--profile", default="")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--no-draft-cache", action="store_true", help="every draft read from the database")
    args = parser.parse_args()
    kinds = FLOWS if args.flow == "both" else (args.flow,)
    asyncio.run(
        run(
            args.flows,
            kinds,
            args.trace,
            args.profile,
            args.database_url,
            draft_cache=not args.no_draft_cache,
        )
    )


if __name__ == "__main__":
    main()
