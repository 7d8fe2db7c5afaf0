"""Writing many rows of one table at once, by the driver: the Excel import's students and audit rows.

Core's `insert()` with many parameter sets costs, per row, SQLAlchemy's parameter processing and (with
RETURNING, to learn the new ids) multi-row INSERT statements built batch by batch. Here the ids are
reserved first (`reserve_ids`), each value goes through its column type's own bind processor — the
one Core applies, so the stored values are the same — and the rows go to the driver in one call:
PostgreSQL's COPY (asyncpg `copy_records_to_table`), SQLite's `executemany`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception classes are used
from sqlalchemy import JSON, Table, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


async def reserve_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """`count` new ids for rows of `table` about to be inserted with their id given. PostgreSQL: from
    the column's sequence, as its default would take them (safe beside concurrent writers). SQLite:
    the ids after the largest, which is what SQLite gives a rowid table itself; safe because a
    writing session begins `BEGIN IMMEDIATE` (`storage.db`) and holds the write lock to its end (and
    were another writer to take those ids first, the INSERT would fail on the primary key, never
    overwrite its rows)."""
    if count <= 0:
        return []
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        result = await connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        )
        return [int(found) for (found,) in result]
    largest = await connection.scalar(select(func.max(table.c.id)))
    first = (largest or 0) + 1
    return list(range(first, first + count))


async def insert_rows(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT `rows` (tuples of Python values of `columns`, what Core's `insert()` takes) in the
    session's transaction. A column left out gets its server-side default (the id: the next rowid or
    the sequence's value); Python-side defaults are not applied, so give every other column."""
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    processors = [
        (at, processor, not isinstance(table.c[name].type, JSON))
        for at, name in enumerate(columns)
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
    ]
    records: list[tuple[Any, ...]]
    if processors:
        # A column's values repeat (the import's instant, dates of birth, enums, flags): each distinct
        # value is processed once. Keyed by type too, since 1, 1.0 and True are equal keys. JSON
        # values (dicts) are processed each time, but for None (an audit row's empty "before").
        memos: list[dict[tuple[type, Any], Any]] = [{} for _ in processors]
        records = []
        for row in rows:
            values = list(row)
            for (at, processor, memoised), memo in zip(processors, memos, strict=True):
                value = values[at]
                if not memoised and value is not None:
                    values[at] = processor(value)
                    continue
                key = (type(value), value)
                try:
                    values[at] = memo[key]
                except KeyError:
                    values[at] = memo[key] = processor(value)
            records.append(tuple(values))
    else:
        records = [tuple(row) for row in rows]
    if dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            await driver.copy_records_to_table(table.name, columns=list(columns), records=records)
        except asyncpg.IntegrityConstraintViolationError as error:
            # What SQLAlchemy raises for the same refusal of an INSERT (a code another import took
            # meanwhile): the callers' `except IntegrityError` tells the person, as before.
            raise IntegrityError(f"COPY {table.name}", None, error) from error
        return
    quote = dialect.identifier_preparer.quote
    statement = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(table.name), ", ".join(quote(name) for name in columns), ", ".join("?" * len(columns))
    )
    await connection.exec_driver_sql(statement, records)
