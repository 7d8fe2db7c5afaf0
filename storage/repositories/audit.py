"""The audit log: who changed what, when, with the row before and after as JSON."""

from __future__ import annotations

import enum
import operator
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import RowMapping, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.enums import AuditAction
from storage.models import AuditLog, Base, School, utcnow
from storage.repositories import bulk, core

# Values JSON takes as they are: one type look-up instead of four isinstance checks (a 50,000-row
# import snapshots 700,000 values).
_PLAIN = frozenset({str, int, float, bool, type(None)})
_AUDIT_TABLE: Table = AuditLog.__table__


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, enum.Enum):
        return value._value_  # the attribute behind `.value`, without the descriptor's cost
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def snapshot(row: Base) -> dict[str, Any]:
    """The row's column values as JSON-ready data."""
    mapper = inspect(row).mapper
    return {column.key: _jsonable(getattr(row, column.key)) for column in mapper.column_attrs}


@cache
def _column_keys(model: type[Base]) -> tuple[str, ...]:
    return tuple(column.key for column in inspect(model).column_attrs)


def snapshot_values(model: type[Base], values: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    """What `snapshot` gives for a row of `model` holding `values` — a plain row's `_mapping`, or the
    parameters of a bulk INSERT with the new id — without an ORM object. A column missing from
    `values` is None. (Attribute keys are the column names in every model.)"""
    snapshot = {}
    for key in _column_keys(model):
        value = values.get(key)
        snapshot[key] = value if type(value) in _PLAIN else _jsonable(value)  # no call for most values
    return snapshot


def entry(
    *,
    at: datetime,
    actor_id: int | None,
    action: AuditAction,
    entity: str,
    entity_id: int | str,
    school_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> dict[str, Any]:
    """One audit row as parameters of `record_many`: the row `record` would write."""
    return {
        "at": at,
        "actor_id": actor_id,
        "action": action,
        "entity": entity,
        "entity_id": str(entity_id),
        "school_id": school_id,
        "before": before,
        "after": after,
    }


def values_entry(
    model: type[Base],
    action: AuditAction,
    values: Mapping[str, Any] | RowMapping,
    *,
    before: dict[str, Any] | None,
    actor_id: int | None,
    at: datetime,
    school_id: int | None,
) -> dict[str, Any]:
    """The audit row of a record of `model` holding `values` (its "id" among them), written without an
    ORM object: `after` is `snapshot_values`, which is `snapshot` of the same values."""
    return entry(
        at=at,
        actor_id=actor_id,
        action=action,
        entity=model.__tablename__,
        entity_id=values["id"],
        school_id=school_id,
        before=before,
        after=snapshot_values(model, values),
    )


# The columns `entry` gives, in the order `record_many` sends them (the id is the database's).
ENTRY_COLUMNS = ("at", "actor_id", "action", "entity", "entity_id", "school_id", "before", "after")


async def record_many(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """Write audit rows (`entry`) by the driver in one call (`bulk.insert_rows`: COPY on PostgreSQL,
    executemany on SQLite): a bulk write audits every record it changed without an ORM object, a
    flush or SQLAlchemy's parameter handling per row. Stored as Core's INSERT would store them."""
    if entries:
        row_of = operator.itemgetter(*ENTRY_COLUMNS)
        rows = [row_of(entry) for entry in entries]
        await bulk.insert_rows(session, _AUDIT_TABLE, ENTRY_COLUMNS, rows)


async def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    action: AuditAction,
    row: Base,
    before: dict[str, Any] | None = None,
    school_id: int | None = None,
) -> AuditLog:
    """Write one audit row. Call after the change is flushed (so the row has its id)."""
    return await session.run_sync(
        record_sync, actor_id=actor_id, action=action, row=row, before=before, school_id=school_id
    )


def record_sync(
    session: Session,
    *,
    actor_id: int | None,
    action: AuditAction,
    row: Base,
    before: dict[str, Any] | None = None,
    school_id: int | None = None,
) -> AuditLog:
    after = None if action is AuditAction.DELETE else snapshot(row)
    if action is AuditAction.DELETE and before is None:
        before = snapshot(row)
    identity = inspect(row).identity
    entity_id = ",".join(str(part) for part in identity) if identity else str(getattr(row, "id", ""))
    if school_id is None:
        # A school's own changes belong to its history too.
        school_id = row.id if isinstance(row, School) else getattr(row, "school_id", None)
    entry = AuditLog(
        actor_id=actor_id,
        action=action,
        entity=type(row).__tablename__,
        entity_id=entity_id,
        school_id=school_id,
        before=before,
        after=after,
    )
    session.add(entry)
    session.flush()
    return entry


def record_core_sync(
    session: Session,
    *,
    actor_id: int | None,
    model: type[Base],
    record: Any,
    school_id: int | None,
) -> None:
    """`record_sync` of a row just created (AuditAction.CREATE) that is a plain record of `model`
    (`core.insert`), written by Core: the same audit row (`snapshot_values` is `snapshot` of the same
    values), without an ORM object or a flush."""
    values = record._asdict()
    core.insert(
        session,
        AuditLog,
        values_entry(
            model,
            AuditAction.CREATE,
            values,
            before=None,
            actor_id=actor_id,
            at=utcnow(),
            school_id=school_id,
        ),
    )


async def record_event(
    session: AsyncSession,
    *,
    action: AuditAction,
    entity: str,
    entity_id: str,
    at: datetime,
    after: dict[str, Any] | None = None,
    actor_id: int | None = None,
    school_id: int | None = None,
) -> AuditLog:
    """Write one audit row about something that is not a row (a wrong invite code), at the service's
    clock (`at`), so that counting recent events follows the same time as the rules do."""
    entry = AuditLog(
        at=at,
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        school_id=school_id,
        after=after,
    )
    session.add(entry)
    await session.flush()
    return entry


async def event_times(
    session: AsyncSession, entity: str, entity_id: str, *, since: datetime, limit: int
) -> list[datetime]:
    """When the newest `limit` audit rows of (entity, entity_id) after `since` were written, newest first."""
    result = await session.scalars(
        select(AuditLog.at)
        .where(AuditLog.entity == entity, AuditLog.entity_id == entity_id, AuditLog.at > since)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .limit(limit)
    )
    return list(result)


async def history(session: AsyncSession, entity: str, entity_id: str | int) -> list[AuditLog]:
    result = await session.scalars(
        select(AuditLog)
        .where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id))
        .order_by(AuditLog.id)
    )
    return list(result)
