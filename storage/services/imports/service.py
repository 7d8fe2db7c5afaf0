"""ImportService: who may import which rows, the template, checking, confirming and importing a file;
the work on the rows is the plan of the file's kind (`storage.services.imports.plans`)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exports.reader import Table, check_size
from exports.templates import FIRST_DATA_ROW, build_template
from exports.upload_worker import read_upload
from storage.enums import Role
from storage.errors import AccessDenied, Conflict, DomainError, NotFound
from storage.models import PendingUpload, School, VaccineProduct
from storage.permissions import SPECIALIST_LEVELS
from storage.repositories import devices as devices_repo
from storage.rules.dates import show_local
from storage.schemas.imports import (
    BatchChoice,
    ImportCheck,
    ImportKind,
    ImportScope,
    ReadLimits,
    TemplateContext,
    TemplateFile,
)
from storage.schemas.organisation import StaffOut
from storage.schemas.parsing import clean_code
from storage.services.base import ServiceBase
from storage.services.imports.plans import PLANS
from storage.services.imports.plans.common import ImportPlan, full_collections_paused

# A checked upload waits this long for its confirmation.
PENDING_HOURS = 24
# District officers who may import rows of the schools they see.
OFFICER_ROLES = frozenset(
    {
        Role.DEPUTY_HEAD,
        Role.ADMIN,
        Role.STATISTICS_OFFICER,
        Role.PRIMARY_SPECIALIST,
        Role.SECONDARY_SPECIALIST,
        Role.HEALTH_OFFICER,
    }
)


# --- the service ----------------------------------------------------------------------------------


class ImportService(ServiceBase):
    # Who may import which rows --------------------------------------------------------------------

    async def scope_for(self, staff: StaffOut) -> ImportScope:
        """School staff: their school. District officers: the schools they see (every row names its
        school). Others are refused."""
        if not staff.active:
            raise AccessDenied("access.deactivated")
        if staff.role.is_school_scoped and staff.school_id is not None:
            return ImportScope(school_id=staff.school_id, school_code=staff.school_code)
        if staff.role in OFFICER_ROLES and staff.district_id is not None:
            return ImportScope(district_id=staff.district_id, levels=SPECIALIST_LEVELS.get(staff.role))
        raise AccessDenied("excel.access.cannot_import")

    async def scope_for_school(self, school_code: str | None) -> ImportScope:
        """The command line: one school, or (no code) any school, each row naming its own."""
        if not school_code:
            return ImportScope()
        code = clean_code(school_code)
        async with self.sessionmaker() as session:
            school = await session.scalar(select(School).where(School.code == code))
        if school is None:
            raise NotFound("school", code=code)
        return ImportScope(school_id=school.id, school_code=school.code)

    async def template_context(self, kind: ImportKind, scope: ImportScope) -> TemplateContext:
        """What the template of `kind` shows for this scope: the products, the school's batches."""
        async with self.sessionmaker() as session:
            products = list(
                await session.scalars(
                    select(VaccineProduct.name)
                    .where(VaccineProduct.active.is_(True))
                    .order_by(VaccineProduct.sort_order, VaccineProduct.id)
                )
            )
            context = TemplateContext(
                kind=kind, with_school_column=not scope.single_school, products=products
            )
            if scope.school_id is not None:
                school = await session.get(School, scope.school_id)
                if school is not None:
                    context.school_code, context.school_name = school.code, school.name
                if kind is ImportKind.HANDOVERS:
                    rows = await devices_repo.batches_with_counts(
                        session, scope.school_id, with_stock_only=True
                    )
                    context.batches = [
                        BatchChoice(
                            id=batch.id,
                            number=batch.number,
                            received_on=batch.received_on,
                            device_type=batch.device_type,
                            donor_name=donor,
                            left=batch.quantity - batch.allocated,
                        )
                        for batch, donor, *_ in rows
                    ]
        return context

    async def template(
        self, kind: ImportKind, scope: ImportScope, language: str, limits: ReadLimits
    ) -> TemplateFile:
        """The template of `kind` for this scope, in `language`'s words (written in a thread: openpyxl
        would hold the event loop)."""
        context = await self.template_context(kind, scope)
        content = await asyncio.to_thread(
            build_template,
            context,
            self.labels(language),
            max_bytes=limits.max_bytes,
            max_rows=limits.max_rows,
        )
        return TemplateFile(content=content, first_row=FIRST_DATA_ROW)

    @staticmethod
    def check_announced_size(size: int | None, limits: ReadLimits) -> None:
        """Refuse an upload over the size limit from the size Telegram announces, before downloading it."""
        check_size(size, limits)

    # Checking and importing -----------------------------------------------------------------------

    async def check(
        self,
        scope: ImportScope,
        filename: str,
        content: bytes,
        limits: ReadLimits,
        *,
        stage_for: int | None = None,
    ) -> ImportCheck:
        """The verdict of every row, writing nothing. With `stage_for` (a staff id) an upload with
        rows to write is kept in `pending_upload` until `confirm` (its id in `pending_id`)."""
        with full_collections_paused():
            table = await self._read(scope, filename, content, limits)
            async with self.sessionmaker() as session:
                plan = await self._plan(session, scope, table)
            check = plan.check(filename)
        if stage_for is not None and check.counts.to_write:
            check.pending_id = await self._stage(stage_for, scope, table.kind, filename, content)
        return check

    async def import_file(
        self,
        scope: ImportScope,
        filename: str,
        content: bytes,
        limits: ReadLimits,
        *,
        actor_id: int | None,
        dry_run: bool = False,
    ) -> ImportCheck:
        """Check and (unless `dry_run`) write the valid rows in one transaction (the command line)."""
        with full_collections_paused():
            table = await self._read(scope, filename, content, limits)
            if dry_run:
                async with self.sessionmaker() as session:
                    return (await self._plan(session, scope, table)).check(filename)
            try:
                async with self.sessionmaker.begin() as session:
                    plan = await self._plan(session, scope, table, write=True)
                    await plan.apply(session, actor_id)
            except IntegrityError as exc:
                raise Conflict("excel.conflict") from exc
            check = plan.check(filename)
        check.written = True
        return check

    async def confirm(self, pending_id: int, staff: StaffOut, limits: ReadLimits) -> ImportCheck:
        """Write the valid rows of a checked upload, judged again against the database as it is now.
        A second confirm (a double tap) finds the upload gone and writes nothing."""
        scope = await self.scope_for(staff)
        pending = await self._pending(pending_id, staff)
        with full_collections_paused():
            table = await self._read(scope, pending.filename, pending.content, limits)
            try:
                async with self.sessionmaker.begin() as session:
                    held = await session.scalar(
                        select(PendingUpload).where(PendingUpload.id == pending_id).with_for_update()
                    )
                    if held is None:
                        raise DomainError("excel.pending.gone")
                    plan = await self._plan(session, scope, table, write=True)
                    await plan.apply(session, staff.id)
                    await session.delete(held)
            except IntegrityError as exc:
                raise Conflict("excel.conflict") from exc
            check = plan.check(pending.filename)
        check.written = True
        return check

    async def discard(self, pending_id: int, staff: StaffOut) -> str:
        """Drop a checked upload; returns its file name."""
        async with self.sessionmaker.begin() as session:
            pending = await session.scalar(
                select(PendingUpload).where(
                    PendingUpload.id == pending_id, PendingUpload.staff_id == staff.id
                )
            )
            if pending is None:
                raise DomainError("excel.pending.gone")
            filename = pending.filename
            await session.delete(pending)
            return filename

    # Internals ------------------------------------------------------------------------------------

    async def _read(self, scope: ImportScope, filename: str, content: bytes, limits: ReadLimits) -> Table:
        # In a worker process with a memory cap: a file that would cost more is refused, and the
        # parse (which holds the GIL) never holds the event loop.
        table = await read_upload(content, filename, limits)
        if not scope.single_school and "school_code" not in table.columns:
            raise DomainError("excel.table.school_column_required", columns=["school_code"])
        return table

    async def _plan(
        self, session: AsyncSession, scope: ImportScope, table: Table, *, write: bool = False
    ) -> ImportPlan:
        plan = PLANS[table.kind](self, scope, table)
        await plan.prepare(session)
        if write:
            await plan.lock(session)
        await plan.plan(session)
        return plan

    async def _stage(
        self, staff_id: int, scope: ImportScope, kind: ImportKind, filename: str, content: bytes
    ) -> int:
        now = self.clock.now()
        async with self.sessionmaker.begin() as session:
            await session.execute(
                delete(PendingUpload).where(PendingUpload.created_at < now - timedelta(hours=PENDING_HOURS))
            )
            pending = PendingUpload(
                staff_id=staff_id,
                kind=kind.value,
                filename=filename[:200],
                content=content,
                school_id=scope.school_id,
                created_at=now,
            )
            session.add(pending)
            await session.flush()
            return pending.id

    async def _pending(self, pending_id: int, staff: StaffOut) -> PendingUpload:
        async with self.sessionmaker() as session:
            pending = await session.scalar(
                select(PendingUpload).where(
                    PendingUpload.id == pending_id, PendingUpload.staff_id == staff.id
                )
            )
        if pending is None:
            raise DomainError("excel.pending.gone")
        if pending.created_at < self.clock.now() - timedelta(hours=PENDING_HOURS):
            async with self.sessionmaker.begin() as session:
                await session.execute(delete(PendingUpload).where(PendingUpload.id == pending_id))
            sent_at = show_local(pending.created_at, self.clock.tz)
            raise DomainError("excel.pending.expired", sent_at=sent_at, hours=PENDING_HOURS)
        return pending
