"""CPU of one update of a flow, in-process (no HTTP, no rate limiter): where the time goes.

    .venv/bin/python bench/flow_profile.py [--flows 40] [--profile out.prof]

One teacher of the test world runs `--flows` whole handovers (a batch, a student typed and picked,
gift, today, no photo, confirm) through the application's update queue, the Bot API answered
in-process by bot.fakeapi.FakeBotApi. Prints the process CPU per update and, with `--profile`, writes
a cProfile of the run and prints its top functions by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from storage.clock import Clock
from storage.db import create_engine, direct_sqlite
from storage.migrate import upgrade
from storage.models import Handover
from storage.services import build_services
from tests.chat import Harness, make_settings
from tests.factories import make_world
from tests.test_handover_flow import make_batch


async def run(flows: int, profile: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="flow-profile-"))
    url = f"sqlite+aiosqlite:///{folder / 'p.sqlite3'}"
    engine = create_engine(url)
    await upgrade(engine)
    services = build_services(engine, Clock())
    world = await make_world(services)
    # One device per batch: each flow hands the next batch's device to the same student (one student
    # gets one device per batch), so every flow saves a record instead of meeting a refusal.
    for _ in range(flows + 1):
        await make_batch(services, world, quantity=1)
    harness = Harness(services, make_settings(url))
    await harness.start()
    teacher = harness.person("teacher")

    async def one() -> int:
        await teacher.send("/handover")
        await teacher.tap(teacher.buttons()[0])
        await teacher.send("nguyen van an")
        await teacher.tap(teacher.buttons()[0])
        for _ in range(3):  # gift, today, no photo
            await teacher.tap(teacher.buttons()[0])
        await teacher.tap(teacher.buttons()[0])  # confirm (or confirm again after the warning)
        return 8

    await one()  # warm up: imports, caches, the first connection
    statements: Counter[str] = Counter()
    direct = direct_sqlite(services.sessionmaker)
    direct_before = direct.calls if direct is not None else 0

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[" ".join(statement.split())[:70]] += 1

    profiler = cProfile.Profile() if profile else None
    updates = 0
    began_cpu, began = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(flows):
        updates += await one()
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - began_cpu, time.perf_counter() - began
    async with services.sessionmaker() as session:
        saved = await session.scalar(select(func.count()).select_from(Handover))
    await harness.stop()
    await engine.dispose()
    print(f"{updates} updates: {cpu / updates * 1000:.2f} ms CPU per update ({updates / wall:.0f} updates/s)")
    print(f"{saved} handovers saved of {flows + 1} flows")
    if direct is not None:
        hops = (direct.calls - direct_before) / updates
        print(f"{hops:.2f} one-hop calls per update (storage.db.SqliteDirect)")
    total = sum(statements.values())
    kinds = "\n  ".join(f"{k} {v / updates:.2f}" for k, v in statements.most_common(12))
    print(f"{total / updates:.2f} statements per update through SQLAlchemy:\n  {kinds}")
    if profiler:
        profiler.dump_stats(profile)
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=40)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()
    asyncio.run(run(args.flows, args.profile))


if __name__ == "__main__":
    main()
