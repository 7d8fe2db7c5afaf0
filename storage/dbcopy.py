"""Copy every table of one database to another (`schoolbot db copy`): SQLite → PostgreSQL when a
district outgrows the default, or back.

The target is migrated to head first; it must be empty (the migrations' seeded reference rows aside)
unless `force`, which empties it. Tables go in foreign-key order (`Base.metadata.sorted_tables`), in
batches read by primary key from one consistent read of the source, and are written in one target
transaction, ids kept; PostgreSQL's sequences are then set past the copied ids. At the end every table
is read back from the target: its row count and checksum must equal the source's.

The checksum is computed the same way on both sides, in Python, from the rows as read: datetimes as UTC
ISO, dates ISO, JSON as canonical text (SQL NULL and JSON null kept apart), bytes as their SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import JSON, String, Table, Text, bindparam, cast, func, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.backup import Refused, database_label, known_revisions

DEFAULT_BATCH = 1000
# Rows the migrations insert themselves (the vaccine products): a freshly migrated target has them, so
# they do not make it "not empty"; the source's own rows replace them, ids and edits included.
SEEDED_TABLES = frozenset({"vaccine_product"})

Progress = Callable[[str, int], Awaitable[None] | None]


class SideFailure(Exception):
    """A database error on one side of the copy: `url` says which, for the one-line message."""

    def __init__(self, url: str) -> None:
        super().__init__(database_label(url))
        self.url = url


@dataclass
class TableCopy:
    name: str
    source_rows: int
    source_checksum: str
    target_rows: int = -1
    target_checksum: str = ""

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum


@dataclass
class CopyResult:
    source: str
    target: str
    revision: str
    tables: list[TableCopy] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # tables of the source this code does not know
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(table.ok for table in self.tables)

    @property
    def rows(self) -> int:
        return sum(table.source_rows for table in self.tables)


def tables() -> list[Table]:
    from storage.models import Base

    return list(Base.metadata.sorted_tables)


# --- one normal form of a value, for the checksums -------------------------------------------------


def _normal(value: Any, is_json: bool) -> Any:
    if value is None:
        return None
    if is_json:  # read as text (see `_columns`): parsed and dumped canonically
        return [
            "json",
            json.dumps(json.loads(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")),
        ]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return ["datetime", aware.astimezone(UTC).isoformat()]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["bytes", hashlib.sha256(bytes(value)).hexdigest()]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    return value  # str, int, bool, float: JSON as they are


class Checksum:
    """SHA-256 over the rows in primary-key order, one canonical JSON line per row."""

    def __init__(self, json_columns: Sequence[bool]) -> None:
        self._hash = hashlib.sha256()
        self._json = list(json_columns)
        self.rows = 0

    def add(self, row: Sequence[Any]) -> None:
        line = json.dumps(
            [_normal(value, is_json) for value, is_json in zip(row, self._json, strict=True)],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self._hash.update(line.encode())
        self._hash.update(b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _is_json(column: Any) -> bool:
    return isinstance(column.type, JSON)


def _columns(table: Table) -> list[Any]:
    """The columns to read. JSON as its text: the drivers would parse it and turn JSON null into None."""
    return [cast(c, Text).label(c.name) if _is_json(c) else c for c in table.columns]


def _primary_key(table: Table) -> Any:
    (column,) = table.primary_key.columns  # every table of the bot has a one-column key
    return column


def _ordered_key(table: Table, dialect: str) -> Any:
    """The key to order and page by. Text keys compare byte-wise on both databases (SQLite's BINARY,
    PostgreSQL's "C"), so both sides hash their rows in the same order."""
    key = _primary_key(table)
    if dialect == "postgresql" and isinstance(key.type, String):
        return key.collate("C")
    return key


async def read_batches(
    connection: AsyncConnection, table: Table, batch: int = DEFAULT_BATCH
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The table's rows in primary-key order, `batch` at a time (keyset: each batch after the last id)."""
    position = list(table.columns).index(_primary_key(table))
    key = _ordered_key(table, connection.dialect.name)
    last: Any = None
    while True:
        statement = select(*_columns(table)).order_by(key).limit(batch)
        if last is not None:
            statement = statement.where(key > last)
        rows = (await connection.execute(statement)).all()
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        last = rows[-1][position]


async def table_checksums(
    connection: AsyncConnection, batch: int = DEFAULT_BATCH, names: Sequence[str] | None = None
) -> dict[str, tuple[int, str]]:
    """{table: (rows, checksum)} of every table of the bot (or those named), as `copy_database` counts."""
    found: dict[str, tuple[int, str]] = {}
    for table in tables():
        if names is not None and table.name not in names:
            continue
        checksum = Checksum([_is_json(c) for c in table.columns])
        async for rows in read_batches(connection, table, batch):
            for row in rows:
                checksum.add(row)
        found[table.name] = (checksum.rows, checksum.hexdigest())
    return found


# --- writing ----------------------------------------------------------------------------------------


def _insert(table: Table) -> Any:
    """INSERT of every column from `p_<name>` parameters. JSON binds with none_as_null: SQL NULL stays
    SQL NULL, and JSON null (passed as `JSON.NULL`) stays JSON null."""
    values = {}
    for column in table.columns:
        kind = JSON(none_as_null=True) if _is_json(column) else column.type
        values[column.name] = bindparam(f"p_{column.name}", type_=kind)
    return insert(table).values(values)


def _parameters(table: Table, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    names = [f"p_{c.name}" for c in table.columns]
    json_at = [i for i, c in enumerate(table.columns) if _is_json(c)]
    found = []
    for row in rows:
        values = list(row)
        for i in json_at:
            if values[i] is not None:
                parsed = json.loads(values[i])
                values[i] = JSON.NULL if parsed is None else parsed
        found.append(dict(zip(names, values, strict=True)))
    return found


async def _empty(connection: AsyncConnection, names: Sequence[str]) -> None:
    if not names:
        return
    if connection.dialect.name == "postgresql":
        quoted = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in names)
        await connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        return
    by_name = {table.name: table for table in tables()}
    for name in reversed([t.name for t in tables() if t.name in names]):  # children first
        await connection.execute(by_name[name].delete())


async def _fix_sequences(connection: AsyncConnection) -> None:
    """PostgreSQL: each `id` sequence continues after the largest copied id (1 for an empty table)."""
    if connection.dialect.name != "postgresql":
        return  # SQLite's INTEGER PRIMARY KEY continues after the largest rowid by itself
    quote = connection.dialect.identifier_preparer.quote
    for table in tables():
        key = _primary_key(table)
        sequence = await connection.scalar(select(func.pg_get_serial_sequence(table.name, key.name)))
        if sequence is None:
            continue
        await connection.execute(
            text(
                f"SELECT setval(:sequence, COALESCE(MAX({quote(key.name)}), 0) + 1, false) "
                f"FROM {quote(table.name)}"
            ),
            {"sequence": sequence},
        )


# --- the copy ---------------------------------------------------------------------------------------


@contextmanager
def _side(url: str) -> Iterator[None]:
    """Errors in the block are this side's (the CLI names its database in the line)."""
    try:
        yield
    except (Refused, SideFailure):
        raise
    except Exception as exc:
        raise SideFailure(url) from exc


@asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    from storage.db import create_engine

    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def same_database(first: str, second: str) -> bool:
    from sqlalchemy.engine import make_url

    from storage.db import sqlite_file

    a, b = sqlite_file(first), sqlite_file(second)
    if a is not None or b is not None:
        return a is not None and b is not None and a.resolve() == b.resolve()

    def where(url: str) -> tuple[str, str, str | None]:
        parsed = make_url(url)
        host = parsed.host or parsed.query.get("host") or "localhost"  # ?host=/var/run/postgresql: a socket
        port = parsed.port or parsed.query.get("port") or 5432
        return str(host), str(port), parsed.database

    return where(first) == where(second)


async def _check_source(engine: AsyncEngine, url: str) -> str:
    from storage.migrate import current_revision

    known, head = known_revisions()
    revision = await current_revision(engine)
    if revision is not None and revision not in known:
        raise Refused("error_unknown_revision", database=database_label(url), revision=revision, head=head)
    if revision != head:
        raise Refused("error_unmigrated", database=database_label(url), revision=revision, head=head)
    return head


async def _migrate_target(engine: AsyncEngine, url: str) -> None:
    from storage.migrate import current_revision, upgrade

    known, head = known_revisions()
    revision = await current_revision(engine)
    if revision is not None and revision not in known:
        raise Refused("error_unknown_revision", database=database_label(url), revision=revision, head=head)
    if revision != head:
        await upgrade(engine)


async def _counts(connection: AsyncConnection) -> dict[str, int]:
    return {
        table.name: int(await connection.scalar(select(func.count()).select_from(table)) or 0)
        for table in tables()
    }


async def _unknown_tables(connection: AsyncConnection) -> list[str]:
    names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    ours = {table.name for table in tables()} | {"alembic_version"}
    return sorted(name for name in names if name not in ours and not name.startswith("sqlite_"))


async def _report(progress: Progress | None, name: str, rows: int) -> None:
    if progress is not None:
        outcome = progress(name, rows)
        if outcome is not None:
            await outcome


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    force: bool = False,
    batch: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy every table of the source to the target and check both sides match (see the module)."""
    from storage.db import sqlite_file

    if same_database(source_url, target_url):
        raise Refused("db_copy_same_database", database=database_label(source_url))
    source_file = sqlite_file(source_url)
    if source_file is not None and not source_file.is_file():
        raise Refused("error_no_database", path=source_file)  # never create an empty source
    started = time.perf_counter()
    async with _engine(source_url) as source, _engine(target_url) as target:
        with _side(source_url):
            revision = await _check_source(source, source_url)
        with _side(target_url):
            await _migrate_target(target, target_url)
            async with target.connect() as connection:
                counts = await _counts(connection)
        filled = {name: n for name, n in counts.items() if n and name not in SEEDED_TABLES}
        if filled and not force:
            largest = sorted(filled.items(), key=lambda item: -item[1])[:4]  # the telling ones
            listed = ", ".join(f"{name} ({n})" for name, n in largest)
            listed += ", …" if len(filled) > 4 else ""
            raise Refused("db_copy_target_not_empty", database=database_label(target_url), tables=listed)
        result = CopyResult(database_label(source_url), database_label(target_url), revision)
        names = [table.name for table in tables()]
        # One read of the source for the whole copy: a consistent snapshot even if the bot still writes
        # (SQLite: a deferred BEGIN, not the writers' IMMEDIATE; PostgreSQL: REPEATABLE READ). One write
        # transaction on the target: a failed copy leaves it as it was. (Committing is the target's.)
        with _side(target_url):
            async with AsyncExitStack() as stack:
                with _side(source_url):
                    reader = await stack.enter_async_context(_read_connection(source))
                    result.skipped = await _unknown_tables(reader)
                writer = await stack.enter_async_context(target.begin())
                await _empty(writer, names if force else [n for n in names if counts.get(n)])
                for table in tables():
                    result.tables.append(
                        await _copy_table(table, reader, writer, batch, progress, source_url)
                    )
                await _fix_sequences(writer)
        # Read back what the target now holds, the same way.
        with _side(target_url):
            async with _read_connection(target) as connection:
                written = await table_checksums(connection, batch)
        for copied in result.tables:
            copied.target_rows, copied.target_checksum = written[copied.name]
    result.seconds = time.perf_counter() - started
    return result


async def _copy_table(
    table: Table,
    reader: AsyncConnection,
    writer: AsyncConnection,
    batch: int,
    progress: Progress | None,
    source_url: str,
) -> TableCopy:
    checksum = Checksum([_is_json(c) for c in table.columns])
    statement = _insert(table)
    batches = read_batches(reader, table, batch)
    while True:
        with _side(source_url):
            rows = await anext(batches, None)
        if rows is None:
            break
        for row in rows:
            checksum.add(row)
        await writer.execute(statement, _parameters(table, rows))
        await _report(progress, table.name, checksum.rows)
    return TableCopy(table.name, checksum.rows, checksum.hexdigest())


@asynccontextmanager
async def _read_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in one read transaction (see `copy_database`)."""
    from storage.db import _DEFERRED_BEGIN

    if engine.dialect.name == "sqlite":
        bound = engine.execution_options(**{_DEFERRED_BEGIN: True})
    else:
        bound = engine.execution_options(isolation_level="REPEATABLE READ")
    async with bound.connect() as connection, connection.begin():
        yield connection
