"""Drafts of records being entered in a conversation, written on every step.

A draft is the conversation's truth: its `step` is the state the person is in, `data` the answers
so far. A draft whose conversation timed out is marked suspended and kept for /resume.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import CursorResult, bindparam, delete, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from storage.db import asyncpg_dialect, direct_postgres, direct_sqlite
from storage.models import ConversationDraft
from storage.repositories.upsert import upsert
from storage.services.base import ServiceBase
from storage.services.persisted import SUSPENDED

# The hot path on SQLite (`storage.db.SqliteDirect`): plain statements, values converted by the
# columns' own SQLAlchemy types, so rows read and written either way are the same.
_COLUMNS = ConversationDraft.__table__.c
_SQLITE = sqlite.dialect()
_DATA_IN = _COLUMNS.data.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
_DATA_OUT = _COLUMNS.data.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None)
_AT_IN = _COLUMNS.updated_at.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
_SELECT_ONE = "SELECT step, data FROM conversation_draft WHERE telegram_user_id = ? AND flow = ?"
_SELECT_PERSON = (
    "SELECT flow, step, data FROM conversation_draft WHERE telegram_user_id = ? "
    "ORDER BY updated_at DESC, id DESC"
)
_UPSERT = (
    "INSERT INTO conversation_draft (telegram_user_id, flow, step, data, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (telegram_user_id, flow) DO UPDATE "
    "SET step = excluded.step, data = excluded.data, updated_at = excluded.updated_at"
)
# The same on PostgreSQL (`storage.db.PostgresDirect`: plain asyncpg, one round trip each).
_PG = asyncpg_dialect()
_PG_DATA_IN = _COLUMNS.data.type.dialect_impl(_PG).bind_processor(_PG)
_PG_DATA_OUT = _COLUMNS.data.type.dialect_impl(_PG).result_processor(_PG, None)
_PG_AT_IN = _COLUMNS.updated_at.type.dialect_impl(_PG).bind_processor(_PG)
_PG_SELECT_ONE = "SELECT step, data FROM conversation_draft WHERE telegram_user_id = $1 AND flow = $2"
_PG_SELECT_PERSON = (
    "SELECT flow, step, data FROM conversation_draft WHERE telegram_user_id = $1 "
    "ORDER BY updated_at DESC, id DESC"
)
_PG_UPSERT = (
    "INSERT INTO conversation_draft (telegram_user_id, flow, step, data, updated_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (telegram_user_id, flow) DO UPDATE "
    "SET step = excluded.step, data = excluded.data, updated_at = excluded.updated_at"
)


class Draft(BaseModel):
    flow: str
    step: int | None
    data: dict[str, Any]
    suspended: bool


def _draft(row: ConversationDraft) -> Draft:
    return _make(row.flow, row.step, row.data)


def _make(flow: str, step: int | None, data: dict[str, Any] | None) -> Draft:
    data = dict(data or {})
    suspended = bool(data.pop(SUSPENDED, False))
    # model_construct: the values come from our own table (pydantic's checks cost more than the read).
    return Draft.model_construct(flow=flow, step=step, data=data, suspended=suspended)


def _convert(processor: Any, value: Any) -> Any:
    return processor(value) if processor is not None else value


# A plain DELETE of the table (the ORM's bulk delete would look for the rows in the session first).
_FINISH = delete(ConversationDraft.__table__).where(
    _COLUMNS.telegram_user_id == bindparam("user"), _COLUMNS.flow == bindparam("flow")
)


def finish_sync(session: Session, telegram_user_id: int, flow: str) -> None:
    """Delete a flow's draft inside a service's own transaction (its record saved together with the
    draft's end: one transaction, on SQLite one thread hop; a refused save keeps the draft)."""
    session.execute(_FINISH, {"user": telegram_user_id, "flow": flow})


class DraftService(ServiceBase):
    async def save(
        self, telegram_user_id: int, flow: str, data: dict[str, Any], step: int | None = None
    ) -> None:
        """Write the draft (an upsert: two quick taps cannot collide)."""
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:
            values = (
                telegram_user_id,
                flow,
                step,
                _convert(_DATA_IN, {k: v for k, v in data.items() if k != SUSPENDED}),
                _convert(_AT_IN, self.clock.now()),
            )
            await direct.write(lambda connection: connection.execute(_UPSERT, values))
            return
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            values = (
                telegram_user_id,
                flow,
                step,
                _convert(_PG_DATA_IN, {k: v for k, v in data.items() if k != SUSPENDED}),
                _convert(_PG_AT_IN, self.clock.now()),
            )
            # One statement in autocommit; written twice (a retry after a lost connection) it is the same.
            await postgres.run(lambda connection: connection.execute(_PG_UPSERT, *values), retry=True)
            return
        async with self.sessionmaker.begin() as session:
            await upsert(
                session,
                ConversationDraft,
                {
                    "telegram_user_id": telegram_user_id,
                    "flow": flow,
                    "step": step,
                    "data": {k: v for k, v in data.items() if k != SUSPENDED},
                    "updated_at": self.clock.now(),
                },
                keys=["telegram_user_id", "flow"],
                update=["step", "data", "updated_at"],
            )

    async def get(self, telegram_user_id: int, flow: str) -> Draft | None:
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:

            def read(connection: sqlite3.Connection) -> tuple[Any, ...] | None:
                row: tuple[Any, ...] | None
                row = connection.execute(_SELECT_ONE, (telegram_user_id, flow)).fetchone()
                return row

            found = await direct.read(read)
            return _make(flow, found[0], _convert(_DATA_OUT, found[1])) if found is not None else None
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            row = await postgres.run(
                lambda connection: connection.fetchrow(_PG_SELECT_ONE, telegram_user_id, flow), retry=True
            )
            return _make(flow, row[0], _convert(_PG_DATA_OUT, row[1])) if row is not None else None
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(ConversationDraft.step, ConversationDraft.data).where(
                        ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                    )
                )
            ).first()
            return _make(flow, row[0], row[1]) if row is not None else None

    async def of_person(self, telegram_user_id: int) -> list[Draft]:
        """Every draft of the person, most recently touched first (one read: a flow's entry needs its
        own draft and whether another flow is open)."""
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:

            def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
                return connection.execute(_SELECT_PERSON, (telegram_user_id,)).fetchall()

            rows = await direct.read(read)
            return [_make(flow, step, _convert(_DATA_OUT, data)) for flow, step, data in rows]
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            found = await postgres.run(
                lambda connection: connection.fetch(_PG_SELECT_PERSON, telegram_user_id), retry=True
            )
            return [_make(flow, step, _convert(_PG_DATA_OUT, data)) for flow, step, data in found]
        async with self.sessionmaker() as session:
            result = await session.execute(
                select(ConversationDraft.flow, ConversationDraft.step, ConversationDraft.data)
                .where(ConversationDraft.telegram_user_id == telegram_user_id)
                .order_by(ConversationDraft.updated_at.desc(), ConversationDraft.id.desc())
            )
            return [_make(flow, step, data) for flow, step, data in result.all()]

    async def load(self, telegram_user_id: int, flow: str) -> dict[str, Any] | None:
        draft = await self.get(telegram_user_id, flow)
        return draft.data if draft else None

    async def latest(self, telegram_user_id: int, *, suspended_only: bool = False) -> Draft | None:
        """The person's most recently touched draft."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationDraft)
                .where(ConversationDraft.telegram_user_id == telegram_user_id)
                .order_by(ConversationDraft.updated_at.desc(), ConversationDraft.id.desc())
            )
            for row in rows:
                draft = _draft(row)
                if draft.step is not None and (draft.suspended or not suspended_only):
                    return draft
            return None

    async def active_flows(self, telegram_user_id: int) -> list[str]:
        """Flows the person is in the middle of (a step, not paused by a timeout), newest first."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(ConversationDraft)
                .where(
                    ConversationDraft.telegram_user_id == telegram_user_id,
                    ConversationDraft.step.is_not(None),
                )
                .order_by(ConversationDraft.updated_at.desc(), ConversationDraft.id.desc())
            )
            return [row.flow for row in rows if not row.data.get(SUSPENDED)]

    async def suspend(self, telegram_user_id: int, flow: str) -> None:
        """Keep the draft for /resume without restoring its conversation on restart."""
        async with self.sessionmaker.begin() as session:
            row = await session.scalar(
                select(ConversationDraft).where(
                    ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                )
            )
            if row is not None:
                row.data = {**row.data, SUSPENDED: True}

    async def discard(self, telegram_user_id: int, flow: str | None = None) -> int:
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:
            sql = "DELETE FROM conversation_draft WHERE telegram_user_id = ?"
            values: tuple[Any, ...] = (telegram_user_id,)
            if flow is not None:
                sql, values = sql + " AND flow = ?", (telegram_user_id, flow)
            return await direct.write(lambda connection: connection.execute(sql, values).rowcount)
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            pg_sql = "DELETE FROM conversation_draft WHERE telegram_user_id = $1"
            pg_values: tuple[Any, ...] = (telegram_user_id,)
            if flow is not None:
                pg_sql, pg_values = pg_sql + " AND flow = $2", (telegram_user_id, flow)
            status: str = await postgres.run(lambda connection: connection.execute(pg_sql, *pg_values))
            return int(status.rsplit(" ", 1)[-1])  # "DELETE n"
        async with self.sessionmaker.begin() as session:
            query = delete(ConversationDraft).where(ConversationDraft.telegram_user_id == telegram_user_id)
            if flow is not None:
                query = query.where(ConversationDraft.flow == flow)
            # A DELETE's result is a CursorResult (the rows it deleted); execute() is typed for any statement.
            deleted = cast(CursorResult[Any], await session.execute(query))
            return deleted.rowcount or 0
