"""Donors and donation batches of a school (menu 4.8.3: 4.8.3.1 programme, 4.8.3.2 other sources)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.db import read_core
from storage.enums import AuditAction, DonationSource
from storage.errors import Conflict, DomainError, NotFound
from storage.models import DonationBatch, Donor, Handover
from storage.repositories import audit
from storage.repositories import devices as repo
from storage.rules import devices as rules
from storage.rules import district_report_deadline, is_late_entry, names_the_programme
from storage.schemas.devices import BatchIn, BatchOut, BatchUpdate, DonorIn, DonorOut, check_event_date
from storage.services.base import ServiceBase
from storage.text import fold


def batch_out(
    batch: DonationBatch,
    donor_name: str | None,
    gifts: int,
    open_loans: int,
    returned_loans: int,
    *,
    replayed: bool = False,
) -> BatchOut:
    return BatchOut(
        id=batch.id,
        number=batch.number,
        school_id=batch.school_id,
        source=batch.source,
        donor_id=batch.donor_id,
        donor_name=donor_name,
        received_on=batch.received_on,
        quantity=batch.quantity,
        device_type=batch.device_type,
        make_model=batch.make_model,
        condition=batch.condition,
        specs=batch.specs,
        receipt_photo_file_id=batch.receipt_photo_file_id,
        note=batch.note,
        gifts=gifts,
        open_loans=open_loans,
        returned_loans=returned_loans,
        handed_over=batch.allocated,
        left=batch.quantity - batch.allocated,
        entered_late=batch.entered_late,
        entered_at=batch.entered_at,
        entered_by_id=batch.entered_by_id,
        replayed=replayed,
    )


async def load_batch_out(
    session: AsyncSession, batch_id: int, school_id: int, *, replayed: bool = False
) -> BatchOut:
    rows = await repo.batches_with_counts(session, school_id, batch_ids=[batch_id])
    if not rows:
        raise NotFound("batch")
    return batch_out(*rows[0], replayed=replayed)


class DonationService(ServiceBase):
    # --- donors -----------------------------------------------------------------------------------

    async def donors(self, school_id: int) -> list[DonorOut]:
        """The donors of other sources (4.8.3.2) the school may pick, by name: its own and the
        district-wide ones, never the programme itself (a source of its own, 4.8.3.1)."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                select(Donor)
                .where(or_(Donor.school_id == school_id, Donor.school_id.is_(None)))
                .order_by(Donor.name, Donor.id)
            )
            found = list(rows)
            program = await self._program_donor_ids(session, found)
            return sorted(
                (DonorOut.model_validate(d) for d in found if d.id not in program),
                key=lambda d: (fold(d.name), d.id),
            )

    async def donor_by_name(self, school_id: int, name: str) -> DonorOut | None:
        """A known donor whose name matches ignoring case and diacritics (the import's lookup)."""
        wanted = fold(name)
        for donor in await self.donors(school_id):
            if fold(donor.name) == wanted:
                return donor
        return None

    async def add_donor(self, data: DonorIn, *, school_id: int, actor_id: int | None) -> DonorOut:
        if names_the_programme(data.name):
            raise DomainError("devices.donor_is_program", name=data.name)
        try:
            async with self.sessionmaker.begin() as session:
                known = await session.scalars(
                    select(Donor).where(or_(Donor.school_id == school_id, Donor.school_id.is_(None)))
                )
                for donor in known:
                    if fold(donor.name) == fold(data.name):
                        raise DomainError("devices.donor_exists", name=donor.name)
                donor = Donor(
                    school_id=school_id,
                    name=data.name,
                    kind=data.kind,
                    contact=data.contact,
                    entered_by_id=actor_id,
                    entered_at=self.clock.now(),
                )
                session.add(donor)
                await session.flush()
                await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=donor)
                return DonorOut.model_validate(donor)
        except IntegrityError as exc:
            raise DomainError("devices.donor_exists", name=data.name) from exc

    # --- batches ----------------------------------------------------------------------------------

    async def create_batch(
        self, data: BatchIn, *, school_id: int, actor_id: int | None, request_key: str | None = None
    ) -> BatchOut:
        """Record a batch received. The same `request_key` again (a second Confirm, a repeated
        update) returns the batch already saved instead of a second one."""
        try:
            async with self.sessionmaker.begin() as session:
                if request_key is not None:
                    saved = await self._by_request_key(session, request_key, school_id)
                    if saved is not None:
                        return saved
                await repo.ensure_program_unlocked(session, school_id, data.received_on)
                await self._check_donor(session, school_id, data.source, data.donor_id)
                check_event_date(data.received_on, self.clock.today())
                now = self.clock.now()
                batch = repo.new_batch(
                    data,
                    school_id=school_id,
                    donor_id=data.donor_id,
                    actor_id=actor_id,
                    now=now,
                    late=is_late_entry(data.received_on, now, self.clock.tz),
                )
                batch.number = await repo.next_batch_number(session, school_id)
                batch.request_key = request_key
                session.add(batch)
                await session.flush()
                await audit.record(session, actor_id=actor_id, action=AuditAction.CREATE, row=batch)
                return await load_batch_out(session, batch.id, school_id)
        except IntegrityError as exc:
            # Lost a race with the same request key (PostgreSQL: both checked, one inserted first).
            if request_key is not None:
                async with self.sessionmaker() as session:
                    saved = await self._by_request_key(session, request_key, school_id)
                if saved is not None:
                    return saved
            raise Conflict("devices.save_conflict") from exc

    async def batches_with_stock(self, school_id: int, *, with_stock_only: bool = False) -> list[BatchOut]:
        """The school's batches, newest receipt first: received / handed over / left.
        `with_stock_only` keeps those with devices left (the handover flow's batch picker)."""

        def read(session: Session) -> list[BatchOut]:
            rows = repo.batch_records_with_counts_sync(session, school_id, with_stock_only=with_stock_only)
            return [batch_out(*row) for row in rows]

        return await read_core(self.sessionmaker, read)

    async def get_batch(self, batch_id: int, *, school_id: int) -> BatchOut:
        def read(session: Session) -> list[BatchOut]:
            rows = repo.batch_records_with_counts_sync(session, school_id, batch_ids=[batch_id])
            return [batch_out(*row) for row in rows]

        found = await read_core(self.sessionmaker, read)
        if not found:
            raise NotFound("batch")
        return found[0]

    def report_deadline(self, received_on: date) -> date:
        """The day the district reports a batch received on `received_on` to the province by (the
        5-day rule, `rules.timeliness.district_report_deadline`): the chat says it on saving."""
        return district_report_deadline(received_on)

    async def batch_to_hand_over(self, batch_id: int, *, school_id: int) -> BatchOut:
        """The school's batch (another school's is not found), refused when it has no device left
        (`rules.check_devices_left`): the chat's batch step."""
        batch = await self.get_batch(batch_id, school_id=school_id)
        rules.check_devices_left(batch.quantity, batch.handed_over)
        return batch

    async def update_batch(
        self, batch_id: int, data: BatchUpdate, *, school_id: int, actor_id: int | None
    ) -> BatchOut:
        changes = data.changes()
        try:
            async with self.sessionmaker.begin() as session:
                batch = await self._batch_in_school(session, batch_id, school_id)
                await repo.ensure_program_unlocked(
                    session, school_id, batch.received_on, changes.get("received_on")
                )
                before = audit.snapshot(batch)
                for name in ("source", "device_type"):
                    # What the students were given stands: its source and type are fixed once handed over.
                    if name in changes and changes[name] != getattr(batch, name):
                        handed = await session.scalar(
                            select(func.count(Handover.id)).where(Handover.batch_id == batch.id)
                        )
                        if handed:
                            raise DomainError(f"devices.{name}_has_handovers", count=handed)
                source = changes.get("source", batch.source)
                donor_id = changes.get("donor_id", batch.donor_id)
                if "source" in changes or "donor_id" in changes:
                    await self._check_donor(session, school_id, source, donor_id)
                if "quantity" in changes:
                    rules.check_quantity(changes["quantity"], batch.allocated)
                if "received_on" in changes:
                    await self._check_received_on(session, batch, changes["received_on"])
                for key, value in changes.items():
                    setattr(batch, key, value)
                # Lateness is judged on when the receipt was first entered, against the corrected date.
                batch.entered_late = is_late_entry(batch.received_on, batch.entered_at, self.clock.tz)
                batch.updated_at = self.clock.now()
                await session.flush()
                await audit.record(
                    session, actor_id=actor_id, action=AuditAction.UPDATE, row=batch, before=before
                )
                return await load_batch_out(session, batch.id, school_id)
        except IntegrityError as exc:
            # The CHECK allocated <= quantity: a device was handed over while the quantity was lowered.
            raise Conflict("devices.save_conflict") from exc

    async def delete_batch(self, batch_id: int, *, school_id: int, actor_id: int | None) -> None:
        """Delete a batch entered by mistake; refused while any handover of it exists."""
        try:
            await self._delete_batch(batch_id, school_id=school_id, actor_id=actor_id)
        except IntegrityError as exc:  # a handover's foreign key: one was added meanwhile
            raise Conflict("devices.save_conflict") from exc

    async def _delete_batch(self, batch_id: int, *, school_id: int, actor_id: int | None) -> None:
        async with self.sessionmaker.begin() as session:
            batch = await self._batch_in_school(session, batch_id, school_id)
            await repo.ensure_program_unlocked(session, school_id, batch.received_on)
            handovers = await session.scalar(
                select(func.count(Handover.id)).where(Handover.batch_id == batch_id)
            )
            if handovers:
                raise DomainError("devices.batch_has_handovers", count=handovers)
            before = audit.snapshot(batch)
            await session.delete(batch)
            await session.flush()
            await audit.record(
                session, actor_id=actor_id, action=AuditAction.DELETE, row=batch, before=before
            )

    # --- internals --------------------------------------------------------------------------------

    async def _by_request_key(
        self, session: AsyncSession, request_key: str, school_id: int
    ) -> BatchOut | None:
        batch = await session.scalar(select(DonationBatch).where(DonationBatch.request_key == request_key))
        if batch is None:
            return None
        if batch.school_id != school_id:
            raise Conflict("devices.save_conflict")
        return await load_batch_out(session, batch.id, school_id, replayed=True)

    async def _batch_in_school(self, session: AsyncSession, batch_id: int, school_id: int) -> DonationBatch:
        """The batch, row-locked (PostgreSQL) so that no handover is allocated from it meanwhile."""
        batch = await repo.batch_in_school(session, batch_id, school_id, for_update=True)
        if batch is None:
            raise NotFound("batch")
        return batch

    async def _check_donor(
        self, session: AsyncSession, school_id: int, source: DonationSource, donor_id: int | None
    ) -> None:
        if donor_id is None:
            if source is DonationSource.OTHER:
                raise DomainError("devices.donor_required")
            return
        donor = await session.get(Donor, donor_id)
        if donor is None or donor.school_id not in (None, school_id):
            raise DomainError("devices.donor_not_found")
        if source is DonationSource.OTHER and donor.id in await self._program_donor_ids(session, [donor]):
            raise DomainError("devices.donor_is_program", name=donor.name)

    async def _program_donor_ids(self, session: AsyncSession, donors: list[Donor]) -> set[int]:
        """Which of `donors` stand for the programme: named after it, or district-wide and given to
        programme batches (as the demo district's «Chương trình … (Bộ GD&ĐT, Bộ TT&TT)»)."""
        program = {d.id for d in donors if names_the_programme(d.name)}
        district_wide = [d.id for d in donors if d.school_id is None and d.id not in program]
        if district_wide:
            used = await session.scalars(
                select(DonationBatch.donor_id)
                .where(
                    DonationBatch.source == DonationSource.PROGRAM, DonationBatch.donor_id.in_(district_wide)
                )
                .distinct()
            )
            program |= {donor_id for donor_id in used if donor_id is not None}
        return program

    async def _check_received_on(
        self, session: AsyncSession, batch: DonationBatch, received_on: date
    ) -> None:
        first_handed = await session.scalar(
            select(func.min(Handover.handed_on)).where(Handover.batch_id == batch.id)
        )
        rules.check_received_on(received_on, first_handed, self.clock.today())
