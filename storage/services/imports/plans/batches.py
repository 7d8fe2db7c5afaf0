"""The batches plan: donation batches by school, donor, date received and device type."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import AuditAction, DeviceCondition
from storage.errors import DomainError
from storage.models import DonationBatch, Donor, School
from storage.repositories import audit
from storage.repositories import devices as devices_repo
from storage.rules import devices
from storage.rules.timeliness import check_event_date, is_late_entry
from storage.schemas.devices import BatchIn, DonorIn
from storage.schemas.imports import (
    Outcome,
    cell_date,
    cell_int,
    parse_condition,
    parse_device_type,
    parse_donor_kind,
    parse_source,
)
from storage.services.imports.plans.common import (
    ImportPlan,
    SheetRow,
    breathe,
    coerce_cell,
    orm_audit_entry,
    refresh_statistics,
    validate_row,
    write_audit,
)
from storage.text import fold


class BatchesPlan(ImportPlan):
    """Batches by school + donor + date received + device type; unknown donors are added."""

    NAMES: dict[str, str | None] = {"donor_id": "donor_name"}
    NEW_DONOR = -1  # a donor this import adds: the schema only needs to know there is one

    async def lock(self, session: AsyncSession) -> None:
        # Batches have no unique key: two imports of the same file at once wait for each other per
        # school, so the second finds the first one's batches and changes nothing.
        ids = sorted({row.school.id for row in self.rows if row.school is not None})
        if ids:
            await session.execute(
                select(School.id).where(School.id.in_(ids)).order_by(School.id).with_for_update()
            )

    async def plan(self, session: AsyncSession) -> None:
        live = self.placed()
        schools = sorted({row.school.id for row in live if row.school is not None})
        donors: dict[int, dict[str, Donor]] = defaultdict(dict)
        batches: dict[tuple[Any, ...], list[DonationBatch]] = defaultdict(list)
        for school_id in schools:
            school_donors = await session.scalars(
                select(Donor).where(or_(Donor.school_id == school_id, Donor.school_id.is_(None)))
            )
            for donor in sorted(school_donors, key=lambda d: (d.school_id is None, d.id)):
                donors[school_id].setdefault(fold(donor.name), donor)
            for batch in await session.scalars(
                select(DonationBatch).where(DonationBatch.school_id == school_id)
            ):
                batches[(school_id, batch.donor_id, batch.received_on, batch.device_type)].append(batch)
        self.new_donors: dict[tuple[int, str], DonorIn] = {}
        for index, row in enumerate(live):
            await breathe(index)
            assert row.school is not None
            donor_id: int | None = None
            if not row.blank("donor_name"):
                name = row.text("donor_name")
                same_name = donors[row.school.id].get(fold(name))
                if same_name is not None:
                    donor_id = same_name.id
                else:
                    donor_id = self.NEW_DONOR
                    self._new_donor(row, name)
            row.extra["donor_id"] = donor_id
            fields = {
                "source": coerce_cell(row, "source", parse_source),
                "donor_id": donor_id,
                "received_on": coerce_cell(row, "received_on", cell_date),
                "quantity": coerce_cell(row, "quantity", cell_int),
                "device_type": coerce_cell(row, "device_type", parse_device_type),
                "make_model": row.text("make_model"),
                "condition": coerce_cell(row, "condition", parse_condition) or DeviceCondition.NEW,
                "specs": row.text("specs"),
                "note": row.text("note"),
            }
            parsed = validate_row(row, BatchIn, fields, self.NAMES, self.today)
            if parsed is None:
                continue
            try:
                check_event_date(parsed.received_on, self.today)
            except DomainError as error:
                row.reject("received_on", error)
                continue
            row.parsed = parsed
        await self.refuse_locked(session, "devices", "received_on", lambda parsed: parsed.received_on)

        def key(row: SheetRow) -> tuple[Any, ...]:
            donor = row.extra["donor_id"]
            identity = ("new", fold(row.text("donor_name"))) if donor == self.NEW_DONOR else donor
            return (
                row.school.id if row.school else 0,
                identity,
                row.parsed.received_on,
                row.parsed.device_type,
            )

        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None],
            key,
            ["school_code", "donor_name", "received_on", "device_type"]
            if "school_code" in self.table.columns
            else ["donor_name", "received_on", "device_type"],
        )
        self.creates: list[SheetRow] = []
        self.updates: list[tuple[SheetRow, DonationBatch]] = []
        for row in rows:
            data: BatchIn = row.parsed
            assert row.school is not None
            found = (
                []
                if data.donor_id == self.NEW_DONOR
                else batches[(row.school.id, data.donor_id, data.received_on, data.device_type)]
            )
            if len(found) > 1:
                row.reject(None, DomainError("excel.batch.ambiguous", count=len(found)))
                continue
            if not found:
                row.result.outcome = Outcome.CREATED
                self.creates.append(row)
                continue
            batch = found[0]
            changes = {
                name: getattr(data, name)
                for name in ("source", "quantity", "make_model", "condition", "specs", "note")
                if getattr(batch, name) != getattr(data, name)
            }
            if not changes:
                row.result.outcome = Outcome.UNCHANGED
                continue
            try:
                if "quantity" in changes:
                    devices.check_quantity(data.quantity, batch.allocated)
            except DomainError as error:
                row.reject("quantity", error)
                continue
            row.extra["changes"] = changes
            row.result.outcome = Outcome.UPDATED
            self.updates.append((row, batch))
        # A new donor is added only if one of its rows is written.
        wanted = {
            (row.school.id, fold(row.text("donor_name")))
            for row in self.creates
            if row.school is not None and row.parsed.donor_id == self.NEW_DONOR
        }
        self.new_donors = {key: donor for key, donor in self.new_donors.items() if key in wanted}

    def _new_donor(self, row: SheetRow, name: str) -> None:
        assert row.school is not None
        key = (row.school.id, fold(name))
        if key in self.new_donors:
            return
        if row.blank("donor_kind"):
            row.reject("donor_kind", DomainError("excel.donor.kind_required", name=name))
            return
        kind = coerce_cell(row, "donor_kind", parse_donor_kind)
        if kind is None:
            return
        donor = validate_row(
            row,
            DonorIn,
            {"name": name, "kind": kind, "contact": row.text("donor_contact")},
            {"name": "donor_name", "kind": "donor_kind", "contact": "donor_contact"},
            self.today,
        )
        if donor is not None:
            self.new_donors[key] = donor

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, tz = self.clock.now(), self.clock.tz
        donors = {
            key: Donor(
                school_id=key[0],
                name=data.name,
                kind=data.kind,
                contact=data.contact,
                entered_by_id=actor_id,
                entered_at=now,
            )
            for key, data in self.new_donors.items()
        }
        session.add_all(donors.values())
        await session.flush()
        created = []
        for row in self.creates:
            data: BatchIn = row.parsed
            assert row.school is not None
            donor_id = data.donor_id
            if donor_id == self.NEW_DONOR:
                donor_id = donors[(row.school.id, fold(row.text("donor_name")))].id
            created.append(
                (
                    row,
                    devices_repo.new_batch(
                        data,
                        school_id=row.school.id,
                        donor_id=donor_id,
                        actor_id=actor_id,
                        now=now,
                        late=is_late_entry(data.received_on, now, tz),
                    ),
                )
            )
        session.add_all([batch for _, batch in created])
        befores = []
        for row, batch in self.updates:
            befores.append(audit.snapshot(batch))
            for name, value in row.extra["changes"].items():
                setattr(batch, name, value)
            batch.updated_at = now
        await session.flush()
        entries = [
            orm_audit_entry(actor_id, AuditAction.CREATE, d, None, now, d.school_id) for d in donors.values()
        ]
        entries += [
            orm_audit_entry(actor_id, AuditAction.CREATE, b, None, now, b.school_id) for _, b in created
        ]
        entries += [
            orm_audit_entry(actor_id, AuditAction.UPDATE, b, before, now, b.school_id)
            for (_, b), before in zip(self.updates, befores, strict=True)
        ]
        await write_audit(session, entries)
        await refresh_statistics(session, DonationBatch, len(created))
