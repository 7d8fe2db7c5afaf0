"""The update inbox: updates are written here before Telegram is told they were received, and handled
from here, so a killed process loses none and handles each once.

- `receive`: a batch of updates, written in one transaction, fenced by the leader's lease; the ids new
  to the inbox come back (an update Telegram delivers again is not handled twice).
- `started` / `handled`: around each update's handling. An update whose handling was started twice
  without finishing ended the process twice: `recover` marks it failed instead of trying a third time.
- `recover`: what a new leader handles first, oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.db import asyncpg_dialect, direct_postgres, direct_sqlite
from storage.enums import InboxStatus
from storage.models import UpdateInbox
from storage.repositories import inbox as repo
from storage.services.base import ServiceBase
from storage.services.lease import Fence, LeaseLost

# Handling started this many times without finishing: the update is given up (a poison update).
MAX_ATTEMPTS = 2
# Telegram keeps an unconfirmed update 24 hours: finished rows older than this can never come again.
KEEP_FINISHED = timedelta(days=2)

# PostgreSQL's hot path (storage.db.PostgresDirect: plain asyncpg, one statement, one round trip), values
# converted by the columns' own types. The marks: `set_started` then `set_handled` in one UPDATE (an
# id in both lists ends handled with its attempt counted, as the two statements in turn left it).
_PG = asyncpg_dialect()
_COLUMNS = UpdateInbox.__table__.c
_PG_STATUS_IN = _COLUMNS.status.type.dialect_impl(_PG).bind_processor(_PG)
_PG_AT_IN = _COLUMNS.handled_at.type.dialect_impl(_PG).bind_processor(_PG)
_PG_PAYLOAD_IN = _COLUMNS.payload.type.dialect_impl(_PG).bind_processor(_PG)
_PG_MARK = (
    "UPDATE update_inbox SET "
    "status = CASE WHEN update_id = ANY($2::bigint[]) THEN $4 ELSE $3 END, "
    "attempts = attempts + CASE WHEN update_id = ANY($1::bigint[]) THEN 1 ELSE 0 END, "
    "payload = CASE WHEN update_id = ANY($2::bigint[]) THEN NULL ELSE payload END, "
    "handled_at = CASE WHEN update_id = ANY($2::bigint[]) THEN $5 ELSE handled_at END "
    "WHERE update_id = ANY($1::bigint[]) OR update_id = ANY($2::bigint[])"
)
# Receiving: the lease check (the lease row locked FOR SHARE, so a takeover waits for this insert, as
# in a session's transaction) and the insert of what is new, in one statement. `held` is NULL
# unfenced; false when the lease is no longer ours (then nothing was inserted).
_PG_INSERT_ROWS = (
    "INSERT INTO update_inbox (update_id, chat_id, payload, status, attempts, received_at) "
    "SELECT u.update_id, u.chat_id, u.payload, $4, 0, $5 "
    "FROM unnest($1::bigint[], $2::bigint[], $3::json[]) AS u(update_id, chat_id, payload) "
)
_PG_RECEIVE = (
    "WITH new AS (" + _PG_INSERT_ROWS + "ON CONFLICT (update_id) DO NOTHING RETURNING update_id) "
    "SELECT NULL::boolean, ARRAY(SELECT update_id FROM new)"
)
_PG_RECEIVE_FENCED = (
    "WITH held AS (SELECT name FROM leader_lease WHERE name = $6 AND holder = $7 AND term = $8 "
    "AND expires_at > clock_timestamp() FOR SHARE), "
    "new AS (" + _PG_INSERT_ROWS + "WHERE EXISTS (SELECT FROM held) "
    "ON CONFLICT (update_id) DO NOTHING RETURNING update_id) "
    "SELECT EXISTS (SELECT FROM held), ARRAY(SELECT update_id FROM new)"
)


def _convert(processor: Any, value: Any) -> Any:
    return processor(value) if processor is not None else value


@dataclass(frozen=True)
class InboxUpdate:
    update_id: int
    chat_id: int | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Received:
    update_id: int
    chat_id: int | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class InboxSummary:
    pending: int
    handling: int
    failed: int
    last_handled_id: int | None
    last_handled_at: datetime | None


class InboxService(ServiceBase):
    async def receive(self, updates: Sequence[Received], fence: Fence | None = None) -> list[int]:
        """Write the updates not yet in the inbox; their ids, in the given order. With `fence`, only
        while that lease is still held (else `LeaseLost`, nothing written)."""
        if not updates:
            return []
        now = self.clock.now()
        rows = [
            {
                "update_id": u.update_id,
                "chat_id": u.chat_id,
                "payload": u.payload,
                "status": InboxStatus.PENDING,
                "attempts": 0,
                "received_at": now,
            }
            for u in updates
        ]
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:
            # SQLite: the lease check and the insert in one thread hop; the lease's clock is this
            # machine's there (`repo.database_now`).

            def write(connection: sqlite3.Connection) -> set[int] | None:
                if fence is not None:
                    lease = repo.lease_sqlite(connection, fence.name)
                    held = lease is not None and lease[:2] == (fence.holder, fence.term)
                    if not held or lease is None or lease[2] <= datetime.now(UTC):
                        return None
                return repo.insert_new_sqlite(connection, rows)

            inserted = await direct.write(write)
            if inserted is None:
                assert fence is not None
                raise LeaseLost(fence.name)
            new = inserted
        elif (postgres := direct_postgres(self.sessionmaker)) is not None:
            values: list[Any] = [
                [u.update_id for u in updates],
                [u.chat_id for u in updates],
                [_convert(_PG_PAYLOAD_IN, u.payload) for u in updates],
                _convert(_PG_STATUS_IN, InboxStatus.PENDING),
                _convert(_PG_AT_IN, now),
            ]
            sql = _PG_RECEIVE if fence is None else _PG_RECEIVE_FENCED
            if fence is not None:
                values += [fence.name, fence.holder, fence.term]
            # Written twice (a retry after a lost connection) the second finds the first's rows, and
            # `receive` answers which ids were new: not retried, the poller asks again.
            held, inserted_ids = await postgres.run(lambda connection: connection.fetchrow(sql, *values))
            if held is False:
                assert fence is not None
                raise LeaseLost(fence.name)
            new = set(inserted_ids)
        else:
            async with self.sessionmaker.begin() as session:
                if fence is not None:
                    lease = await repo.lease_of(session, fence.name, share=True)
                    db_now = await repo.database_now(session)
                    if (
                        lease is None
                        or lease.holder != fence.holder
                        or lease.term != fence.term
                        or lease.expires_at <= db_now
                    ):
                        raise LeaseLost(fence.name)
                new = await repo.insert_new(session, rows)
        return [u.update_id for u in updates if u.update_id in new]

    async def started(self, update_id: int) -> None:
        await self.mark(started=[update_id])

    async def handled(self, update_id: int) -> None:
        await self.mark(handled=[update_id])

    async def mark(self, *, started: Sequence[int] = (), handled: Sequence[int] = ()) -> None:
        """Mark updates started and others handled, in one transaction (bot/inbox.py gathers the marks
        of the updates being handled at the same moment into one call)."""
        if not started and not handled:
            return
        now = self.clock.now()
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:
            await direct.write(lambda connection: repo.mark_sqlite(connection, started, handled, now))
            return
        postgres = direct_postgres(self.sessionmaker)
        if postgres is not None:
            values = (
                list(started),
                list(handled),
                _convert(_PG_STATUS_IN, InboxStatus.HANDLING),
                _convert(_PG_STATUS_IN, InboxStatus.HANDLED),
                _convert(_PG_AT_IN, now),
            )
            # Retried after a lost connection only when done twice is the same (handled marks): a
            # "started" counted twice brings an update nearer to being given up (bot/inbox.py retries
            # a failed "started" itself).
            await postgres.run(lambda connection: connection.execute(_PG_MARK, *values), retry=not started)
            return
        async with self.sessionmaker.begin() as session:
            await repo.set_started(session, started)
            await repo.set_handled(session, handled, now)

    async def recover(self, max_attempts: int = MAX_ATTEMPTS) -> tuple[list[InboxUpdate], list[InboxUpdate]]:
        """(to handle, given up now): the unfinished updates oldest first; those whose handling was
        started `max_attempts` times are marked failed instead."""
        async with self.sessionmaker.begin() as session:
            rows = await repo.unfinished(session)
            items = [
                InboxUpdate(r.update_id, r.chat_id, dict(r.payload or {}), r.attempts)
                for r in rows
                if r.payload
            ]
            failed = [i for i in items if i.attempts >= max_attempts]
            await repo.set_failed(session, [i.update_id for i in failed], self.clock.now())
            # A row without its update (never written so) cannot be handled either.
            await repo.set_failed(session, [r.update_id for r in rows if not r.payload], self.clock.now())
        return [i for i in items if i.attempts < max_attempts], failed

    async def prune(self, keep: timedelta = KEEP_FINISHED) -> int:
        async with self.sessionmaker.begin() as session:
            return await repo.delete_finished(session, self.clock.now() - keep)

    async def summary(self) -> InboxSummary:
        async with self.sessionmaker() as session:
            counts = await repo.counts(session)
            last = await repo.last_handled(session)
        return InboxSummary(
            pending=counts.get(InboxStatus.PENDING.value, 0),
            handling=counts.get(InboxStatus.HANDLING.value, 0),
            failed=counts.get(InboxStatus.FAILED.value, 0),
            last_handled_id=last[0] if last else None,
            last_handled_at=last[1] if last else None,
        )
