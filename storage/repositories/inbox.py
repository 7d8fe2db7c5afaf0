"""Queries of the update inbox and the leader lease (flush only; the services own the transactions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxStatus, LeaderLease, UpdateInbox


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


async def set_started(session: AsyncSession, update_id: int) -> None:
    await session.execute(
        update(UpdateInbox)
        .where(UpdateInbox.update_id == update_id)
        .values(status=InboxStatus.HANDLING, attempts=UpdateInbox.attempts + 1)
    )


async def set_handled(session: AsyncSession, update_id: int, at: datetime) -> None:
    await session.execute(
        update(UpdateInbox)
        .where(UpdateInbox.update_id == update_id)
        .values(status=InboxStatus.HANDLED, payload=None, handled_at=at)
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
