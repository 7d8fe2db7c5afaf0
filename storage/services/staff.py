"""Staff accounts: invites, registration by invite, roles and scope, deactivation."""

from __future__ import annotations

import logging
import math
import secrets
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.db import asyncpg_dialect, direct_postgres, direct_sqlite
from storage.enums import AuditAction, Role
from storage.errors import DomainError, NotFound
from storage.models import District, Invite, School, Staff
from storage.repositories import audit
from storage.schemas.organisation import InviteIn, InviteOut, StaffOut
from storage.schemas.parsing import clean_name, without_refused_name_characters
from storage.services.base import ServiceBase
from storage.text import nfc

log = logging.getLogger(__name__)

# Guessing invite codes: after this many wrong codes from one Telegram account within the window, every
# code (even a right one) is refused until the oldest of them has left the window.
INVITE_MAX_FAILURES = 5
INVITE_FAILURE_WINDOW = timedelta(minutes=10)
# Wrong attempts are audit rows of this pseudo-entity, keyed by the Telegram id (no table of their own).
INVITE_ATTEMPT_ENTITY = "invite_attempt"
# What counts as a wrong code; "already registered" is not a guess.
WRONG_INVITE_CODES = frozenset({"invite.unknown", "invite.used", "invite.expired"})
# Every update looks its sender up: accounts are kept this long in memory. A change made through this
# service (deactivation, language, role) drops the entry at once; one made by another process (the
# command line on the same database) is seen within this many seconds.
STAFF_CACHE_SECONDS = 5.0


# The look-up of every update's sender on a cache miss: a Core statement (no ORM objects); on SQLite
# through the one-hop path (storage.db.SqliteDirect), values converted by the columns' own types.
_LOOKUP = (
    select(
        Staff.id,
        Staff.telegram_user_id,
        Staff.full_name,
        Staff.phone,
        Staff.telegram_username,
        Staff.role,
        Staff.school_id,
        School.code.label("school_code"),
        School.name.label("school_name"),
        School.level.label("school_level"),
        Staff.district_id,
        Staff.language,
        Staff.active,
    )
    .outerjoin(School, School.id == Staff.school_id)
    .where(Staff.telegram_user_id == bindparam("telegram_user_id"))
)
_SQLITE = sqlite.dialect()
_LOOKUP_SQL = str(_LOOKUP.compile(dialect=_SQLITE))
_LOOKUP_OUT = [
    (key, column.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None))
    for key, column in _LOOKUP.selected_columns.items()
]
# and on PostgreSQL's plain asyncpg path (storage.db.PostgresDirect)
_PG = asyncpg_dialect()
_LOOKUP_PG_SQL = str(_LOOKUP.compile(dialect=_PG))
_LOOKUP_PG_OUT = [
    (key, column.type.dialect_impl(_PG).result_processor(_PG, None))
    for key, column in _LOOKUP.selected_columns.items()
]


def telegram_name(full_name: str) -> str:
    """A staff name from a Telegram profile, which often carries emoji: what the name rule refuses is
    dropped rather than refusing the registration; "" when no name is left."""
    try:
        return clean_name(full_name)
    except DomainError:
        try:
            return clean_name(without_refused_name_characters(nfc(full_name)))
        except DomainError:
            return ""


def staff_out(staff: Staff) -> StaffOut:
    school = staff.school
    return StaffOut(
        id=staff.id,
        telegram_user_id=staff.telegram_user_id,
        full_name=staff.full_name,
        phone=staff.phone,
        telegram_username=staff.telegram_username,
        role=staff.role,
        school_id=staff.school_id,
        school_code=school.code if school else None,
        school_name=school.name if school else None,
        school_level=school.level if school else None,
        district_id=staff.district_id,
        language=staff.language,
        active=staff.active,
    )


class StaffService(ServiceBase):
    # telegram user id -> (the account, time.monotonic() when read); registered accounts only
    _cache: dict[int, tuple[StaffOut, float]]

    def _cached(self, telegram_user_id: int) -> StaffOut | None:
        cache: dict[int, tuple[StaffOut, float]] = self.__dict__.setdefault("_cache", {})
        entry = cache.get(telegram_user_id)
        if entry is None or time.monotonic() - entry[1] > STAFF_CACHE_SECONDS:
            return None
        return entry[0]

    def forget(self, telegram_user_id: int | None = None) -> None:
        """Drop a cached account (every account: None), e.g. after changing it in the database."""
        cache: dict[int, tuple[StaffOut, float]] = self.__dict__.setdefault("_cache", {})
        if telegram_user_id is None:
            cache.clear()
        else:
            cache.pop(telegram_user_id, None)

    async def create_invite(self, data: InviteIn, *, actor_id: int | None = None) -> InviteOut:
        async with self.sessionmaker.begin() as session:
            school = None
            district_id = None
            if data.school_code:
                school = await session.scalar(select(School).where(School.code == data.school_code.upper()))
                if school is None:
                    raise NotFound("school", code=data.school_code)
                district_id = school.district_id
            elif data.district_code:
                district_id = await session.scalar(
                    select(District.id).where(District.code == data.district_code.upper())
                )
                if district_id is None:
                    raise NotFound("district", code=data.district_code)
            else:
                # One district is the common case: take it when there is exactly one.
                ids = list(await session.scalars(select(District.id).limit(2)))
                if len(ids) == 1:
                    district_id = ids[0]
            if data.role.is_school_scoped and school is None:
                raise DomainError("invite.needs_school", role=data.role.value)
            if not data.role.is_school_scoped and district_id is None and data.role is not Role.ADMIN:
                raise DomainError("invite.needs_district", role=data.role.value)
            invite = Invite(
                code=secrets.token_urlsafe(12),
                role=data.role,
                school_id=school.id if school else None,
                district_id=district_id,
                full_name=data.full_name,
                created_by_id=actor_id,
                expires_at=self.clock.now() + timedelta(days=data.valid_days),
            )
            session.add(invite)
            await session.flush()
            await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=invite)
            return InviteOut(
                code=invite.code,
                role=invite.role,
                school_id=invite.school_id,
                school_name=school.name if school else None,
                district_id=district_id,
                expires_at=invite.expires_at,
            )

    async def register(
        self, telegram_user_id: int, code: str, *, full_name: str, username: str = "", language: str = "vi"
    ) -> StaffOut:
        """Bind a Telegram account to an invite's role and scope, once.

        Wrong codes are audited and limited per Telegram account (`INVITE_MAX_FAILURES` in
        `INVITE_FAILURE_WINDOW`); while the limit holds, even a right code is refused, or guessing would
        simply go on. The code itself is never logged nor audited.
        """
        async with self.sessionmaker() as session:
            wait = await self._lockout_left(session, telegram_user_id)
        if wait is not None:
            minutes = max(1, math.ceil(wait.total_seconds() / 60))
            log.warning("invite: Telegram user %s locked out for %s more minutes", telegram_user_id, minutes)
            raise DomainError("invite.too_many_attempts", minutes=minutes)
        try:
            await self._bind_invite(
                telegram_user_id, code, full_name=full_name, username=username, language=language
            )
        except DomainError as exc:
            if exc.code in WRONG_INVITE_CODES:
                await self._record_wrong_code(telegram_user_id, exc.code)
            raise
        self.forget(telegram_user_id)
        result = await self.by_telegram_id(telegram_user_id)
        assert result is not None
        return result

    async def _lockout_left(self, session: AsyncSession, telegram_user_id: int) -> timedelta | None:
        """How long this account must still wait, or None when it may try a code."""
        now = self.clock.now()
        recent = await audit.event_times(
            session,
            INVITE_ATTEMPT_ENTITY,
            str(telegram_user_id),
            since=now - INVITE_FAILURE_WINDOW,
            limit=INVITE_MAX_FAILURES,
        )
        if len(recent) < INVITE_MAX_FAILURES:
            return None
        # The lock lifts when the oldest of the last `INVITE_MAX_FAILURES` wrong codes leaves the window.
        return recent[-1] + INVITE_FAILURE_WINDOW - now

    async def _record_wrong_code(self, telegram_user_id: int, reason: str) -> None:
        async with self.sessionmaker.begin() as session:
            # No audit action of its own (that would need a migration of the CHECK constraint): a wrong
            # attempt is a "create" of the pseudo-entity `invite_attempt`, keyed by the Telegram id.
            await audit.record_event(
                session,
                action=AuditAction.CREATE,
                entity=INVITE_ATTEMPT_ENTITY,
                entity_id=str(telegram_user_id),
                at=self.clock.now(),
                after={"telegram_user_id": telegram_user_id, "reason": reason},
            )
        log.info("invite: wrong code from Telegram user %s (%s)", telegram_user_id, reason)

    async def _bind_invite(
        self, telegram_user_id: int, code: str, *, full_name: str, username: str, language: str
    ) -> None:
        try:
            async with self.sessionmaker.begin() as session:
                existing = await session.scalar(
                    select(Staff).where(Staff.telegram_user_id == telegram_user_id)
                )
                if existing is not None:
                    raise DomainError("invite.already_registered")
                invite = await session.scalar(select(Invite).where(Invite.code == code.strip()))
                if invite is None:
                    raise DomainError("invite.unknown")
                if invite.used_at is not None:
                    raise DomainError("invite.used")
                if invite.expires_at <= self.clock.now():
                    raise DomainError("invite.expired")
                staff = Staff(
                    telegram_user_id=telegram_user_id,
                    full_name=invite.full_name or telegram_name(full_name) or str(telegram_user_id),
                    telegram_username=username or "",
                    role=invite.role,
                    school_id=invite.school_id,
                    district_id=invite.district_id,
                    language=language,
                )
                session.add(staff)
                await session.flush()
                before = audit.snapshot(invite)
                invite.used_at = self.clock.now()
                invite.used_by_id = staff.id
                await session.flush()
                await audit.record(session, actor_id=staff.id, action=AuditAction.CREATE, row=staff)
                await audit.record(
                    session, actor_id=staff.id, action=AuditAction.UPDATE, row=invite, before=before
                )
        except IntegrityError as exc:
            # Two taps on the same link at once: the second finds the invite used.
            raise DomainError("invite.used") from exc

    async def by_telegram_id(self, telegram_user_id: int) -> StaffOut | None:
        """The account of a Telegram user (cached for `STAFF_CACHE_SECONDS`; strangers are not)."""
        cached = self._cached(telegram_user_id)
        if cached is not None:
            return cached
        direct = direct_sqlite(self.sessionmaker)
        if direct is not None:
            key = (telegram_user_id,)
            row = await direct.read(lambda connection: connection.execute(_LOOKUP_SQL, key).fetchone())
            if row is None:
                return None
            values: dict[str, Any] = {
                name: p(v) if p else v for (name, p), v in zip(_LOOKUP_OUT, row, strict=True)
            }
        elif (postgres := direct_postgres(self.sessionmaker)) is not None:
            pg_row = await postgres.run(
                lambda connection: connection.fetchrow(_LOOKUP_PG_SQL, telegram_user_id), retry=True
            )
            if pg_row is None:
                return None
            values = {name: p(v) if p else v for (name, p), v in zip(_LOOKUP_PG_OUT, pg_row, strict=True)}
        else:
            async with self.sessionmaker() as session:
                found_row = (await session.execute(_LOOKUP, {"telegram_user_id": telegram_user_id})).first()
            if found_row is None:
                return None
            values = dict(found_row._mapping)
        found = StaffOut(**values)
        self.__dict__.setdefault("_cache", {})[telegram_user_id] = (found, time.monotonic())
        return found

    async def get(self, staff_id: int) -> StaffOut:
        async with self.sessionmaker() as session:
            staff = await session.get(Staff, staff_id, options=[selectinload(Staff.school)])
            if staff is None:
                raise NotFound("staff", id=staff_id)
            return staff_out(staff)

    async def list_staff(self, *, school_id: int | None = None, role: Role | None = None) -> list[StaffOut]:
        async with self.sessionmaker() as session:
            query = select(Staff).options(selectinload(Staff.school)).order_by(Staff.role, Staff.full_name)
            if school_id is not None:
                query = query.where(Staff.school_id == school_id)
            if role is not None:
                query = query.where(Staff.role == role)
            return [staff_out(s) for s in await session.scalars(query)]

    async def set_active(self, staff_id: int, active: bool, *, actor_id: int | None = None) -> StaffOut:
        return await self._update(staff_id, actor_id=actor_id, active=active)

    async def set_language(self, staff_id: int, language: str) -> StaffOut:
        return await self._update(staff_id, actor_id=staff_id, language=language)

    async def _update(self, staff_id: int, *, actor_id: int | None, **changes: object) -> StaffOut:
        async with self.sessionmaker.begin() as session:
            staff = await session.get(Staff, staff_id, options=[selectinload(Staff.school)])
            if staff is None:
                raise NotFound("staff", id=staff_id)
            before = audit.snapshot(staff)
            for key, value in changes.items():
                setattr(staff, key, value)
            await session.flush()
            await audit.record(
                session, actor_id=actor_id, action=AuditAction.UPDATE, row=staff, before=before
            )
            changed = staff_out(staff)
        # After the commit: a read meanwhile would otherwise put the old account back.
        if changed.telegram_user_id is not None:
            self.forget(changed.telegram_user_id)
        return changed
