"""The leader lease: which instance polls Telegram and runs the jobs.

A row per lease name holds the holder and when its lease ends, in the database's time (PostgreSQL's
clock for every machine). The holder renews it every few seconds; anyone may take it once it has
ended. Each new holder increases `term`, and the inbox refuses writes of an older term (fencing): a
leader that froze and woke up after losing the lease cannot confirm updates any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from storage.db import urgent_write
from storage.models import LeaderLease
from storage.repositories import inbox as repo
from storage.services.base import ServiceBase

DEFAULT_NAME = "bot"


@dataclass(frozen=True)
class LeaseState:
    name: str
    holder: str
    term: int
    expires_at: datetime
    ours: bool  # held by the asking instance (and not ended)


@dataclass(frozen=True)
class Fence:
    """Proof of leadership written alongside the inbox: the holder and its term."""

    holder: str
    term: int
    name: str = DEFAULT_NAME


class LeaseLost(Exception):
    """The lease is another instance's now (or has ended): stop acting as the leader."""


class LeaseService(ServiceBase):
    async def acquire(self, holder: str, seconds: float, name: str = DEFAULT_NAME) -> LeaseState | None:
        """Take the lease if it is free or has ended (a new term), or extend it if it is ours.
        The current holder's state when it is someone else's; None when the row was raced."""
        try:
            async with urgent_write(self.sessionmaker) as session:
                now = await repo.database_now(session)
                row = await repo.lease_of(session, name, lock=True)
                until = now + timedelta(seconds=seconds)
                if row is None:
                    row = LeaderLease(name=name, holder=holder, term=1, acquired_at=now, expires_at=until)
                    session.add(row)
                    await session.flush()
                elif row.holder == holder and row.expires_at > now:
                    row.expires_at = until
                elif row.expires_at <= now:
                    row.holder, row.term, row.acquired_at, row.expires_at = holder, row.term + 1, now, until
                else:
                    return LeaseState(name, row.holder, row.term, row.expires_at, ours=False)
                await session.flush()
                return LeaseState(name, holder, row.term, until, ours=True)
        except IntegrityError:  # two instances created the first row at once: the other won
            return None

    async def renew(self, fence: Fence, seconds: float) -> datetime | None:
        """Extend our lease; its new end, or None when it is not ours any more (ended or taken)."""
        async with urgent_write(self.sessionmaker) as session:
            now = await repo.database_now(session)
            row = await repo.lease_of(session, fence.name, lock=True)
            if row is None or row.holder != fence.holder or row.term != fence.term or row.expires_at <= now:
                return None
            row.expires_at = now + timedelta(seconds=seconds)
            await session.flush()
            return row.expires_at

    async def release(self, fence: Fence) -> bool:
        """End our lease now (a clean stop): the standby need not wait for it to run out."""
        async with urgent_write(self.sessionmaker) as session:
            now = await repo.database_now(session)
            row = await repo.lease_of(session, fence.name, lock=True)
            if row is None or row.holder != fence.holder or row.term != fence.term:
                return False
            row.expires_at = min(row.expires_at, now)
            await session.flush()
            return True

    async def current(self, name: str = DEFAULT_NAME, holder: str | None = None) -> LeaseState | None:
        async with self.sessionmaker() as session:
            now = await repo.database_now(session)
            row = await repo.lease_of(session, name)
            if row is None:
                return None
            ours = row.holder == holder and row.expires_at > now
            return LeaseState(name, row.holder, row.term, row.expires_at, ours=ours)
