"""Batches and handovers: stock, the allocation counter, the round lock.

Each query is written once, synchronously over a session (`…_sync`, run in one thread hop by
`storage.db.read_core` / `write_core`); the async form used inside an AsyncSession runs the same code
through `run_sync`."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.enums import DonationSource, HandoverKind
from storage.models import DonationBatch, Donor, Handover, School
from storage.repositories import core, locks
from storage.schemas.devices import BatchIn


async def ensure_program_unlocked(session: AsyncSession, school_id: int, *days: date | None) -> None:
    """Refuse a devices record dated any of `days` (an edit: the old day and the new one) when a
    locked period of the school's programme part holds it (storage.repositories.locks)."""
    await locks.refuse_event(session, school_id, "devices", *days)


def ensure_program_unlocked_sync(session: Session, school_id: int, *days: date | None) -> None:
    locks.refuse_event_sync(session, school_id, "devices", *days)


async def next_batch_number(session: AsyncSession, school_id: int) -> int:
    """The school's next batch number. The school's row is locked first — the lock the Excel import of
    batches takes too (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers) — so two
    batches entered at once never get the same number."""
    await session.execute(select(School.id).where(School.id == school_id).with_for_update())
    highest = await session.scalar(
        select(func.max(DonationBatch.number)).where(DonationBatch.school_id == school_id)
    )
    return (highest or 0) + 1


async def batch_in_school(
    session: AsyncSession, batch_id: int, school_id: int, *, for_update: bool = False
) -> DonationBatch | None:
    """The batch if it belongs to `school_id`; `for_update` row-locks it (PostgreSQL)."""
    return await session.run_sync(batch_in_school_sync, batch_id, school_id, for_update=for_update)


def batch_in_school_sync(
    session: Session, batch_id: int, school_id: int, *, for_update: bool = False
) -> DonationBatch | None:
    query = select(DonationBatch).where(DonationBatch.id == batch_id, DonationBatch.school_id == school_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


async def allocate_one(session: AsyncSession, batch_id: int) -> bool:
    """Take one device from the batch, only if one is left. The conditional UPDATE is the guard:
    SQLite's BEGIN IMMEDIATE serialises writers and PostgreSQL row-locks the batch, re-checking the
    condition once the other writer commits, so two confirms of the last device cannot both win."""
    return await session.run_sync(allocate_one_sync, batch_id)


def allocate_one_sync(session: Session, batch_id: int) -> bool:
    result = session.execute(_allocate_one(), {"batch_id": batch_id})
    return cast(CursorResult[Any], result).rowcount == 1


@functools.cache
def _allocate_one() -> Any:
    return (
        update(DonationBatch)
        .where(DonationBatch.id == bindparam("batch_id"), DonationBatch.allocated < DonationBatch.quantity)
        .values(allocated=DonationBatch.allocated + 1)
        .execution_options(synchronize_session=False)
    )


async def release_one(session: AsyncSession, batch_id: int) -> None:
    """Put one device back (a loan returned, a handover deleted)."""
    await session.execute(
        update(DonationBatch)
        .where(DonationBatch.id == batch_id, DonationBatch.allocated > 0)
        .values(allocated=DonationBatch.allocated - 1)
        .execution_options(synchronize_session=False)
    )


def _handover_counts() -> Any:
    """Gifts, open loans and returned loans of each batch of the school `:school_id`."""
    open_loan = and_(Handover.kind == HandoverKind.LOAN, Handover.returned_on.is_(None))
    return (
        select(
            Handover.batch_id.label("batch_id"),
            func.sum(case((Handover.kind == HandoverKind.GIFT, 1), else_=0)).label("gifts"),
            func.sum(case((open_loan, 1), else_=0)).label("open_loans"),
            func.sum(case((Handover.returned_on.is_not(None), 1), else_=0)).label("returned_loans"),
        )
        # Only the school's batches are counted: the handovers of the whole district are not read.
        .where(
            Handover.batch_id.in_(
                select(DonationBatch.id).where(DonationBatch.school_id == bindparam("school_id"))
            )
        )
        .group_by(Handover.batch_id)
        .subquery()
    )


@functools.cache
def _batches_query(by_id: bool, with_stock_only: bool, records: bool = False) -> Any:
    """Built once per kind (the handover flow asks on most of its steps); values bound at execution.
    `records`: the batch as its columns (`batch_records_with_counts_sync`), not an ORM entity."""
    counts = _handover_counts()
    query = (
        select(
            *(core.columns(DonationBatch) if records else [DonationBatch]),
            Donor.name,
            func.coalesce(counts.c.gifts, 0),
            func.coalesce(counts.c.open_loans, 0),
            func.coalesce(counts.c.returned_loans, 0),
        )
        .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
        .outerjoin(counts, counts.c.batch_id == DonationBatch.id)
        .where(DonationBatch.school_id == bindparam("school_id"))
        .order_by(DonationBatch.received_on.desc(), DonationBatch.id.desc())
    )
    if by_id:
        query = query.where(DonationBatch.id.in_(bindparam("batch_ids", expanding=True)))
    if with_stock_only:
        query = query.where(DonationBatch.allocated < DonationBatch.quantity)
    return query


async def batches_with_counts(
    session: AsyncSession,
    school_id: int,
    *,
    batch_ids: list[int] | None = None,
    with_stock_only: bool = False,
) -> list[tuple[DonationBatch, str | None, int, int, int]]:
    """(batch, donor name, gifts, open loans, returned loans), newest receipt first."""
    return await session.run_sync(
        batches_with_counts_sync, school_id, batch_ids=batch_ids, with_stock_only=with_stock_only
    )


def batches_with_counts_sync(
    session: Session,
    school_id: int,
    *,
    batch_ids: list[int] | None = None,
    with_stock_only: bool = False,
) -> list[tuple[DonationBatch, str | None, int, int, int]]:
    query = _batches_query(batch_ids is not None, with_stock_only)
    params: dict[str, Any] = {"school_id": school_id}
    if batch_ids is not None:
        params["batch_ids"] = list(batch_ids)
    result = session.execute(query, params)
    return [
        (batch, donor, int(gifts), int(loans), int(returned))
        for batch, donor, gifts, loans, returned in result
    ]


def batch_records_with_counts_sync(
    session: Session,
    school_id: int,
    *,
    batch_ids: list[int] | None = None,
    with_stock_only: bool = False,
) -> list[tuple[Any, str | None, int, int, int]]:
    """`batches_with_counts_sync` with each batch a plain record (`storage.repositories.core`): the
    hot path's reads (the handover flow's batch list and batch)."""
    query = _batches_query(batch_ids is not None, with_stock_only, True)
    params: dict[str, Any] = {"school_id": school_id}
    if batch_ids is not None:
        params["batch_ids"] = list(batch_ids)
    make = core.record_type(DonationBatch)._make
    width = len(core.table(DonationBatch).c)
    return [
        (make(row[:width]), row[width], int(row[width + 1]), int(row[width + 2]), int(row[width + 3]))
        for row in core.execute(session, query, params)
    ]


def batch_record_sync(session: Session, batch_id: int, school_id: int) -> Any | None:
    """`batch_in_school_sync` as a plain record (no lock: the hot path's reads and checks)."""
    row = core.execute(session, _batch_record(), {"batch_id": batch_id, "school_id": school_id}).first()
    return core.record(row, DonationBatch)


@functools.cache
def _batch_record() -> Any:
    batch = core.table(DonationBatch).c
    return select(*core.columns(DonationBatch)).where(
        batch.id == bindparam("batch_id"), batch.school_id == bindparam("school_id")
    )


def active_program_handover_sync(
    session: Session, student_id: int, *, exclude_handover_id: int | None = None
) -> tuple[Handover, DonationBatch] | None:
    """The student's programme device still held (a gift or an open loan), the earliest, with its
    batch: plain records (`storage.repositories.core`)."""
    params: dict[str, Any] = {"student_id": student_id}
    if exclude_handover_id is not None:
        params["exclude_id"] = exclude_handover_id
    row = core.execute(session, _active_program(exclude_handover_id is not None), params).first()
    return core.split(row, Handover, DonationBatch) if row else None


@functools.cache
def _active_program(excluding: bool) -> Any:
    handover, batch = core.table(Handover).c, core.table(DonationBatch).c
    query = (
        select(*core.columns(Handover, DonationBatch))
        .join_from(core.table(Handover), core.table(DonationBatch), batch.id == handover.batch_id)
        .where(
            handover.student_id == bindparam("student_id"),
            handover.returned_on.is_(None),
            batch.source == DonationSource.PROGRAM,
        )
        .order_by(handover.handed_on, handover.id)
        .limit(1)
    )
    return query.where(handover.id != bindparam("exclude_id")) if excluding else query


async def active_in_batch(session: AsyncSession, batch_id: int, student_id: int) -> Handover | None:
    return await session.run_sync(active_in_batch_sync, batch_id, student_id)


def active_in_batch_sync(session: Session, batch_id: int, student_id: int) -> Handover | None:
    """The student's device of this batch still held, as a plain record (`storage.repositories.core`)."""
    row = core.execute(session, _active_in_batch(), {"batch_id": batch_id, "student_id": student_id})
    return core.record(row.first(), Handover)  # type: ignore[no-any-return]


@functools.cache
def _active_in_batch() -> Any:
    handover = core.table(Handover).c
    return select(*core.columns(Handover)).where(
        handover.batch_id == bindparam("batch_id"),
        handover.student_id == bindparam("student_id"),
        handover.returned_on.is_(None),
    )


def new_batch(
    data: BatchIn, *, school_id: int, donor_id: int | None, actor_id: int | None, now: datetime, late: bool
) -> DonationBatch:
    """A received batch as entered, nothing handed over yet: the chat (/donation) and the Excel import
    build it alike (the caller numbers it, or the session's numbering does at flush)."""
    return DonationBatch(
        school_id=school_id,
        source=data.source,
        donor_id=donor_id,
        received_on=data.received_on,
        quantity=data.quantity,
        device_type=data.device_type,
        make_model=data.make_model,
        condition=data.condition,
        specs=data.specs,
        receipt_photo_file_id=data.receipt_photo_file_id,
        note=data.note,
        allocated=0,
        entered_by_id=actor_id,
        entered_at=now,
        entered_late=late,
    )
