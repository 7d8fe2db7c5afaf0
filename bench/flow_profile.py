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
from pathlib import Path

from storage.clock import Clock
from storage.db import create_engine
from storage.migrate import upgrade
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
    await make_batch(services, world, quantity=flows + 5)
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
    await harness.stop()
    await engine.dispose()
    print(f"{updates} updates: {cpu / updates * 1000:.2f} ms CPU per update ({updates / wall:.0f} updates/s)")
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
