"""The reports' queries: every figure is a GROUP BY / COUNT / SUM(CASE …) in the database.

Small tables (per school, per level, the whole scope, per batch, the inconsistencies) come back as
lists of plain dicts; the long per-student lists are statements the service streams. Columns are
labelled with the names `exports.reports` uses, and enumerations are read as their stored strings
(no Python enum per cell), so rows can go to the workbook writer as they are.

Which rows count (docs/reports.md, "The counting model"; the tests hold every sheet to it). Two
kinds of figure, and each table's note says which it shows:
- *stock as of the period's end*: needs of active students as they stood then (per student the
  latest state of need_history dated on or before it, unless closed; with no end, the needs now),
  needs met (a gift handed over by then), loans still open then, devices left at the school then
  (every batch received by then − gifts − open loans), each active student's doses given by then
  (≥1, ≥2, ≥3) and coverage;
- *events within the period*: batches received (and their donors, counted distinct), gifts, loans
  and returns by their own day, doses given (by product, dose number, place), entries late — one
  filter for each kind of event, whatever the sheet.
Schools: the active schools of the scope; students: active students (records of students who left
are in the reconciliation only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from storage.enums import (
    NEED_GROUPS,
    DonationSource,
    DosePlace,
    HandoverKind,
    PriorityGroup,
    SchoolLevel,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.models import (
    BatchReport,
    DonationBatch,
    Donor,
    Handover,
    NeedHistory,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    School,
    Staff,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.repositories.students import shown_student_code
from storage.rules.devices import MEETS_NEED
from storage.rules.needs import PROGRAM_GROUPS


@dataclass(frozen=True)
class ReportFilter:
    """The scope and the period, as the queries use them."""

    district_id: int
    levels: tuple[SchoolLevel, ...] | None = None
    school_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Ho_Chi_Minh"))


# --- building blocks ------------------------------------------------------------------------------


def _s(column: Any) -> Any:
    """Read an enumeration column as its stored string."""
    return type_coerce(column, String())


def count_if(condition: ColumnElement[bool], label: str) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(label)


def _zero(column: Any, label: str) -> Any:
    return cast(func.coalesce(column, 0), BigInteger).label(label)


def school_condition(f: ReportFilter, school: Any = School) -> ColumnElement[bool]:
    conditions = [school.district_id == f.district_id, school.active]
    if f.levels is not None:
        conditions.append(school.level.in_(f.levels))
    if f.school_id is not None:
        conditions.append(school.id == f.school_id)
    return and_(*conditions)


def in_period(column: Any, f: ReportFilter) -> list[ColumnElement[bool]]:
    conditions = []
    if f.date_from is not None:
        conditions.append(column >= f.date_from)
    if f.date_to is not None:
        conditions.append(column <= f.date_to)
    return conditions


def up_to_end(column: Any, f: ReportFilter) -> list[ColumnElement[bool]]:
    return [column <= f.date_to] if f.date_to is not None else []


def within(column: Any, f: ReportFilter) -> ColumnElement[bool]:
    """The day in `column` is inside the period, as one condition (for CASE)."""
    return and_(true(), *in_period(column, f))


def by_end(column: Any, f: ReportFilter) -> ColumnElement[bool]:
    """The day in `column` is on or before the period's end, as one condition (for CASE)."""
    return and_(true(), *up_to_end(column, f))


def _school_columns(school: Any = School) -> list[Any]:
    return [
        school.id.label("school_id"),
        school.code.label("school_code"),
        school.name.label("school_name"),
        _s(school.level).label("level"),
    ]


def _school_order(school: Any = School) -> list[Any]:
    return [school.level, school.code]


async def _dicts(session: AsyncSession, statement: Select[*tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in await session.execute(statement)]


async def rollup(
    session: AsyncSession,
    per_school: Select[*tuple[Any, ...]],
    metrics: Sequence[str],
    *,
    by: Sequence[str] = (),
    with_grand_total: bool = False,
) -> dict[str, Any]:
    """The per-school rows and the database's sums of them per level and for the whole scope
    (optionally split by `by`, e.g. the source of a batch; its last column orders the split).

    One statement: the per-school query is a common table expression, referenced by the UNION ALL
    of the school rows, the level sums and the scope's sums, so both databases compute it once."""
    table = per_school.order_by(None).cte("per_school")
    c = table.c
    split = [c[name] for name in by]
    sums = [cast(func.coalesce(func.sum(c[m]), 0), BigInteger).label(m) for m in metrics]
    schools = func.count(distinct(c.school_id)).label("schools")
    no_int, no_text = cast(null(), Integer()), cast(null(), String())

    def part(number: int) -> Any:
        return literal(number, Integer()).label("part")

    parts = [
        select(
            part(0),
            c.school_id,
            c.school_code,
            c.school_name,
            c.level,
            *split,
            literal(1, Integer()).label("schools"),
            *[c[m] for m in metrics],
        ),
        select(part(1), no_int, no_text, no_text, c.level, *split, schools, *sums).group_by(c.level, *split),
        select(part(2), no_int, no_text, no_text, no_text, *split, schools, *sums).group_by(*split),
    ]
    if split and with_grand_total:
        parts.append(
            select(
                part(3),
                no_int,
                no_text,
                no_text,
                no_text,
                *[cast(null(), col.type) for col in split],
                schools,
                *sums,
            )
        )
    names = ["part", "school_id", "school_code", "school_name", "level", *by, "schools", *metrics]
    statement = union_all(*parts)
    ordered = statement.subquery()
    rows = await session.execute(
        select(*[ordered.c[i] for i in range(len(names))]).order_by(
            ordered.c[0], ordered.c[4], ordered.c[2], *[ordered.c[5 + i] for i in range(len(by))][-1:]
        )
    )
    result: dict[str, Any] = {"rows": [], "levels": [], "total": []}
    for values in rows:
        record = dict(zip(names, values, strict=True))
        number = record.pop("part")
        if number == 0:
            result["rows"].append(record)
            continue
        for name in ("school_id", "school_code", "school_name"):
            record.pop(name)
        if number >= 2:
            record.pop("level")
        result["levels" if number == 1 else "total"].append(record)
    return result


# --- needs (4.8.1 / 4.8.2) ------------------------------------------------------------------------

NEEDS_METRICS = (
    "students",
    "students_priority",
    *[f"{kind}_{group.value}" for group in NEED_GROUPS for kind in ("device", "connectivity")],
    "device_program",
    "device_total",
    "device_met",
    "device_unmet",
    "connectivity_total",
    "needs_total",
)


def _gift_received(f: ReportFilter, student_id: Any) -> Any:
    """The student was given a device (a gift, not a loan: `rules.devices.MEETS_NEED`) by the
    period's end."""
    gift = aliased(Handover)
    return exists().where(
        gift.student_id == student_id, gift.kind == MEETS_NEED, *up_to_end(gift.handed_on, f)
    )


def needs_as_of(f: ReportFilter) -> Any:
    """The needs standing at the period's end, one row per student: student_id, category,
    needs_device, needs_connectivity. A need has no event day, so the period's start does not matter."""
    if f.date_to is None:
        return select(
            NeedRecord.student_id.label("student_id"),
            NeedRecord.category.label("category"),
            NeedRecord.needs_device.label("needs_device"),
            NeedRecord.needs_connectivity.label("needs_connectivity"),
        ).subquery("needs_now")
    ranked = (
        select(
            NeedHistory.student_id.label("student_id"),
            NeedHistory.category.label("category"),
            NeedHistory.needs_device.label("needs_device"),
            NeedHistory.needs_connectivity.label("needs_connectivity"),
            NeedHistory.closed.label("closed"),
            func.row_number()
            .over(
                partition_by=NeedHistory.student_id,
                order_by=(NeedHistory.changed_on.desc(), NeedHistory.id.desc()),
            )
            .label("rank"),
        )
        .where(NeedHistory.changed_on <= f.date_to)
        .subquery("need_states")
    )
    return (
        select(ranked.c.student_id, ranked.c.category, ranked.c.needs_device, ranked.c.needs_connectivity)
        .where(ranked.c.rank == 1, ~ranked.c.closed)
        .subquery("needs_as_of")
    )


def needs_per_school(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    standing = needs_as_of(f)
    category, device, connectivity = (
        standing.c.category,
        standing.c.needs_device,
        standing.c.needs_connectivity,
    )
    metrics = []
    for group in NEED_GROUPS:
        metrics.append(count_if(and_(category == group, device), f"device_{group.value}"))
        metrics.append(count_if(and_(category == group, connectivity), f"connectivity_{group.value}"))
    metrics += [
        count_if(and_(category.in_(PROGRAM_GROUPS), device), "device_program"),
        count_if(device, "device_total"),
        count_if(and_(device, _gift_received(f, standing.c.student_id)), "device_met"),
        count_if(and_(device, ~_gift_received(f, standing.c.student_id)), "device_unmet"),
        count_if(connectivity, "connectivity_total"),
        func.count(standing.c.student_id).label("needs_total"),
    ]
    needs = (
        select(Student.school_id.label("school_id"), *metrics)
        .select_from(standing)
        .join(Student, Student.id == standing.c.student_id)
        .where(Student.active)
        .group_by(Student.school_id)
        .subquery()
    )
    students = _students_per_school()
    return (
        select(
            *_school_columns(),
            _zero(students.c.students, "students"),
            _zero(students.c.students_priority, "students_priority"),
            *[_zero(needs.c[m], m) for m in NEEDS_METRICS[2:]],
        )
        .select_from(School)
        .outerjoin(students, students.c.school_id == School.id)
        .outerjoin(needs, needs.c.school_id == School.id)
        .where(school_condition(f))
        .order_by(*_school_order())
    )


def _students_per_school() -> Any:
    return (
        select(
            Student.school_id.label("school_id"),
            func.count(Student.id).label("students"),
            count_if(Student.priority_group != PriorityGroup.NONE, "students_priority"),
        )
        .where(Student.active)
        .group_by(Student.school_id)
        .subquery()
    )


async def needs_rollup(session: AsyncSession, f: ReportFilter) -> dict[str, Any]:
    return await rollup(session, needs_per_school(f), NEEDS_METRICS)


def _first_handover(f: ReportFilter, kind: HandoverKind, *, open_only: bool = False) -> Any:
    """The day the student was first given (or lent, still open at the period's end) a device."""
    handover = aliased(Handover)
    conditions = [handover.student_id == Student.id, handover.kind == kind, *up_to_end(handover.handed_on, f)]
    if open_only:
        if f.date_to is None:
            conditions.append(handover.returned_on.is_(None))
        else:
            conditions.append(or_(handover.returned_on.is_(None), handover.returned_on > f.date_to))
    return select(func.min(handover.handed_on)).where(*conditions).scalar_subquery()


def needs_students(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    standing = needs_as_of(f)
    return (
        select(
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            Student.date_of_birth.label("date_of_birth"),
            _s(Student.gender).label("gender"),
            Student.grade.label("grade"),
            Student.class_name.label("class_name"),
            _s(Student.priority_group).label("priority_group"),
            _s(standing.c.category).label("category"),
            standing.c.needs_device.label("needs_device"),
            standing.c.needs_connectivity.label("needs_connectivity"),
            _first_handover(f, HandoverKind.GIFT).label("gift_on"),
            _first_handover(f, HandoverKind.LOAN, open_only=True).label("loan_on"),
            func.coalesce(NeedRecord.note, "").label("note"),
            func.coalesce(NeedRecord.entered_late, False).label("entered_late"),
        )
        .select_from(standing)
        .join(Student, Student.id == standing.c.student_id)
        .join(School, School.id == Student.school_id)
        .outerjoin(NeedRecord, NeedRecord.student_id == standing.c.student_id)
        .where(school_condition(f), Student.active)
        .order_by(*_school_order(), Student.class_name, Student.search_name, Student.id)
    )


# --- devices (4.8.3) ------------------------------------------------------------------------------

# Events within the period: batches (received), donors (of those batches, distinct), received, given,
# lent, returned (each by its own day); stock at the period's end: on_loan, left.
DEVICE_METRICS = ("batches", "donors", "received", "given", "lent", "returned", "on_loan", "left")


def _loan_open(f: ReportFilter) -> ColumnElement[bool]:
    loan = Handover.kind == HandoverKind.LOAN
    if f.date_to is None:
        return and_(loan, Handover.returned_on.is_(None))
    return and_(loan, or_(Handover.returned_on.is_(None), Handover.returned_on > f.date_to))


def _loan_returned(f: ReportFilter) -> ColumnElement[bool]:
    loan = Handover.kind == HandoverKind.LOAN
    if f.date_to is None:
        return and_(loan, Handover.returned_on.is_not(None))
    return and_(loan, Handover.returned_on <= f.date_to)


def handovers_per_batch(f: ReportFilter) -> Any:
    """Per batch: gifts, open loans, returned loans (as of the period's end), last entry."""
    return (
        select(
            Handover.batch_id.label("batch_id"),
            count_if(Handover.kind == HandoverKind.GIFT, "given"),
            count_if(_loan_open(f), "on_loan"),
            count_if(_loan_returned(f), "returned"),
            func.count(Handover.id).label("handovers"),
            func.max(Handover.entered_at).label("last_entered_at"),
        )
        .where(*up_to_end(Handover.handed_on, f))
        .group_by(Handover.batch_id)
        .subquery()
    )


def batches(f: ReportFilter, *, reported: bool = True) -> Select[*tuple[Any, ...]]:
    """The batches received within the period, each with its handovers as of the period's end and
    (`reported`) when the district reported it upward (the 5-day rule)."""
    per_batch = handovers_per_batch(f)
    given = func.coalesce(per_batch.c.given, 0)
    on_loan = func.coalesce(per_batch.c.on_loan, 0)
    statement = (
        select(
            DonationBatch.id.label("batch_id"),
            # The school's own number, what people see (not read for the figures: migration 0002 runs
            # them on a database without it).
            (DonationBatch.number if reported else cast(null(), Integer)).label("batch_number"),
            *_school_columns(),
            _s(DonationBatch.source).label("source"),
            DonationBatch.donor_id.label("donor_id"),
            Donor.name.label("donor_name"),
            _s(Donor.kind).label("donor_kind"),
            DonationBatch.received_on.label("received_on"),
            _s(DonationBatch.device_type).label("device_type"),
            DonationBatch.make_model.label("make_model"),
            _s(DonationBatch.condition).label("condition"),
            DonationBatch.quantity.label("quantity"),
            _zero(per_batch.c.given, "given"),
            _zero(per_batch.c.on_loan, "on_loan"),
            _zero(per_batch.c.returned, "returned"),
            cast(DonationBatch.quantity - given - on_loan, BigInteger).label("left"),
            _zero(per_batch.c.handovers, "handovers"),
            per_batch.c.last_entered_at.label("last_entered_at"),
            DonationBatch.entered_late.label("entered_late"),
            (BatchReport.reported_at if reported else cast(null(), BatchReport.reported_at.type)).label(
                "reported_at"
            ),
        )
        .select_from(DonationBatch)
        .join(School, School.id == DonationBatch.school_id)
        .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
        .outerjoin(per_batch, per_batch.c.batch_id == DonationBatch.id)
        .where(school_condition(f), *in_period(DonationBatch.received_on, f))
        .order_by(*_school_order(), DonationBatch.received_on, DonationBatch.id)
    )
    if reported:
        statement = statement.outerjoin(BatchReport, BatchReport.batch_id == DonationBatch.id)
    return statement


def _sources() -> Any:
    return union_all(
        select(literal("program", String()).label("source"), literal(0, Integer()).label("source_order")),
        select(literal("other", String()).label("source"), literal(1, Integer()).label("source_order")),
    ).subquery()


def _handover_figures(f: ReportFilter) -> Any:
    """Per school (the batch's) and source: gifts, loans and returns within the period, each by its
    own day whatever the batch's day (events); loans open and devices held by students at the
    period's end (stock)."""
    gift = Handover.kind == HandoverKind.GIFT
    loan = Handover.kind == HandoverKind.LOAN
    handed_by_end = by_end(Handover.handed_on, f)
    open_loan = and_(handed_by_end, _loan_open(f))
    return (
        select(
            DonationBatch.school_id.label("school_id"),
            _s(DonationBatch.source).label("source"),
            count_if(and_(gift, within(Handover.handed_on, f)), "given"),
            count_if(and_(loan, within(Handover.handed_on, f)), "lent"),
            count_if(
                and_(loan, Handover.returned_on.is_not(None), within(Handover.returned_on, f)), "returned"
            ),
            count_if(open_loan, "on_loan"),
            # Held by students at the end, of batches received by then (the rest is left at school).
            count_if(
                and_(by_end(DonationBatch.received_on, f), or_(and_(gift, handed_by_end), open_loan)), "held"
            ),
        )
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .group_by(DonationBatch.school_id, DonationBatch.source)
        .subquery()
    )


def devices_per_school(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    batch = batches(f, reported=False).order_by(None).subquery()
    received = (
        select(
            batch.c.school_id,
            batch.c.source,
            func.count(batch.c.batch_id).label("batches"),
            func.count(distinct(batch.c.donor_id)).label("donors"),
            func.sum(batch.c.quantity).label("received"),
        )
        .group_by(batch.c.school_id, batch.c.source)
        .subquery()
    )
    stock = (
        select(
            DonationBatch.school_id.label("school_id"),
            _s(DonationBatch.source).label("source"),
            func.sum(DonationBatch.quantity).label("quantity"),
        )
        .where(*up_to_end(DonationBatch.received_on, f))
        .group_by(DonationBatch.school_id, DonationBatch.source)
        .subquery()
    )
    handed = _handover_figures(f)
    sources = _sources()

    def joined(sub: Any) -> ColumnElement[bool]:
        return and_(sub.c.school_id == School.id, sub.c.source == sources.c.source)

    left = func.coalesce(stock.c.quantity, 0) - func.coalesce(handed.c.held, 0)
    return (
        select(
            *_school_columns(),
            sources.c.source.label("source"),
            sources.c.source_order.label("source_order"),
            *[_zero(received.c[m], m) for m in ("batches", "donors", "received")],
            *[_zero(handed.c[m], m) for m in ("given", "lent", "returned", "on_loan")],
            cast(left, BigInteger).label("left"),
        )
        .select_from(School)
        .join(sources, true())
        .outerjoin(received, joined(received))
        .outerjoin(stock, joined(stock))
        .outerjoin(handed, joined(handed))
        .where(school_condition(f))
        .order_by(*_school_order(), sources.c.source_order)
    )


async def devices_rollup(session: AsyncSession, f: ReportFilter) -> dict[str, Any]:
    result = await rollup(
        session, devices_per_school(f), DEVICE_METRICS, by=("source", "source_order"), with_grand_total=True
    )
    # Donors are distinct things: a level's or the scope's donors are counted again, never summed
    # from the schools (the programme's one donor gives many schools their batches).
    batch = batches(f).order_by(None).subquery()
    donors = func.count(distinct(batch.c.donor_id))
    per_level = {
        (level, source): n
        for level, source, n in await session.execute(
            select(batch.c.level, batch.c.source, donors).group_by(batch.c.level, batch.c.source)
        )
    }
    per_source = {
        source: n
        for source, n in await session.execute(select(batch.c.source, donors).group_by(batch.c.source))
    }
    every = int(await session.scalar(select(donors)) or 0)
    for row in result["levels"]:
        row["donors"] = int(per_level.get((row["level"], row["source"]), 0))
    for row in result["total"]:
        row["donors"] = every if row.get("source") is None else int(per_source.get(row["source"], 0))
    return result


async def batch_rows(session: AsyncSession, f: ReportFilter) -> list[dict[str, Any]]:
    return await _dicts(session, batches(f))


async def batch_handover_days(session: AsyncSession, f: ReportFilter) -> dict[int, list[tuple[date, int]]]:
    """Per batch received within the period: (day, handovers that day), gifts and loans alike (the
    5-day rule asks whether the whole batch was handed over in time)."""
    batch = batches(f).order_by(None).subquery()
    rows = await session.execute(
        select(Handover.batch_id, Handover.handed_on, func.count(Handover.id))
        .where(Handover.batch_id.in_(select(batch.c.batch_id)))
        .group_by(Handover.batch_id, Handover.handed_on)
    )
    found: dict[int, list[tuple[date, int]]] = {}
    for batch_id, handed_on, count in rows:
        found.setdefault(int(batch_id), []).append((handed_on, int(count)))
    return found


def device_handovers(f: ReportFilter, kind: HandoverKind) -> Select[*tuple[Any, ...]]:
    columns = [
        School.code.label("school_code"),
        School.name.label("school_name"),
        DonationBatch.number.label("batch_id"),  # shown: the school's own number of the batch
        _s(DonationBatch.source).label("source"),
        Donor.name.label("donor_name"),
        _s(DonationBatch.device_type).label("device_type"),
        DonationBatch.make_model.label("make_model"),
        shown_student_code().label("student_code"),
        Student.full_name.label("full_name"),
        Student.class_name.label("class_name"),
        Handover.handed_on.label("handed_on"),
    ]
    if kind is HandoverKind.LOAN:
        returned = _loan_returned(f)
        columns += [
            case((returned, Handover.returned_on), else_=null()).label("returned_on"),
            case((returned, literal("returned", String())), else_=literal("open", String())).label(
                "loan_status"
            ),
        ]
    columns += [Handover.entered_late.label("entered_late"), Handover.note.label("note")]
    if kind is HandoverKind.LOAN:
        # Every loan a figure of Biểu 2 counts: lent within the period, open at its end, returned in it.
        shown = and_(
            *up_to_end(Handover.handed_on, f),
            or_(
                within(Handover.handed_on, f),
                _loan_open(f),
                and_(Handover.returned_on.is_not(None), within(Handover.returned_on, f)),
            ),
        )
    else:
        shown = within(Handover.handed_on, f)
    return (
        select(*columns)
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .join(School, School.id == DonationBatch.school_id)
        .join(Student, Student.id == Handover.student_id)
        .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
        .where(school_condition(f), Handover.kind == kind, shown)
        .order_by(
            *_school_order(), DonationBatch.id, Handover.handed_on, Student.class_name, Student.search_name
        )
    )


# --- vaccination (4.9) ----------------------------------------------------------------------------

VACCINATION_METRICS = (
    "enrolled",
    "dose1",
    "dose2",
    "dose3",
    "doses",
    "at_school",
    "in_community",
    "elsewhere",
)
COVERAGE_METRICS = ("enrolled", "dose1", "dose2", "dose3")


def _doses_per_student(f: ReportFilter) -> Any:
    """Each student's doses given by the period's end: vaccination status is a stock."""
    return (
        select(VaccineDose.student_id.label("student_id"), func.count(VaccineDose.id).label("doses"))
        .where(*up_to_end(VaccineDose.given_on, f))
        .group_by(VaccineDose.student_id)
        .subquery()
    )


def _coverage_columns(per_student: Any) -> list[Any]:
    doses = func.coalesce(per_student.c.doses, 0)
    return [
        func.count(Student.id).label("enrolled"),
        count_if(doses >= 1, "dose1"),
        count_if(doses >= 2, "dose2"),
        count_if(doses >= 3, "dose3"),
    ]


def vaccination_per_school(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    per_student = _doses_per_student(f)
    coverage = (
        select(Student.school_id.label("school_id"), *_coverage_columns(per_student))
        .select_from(Student)
        .outerjoin(per_student, per_student.c.student_id == Student.id)
        .where(Student.active)
        .group_by(Student.school_id)
        .subquery()
    )
    place = VaccineDose.place
    doses = (
        select(
            Student.school_id.label("school_id"),
            func.count(VaccineDose.id).label("doses"),
            count_if(place == DosePlace.SCHOOL, "at_school"),
            count_if(place == DosePlace.COMMUNITY, "in_community"),
            count_if(place == DosePlace.ELSEWHERE, "elsewhere"),
        )
        .select_from(VaccineDose)
        .join(Student, Student.id == VaccineDose.student_id)
        .where(Student.active, *in_period(VaccineDose.given_on, f))
        .group_by(Student.school_id)
        .subquery()
    )
    return (
        select(
            *_school_columns(),
            *[_zero(coverage.c[m], m) for m in COVERAGE_METRICS],
            *[_zero(doses.c[m], m) for m in ("doses", "at_school", "in_community", "elsewhere")],
        )
        .select_from(School)
        .outerjoin(coverage, coverage.c.school_id == School.id)
        .outerjoin(doses, doses.c.school_id == School.id)
        .where(school_condition(f))
        .order_by(*_school_order())
    )


def vaccination_per_grade(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    per_student = _doses_per_student(f)
    return (
        select(
            School.id.label("school_id"),
            School.code.label("school_code"),
            School.name.label("school_name"),
            _s(School.level).label("level"),
            Student.grade.label("grade"),
            *_coverage_columns(per_student),
        )
        .select_from(Student)
        .join(School, School.id == Student.school_id)
        .outerjoin(per_student, per_student.c.student_id == Student.id)
        .where(school_condition(f), Student.active)
        .group_by(School.id, School.code, School.name, School.level, Student.grade)
        .order_by(*_school_order(), Student.grade)
    )


def _dose_split(place_or_product: list[Any]) -> list[Any]:
    number = VaccineDose.dose_number
    return [
        *place_or_product,
        func.count(VaccineDose.id).label("doses"),
        count_if(number == 1, "first_doses"),
        count_if(number == 2, "second_doses"),
        count_if(number >= 3, "booster_doses"),
    ]


def _scoped_doses(statement: Select[*tuple[Any, ...]], f: ReportFilter) -> Select[*tuple[Any, ...]]:
    return (
        statement.join(Student, Student.id == VaccineDose.student_id)
        .join(School, School.id == Student.school_id)
        .where(school_condition(f), Student.active, *in_period(VaccineDose.given_on, f))
    )


async def vaccination_rollup(session: AsyncSession, f: ReportFilter) -> dict[str, Any]:
    result = await rollup(session, vaccination_per_school(f), VACCINATION_METRICS)
    # The school × grade rows and the sums per grade, in one statement over one CTE.
    grades = vaccination_per_grade(f).order_by(None).cte("per_grade")
    g = grades.c
    no_int, no_text = cast(null(), Integer()), cast(null(), String())
    rows = select(
        literal(0, Integer()).label("part"),
        g.school_id,
        g.school_code,
        g.school_name,
        g.level,
        g.grade,
        literal(1, Integer()).label("schools"),
        *[g[m] for m in COVERAGE_METRICS],
    )
    sums = select(
        literal(1, Integer()),
        no_int,
        no_text,
        no_text,
        no_text,
        g.grade,
        func.count(distinct(g.school_id)),
        *[cast(func.sum(g[m]), BigInteger) for m in COVERAGE_METRICS],
    ).group_by(g.grade)
    both = union_all(rows, sums).subquery()
    names = [
        "part",
        "school_id",
        "school_code",
        "school_name",
        "level",
        "grade",
        "schools",
        *COVERAGE_METRICS,
    ]
    ordered = select(*[both.c[i] for i in range(len(names))]).order_by(
        both.c[0], both.c[4], both.c[2], both.c[5]
    )
    result["grades"], result["grade_totals"] = [], []
    for values in await session.execute(ordered):
        record = dict(zip(names, values, strict=True))
        if record.pop("part") == 0:
            result["grades"].append(record)
        else:
            result["grade_totals"].append(
                {
                    k: v
                    for k, v in record.items()
                    if k not in ("school_id", "school_code", "school_name", "level")
                }
            )
    result["products"] = await _dicts(
        session,
        _scoped_doses(
            select(*_dose_split([VaccineProduct.name.label("product_name")]))
            .select_from(VaccineDose)
            .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id),
            f,
        )
        .group_by(VaccineProduct.id, VaccineProduct.name, VaccineProduct.sort_order)
        .order_by(VaccineProduct.sort_order, VaccineProduct.name),
    )
    places = await _dicts(
        session,
        _scoped_doses(
            select(*_dose_split([_s(VaccineDose.place).label("place")])).select_from(VaccineDose), f
        ).group_by(VaccineDose.place),
    )
    by_place = {row["place"]: row for row in places}
    empty = {"doses": 0, "first_doses": 0, "second_doses": 0, "booster_doses": 0}
    result["places"] = [by_place.get(p.value, {**empty, "place": p.value}) for p in DosePlace]
    result["doses_total"] = (
        await _dicts(session, _scoped_doses(select(*_dose_split([])).select_from(VaccineDose), f))
    )[0]
    return result


def vaccination_doses(f: ReportFilter) -> Select[*tuple[Any, ...]]:
    return (
        select(
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            Student.date_of_birth.label("date_of_birth"),
            Student.grade.label("grade"),
            Student.class_name.label("class_name"),
            VaccineDose.dose_number.label("dose_number"),
            VaccineDose.given_on.label("given_on"),
            VaccineProduct.name.label("product_name"),
            VaccineDose.product_other_name.label("product_other_name"),
            _s(VaccineDose.place).label("place"),
            VaccineDose.entered_late.label("entered_late"),
        )
        .select_from(VaccineDose)
        .join(Student, Student.id == VaccineDose.student_id)
        .join(School, School.id == Student.school_id)
        .join(VaccineProduct, VaccineProduct.id == VaccineDose.product_id)
        .where(school_condition(f), Student.active, *in_period(VaccineDose.given_on, f))
        .order_by(
            *_school_order(), Student.class_name, Student.search_name, Student.id, VaccineDose.dose_number
        )
    )


# --- timeliness (the 1-day rule) ------------------------------------------------------------------

# The records the 1-day rule covers, each by its own day within the period; needs have no event day
# and can never be late, so they get a count of the states recorded in the period, outside the rate.
TIMELY_RECORDS = ("batches", "handovers", "returns", "doses")
TIMELINESS_METRICS = (
    *[f"{record}_{part}" for record in (*TIMELY_RECORDS, "records") for part in ("total", "late")],
    "needs_recorded",
)


def _late_counts(school_id: Any, record_id: Any, late: Any, prefix: str) -> list[Any]:
    return [
        school_id.label("school_id"),
        func.count(record_id).label(f"{prefix}_total"),
        count_if(late, f"{prefix}_late"),
    ]


def timeliness_per_school(f: ReportFilter, *, return_entries: bool = True) -> Select[*tuple[Any, ...]]:
    """`return_entries=False`: before migration 0005 a return had no entry time (none is late)."""
    batch_counts = (
        select(
            *_late_counts(DonationBatch.school_id, DonationBatch.id, DonationBatch.entered_late, "batches")
        )
        .where(*in_period(DonationBatch.received_on, f))
        .group_by(DonationBatch.school_id)
        .subquery()
    )
    handover_counts = (
        select(*_late_counts(DonationBatch.school_id, Handover.id, Handover.entered_late, "handovers"))
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .where(*in_period(Handover.handed_on, f))
        .group_by(DonationBatch.school_id)
        .subquery()
    )
    return_counts = (
        select(
            *_late_counts(
                DonationBatch.school_id,
                Handover.id,
                Handover.return_entered_late if return_entries else literal(False),
                "returns",
            )
        )
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .where(Handover.returned_on.is_not(None), *in_period(Handover.returned_on, f))
        .group_by(DonationBatch.school_id)
        .subquery()
    )
    # Enrolled students only, as in Biểu 4: doses of students who left are in the reconciliation.
    dose_counts = (
        select(*_late_counts(Student.school_id, VaccineDose.id, VaccineDose.entered_late, "doses"))
        .select_from(VaccineDose)
        .join(Student, Student.id == VaccineDose.student_id)
        .where(Student.active, *in_period(VaccineDose.given_on, f))
        .group_by(Student.school_id)
        .subquery()
    )
    need_counts = (
        select(Student.school_id.label("school_id"), func.count(NeedHistory.id).label("needs_recorded"))
        .select_from(NeedHistory)
        .join(Student, Student.id == NeedHistory.student_id)
        .where(Student.active, *in_period(NeedHistory.changed_on, f))
        .group_by(Student.school_id)
        .subquery()
    )
    parts = (
        ("batches", batch_counts),
        ("handovers", handover_counts),
        ("returns", return_counts),
        ("doses", dose_counts),
    )
    columns = []
    totals: dict[str, Any] = {"total": 0, "late": 0}
    for prefix, sub in parts:
        for part in ("total", "late"):
            value = func.coalesce(sub.c[f"{prefix}_{part}"], 0)
            columns.append(cast(value, BigInteger).label(f"{prefix}_{part}"))
            totals[part] = totals[part] + value
    statement = select(
        *_school_columns(),
        *columns,
        cast(totals["total"], BigInteger).label("records_total"),
        cast(totals["late"], BigInteger).label("records_late"),
        _zero(need_counts.c.needs_recorded, "needs_recorded"),
    ).select_from(School)
    for _, sub in (*parts, ("needs", need_counts)):
        statement = statement.outerjoin(sub, sub.c.school_id == School.id)
    return statement.where(school_condition(f)).order_by(*_school_order())


async def timeliness_rollup(session: AsyncSession, f: ReportFilter) -> dict[str, Any]:
    return await rollup(session, timeliness_per_school(f), TIMELINESS_METRICS)


async def add_not_in_csdl(session: AsyncSession, rollup: dict[str, Any], touched_before: datetime) -> None:
    """Add `not_in_csdl` to the timeliness rollup's school, level and total rows: records entered or
    changed in the bot before `touched_before` that are not in the sector database (issue 19; a count
    as of now, whatever the period: see storage.repositories.csdl)."""
    from storage.repositories.csdl import not_in_csdl

    found = await not_in_csdl(session, [row["school_id"] for row in rollup["rows"]], touched_before)
    by_level: dict[str, int] = {}
    for row in rollup["rows"]:
        row["not_in_csdl"] = found.get(row["school_id"], (0, []))[0]
        by_level[row["level"]] = by_level.get(row["level"], 0) + row["not_in_csdl"]
    for row in rollup["levels"]:
        row["not_in_csdl"] = by_level.get(row["level"], 0)
    for row in rollup["total"]:
        row["not_in_csdl"] = sum(by_level.values())


def late_records(f: ReportFilter, record_type: str) -> Select[*tuple[Any, ...]]:
    """The late entries of one kind of record, as rows of the "entered late" sheet."""
    entered_by = aliased(Staff)
    if record_type == "batch":
        return (
            select(
                literal("batch", String()).label("record_type"),
                School.code.label("school_code"),
                School.name.label("school_name"),
                (literal("#", String()) + cast(DonationBatch.number, String())).label("subject_code"),
                func.coalesce(Donor.name, DonationBatch.make_model).label("subject_name"),
                DonationBatch.received_on.label("event_on"),
                DonationBatch.entered_at.label("entered_at"),
                entered_by.full_name.label("entered_by"),
            )
            .select_from(DonationBatch)
            .join(School, School.id == DonationBatch.school_id)
            .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
            .outerjoin(entered_by, entered_by.id == DonationBatch.entered_by_id)
            .where(school_condition(f), DonationBatch.entered_late, *in_period(DonationBatch.received_on, f))
            .order_by(*_school_order(), DonationBatch.received_on, DonationBatch.id)
        )
    if record_type == "handover":
        return (
            select(
                literal("handover", String()).label("record_type"),
                School.code.label("school_code"),
                School.name.label("school_name"),
                shown_student_code().label("subject_code"),
                Student.full_name.label("subject_name"),
                Handover.handed_on.label("event_on"),
                Handover.entered_at.label("entered_at"),
                entered_by.full_name.label("entered_by"),
            )
            .select_from(Handover)
            .join(DonationBatch, DonationBatch.id == Handover.batch_id)
            .join(School, School.id == DonationBatch.school_id)
            .join(Student, Student.id == Handover.student_id)
            .outerjoin(entered_by, entered_by.id == Handover.entered_by_id)
            .where(school_condition(f), Handover.entered_late, *in_period(Handover.handed_on, f))
            .order_by(*_school_order(), Handover.handed_on, Handover.id)
        )
    if record_type == "dose":
        return (
            select(
                literal("dose", String()).label("record_type"),
                School.code.label("school_code"),
                School.name.label("school_name"),
                shown_student_code().label("subject_code"),
                Student.full_name.label("subject_name"),
                VaccineDose.given_on.label("event_on"),
                VaccineDose.entered_at.label("entered_at"),
                entered_by.full_name.label("entered_by"),
            )
            .select_from(VaccineDose)
            .join(Student, Student.id == VaccineDose.student_id)
            .join(School, School.id == Student.school_id)
            .outerjoin(entered_by, entered_by.id == VaccineDose.entered_by_id)
            .where(
                school_condition(f),
                Student.active,
                VaccineDose.entered_late,
                *in_period(VaccineDose.given_on, f),
            )
            .order_by(*_school_order(), VaccineDose.given_on, VaccineDose.id)
        )
    if record_type == "return":
        return (
            select(
                literal("return", String()).label("record_type"),
                School.code.label("school_code"),
                School.name.label("school_name"),
                shown_student_code().label("subject_code"),
                Student.full_name.label("subject_name"),
                Handover.returned_on.label("event_on"),
                Handover.return_entered_at.label("entered_at"),
                # Who entered the return is not kept (the handover's enterer may not be the one).
                cast(null(), String()).label("entered_by"),
            )
            .select_from(Handover)
            .join(DonationBatch, DonationBatch.id == Handover.batch_id)
            .join(School, School.id == DonationBatch.school_id)
            .join(Student, Student.id == Handover.student_id)
            .where(
                school_condition(f),
                Handover.return_entered_late,
                Handover.returned_on.is_not(None),
                *in_period(Handover.returned_on, f),
            )
            .order_by(*_school_order(), Handover.returned_on, Handover.id)
        )
    raise ValueError(record_type)


# --- reconciliation -------------------------------------------------------------------------------


def _subject(code: str | None, name: str | None) -> str:
    return " – ".join(part for part in (code, name) if part)


def _issue(area: str, issue: str, row: dict[str, Any], subject: str, **params: Any) -> dict[str, Any]:
    return {
        "area": area,
        "issue": issue,
        "school_code": row["school_code"],
        "school_name": row["school_name"],
        "subject": subject,
        "params": params,
    }


def _batch_subject(row: dict[str, Any]) -> str:
    return _subject(f"#{row['batch_number']}", row.get("donor_name") or row.get("make_model"))


async def device_issues(session: AsyncSession, f: ReportFilter) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    # More given (gifts + open loans) than received.
    for row in await batch_rows(session, f):
        if row["given"] + row["on_loan"] > row["quantity"]:
            issues.append(
                _issue(
                    "devices",
                    "over_given",
                    row,
                    _batch_subject(row),
                    received=row["quantity"],
                    given=row["given"],
                    on_loan=row["on_loan"],
                    excess=row["given"] + row["on_loan"] - row["quantity"],
                )
            )
    # The batch's running count of allocated devices disagrees with its handovers (all time).
    held = (
        select(
            Handover.batch_id.label("batch_id"),
            count_if(
                or_(
                    Handover.kind == HandoverKind.GIFT,
                    and_(Handover.kind == HandoverKind.LOAN, Handover.returned_on.is_(None)),
                ),
                "held",
            ),
        )
        .group_by(Handover.batch_id)
        .subquery()
    )
    actual = func.coalesce(held.c.held, 0)
    mismatched = await _dicts(
        session,
        select(
            DonationBatch.id.label("batch_id"),
            DonationBatch.number.label("batch_number"),
            School.code.label("school_code"),
            School.name.label("school_name"),
            Donor.name.label("donor_name"),
            DonationBatch.make_model.label("make_model"),
            DonationBatch.allocated.label("stored"),
            actual.label("actual"),
        )
        .select_from(DonationBatch)
        .join(School, School.id == DonationBatch.school_id)
        .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
        .outerjoin(held, held.c.batch_id == DonationBatch.id)
        .where(
            school_condition(f), *in_period(DonationBatch.received_on, f), DonationBatch.allocated != actual
        )
        .order_by(*_school_order(), DonationBatch.id),
    )
    for row in mismatched:
        issues.append(
            _issue(
                "devices",
                "allocated_mismatch",
                row,
                _batch_subject(row),
                stored=row["stored"],
                actual=row["actual"],
            )
        )
    # A student holding two or more programme devices (gifts or open loans).
    student_school = aliased(School)
    holding = or_(
        Handover.kind == HandoverKind.GIFT,
        and_(Handover.kind == HandoverKind.LOAN, Handover.returned_on.is_(None)),
    )
    doubles = await _dicts(
        session,
        select(
            student_school.code.label("school_code"),
            student_school.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            func.count(Handover.id).label("devices"),
            func.min(DonationBatch.number).label("first_batch"),  # the school's own numbers
            func.max(DonationBatch.number).label("last_batch"),
        )
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .join(Student, Student.id == Handover.student_id)
        .join(student_school, student_school.id == Student.school_id)
        .where(
            school_condition(f, student_school),
            DonationBatch.source == DonationSource.PROGRAM,
            holding,
            *up_to_end(Handover.handed_on, f),
        )
        .group_by(
            student_school.code,
            student_school.name,
            student_school.level,
            Student.id,
            Student.code,
            Student.full_name,
        )
        .having(func.count(Handover.id) >= 2)
        .order_by(student_school.level, student_school.code, Student.code),
    )
    for row in doubles:
        issues.append(
            _issue(
                "devices",
                "two_program_devices",
                row,
                _subject(row["student_code"], row["full_name"]),
                count=row["devices"],
                batches=f"#{row['first_batch']}, #{row['last_batch']}",
            )
        )
    # Handovers dated before the batch was received, or to a student of another school.
    other_school = aliased(School)
    handovers = await _dicts(
        session,
        select(
            DonationBatch.id.label("batch_id"),
            DonationBatch.number.label("batch_number"),
            School.code.label("school_code"),
            School.name.label("school_name"),
            Donor.name.label("donor_name"),
            DonationBatch.make_model.label("make_model"),
            DonationBatch.received_on.label("received_on"),
            Handover.handed_on.label("handed_on"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            other_school.code.label("student_school_code"),
            (Handover.handed_on < DonationBatch.received_on).label("before_receipt"),
            (Student.school_id != DonationBatch.school_id).label("other_school"),
        )
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .join(School, School.id == DonationBatch.school_id)
        .join(Student, Student.id == Handover.student_id)
        .join(other_school, other_school.id == Student.school_id)
        .outerjoin(Donor, Donor.id == DonationBatch.donor_id)
        .where(
            school_condition(f),
            *in_period(DonationBatch.received_on, f),
            *up_to_end(Handover.handed_on, f),
            or_(Handover.handed_on < DonationBatch.received_on, Student.school_id != DonationBatch.school_id),
        )
        .order_by(*_school_order(), DonationBatch.id, Handover.id),
    )
    for row in handovers:
        student = _subject(row["student_code"], row["full_name"])
        if row["before_receipt"]:
            issues.append(
                _issue(
                    "devices",
                    "handover_before_receipt",
                    row,
                    _batch_subject(row),
                    student=student,
                    handed_on=row["handed_on"],
                    received_on=row["received_on"],
                )
            )
        if row["other_school"]:
            issues.append(
                _issue(
                    "devices",
                    "handover_other_school",
                    row,
                    _batch_subject(row),
                    student=student,
                    other_school=row["student_school_code"],
                )
            )
    # A programme device handed over within the period to a student with no standing device need and
    # no priority group: counted in Biểu 2, met by no need of Biểu 1, outside the programme's groups.
    standing = needs_as_of(f)
    needing = select(standing.c.student_id).where(standing.c.needs_device)
    unneeded = await _dicts(
        session,
        select(
            DonationBatch.id.label("batch_id"),
            DonationBatch.number.label("batch_number"),
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            _s(Handover.kind).label("kind"),
            Handover.handed_on.label("handed_on"),
        )
        .select_from(Handover)
        .join(DonationBatch, DonationBatch.id == Handover.batch_id)
        .join(School, School.id == DonationBatch.school_id)
        .join(Student, Student.id == Handover.student_id)
        .where(
            school_condition(f),
            DonationBatch.source == DonationSource.PROGRAM,
            within(Handover.handed_on, f),
            Student.priority_group == PriorityGroup.NONE,
            Student.id.not_in(needing),
        )
        .order_by(*_school_order(), Handover.handed_on, Handover.id),
    )
    for row in unneeded:
        issues.append(
            _issue(
                "devices",
                "device_no_need",
                row,
                _subject(row["student_code"], row["full_name"]),
                batch=f"#{row['batch_id']}",
                kind=row["kind"],
                handed_on=row["handed_on"],
            )
        )
    return issues


async def vaccination_issues(session: AsyncSession, f: ReportFilter) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []
    # Doses of students who are no longer on the school's list.
    gone = await _dicts(
        session,
        select(
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            func.count(VaccineDose.id).label("doses"),
        )
        .select_from(VaccineDose)
        .join(Student, Student.id == VaccineDose.student_id)
        .join(School, School.id == Student.school_id)
        .where(school_condition(f), ~Student.active, *in_period(VaccineDose.given_on, f))
        .group_by(School.code, School.name, School.level, Student.id, Student.code, Student.full_name)
        .order_by(*_school_order(), Student.code),
    )
    for row in gone:
        issues.append(
            _issue(
                "vaccination",
                "dose_not_enrolled",
                row,
                _subject(row["student_code"], row["full_name"]),
                doses=row["doses"],
            )
        )
    # A dose N without dose N-1, or given before dose N-1.
    previous = aliased(VaccineDose)
    rows = await _dicts(
        session,
        select(
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            VaccineDose.dose_number.label("dose"),
            VaccineDose.given_on.label("given_on"),
            previous.given_on.label("previous_on"),
        )
        .select_from(VaccineDose)
        .join(Student, Student.id == VaccineDose.student_id)
        .join(School, School.id == Student.school_id)
        .outerjoin(
            previous,
            and_(
                previous.student_id == VaccineDose.student_id,
                previous.dose_number == VaccineDose.dose_number - 1,
            ),
        )
        .where(
            school_condition(f),
            Student.active,
            VaccineDose.dose_number > 1,
            *in_period(VaccineDose.given_on, f),
            or_(previous.id.is_(None), previous.given_on > VaccineDose.given_on),
        )
        .order_by(*_school_order(), Student.code, VaccineDose.dose_number),
    )
    for row in rows:
        subject = _subject(row["student_code"], row["full_name"])
        params = {"dose": row["dose"], "previous": row["dose"] - 1, "given_on": row["given_on"]}
        if row["previous_on"] is None:
            issues.append(_issue("vaccination", "dose_gap", row, subject, **params))
        else:
            issues.append(
                _issue("vaccination", "dose_order", row, subject, previous_on=row["previous_on"], **params)
            )
    return issues


async def needs_issues(session: AsyncSession, f: ReportFilter) -> list[dict[str, Any]]:
    """Needs of students no longer enrolled, and needs whose group disagrees with the student list
    (so the needs totals per group would disagree with the list of students)."""
    issues: list[dict[str, Any]] = []
    standing = needs_as_of(f)
    rows = await _dicts(
        session,
        select(
            School.code.label("school_code"),
            School.name.label("school_name"),
            shown_student_code().label("student_code"),
            Student.full_name.label("full_name"),
            Student.active.label("active"),
            _s(Student.priority_group).label("group"),
            _s(standing.c.category).label("category"),
        )
        .select_from(standing)
        .join(Student, Student.id == standing.c.student_id)
        .join(School, School.id == Student.school_id)
        .where(
            school_condition(f),
            or_(~Student.active, _s(Student.priority_group) != _s(standing.c.category)),
        )
        .order_by(*_school_order(), Student.code),
    )
    for row in rows:
        subject = _subject(row["student_code"], row["full_name"])
        if not row["active"]:
            issues.append(_issue("needs", "need_not_enrolled", row, subject))
        else:
            issues.append(
                _issue(
                    "needs",
                    "need_category_mismatch",
                    row,
                    subject,
                    category=row["category"],
                    group=row["group"],
                )
            )
    return issues


# --- rounds ---------------------------------------------------------------------------------------


async def round_by_id(session: AsyncSession, round_id: int) -> ReportingRound | None:
    return await session.get(ReportingRound, round_id)


async def round_status(session: AsyncSession, f: ReportFilter, round_id: int) -> list[dict[str, Any]]:
    program = aliased(RoundSubmission)
    vaccine = aliased(RoundSubmission)
    not_submitted = literal(SubmissionStatus.NOT_SUBMITTED.value, String())
    return await _dicts(
        session,
        select(
            *_school_columns(),
            func.coalesce(_s(program.status), not_submitted).label("program_status"),
            program.submitted_at.label("program_submitted_at"),
            func.coalesce(_s(vaccine.status), not_submitted).label("vaccine_status"),
            vaccine.submitted_at.label("vaccine_submitted_at"),
        )
        .select_from(School)
        .outerjoin(
            program,
            and_(
                program.school_id == School.id,
                program.round_id == round_id,
                program.track == SubmissionTrack.PROGRAM,
            ),
        )
        .outerjoin(
            vaccine,
            and_(
                vaccine.school_id == School.id,
                vaccine.round_id == round_id,
                vaccine.track == SubmissionTrack.VACCINE,
            ),
        )
        .where(school_condition(f))
        .order_by(*_school_order()),
    )


async def count_rows(session: AsyncSession, statement: Select[*tuple[Any, ...]]) -> int:
    sub = statement.order_by(None).subquery()
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)
