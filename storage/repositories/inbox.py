"""Queries of the update inbox and the leader lease (flush only; the services own the transactions)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import InboxStatus
from storage.models import LeaderLease, UpdateInbox


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind else "sqlite"


async def database_now(session: AsyncSession) -> datetime:
    """The time the lease is measured in: the database server's on PostgreSQL (one clock for every
    machine), this machine's on SQLite (the file is on this machine)."""
    if _dialect(session) == "postgresql":
        value = await session.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


async def lease_of(
    session: AsyncSession, name: str, *, lock: bool = False, share: bool = False
) -> LeaderLease | None:
    statement = select(LeaderLease).where(LeaderLease.name == name)
    if lock or share:
        # PostgreSQL: a renewal, a takeover and a fenced write of the inbox wait for one another.
        statement = statement.with_for_update(read=share and not lock)
    return await session.scalar(statement.execution_options(populate_existing=True))


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[int]:
    """Insert the updates not yet in the inbox; the ids inserted (the others were there already)."""
    if not rows:
        return set()
    module = postgresql if _dialect(session) == "postgresql" else sqlite
    statement = (
        module.insert(UpdateInbox)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["update_id"])
        .returning(UpdateInbox.update_id)
    )
    return set((await session.scalars(statement)).all())


async def set_started(session: AsyncSession, update_ids: int | Sequence[int]) -> None:
    ids = [update_ids] if isinstance(update_ids, int) else list(update_ids)
    if ids:
        await session.execute(
            update(UpdateInbox)
            .where(UpdateInbox.update_id.in_(ids))
            .values(status=InboxStatus.HANDLING, attempts=UpdateInbox.attempts + 1)
        )


async def set_handled(session: AsyncSession, update_ids: int | Sequence[int], at: datetime) -> None:
    ids = [update_ids] if isinstance(update_ids, int) else list(update_ids)
    if ids:
        await session.execute(
            update(UpdateInbox)
            .where(UpdateInbox.update_id.in_(ids))
            .values(status=InboxStatus.HANDLED, payload=None, handled_at=at)
        )


# The same marks on SQLite's one-hop path (storage.db.SqliteDirect), values converted by the columns'
# own types.
_COLUMNS = UpdateInbox.__table__.c
_SQLITE = sqlite.dialect()
_STATUS_IN = _COLUMNS.status.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
_AT_IN = _COLUMNS.handled_at.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
_PAYLOAD_IN = _COLUMNS.payload.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
_LEASE_END_OUT = LeaderLease.__table__.c.expires_at.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None)
_INSERT_NEW = (
    "INSERT INTO update_inbox (update_id, chat_id, payload, status, attempts, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (update_id) DO NOTHING RETURNING update_id"
)


def lease_sqlite(connection: sqlite3.Connection, name: str) -> tuple[str, int, datetime] | None:
    """(holder, term, expires_at) of the lease, inside the caller's transaction."""
    sql = "SELECT holder, term, expires_at FROM leader_lease WHERE name = ?"
    row = connection.execute(sql, (name,)).fetchone()
    if row is None:
        return None
    expires_at = _LEASE_END_OUT(row[2]) if _LEASE_END_OUT is not None else row[2]
    # expires_at is NOT NULL, so its result processor gives a datetime here (its type says "or None").
    return str(row[0]), int(row[1]), cast(datetime, expires_at)


def insert_new_sqlite(connection: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> set[int]:
    """`insert_new` inside the caller's transaction."""
    assert _STATUS_IN is not None and _AT_IN is not None and _PAYLOAD_IN is not None
    new: set[int] = set()
    for row in rows:
        values = (
            row["update_id"],
            row["chat_id"],
            _PAYLOAD_IN(row["payload"]),
            _STATUS_IN(row["status"]),
            row["attempts"],
            _AT_IN(row["received_at"]),
        )
        inserted = connection.execute(_INSERT_NEW, values).fetchone()
        if inserted is not None:
            new.add(int(inserted[0]))
    return new


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def mark_sqlite(
    connection: sqlite3.Connection, started: Sequence[int], handled: Sequence[int], at: datetime
) -> None:
    """`set_started` and `set_handled` in one go, inside the caller's transaction."""
    assert _STATUS_IN is not None and _AT_IN is not None
    if started:
        connection.execute(
            "UPDATE update_inbox SET status = ?, attempts = attempts + 1 "
            f"WHERE update_id IN ({_placeholders(len(started))})",
            (_STATUS_IN(InboxStatus.HANDLING), *started),
        )
    if handled:
        connection.execute(
            "UPDATE update_inbox SET status = ?, payload = NULL, handled_at = ? "
            f"WHERE update_id IN ({_placeholders(len(handled))})",
            (_STATUS_IN(InboxStatus.HANDLED), _AT_IN(at), *handled),
        )


async def unfinished(session: AsyncSession) -> list[UpdateInbox]:
    """Pending and started updates, oldest first (Telegram's update ids grow)."""
    return list(
        await session.scalars(
            select(UpdateInbox)
            .where(UpdateInbox.status.in_([InboxStatus.PENDING, InboxStatus.HANDLING]))
            .order_by(UpdateInbox.update_id)
        )
    )


async def set_failed(session: AsyncSession, update_ids: Sequence[int], at: datetime) -> None:
    if update_ids:
        await session.execute(
            update(UpdateInbox)
            .where(UpdateInbox.update_id.in_(list(update_ids)))
            .values(status=InboxStatus.FAILED, handled_at=at)
        )


async def delete_finished(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(
        delete(UpdateInbox).where(
            UpdateInbox.status.in_([InboxStatus.HANDLED, InboxStatus.FAILED]),
            UpdateInbox.received_at < before,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(UpdateInbox.status, func.count()).group_by(UpdateInbox.status))
    return {str(status): int(count) for status, count in rows.all()}


async def last_handled(session: AsyncSession) -> tuple[int, datetime] | None:
    row = (
        await session.execute(
            select(UpdateInbox.update_id, UpdateInbox.handled_at)
            .where(UpdateInbox.status == InboxStatus.HANDLED)
            .order_by(UpdateInbox.handled_at.desc(), UpdateInbox.update_id.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), row[1]) if row is not None and row[1] is not None else None
