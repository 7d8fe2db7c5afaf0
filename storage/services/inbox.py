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

from storage.db import direct_sqlite
from storage.enums import InboxStatus
from storage.repositories import inbox as repo
from storage.services.base import ServiceBase
from storage.services.lease import Fence, LeaseLost

# Handling started this many times without finishing: the update is given up (a poison update).
MAX_ATTEMPTS = 2
# Telegram keeps an unconfirmed update 24 hours: finished rows older than this can never come again.
KEEP_FINISHED = timedelta(days=2)


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
