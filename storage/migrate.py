"""Run Alembic migrations from async code (the CLI, `make run`, tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


class MigrationError(RuntimeError):
    """A migration left rows that break a foreign key; it was rolled back."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _sqlite_pragma(connection: Connection, statement: str) -> None:
    """Run a PRAGMA outside any transaction (where `foreign_keys` takes effect)."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # an open Connection holds its DBAPI connection
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """One transaction for a migration run; on SQLite with foreign keys off while it runs.

    SQLite's batch mode changes a table by copying it, dropping the old one and renaming the copy. With
    foreign keys on, that DROP would delete the rows of ON DELETE CASCADE children (every dose of every
    student) or fail on RESTRICT children. So, as SQLite's documentation prescribes: keys off outside
    the transaction, migrate, `PRAGMA foreign_key_check` before committing, keys on again.
    """
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            yield
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise MigrationError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _run(connection: Connection, action: Callable[[Config], None]) -> None:
    with migration_transaction(connection):
        action(alembic_config(connection))


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as connection:
        await connection.run_sync(_run, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(_run, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
