"""INSERT … ON CONFLICT DO UPDATE for SQLite and PostgreSQL: concurrent writers cannot collide."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base


async def upsert(
    session: AsyncSession, model: type[Base], values: dict[str, Any], *, keys: list[str], update: list[str]
) -> None:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(model).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in update}
    )
    await session.execute(statement)
