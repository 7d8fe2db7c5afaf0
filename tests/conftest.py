"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from `TEST_POSTGRES_URL` or a cluster the session starts itself (tests/postgres.py).
Where none can be started, its tests are skipped with the reason shown — except in CI (`CI=true`),
where that is a failure, never a silent skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.event_loop import LoopFactory, loop_factory
from bot.texts import t
from storage.clock import Clock
from storage.db import create_engine
from storage.migrate import upgrade
from storage.models import Base
from storage.schemas.reports import ReportCover
from storage.services import Services, build_services
from tests.chat import harness  # noqa: F401  (the chat driver fixture)
from tests.postgres import start_cluster

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# The directive's round: schools submit by 15:30 on Monday 15 Nov 2021. Tests live on that morning.
FROZEN_AT = datetime(2021, 11, 15, 9, 0, tzinfo=TZ)
# Reference data the migration seeds; kept when tables are emptied between tests.
KEEP_TABLES = {"vaccine_product", "alembic_version"}

BACKENDS = ["sqlite", "postgres"]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, LoopFactory]:
    """Every async test on the event loop production runs on (`bot.event_loop`: uvloop where
    installed); `TEST_EVENT_LOOP=asyncio` runs the suite on asyncio's own loop instead."""
    name = "asyncio" if os.environ.get("TEST_EVENT_LOOP") == "asyncio" else "uvloop"
    return {name: loop_factory(name)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("backend") == "postgres":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session, copied for each test (fast and isolated)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()  # the last connection to close folds the WAL into the file

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the session."""
    url = os.environ.get("TEST_POSTGRES_URL")
    cluster = None
    if not url:
        cluster, reason = start_cluster()
        if cluster is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"PostgreSQL is required in CI: {reason}")
            pytest.skip(f"PostgreSQL tests skipped: {reason}")
        url = cluster.url
    database = f"schoolbot_test_{uuid.uuid4().hex[:8]}"
    admin_url = url

    async def create() -> None:
        admin = create_async_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{database}"'))
        await admin.dispose()
        engine = create_async_engine(_with_database(url, database), poolclass=NullPool)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(create())
    yield _with_database(url, database)
    if cluster is not None:
        cluster.stop()


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "test.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def engine(db_url: str, backend: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    if backend == "postgres":
        tables = [t.name for t in Base.metadata.sorted_tables if t.name not in KEEP_TABLES]
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    clock = Clock(tz=TZ)
    clock.freeze(FROZEN_AT)
    return clock


@pytest.fixture
def report_executor() -> str:
    """Where `services.reports` writes workbooks: the bot's worker process unless a module overrides this
    fixture or a test parametrizes it (`@pytest.mark.parametrize("report_executor", ["thread"])`)."""
    return "process"


@pytest.fixture
def report_cover() -> ReportCover:
    """The district report's cover `services.reports` is built with: the defaults (no settings) unless a
    test parametrizes it (`@pytest.mark.parametrize("report_cover", [ReportCover(head_name=…)])`)."""
    return ReportCover()


@pytest.fixture
def report_max_concurrent() -> int:
    """How many reports `services.reports` writes at once: the bot's 2 unless a test parametrizes it."""
    return 2


@pytest.fixture
def services(
    engine: AsyncEngine,
    clock: Clock,
    report_executor: str,
    report_cover: ReportCover,
    report_max_concurrent: int,
) -> Services:
    return build_services(
        engine,
        clock,
        translate=t,
        report_executor=report_executor,
        report_cover=report_cover,
        report_max_concurrent=report_max_concurrent,
    )
