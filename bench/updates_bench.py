"""Throughput of update handling with Bot API latency: one update at a time vs per-chat concurrency.

    .venv/bin/python bench/updates_bench.py [--updates 400] [--chats 200] [--latency 0.02]

Every update is a `/me` from one of `--chats` registered people; each reply is a sendMessage that
takes `--latency` seconds in the fake Bot API (bot.fakeapi.FakeBotApi). Prints updates per second for
PTB's sequential processing and for bot.app.PerChatUpdateProcessor on a temporary SQLite database.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from telegram import Update
from telegram.ext import AIORateLimiter, SimpleUpdateProcessor
from telegram.request import HTTPXRequest

from bot.app import PerChatUpdateProcessor, build_application
from bot.fakeapi import FakeBotApi
from bot.settings import Settings
from storage.clock import Clock
from storage.db import create_engine
from storage.enums import Role
from storage.migrate import upgrade
from storage.models import District, Staff
from storage.services import build_services


async def run(updates: int, chats: int, latency: float, concurrent: bool, folder: Path) -> float:
    url = f"sqlite+aiosqlite:///{folder / ('c' if concurrent else 's')}.sqlite3"
    engine = create_engine(url)
    await upgrade(engine)
    services = build_services(engine, Clock())
    async with services.sessionmaker.begin() as session:
        district = District(code="NB", name="Nhà Bè")
        session.add(district)
        await session.flush()
        session.add_all(
            Staff(
                telegram_user_id=10_000 + i,
                full_name=f"Cán bộ {i}",
                role=Role.DEPUTY_HEAD,
                district_id=district.id,
            )
            for i in range(chats)
        )
    api = FakeBotApi(latency=latency)
    settings = Settings(_env_file=None, telegram_bot_token=api.token, database_url=url)  # type: ignore[call-arg]
    app = build_application(
        settings,
        services,
        request=HTTPXRequest(httpx_kwargs={"transport": api.transport()}, connection_pool_size=256),
        rate_limiter=AIORateLimiter(overall_max_rate=0, group_max_rate=0),
    )
    if not concurrent:
        app._update_processor = SimpleUpdateProcessor(1)  # PTB's default: one update at a time
    people = [api.user(10_000 + i, f"P{i}") for i in range(chats)]
    async with app:
        await app.start()
        started = time.perf_counter()
        for n in range(updates):
            await app.update_queue.put(
                Update.de_json(api.incoming_message(people[n % chats], text="/me"), app.bot)
            )
        while sum(1 for c in api.calls if c.method == "sendMessage") < updates:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await app.stop()
    await engine.dispose()
    return updates / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    assert PerChatUpdateProcessor  # the application's default processor
    with tempfile.TemporaryDirectory() as folder:
        sequential = await run(args.updates, args.chats, args.latency, False, Path(folder))
        concurrent = await run(args.updates, args.chats, args.latency, True, Path(folder))
    print(f"{args.updates} updates from {args.chats} chats, Bot API latency {args.latency * 1000:.0f} ms")
    print(f"one at a time:         {sequential:8.1f} updates/s")
    print(f"per-chat concurrency:  {concurrent:8.1f} updates/s  ({concurrent / sequential:.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
