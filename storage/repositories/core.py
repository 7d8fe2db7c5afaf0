"""Plain rows for the hot path's reads (issue 17, item 3): a flow's steps read a student, a batch, a
dose or a product many times a minute and only look at their values, so they read them as Core rows
on the session's own connection instead of ORM objects. An ORM load of one student cost ~72 µs of CPU,
the same read as a Core row ~27 µs (`bench/flow_profile.py`, fifth round of docs/performance.md).

A record here is a named tuple of the table's columns (attribute names = column names, as in every
model): the same attributes the ORM object offers to code that only reads it, and the same values (the
columns' own types convert them on both paths). Nothing is tracked: a record is never written back."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import Session

from storage.db import connection_of
from storage.models import Base


def table(model: type[Base]) -> Table:
    found: Table = model.__table__  # every model is declared on a Table
    return found


@functools.cache
def record_type(model: type[Base]) -> Any:
    """The named tuple of `model`'s columns, in the table's order."""
    return namedtuple(f"{model.__name__}Record", [column.key for column in table(model).c])


def columns(*models: type[Base]) -> list[Column[Any]]:
    """Every column of each model in turn, to select them as one row (`split`)."""
    return [column for model in models for column in table(model).c]


def split(row: Any, *models: type[Base]) -> tuple[Any, ...]:
    """A row of `columns(*models)` (then anything else) as one record per model."""
    found = []
    start = 0
    for model in models:
        kind = record_type(model)
        end = start + len(kind._fields)
        found.append(kind._make(row[start:end]))
        start = end
    return tuple(found)


def record(row: Any, model: type[Base]) -> Any:
    """A row of every column of `model` as its record (None stays None)."""
    return record_type(model)._make(row) if row is not None else None


def execute(session: Session, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
    """`statement` on the session's connection: Core's execution (rows, no ORM objects), inside the
    session's transaction. Pending ORM changes are flushed first, as `session.execute` would."""
    if session.autoflush and (session.new or session.deleted or session.dirty):
        session.flush()
    return connection_of(session).execute(statement, params)


def insert(session: Session, model: type[Base], values: Mapping[str, Any]) -> Any:
    """Insert one row of `model` by Core and return it as a record with its new id: `values`, a column
    not given its Python-side default (a constant) or None — what the ORM object of the same row
    holds once flushed, so `audit.snapshot_values` of the record is `audit.snapshot` of that object.
    A column whose default is computed (a clock's time, a server default alone) must be given."""
    row: dict[str, Any] = {}
    for column in table(model).c:
        if column.key in values:
            row[column.key] = values[column.key]
        elif column.primary_key:
            continue
        elif column.default is None and column.server_default is None and column.nullable:
            row[column.key] = None
        elif column.default is not None and column.default.is_scalar:
            row[column.key] = column.default.arg  # type: ignore[attr-defined]  # a ScalarElementColumnDefault
        else:
            raise ValueError(f"{model.__name__}.{column.key}: its value must be given")
    result = execute(session, _insert(model), row)
    (new_id,) = result.inserted_primary_key
    return record_type(model)(id=new_id, **row)


@functools.cache
def _insert(model: type[Base]) -> Any:
    return sql_insert(table(model))
