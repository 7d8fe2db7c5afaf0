"""The sector database (CSDL): upload files per menu, "already uploaded" marks, the 1-day rule's
second half.

- `export`: a school's records of one menu not yet in the CSDL (never marked, or changed since), or all
  of them; the export is stored (`csdl_export`) with each record's fields, so marking it later marks
  exactly what the file held, as it was in the file.
- `mark_uploaded`: after the person uploaded the file to the CSDL («Đã tải lên CSDL», or the command
  line with the file): every record of the export is marked with when, by whom and the fingerprint of
  its fields in the file. A record that changes afterwards is "to upload" again, with what changed.
- `not_in_csdl`: per school, records in the bot for more than a day that are not in the CSDL.
- layouts: the shipped YAML of a menu, or the one an admin stored (`csdl_layout`).

Not built on `Services` (another engineer owns that file's wiring now): `CsdlService.of(services)`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select

from storage.clock import Clock
from storage.enums import AuditAction, CsdlRecordKind
from storage.errors import AccessDenied, DomainError, NotFound
from storage.models import CsdlExport, CsdlLayout, CsdlMark, School, Staff
from storage.permissions import Action, require, sees_school
from storage.repositories import audit
from storage.repositories import csdl as repo
from storage.schemas.csdl import (
    CsdlExportOut,
    CsdlLayoutSpec,
    CsdlMenu,
    CsdlRecord,
    CsdlState,
    CsdlStatus,
    MarkResult,
    MenuStatus,
    OverdueSchool,
    SchoolRef,
    changed_fields,
    fingerprint,
    fingerprint_fields,
    layout_yaml,
    parse_layout,
    shipped_layout,
)
from storage.schemas.organisation import StaffOut
from storage.services.base import ServiceBase

# Exports nobody marked are forgotten after this long (their file can no longer be marked).
EXPORT_KEPT_DAYS = 60
# The 1-day rule: a record entered (or changed) on local day D is due in the CSDL by the end of D + 1.
GRACE_DAYS = 1


def csdl_cutoff(clock: Clock) -> datetime:
    """Records written in the bot before this instant are past the 1-day rule for the CSDL: the start
    of yesterday, local time (entered on day D, due by the end of D + 1), as `is_late_entry` judges."""
    today = clock.today()
    return datetime.combine(today - timedelta(days=GRACE_DAYS), time(0), clock.tz).astimezone(UTC)


class CsdlService(ServiceBase):
    @classmethod
    def of(cls, services: Any) -> CsdlService:
        return cls(services.sessionmaker, services.clock)

    # -- who and which school ----------------------------------------------------------------------

    async def school_for(self, staff: StaffOut, school_code: str | None = None) -> SchoolRef:
        """The school whose files the person makes: their own (principal, a school's technical
        person), or — district technical support — the school named by its code."""
        require(staff, Action.CSDL)
        async with self.sessionmaker() as session:
            if staff.school_id is not None and (staff.role.is_school_scoped or not school_code):
                school = await session.get(School, staff.school_id)
            elif school_code:
                school = await session.scalar(select(School).where(School.code == school_code.strip()))
            else:
                raise DomainError("csdl.school_required")
            if school is None:
                raise NotFound("school", code=school_code or "")
            if staff.school_id is not None and school.id != staff.school_id:
                raise AccessDenied("access.other_school")
            if not sees_school(
                staff, school_id=school.id, level=school.level, district_id=school.district_id
            ):
                raise AccessDenied("access.other_school")
            return SchoolRef(school.id, school.code, school.name)

    async def school_by_code(self, code: str) -> SchoolRef:
        """The command line: any school by its code."""
        async with self.sessionmaker() as session:
            school = await session.scalar(select(School).where(School.code == code.strip()))
        if school is None:
            raise NotFound("school", code=code)
        return SchoolRef(school.id, school.code, school.name)

    # -- layouts -----------------------------------------------------------------------------------

    async def layout(self, menu: CsdlMenu) -> CsdlLayoutSpec:
        async with self.sessionmaker() as session:
            stored = await session.get(CsdlLayout, menu.value)
        return parse_layout(stored.content, menu) if stored is not None else shipped_layout(menu)

    async def layout_source(self, menu: CsdlMenu) -> str:
        """ "shipped" or "custom"."""
        async with self.sessionmaker() as session:
            return "custom" if await session.get(CsdlLayout, menu.value) is not None else "shipped"

    async def replace_layout(self, layout: CsdlLayoutSpec, *, actor_id: int | None = None) -> None:
        """Store a layout for its menu (validated again from its own YAML, as it will be read)."""
        content = layout_yaml(layout)
        parse_layout(content, layout.menu)
        async with self.sessionmaker.begin() as session:
            row = await session.get(CsdlLayout, layout.menu.value)
            before = audit.snapshot(row) if row is not None else None
            if row is None:
                row = CsdlLayout(menu=layout.menu.value, content=content)
                session.add(row)
            row.content, row.updated_at, row.updated_by_id = content, self.clock.now(), actor_id
            await session.flush()
            action = AuditAction.CREATE if before is None else AuditAction.UPDATE
            await audit.record(session, actor_id=actor_id, action=action, row=row, before=before)

    async def reset_layout(self, menu: CsdlMenu, *, actor_id: int | None = None) -> bool:
        """Back to the shipped layout; False when it was the shipped one already."""
        async with self.sessionmaker.begin() as session:
            row = await session.get(CsdlLayout, menu.value)
            if row is None:
                return False
            await audit.record(session, actor_id=actor_id, action=AuditAction.DELETE, row=row)
            await session.delete(row)
            return True

    # -- records -----------------------------------------------------------------------------------

    async def _records(
        self, session: Any, school_id: int, menu: CsdlMenu
    ) -> list[tuple[CsdlRecordKind, list[CsdlRecord]]]:
        parts = []
        for kind, source in repo.MENU_PARTS[menu]:
            rows = await repo.school_records(session, kind, school_id, source)
            marks = await repo.marks_of(session, kind, (row["id"] for row in rows))
            records = []
            for row in rows:
                fields = fingerprint_fields(kind, row)
                record = CsdlRecord(kind=kind, id=row["id"], values=row, fields=fields)
                mark = marks.get(row["id"])
                if mark is not None:
                    record.marked_at = mark.marked_at
                    if mark.fingerprint == fingerprint(fields):
                        record.state = CsdlState.UPLOADED
                    else:
                        record.state = CsdlState.CHANGED
                        record.changed = changed_fields(mark.fields, fields)
                records.append(record)
            parts.append((kind, records))
        return parts

    def _cutoff(self) -> datetime:
        return csdl_cutoff(self.clock)

    async def export(
        self, school: SchoolRef, menu: CsdlMenu, *, everything: bool = False, actor_id: int | None = None
    ) -> CsdlExportOut:
        """The records of the file (those to upload, or all), stored as an export to mark later."""
        now = self.clock.now()
        async with self.sessionmaker.begin() as session:
            parts = await self._records(session, school.id, menu)
            if not everything:
                parts = [
                    (kind, [r for r in records if r.state is not CsdlState.UPLOADED])
                    for kind, records in parts
                ]
            items = [
                {"kind": r.kind.value, "id": r.id, "fingerprint": r.fingerprint, "fields": r.fields}
                for _, records in parts
                for r in records
            ]
            await session.execute(
                delete(CsdlExport).where(CsdlExport.created_at < now - timedelta(days=EXPORT_KEPT_DAYS))
            )
            row = CsdlExport(
                token=secrets.token_hex(16),
                school_id=school.id,
                menu=menu.value,
                items=items,
                created_at=now,
                created_by_id=actor_id,
            )
            session.add(row)
            await session.flush()
            return CsdlExportOut(
                id=row.id,
                token=row.token,
                menu=menu,
                school_id=school.id,
                school_code=school.code,
                school_name=school.name,
                everything=everything,
                created_at=now,
                sheets=parts,
            )

    async def mark_uploaded(
        self, *, export_id: int | None = None, token: str | None = None, actor: StaffOut | None = None
    ) -> MarkResult:
        """Mark every record of an export as in the CSDL, as it was in the file. A record already
        marked from a newer file keeps that mark. Marking the same file again changes nothing."""
        now = self.clock.now()
        async with self.sessionmaker.begin() as session:
            if token is not None:
                export = await session.scalar(select(CsdlExport).where(CsdlExport.token == token))
            else:
                export = await session.get(CsdlExport, export_id) if export_id is not None else None
            if export is None:
                raise DomainError("csdl.export_unknown")
            school = await session.get(School, export.school_id)
            assert school is not None
            if actor is not None:
                require(actor, Action.CSDL)
                allowed = sees_school(
                    actor, school_id=school.id, level=school.level, district_id=school.district_id
                )
                if not allowed or (actor.school_id is not None and actor.school_id != school.id):
                    raise AccessDenied("access.other_school")
            menu = CsdlMenu(export.menu)
            if export.marked_at is not None:
                marker = await session.get(Staff, export.marked_by_id) if export.marked_by_id else None
                return MarkResult(
                    export.id,
                    menu,
                    school.code,
                    school.name,
                    marked=0,
                    already=True,
                    marked_at=export.marked_at,
                    marked_by=marker.full_name if marker else "",
                )
            actor_id = actor.id if actor is not None else None
            marked = 0
            by_kind: dict[CsdlRecordKind, list[dict[str, Any]]] = {}
            for item in export.items:
                by_kind.setdefault(CsdlRecordKind(item["kind"]), []).append(item)
            for kind, items in by_kind.items():
                existing = await repo.marks_of(session, kind, (item["id"] for item in items))
                for item in items:
                    mark = existing.get(item["id"])
                    if mark is not None and mark.fields_at > export.created_at:
                        continue  # a newer file's mark stands
                    if mark is None:
                        mark = CsdlMark(record_kind=kind, record_id=item["id"], school_id=school.id)
                        session.add(mark)
                    mark.fingerprint, mark.fields, mark.fields_at = (
                        item["fingerprint"],
                        item["fields"],
                        export.created_at,
                    )
                    mark.marked_at, mark.marked_by_id, mark.export_id = now, actor_id, export.id
                    marked += 1
            before = audit.snapshot(export)
            before.pop("items", None)  # the audit says who marked which file, not its rows again
            export.marked_at, export.marked_by_id = now, actor_id
            await session.flush()
            entry = await audit.record(
                session,
                actor_id=actor_id,
                action=AuditAction.UPDATE,
                row=export,
                before=before,
                school_id=school.id,
            )
            if entry.after is not None:
                entry.after = {k: v for k, v in entry.after.items() if k != "items"} | {"marked": marked}
            return MarkResult(
                export.id,
                menu,
                school.code,
                school.name,
                marked=marked,
                already=False,
                marked_at=now,
                marked_by=actor.full_name if actor is not None else "",
            )

    async def status(self, school: SchoolRef) -> CsdlStatus:
        """Per menu: records never uploaded, changed since, uploaded; and those past the 1-day rule."""
        cutoff = self._cutoff()
        menus = []
        last: datetime | None = None
        async with self.sessionmaker() as session:
            for menu in CsdlMenu:
                entry = MenuStatus(menu)
                for _, records in await self._records(session, school.id, menu):
                    for record in records:
                        if record.marked_at is not None and (last is None or record.marked_at > last):
                            last = record.marked_at
                        if record.state is CsdlState.UPLOADED:
                            entry.uploaded += 1
                            continue
                        if record.state is CsdlState.NEW:
                            entry.new += 1
                        else:
                            entry.changed += 1
                        if record.values["touched"] < cutoff:
                            entry.overdue += 1
                menus.append(entry)
        return CsdlStatus(school.id, school.code, school.name, menus, last)

    async def not_in_csdl(
        self, school_ids: list[int], *, with_names: bool = False
    ) -> dict[int, OverdueSchool]:
        """Per school: records in the bot for more than a day (entered or changed before yesterday,
        local time) that are not in the CSDL."""
        async with self.sessionmaker() as session:
            found = await repo.not_in_csdl(session, school_ids, self._cutoff(), with_names=with_names)
        return {sid: OverdueSchool(sid, count, names) for sid, (count, names) in found.items()}
