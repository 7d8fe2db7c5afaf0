"""Drafts of records being entered in a conversation, written on every step.

A draft is the conversation's truth: its `step` is the state the person is in, `data` the answers
so far. A draft whose conversation timed out is marked suspended and kept for /resume.

While this process leads (`bot/leader.py`), drafts are answered from memory (`DraftCache`): every
write still goes to the database at once, and the cache is changed only once it is committed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import CursorResult, bindparam, delete, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from storage.db import asyncpg_dialect, direct_postgres, direct_sqlite, shared, shared_of, when_ended
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
    "SELECT flow, step, data, updated_at, id FROM conversation_draft WHERE telegram_user_id = ? "
    "ORDER BY updated_at DESC, id DESC"
)
_UPSERT = (
    "INSERT INTO conversation_draft (telegram_user_id, flow, step, data, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (telegram_user_id, flow) DO UPDATE "
    "SET step = excluded.step, data = excluded.data, updated_at = excluded.updated_at RETURNING id"
)
# The same on PostgreSQL (`storage.db.PostgresDirect`: plain asyncpg, one round trip each).
_PG = asyncpg_dialect()
_PG_DATA_IN = _COLUMNS.data.type.dialect_impl(_PG).bind_processor(_PG)
_PG_DATA_OUT = _COLUMNS.data.type.dialect_impl(_PG).result_processor(_PG, None)
_PG_AT_IN = _COLUMNS.updated_at.type.dialect_impl(_PG).bind_processor(_PG)
_PG_SELECT_ONE = "SELECT step, data FROM conversation_draft WHERE telegram_user_id = $1 AND flow = $2"
_PG_SELECT_PERSON = (
    "SELECT flow, step, data, updated_at, id FROM conversation_draft WHERE telegram_user_id = $1 "
    "ORDER BY updated_at DESC, id DESC"
)
_PG_UPSERT = (
    "INSERT INTO conversation_draft (telegram_user_id, flow, step, data, updated_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (telegram_user_id, flow) DO UPDATE "
    "SET step = excluded.step, data = excluded.data, updated_at = excluded.updated_at RETURNING id"
)
# `shared(sessionmaker)` key: the caches of the DraftServices on that database (for `finish_sync`).
_CACHES = "draft_caches"


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


# A cached draft: step, data as the JSON text the database holds (parsed anew for every answer, so
# nobody shares a mutable dict), and the stored updated_at and id (the order of a person's drafts).
_Entry = tuple[int | None, str, Any, int]
_Person = dict[str, _Entry]
_Token = tuple[int, int]


class DraftCache:
    """The drafts of the people this process is serving, exactly as the database holds them.

    Filled by a read of all of a person's drafts (one statement); changed by this service's own
    writes once they are committed (write-through: every write still goes to the database at once, so
    a restart loses nothing); a person is dropped by any write the service cannot follow — a record's
    save that ends its draft in its own transaction (`finish_sync`: dropped inside that transaction and
    again once it ended), `suspend`, a write that failed — and whenever a read and a write of the same
    person overlap (a version per person: a read fills only when no write began meanwhile, a write
    changes the cache only when no other began after it). Only the leader handles updates, so only its
    writes change drafts while it leads; `clear` on every leader change (`bot/leader.py`) forgets what
    another instance may have written meanwhile. Off until enabled (the command line never caches).
    """

    MAX_PEOPLE = 20_000  # beyond this, the oldest filled person goes (a year of staff fits)

    def __init__(self) -> None:
        # `forget` also runs in a database thread (a finished draft's hook, `storage.db.when_ended`);
        # a person's dict is replaced, never changed, so an answer being read is never changed under it.
        self._lock = threading.Lock()
        self._people: dict[int, _Person] = {}
        self._versions: dict[int, int] = {}
        self._counter = 0
        self._epoch = 0
        self._unfollowed: set[int] = set()  # changed where no end of transaction could be awaited
        self.enabled = False
        self.hits = 0
        self.misses = 0

    def person(self, user: int) -> _Person | None:
        """The person's drafts by flow, when known (do not change the dict)."""
        if not self.enabled:
            return None
        found = self._people.get(user)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def token(self, user: int) -> _Token:
        """Taken before a read: `fill` keeps the read only if no write of the person began since."""
        with self._lock:
            return self._epoch, self._versions.get(user, 0)

    def fill(self, user: int, token: _Token, entries: _Person) -> None:
        with self._lock:
            if not self.enabled or user in self._unfollowed or token != self._current(user):
                return
            if user not in self._people and len(self._people) >= self.MAX_PEOPLE:
                self._people.pop(next(iter(self._people)))
            self._people[user] = entries

    def begin(self, user: int) -> _Token:
        """A write of the person begins: reads in flight may not fill, earlier writes not change it."""
        with self._lock:
            self._counter += 1
            self._versions[user] = self._counter
            if len(self._versions) > 2 * self.MAX_PEOPLE:  # never shrunk otherwise: start afresh
                self._reset()
            return self._epoch, self._versions.get(user, 0)

    def written(self, user: int, token: _Token, change: Callable[[_Person], _Person] | None) -> None:
        """The write that `begin` gave `token` is committed (`change` applies it to the person's
        drafts) or failed, perhaps after its commit (`change` None: the person is dropped)."""
        with self._lock:
            known = self._people.get(user)
            if change is not None and known is not None and token == self._current(user):
                self._people[user] = change(known)
            else:
                self._people.pop(user, None)

    def forget(self, user: int) -> None:
        """The person's drafts were changed by a write this cache does not follow."""
        with self._lock:
            self._counter += 1
            self._versions[user] = self._counter
            self._people.pop(user, None)

    def unfollowed(self, user: int) -> None:
        """Changed inside a transaction whose end nobody can await: never cached until `clear`."""
        with self._lock:
            self._unfollowed.add(user)
        self.forget(user)

    def clear(self) -> None:
        """Forget everyone; reads and writes in flight change nothing any more."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self._epoch += 1
        self._people, self._versions, self._unfollowed = {}, {}, set()

    def _current(self, user: int) -> _Token:
        return self._epoch, self._versions.get(user, 0)


def _sorted(person: _Person) -> list[tuple[str, _Entry]]:
    """Most recently touched first, as `ORDER BY updated_at DESC, id DESC`: the stored values
    compare as the database compares them (SQLite: its text; PostgreSQL: timestamps)."""
    return sorted(person.items(), key=lambda item: (item[1][2], item[1][3]), reverse=True)


def _cached(flow: str, entry: _Entry) -> Draft:
    return _make(flow, entry[0], json.loads(entry[1]))


def _upserted(flow: str, entry: _Entry) -> Callable[[_Person], _Person]:
    def change(person: _Person) -> _Person:
        known = person.get(flow)
        # An update keeps the row's id (RETURNING gives it either way).
        return {**person, flow: entry if known is None else (*entry[:3], known[3])}

    return change


def _deleted(flow: str | None) -> Callable[[_Person], _Person]:
    def change(person: _Person) -> _Person:
        return {} if flow is None else {k: v for k, v in person.items() if k != flow}

    return change


# A plain DELETE of the table (the ORM's bulk delete would look for the rows in the session first).
_FINISH = delete(ConversationDraft.__table__).where(
    _COLUMNS.telegram_user_id == bindparam("user"), _COLUMNS.flow == bindparam("flow")
)


def finish_sync(session: Session, telegram_user_id: int, flow: str) -> None:
    """Delete a flow's draft inside a service's own transaction (its record saved together with the
    draft's end: one transaction, on SQLite one thread hop; a refused save keeps the draft). The
    drafts' cache forgets the person now and again once the transaction has ended."""
    session.execute(_FINISH, {"user": telegram_user_id, "flow": flow})
    for cache in list(shared_of(session).get(_CACHES, ())):
        cache.forget(telegram_user_id)
        if not when_ended(session, partial(cache.forget, telegram_user_id)):
            cache.unfollowed(telegram_user_id)


class DraftService(ServiceBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = DraftCache()
        found = shared(self.sessionmaker)
        # Cached only where every write is followed: the one-hop paths, and `finish_sync` reaching
        # this cache through the sessions' shared dict.
        self._cacheable = found is not None and (
            direct_sqlite(self.sessionmaker) is not None or direct_postgres(self.sessionmaker) is not None
        )
        if found is not None:
            found.setdefault(_CACHES, weakref.WeakSet()).add(self.cache)

    def use_cache(self, on: bool) -> None:
        """Answer drafts from memory (the leader, while it leads) or not; forgets what it knew."""
        self.cache.clear()
        self.cache.enabled = on and self._cacheable

    async def save(
        self, telegram_user_id: int, flow: str, data: dict[str, Any], step: int | None = None
    ) -> None:
        """Write the draft (an upsert: two quick taps cannot collide)."""
        direct = direct_sqlite(self.sessionmaker)
        kept = {k: v for k, v in data.items() if k != SUSPENDED}
        if direct is not None:
            text = _convert(_DATA_IN, kept)
            at = _convert(_AT_IN, self.clock.now())
            values = (telegram_user_id, flow, step, text, at)

            def write(connection: sqlite3.Connection) -> int:
                row: tuple[int] = connection.execute(_UPSERT, values).fetchone()
                return row[0]

            await self._written(telegram_user_id, flow, step, text, at, direct.write(write))
            return
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            text = _convert(_PG_DATA_IN, kept)
            at = _convert(_PG_AT_IN, self.clock.now())
            values = (telegram_user_id, flow, step, text, at)
            # One statement in autocommit; written twice (a retry after a lost connection) it is the same.
            written = postgres.run(lambda connection: connection.fetchval(_PG_UPSERT, *values), retry=True)
            await self._written(telegram_user_id, flow, step, text, at, written)
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

    async def _written(
        self, user: int, flow: str, step: int | None, text: Any, at: Any, write: Awaitable[Any]
    ) -> None:
        """Await the upsert `write` (its row id); the cache follows once it is committed."""
        token = self.cache.begin(user)
        try:
            row_id = await write
        except BaseException:
            self.cache.written(user, token, None)
            raise
        if not isinstance(text, str):  # not the JSON text a read gives back: let a read fill it
            self.cache.written(user, token, None)
            return
        self.cache.written(user, token, _upserted(flow, (step, text, at, int(row_id))))

    async def _person_rows(self, user: int) -> _Person:
        """All of the person's drafts, as the cache keeps them (one read)."""
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:

            def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
                return connection.execute(_SELECT_PERSON, (user,)).fetchall()

            rows = await direct.read(read)
            return {flow: (step, data, at, row_id) for flow, step, data, at, row_id in rows}
        postgres = direct_postgres(self.sessionmaker)
        assert postgres is not None  # cached only on the one-hop paths
        found = await postgres.run(lambda connection: connection.fetch(_PG_SELECT_PERSON, user), retry=True)
        # asyncpg gives the JSON parsed (SQLAlchemy's codec): kept as text, as written.
        return {
            flow: (step, json.dumps(_convert(_PG_DATA_OUT, data)), at, row_id)
            for flow, step, data, at, row_id in found
        }

    async def _person(self, user: int) -> _Person | None:
        """The person's drafts from the cache, read into it on a miss; None when not caching."""
        cache = self.cache
        if not cache.enabled:
            return None
        known = cache.person(user)
        if known is not None:
            return known
        token = cache.token(user)
        rows = await self._person_rows(user)
        cache.fill(user, token, rows)
        return rows

    async def get(self, telegram_user_id: int, flow: str) -> Draft | None:
        person = await self._person(telegram_user_id)
        if person is not None:
            entry = person.get(flow)
            return _cached(flow, entry) if entry is not None else None
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
        person = await self._person(telegram_user_id)
        if person is not None:
            return [_cached(flow, entry) for flow, entry in _sorted(person)]
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:

            def read(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
                return connection.execute(_SELECT_PERSON, (telegram_user_id,)).fetchall()

            rows = await direct.read(read)
            return [_make(flow, step, _convert(_DATA_OUT, data)) for flow, step, data, _, _ in rows]
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            found = await postgres.run(
                lambda connection: connection.fetch(_PG_SELECT_PERSON, telegram_user_id), retry=True
            )
            return [_make(flow, step, _convert(_PG_DATA_OUT, data)) for flow, step, data, _, _ in found]
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
        # Rare (a conversation's timeout): the cache drops the person, the next read fills it again.
        token = self.cache.begin(telegram_user_id)
        try:
            async with self.sessionmaker.begin() as session:
                row = await session.scalar(
                    select(ConversationDraft).where(
                        ConversationDraft.telegram_user_id == telegram_user_id, ConversationDraft.flow == flow
                    )
                )
                if row is not None:
                    row.data = {**row.data, SUSPENDED: True}
        finally:
            self.cache.written(telegram_user_id, token, None)

    async def discard(self, telegram_user_id: int, flow: str | None = None) -> int:
        token = self.cache.begin(telegram_user_id)
        try:
            deleted = await self._discard(telegram_user_id, flow)
        except BaseException:
            self.cache.written(telegram_user_id, token, None)
            raise
        self.cache.written(telegram_user_id, token, _deleted(flow))
        return deleted

    async def _discard(self, telegram_user_id: int, flow: str | None) -> int:
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
