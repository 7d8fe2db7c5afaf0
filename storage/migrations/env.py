"""Alembic environment: runs on a connection handed in by `storage.migrate`, or builds its own."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from storage.database_url import database_url

    return database_url()  # Alembic's own command line: DATABASE_URL as the bot reads it


async def _run_with_own_engine() -> None:
    from storage.db import create_engine

    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_configure_in_transaction)
    await engine.dispose()


def _configure_in_transaction(connection: Connection) -> None:
    from storage.migrate import migration_transaction

    with migration_transaction(connection):
        _configure(connection)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_with_own_engine())
