"""ImportService: bulk entry by Excel — a verdict for every row before anything is written, then an
idempotent upsert by natural keys in one transaction, audited.

The file is read by `exports.reader` (python-calamine; the table and its kind found from the headers).
Each row is validated with the domain's own schemas and rules — `StudentIn` and the student service's
plan, `NeedIn`, `DoseIn` with `judge_dose`, `BatchIn`/`DonorIn` with `check_event_date`, `HandoverIn`
with the handover rules — so the chat and the file accept exactly the same records.

Natural keys: student code; the student's need; student + dose number; batch + student (an active
handover); school + donor + date received + device type for batches. A row whose values equal what is
stored is "unchanged" and writes nothing, so the same file twice changes nothing the second time.

In the chat the checked upload waits in `pending_upload` (it survives a restart) until the person
confirms; confirming reads it again and plans again inside the write transaction, so what is written
is judged against the database as it is then.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, delete, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exports.reader import Table, check_size
from exports.templates import FIRST_DATA_ROW, build_template
from exports.upload_worker import read_upload
from storage.clock import Clock
from storage.enums import AuditAction, DeviceCondition, Role, SchoolLevel
from storage.errors import AccessDenied, Conflict, DomainError, NotFound
from storage.models import (
    Base,
    DonationBatch,
    Donor,
    Handover,
    NeedHistory,
    NeedRecord,
    PendingUpload,
    School,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.permissions import SPECIALIST_LEVELS
from storage.repositories import audit, locks
from storage.repositories import devices as devices_repo
from storage.repositories import students as students_repo
from storage.rules import devices
from storage.rules.dates import show_local
from storage.rules.timeliness import check_event_date, is_late_entry
from storage.rules.vaccines import DoseFacts, judge_dose
from storage.schemas.devices import BatchIn, DonorIn, HandoverIn
from storage.schemas.imports import (
    ERROR_FIELDS,
    SPECS,
    BatchChoice,
    CellIssue,
    ImportCheck,
    ImportKind,
    ImportScope,
    Outcome,
    ReadLimits,
    RowResult,
    TemplateContext,
    TemplateFile,
    cell_date,
    cell_int,
    cell_text,
    cell_yes_no,
    is_blank,
    parse_batch_ref,
    parse_condition,
    parse_device_type,
    parse_donor_kind,
    parse_handover_kind,
    parse_place,
    parse_priority,
    parse_source,
    product_keys,
    same_name,
)
from storage.schemas.needs import NeedIn
from storage.schemas.organisation import StaffOut
from storage.schemas.parsing import clean_code, parse_date
from storage.schemas.students import StudentIn
from storage.schemas.vaccines import OTHER_PRODUCT_CODE, DoseIn, Finding
from storage.services.base import ServiceBase
from storage.services.students import StudentService
from storage.text import fold, fold_key

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
CHUNK = 500  # ids and codes per IN (…): both databases cap bound parameters
WRITE_SLICE = 5_000  # students written per flush
PLAN_SLICE = 2_000  # students planned between two turns of the event loop
ANALYZE_FROM_ROWS = 1_000  # rows written at once that make PostgreSQL's statistics stale


# --- rows -----------------------------------------------------------------------------------------


class _PinnedClock(Clock):
    """One import, one instant: "today" is worked out once, not once per row."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(tz=clock.tz, frozen_at=clock.now())
        self._today = clock.today()

    def today(self) -> date:
        return self._today


@dataclass
class _School:
    id: int
    code: str
    level: SchoolLevel
    district_id: int


_NONE_FAILED: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Row:
    # Slots, and no set of its own until a cell fails: a 50,000-row file keeps every row alive.
    result: RowResult
    values: dict[str, Any]
    school: _School | None = None
    failed: set[str] | frozenset[str] = _NONE_FAILED  # fields with a problem already
    parsed: Any = None  # the schema object once valid
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        issues = self.result.issues
        return not issues or not any(not issue.warning for issue in issues)

    def reject(self, name: str | None, error: DomainError, *, warning: bool = False) -> None:
        target = name if name is not None else ERROR_FIELDS.get(error.code)
        self.result.issues.append(CellIssue(target, error.code, dict(error.params), warning=warning))
        if not warning:
            self.result.outcome = Outcome.REJECTED
            if target:
                self.failed = self.failed | {target}

    def text(self, name: str) -> str:
        return cell_text(self.values.get(name))

    def blank(self, name: str) -> bool:
        return is_blank(self.values.get(name))


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _validate(
    row: _Row, model: type[BaseModel], data: dict[str, Any], names: dict[str, str | None], today: date
) -> Any:
    """Validate `data` with a domain schema; every refusal lands on the cell it is about. Values that
    are None (a blank optional cell, or a cell already refused) are left to the schema's defaults."""
    data = {name: value for name, value in data.items() if value is not None}
    try:
        parsed = model.model_validate(data, context={"today": today})
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            schema_field = str(loc[0]) if loc else None
            column = names.get(schema_field, schema_field) if schema_field else None
            if column in row.failed:
                continue  # already said, from the cell itself
            inner = (error.get("ctx") or {}).get("error")
            if isinstance(inner, DomainError):
                row.reject(column, inner)
            elif error["type"] == "missing":
                row.reject(column, DomainError("excel.cell.required", column=column or ""))
            else:
                shown = cell_text(error.get("input"))
                row.reject(column, DomainError("excel.cell.invalid", value=shown, column=column or ""))
        return None
    return parsed if row.ok else None


def _coerce(row: _Row, name: str, convert: Any) -> Any:
    """A cell converted for the schema; a blank optional cell is None; a refusal marks the cell."""
    if name in row.failed:
        return None
    value = row.values.get(name)
    if is_blank(value):
        return None
    try:
        return convert(value)
    except DomainError as error:
        row.reject(name, error)
        return None


class _Cells:
    """`_coerce` for one file, each distinct cell value converted once: a file repeats its dates,
    classes, genders, products and places thousands of times. Conversions are pure functions of the
    value (and of the import's pinned day), so the result — or the refusal — is the same every time."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, type, Any], Any] = {}

    def coerce(self, row: _Row, name: str, convert: Any) -> Any:
        if name in row.failed:
            return None
        value = row.values.get(name)
        if is_blank(value):
            return None
        key = (convert, type(value), value)  # the type too: 1, 1.0 and True are equal keys
        try:
            found = self._seen[key]
        except KeyError:
            try:
                found = convert(value)
            except DomainError as error:
                found = error
            self._seen[key] = found
        if isinstance(found, DomainError):
            row.reject(name, found)
            return None
        return found


def _as_text(value: Any) -> str:
    """A text cell for a schema whose validator normalises it anyway (`clean_code`, `clean_name`,
    `clean_class_name` start with `nfc`): passed as it is, not normalised twice; other cells as
    `cell_text` gives them."""
    return value if type(value) is str else cell_text(value)


def _audit(
    actor_id: int | None,
    action: AuditAction,
    row: Base,
    before: dict[str, Any] | None,
    now: datetime,
    school_id: int | None,
) -> dict[str, Any]:
    """The row `audit.record` writes, as parameters of one bulk INSERT (no flush per row)."""
    return {
        "at": now,
        "actor_id": actor_id,
        "action": action,
        "entity": type(row).__tablename__,
        "entity_id": str(getattr(row, "id", "")),
        "school_id": school_id,
        "before": before,
        "after": audit.snapshot(row),
    }


def _known(student_id: int | None) -> int:
    """A parsed row's student id: the plans resolve every code first (0 when refused), so an
    import's record never has the chat's "new student" None."""
    assert student_id is not None
    return student_id


def _forget(
    merged: dict[int, dict[int, tuple[date, int]]], stored: dict[int, dict[int, Any]], data: DoseIn
) -> None:
    """A refused dose row: the student keeps the stored dose of that number, if any."""
    student_id = _known(data.student_id)
    kept = stored[student_id].get(data.dose_number)
    if kept is not None:
        merged[student_id][data.dose_number] = (kept.given_on, kept.product_id)
    else:
        merged[student_id].pop(data.dose_number, None)


_BREATH_SECONDS = 0.02
_last_breath = [0.0]


class _Ready:
    """An awaitable that is done at once: `_breathe` on the rows that need no pause costs no
    coroutine (it is awaited 200,000 times for a 50,000-row file)."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_READY = _Ready()


def _breathe(index: int) -> Awaitable[None]:
    """Checking rows is CPU work on the event loop: every 20 ms of it (looked at every 50 rows; a
    row's validation can take a millisecond) let other chats' updates run."""
    if index % 50 == 0 and time.perf_counter() - _last_breath[0] > _BREATH_SECONDS:
        _last_breath[0] = time.perf_counter()
        return asyncio.sleep(0)
    return _READY


async def refresh_statistics(session: AsyncSession, model: type[Base], written: int) -> None:
    """PostgreSQL plans `code IN (…)` lookups from the table's statistics; right after thousands of
    rows arrive they still describe the old table (a sequential scan per lookup: the next check of a
    50,000-row file took minutes). ANALYZE samples the table again, in this transaction."""
    if (
        written >= ANALYZE_FROM_ROWS
        and session.bind is not None
        and session.bind.dialect.name == "postgresql"
    ):
        await session.execute(text(f"ANALYZE {model.__tablename__}"))


def _school_id(row: _Row) -> int:
    assert row.school is not None  # only rows placed in a school are written
    return row.school.id


def _student_id(row: _Row) -> int:
    """The resolved student's id; 0 when the code was refused (the schema still checks the rest)."""
    student = row.extra.get("student")
    return student.id if student is not None else 0


async def _write_audit(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    await audit.record_many(session, entries)


# Bulk writes: Core statements with many parameter sets, not ORM objects through the unit of work
# (one object, one snapshot through the instrumentation, per row). SQLAlchemy sends an executemany
# with RETURNING as multi-row INSERTs on both databases.


async def _insert_many(
    session: AsyncSession, model: type[Base], rows: list[dict[str, Any]], key: Sequence[str]
) -> None:
    """INSERT every row (a dict of every column but the id), then set each row's "id". RETURNING
    gives no order (asking for one makes SQLite insert row by row): ids are matched by the natural
    key `key`, unique among the rows."""
    if not rows:
        return
    table = model.__table__
    result = await session.execute(insert(table).returning(table.c.id, *(table.c[k] for k in key)), rows)
    ids = {tuple(found[1:]): found[0] for found in result}
    for row in rows:
        row["id"] = ids[tuple(row[k] for k in key)]


async def _update_many(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """UPDATE rows by id ("row_id"), one executemany; every dict has the same keys (the SET clause)."""
    if rows:
        table = model.__table__
        await session.execute(update(table).where(table.c.id == bindparam("row_id")), rows)


def _entry(
    model: type[Base],
    action: AuditAction,
    values: dict[str, Any],
    before: dict[str, Any] | None,
    actor_id: int | None,
    now: datetime,
    school_id: int | None,
) -> dict[str, Any]:
    """The audit row of a record written in bulk, from the values written (no ORM object)."""
    return audit.entry(
        at=now,
        actor_id=actor_id,
        action=action,
        entity=model.__tablename__,
        entity_id=values["id"],
        school_id=school_id,
        before=before,
        after=audit.snapshot_values(model, values),
    )


def _changed(stored: Any, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the parameters of `_update_many`, the row's values after) for a stored row and its changes."""
    after = {**stored._mapping, **changes}
    return {"row_id": stored.id, **changes}, after


# --- the plan of one file -------------------------------------------------------------------------


def _row_audit(
    actor_id: int | None,
    created: Sequence[tuple[_Row, Base]],
    updated: Sequence[tuple[_Row, Base]],
    befores: Sequence[dict[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The audit rows of the records a file's rows added and changed, each under its row's school."""
    entries = [
        _audit(actor_id, AuditAction.CREATE, record, None, now, _school_id(r)) for r, record in created
    ]
    entries += [
        _audit(actor_id, AuditAction.UPDATE, record, before, now, _school_id(r))
        for (r, record), before in zip(updated, befores, strict=True)
    ]
    return entries


class _Plan:
    """What one file would do: checks shared by every kind, then the kind's own plan and apply."""

    def __init__(self, service: ImportService, scope: ImportScope, table: Table) -> None:
        self.service = service
        self.scope = scope
        self.table = table
        self.spec = SPECS[table.kind]
        self.clock = service.clock
        self.today = service.clock.today()
        self.rows: list[_Row] = []

    # Shared checks ---------------------------------------------------------------------------------

    async def prepare(self, session: AsyncSession) -> None:
        required = self.spec.required  # a property: worked out once, not once per row
        for index, (number, values) in enumerate(self.table.records()):
            await _breathe(index)
            row = _Row(RowResult(number), values)
            for name in required:
                value = values.get(name)  # `is_blank`, inlined: 200,000 cells
                if value is None or (isinstance(value, str) and not value.strip()):
                    row.reject(name, DomainError("excel.cell.required", column=name))
            self.rows.append(row)
        await self._schools(session)

    async def _schools(self, session: AsyncSession) -> None:
        scope = self.scope
        wanted: set[str] = set()
        codes: dict[int, str] = {}
        for index, row in enumerate(self.rows):
            await _breathe(index)
            if row.blank("school_code"):
                if not scope.single_school:
                    row.reject("school_code", DomainError("excel.cell.required", column="school_code"))
                continue
            try:
                codes[index] = clean_code(row.text("school_code"))
            except DomainError as error:
                row.reject("school_code", error)
                continue
            wanted.add(codes[index])
        if scope.school_id is not None:
            wanted.add(scope.school_code or "")
        found: dict[str, _School] = {}
        for chunk in _chunks(sorted(wanted)):
            result = await session.execute(
                select(School.id, School.code, School.level, School.district_id).where(School.code.in_(chunk))
            )
            for school_id, school_code, level, district_id in result:
                found[school_code] = _School(school_id, school_code, level, district_id)
        own = next((s for s in found.values() if s.id == scope.school_id), None)
        if scope.school_id is not None and own is None:
            own_school = await session.get(School, scope.school_id)
            if own_school is None:
                raise NotFound("school", code=str(scope.school_id))
            own = _School(own_school.id, own_school.code, own_school.level, own_school.district_id)
        for index, row in enumerate(self.rows):
            await _breathe(index)
            code = codes.get(index)
            if own is not None:
                if code is not None and code != own.code:
                    row.reject("school_code", DomainError("excel.row.other_school", code=code, own=own.code))
                else:
                    row.school = own
                continue
            if code is None:
                continue
            school = found.get(code)
            if school is None:
                row.reject("school_code", DomainError("excel.row.school_unknown", code=code))
            elif (scope.district_id is not None and school.district_id != scope.district_id) or (
                scope.levels is not None and school.level not in scope.levels
            ):
                row.reject("school_code", DomainError("excel.row.school_out_of_scope", code=code))
            else:
                row.school = school

    def placed(self) -> list[_Row]:
        """Rows whose school is known: every cell of them is checked, to say all that is wrong."""
        return [row for row in self.rows if row.school is not None]

    def live(self) -> list[_Row]:
        """Rows still worth comparing with the database: a school, and no refusal so far."""
        return [row for row in self.rows if row.school is not None and row.ok]

    def mark_duplicates(self, rows: Sequence[_Row], key: Any, columns: Sequence[str]) -> list[_Row]:
        """A second row with the same natural key is refused, pointing at the first."""
        first: dict[Any, _Row] = {}
        kept: list[_Row] = []
        for row in rows:
            value = key(row)
            if value in first:
                row.reject(
                    columns[-1],
                    DomainError(
                        "excel.row.duplicate", other_row=first[value].result.row, columns=list(columns)
                    ),
                )
                continue
            first[value] = row
            kept.append(row)
        return kept

    async def students_by_code(self, session: AsyncSession, rows: Sequence[_Row]) -> None:
        """Resolve each row's student code to a student of the row's school (`row.extra['student']`);
        a name given beside the code must be that student's."""
        codes: dict[int, str] = {}
        for index, row in enumerate(rows):
            if "student_code" in row.failed:
                continue
            try:
                codes[index] = clean_code(row.text("student_code"))
            except DomainError as error:
                row.reject("student_code", error)
        found = await students_repo.rows_by_codes(session, codes.values())
        for index, row in enumerate(rows):
            code = codes.get(index)
            if code is None:
                continue
            student = found.get(code)
            assert row.school is not None
            if student is None or not student.active:
                row.reject("student_code", DomainError("excel.student.unknown", code=code))
            elif student.school_id != row.school.id:
                row.reject("student_code", DomainError("excel.student.other_school", code=code))
            else:
                row.extra["student"] = student
                if "full_name" in self.table.columns and not row.blank("full_name"):
                    given = row.text("full_name")
                    if not same_name(given, student.full_name):
                        row.reject(
                            "full_name",
                            DomainError(
                                "excel.student.name_mismatch",
                                code=code,
                                listed=student.full_name,
                                given=given,
                            ),
                        )

    async def refuse_locked(
        self, session: AsyncSession, area: str, field: str, day_of: Any, *, standing: bool = False
    ) -> None:
        """Row by row, as in the chat: a row dated inside a locked period of its school's part is
        refused with the lock's reason; rows of other days go in."""
        rows = [row for row in self.live() if row.parsed is not None and row.school is not None]
        found = await locks.entry_locks(
            session, area, [(_school_id(row), day_of(row.parsed)) for row in rows], standing=standing
        )
        for row, lock in zip(rows, found, strict=True):
            if lock is not None:
                row.reject(field, locks.refusal(lock, area).as_error())

    def check(self, filename: str) -> ImportCheck:
        return ImportCheck(
            kind=self.table.kind,
            filename=filename,
            sheet=self.table.sheet,
            header_row=self.table.header_row + 1,
            columns=dict(self.table.columns),
            rows=[row.result for row in self.rows],
            ignored_headers=list(self.table.ignored_headers),
            table=self.table,
        )

    # Each kind ---------------------------------------------------------------------------------------

    async def lock(self, session: AsyncSession) -> None:
        """Before a plan that will be written: hold what a concurrent import of the same rows would
        need (PostgreSQL; SQLite's writers are serialised anyway). Most kinds have a unique key that
        refuses the second writer instead."""

    async def plan(self, session: AsyncSession) -> None:
        raise NotImplementedError

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        raise NotImplementedError


class _StudentsPlan(_Plan):
    """Students by code, through the student service's own plan (grade in the school, age)."""

    NAMES: dict[str, str | None] = {"code": "student_code"}

    async def plan(self, session: AsyncSession) -> None:
        self.students = StudentService(self.service.sessionmaker, _PinnedClock(self.clock))
        self.plans: dict[int, tuple[Any, list[_Row]]] = {}
        cells = _Cells()
        for index, row in enumerate(self.placed()):
            await _breathe(index)
            values = row.values
            data = {
                "code": _as_text(values.get("student_code")),
                "full_name": _as_text(values.get("full_name")),
                "date_of_birth": cells.coerce(row, "date_of_birth", cell_date),
                "class_name": _as_text(values.get("class_name")),
                "grade": cells.coerce(row, "grade", cell_int),
                "gender": cells.coerce(row, "gender", cell_text),
            }
            row.parsed = _validate(row, StudentIn, data, self.NAMES, self.today)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None], lambda r: r.parsed.code, ["student_code"]
        )
        # The stored students of these codes, looked up once (a SELECT … IN per 500 codes) for both
        # the check below and the student service's plan.
        stored = await students_repo.rows_by_codes(session, [row.parsed.code for row in rows])
        # Another school's student: said first, before rules of this school (grades, ages) would.
        for row in rows:
            owner = stored.get(row.parsed.code)
            if row.school is not None and owner is not None and owner.school_id != row.school.id:
                row.reject("student_code", DomainError("students.code_in_other_school", code=row.parsed.code))
        rows = [row for row in rows if row.ok]
        by_school: dict[int, list[_Row]] = defaultdict(list)
        for row in rows:
            assert row.school is not None
            by_school[row.school.id].append(row)
        for school_id, school_rows in by_school.items():
            # The student service's plan is CPU work on the event loop: a slice at a time, so other
            # chats' updates run between slices. The slices never share a code (duplicates were
            # refused above), so the plans of the slices add up to the plan of the whole.
            plan: Any = None
            for start in range(0, len(school_rows), PLAN_SLICE):
                part = school_rows[start : start + PLAN_SLICE]
                sliced = await self.students._plan(
                    session, school_id, [r.parsed for r in part], existing=stored
                )
                await asyncio.sleep(0)
                for verdict in sliced.verdicts:
                    row = part[verdict.index]
                    if verdict.outcome == "rejected":
                        assert verdict.error_code is not None
                        params = {k: v for k, v in (verdict.error_params or {}).items() if k != "row"}
                        row.reject(None, DomainError(verdict.error_code, **params))
                    else:
                        row.result.outcome = Outcome(verdict.outcome)
                if plan is None:
                    plan = sliced
                else:
                    plan.to_create += sliced.to_create
                    plan.to_update += sliced.to_update
                    plan.unchanged += sliced.unchanged
            self.plans[school_id] = (plan, school_rows)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        # In slices: the INSERT parameters and audit rows of 50,000 students never exist at once (the
        # session's identity map lets written rows go once nothing refers to them).
        for school_id, (plan, _) in self.plans.items():
            for start in range(0, max(len(plan.to_create), len(plan.to_update)), WRITE_SLICE):
                part = type(plan)()
                part.to_create = plan.to_create[start : start + WRITE_SLICE]
                part.to_update = plan.to_update[start : start + WRITE_SLICE]
                await self.students._apply(session, school_id, part, actor_id)
                await refresh_statistics(session, Student, len(part.to_create))


class _NeedsPlan(_Plan):
    """One need per student (4.8.1); the need's group is also the student's priority group."""

    NAMES: dict[str, str | None] = {"student_id": "student_code"}

    async def plan(self, session: AsyncSession) -> None:
        placed = self.placed()
        await self.students_by_code(session, placed)
        for index, row in enumerate(placed):
            await _breathe(index)
            fields = {
                "student_id": _student_id(row),
                "category": _coerce(row, "category", parse_priority),
                "needs_device": bool(_coerce(row, "needs_device", cell_yes_no)),
                "needs_connectivity": bool(_coerce(row, "needs_connectivity", cell_yes_no)),
                "note": row.text("note"),
            }
            row.parsed = _validate(row, NeedIn, fields, self.NAMES, self.today)
        # An imported need or change stands from today.
        await self.refuse_locked(session, "needs", "category", lambda _: self.today, standing=True)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None], lambda r: r.parsed.student_id, ["student_code"]
        )
        ids = [row.parsed.student_id for row in rows]
        existing: dict[int, Any] = {}  # plain rows of need_record
        table = NeedRecord.__table__
        for chunk in _chunks(ids):
            for stored_need in await session.execute(select(table).where(table.c.student_id.in_(chunk))):
                existing[stored_need.student_id] = stored_need
        self.creates: list[_Row] = []
        self.updates: list[tuple[_Row, Any]] = []  # the row, the stored need
        for row in rows:
            data: NeedIn = row.parsed
            need = existing.get(_known(data.student_id))
            student = row.extra["student"]
            if need is None:
                row.result.outcome = Outcome.CREATED
                self.creates.append(row)
                continue
            same = (need.category, need.needs_device, need.needs_connectivity, need.note) == (
                data.category,
                data.needs_device,
                data.needs_connectivity,
                data.note,
            )
            if same and student.priority_group == data.category:
                row.result.outcome = Outcome.UNCHANGED
            else:
                row.result.outcome = Outcome.UPDATED
                self.updates.append((row, need))

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, today = self.clock.now(), self.today
        created = [
            {
                "student_id": row.parsed.student_id,
                "category": row.parsed.category,
                "needs_device": row.parsed.needs_device,
                "needs_connectivity": row.parsed.needs_connectivity,
                "note": row.parsed.note,
                "opened_on": today,
                "changed_on": today,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": False,
                "request_key": None,
            }
            for row in self.creates
        ]
        await _insert_many(session, NeedRecord, created, ("student_id",))
        entries = [
            _entry(NeedRecord, AuditAction.CREATE, values, None, actor_id, now, _school_id(row))
            for row, values in zip(self.creates, created, strict=True)
        ]
        updated = []
        afters = []
        for row, need in self.updates:
            data: NeedIn = row.parsed
            params, after = _changed(
                need,
                {
                    "category": data.category,
                    "needs_device": data.needs_device,
                    "needs_connectivity": data.needs_connectivity,
                    "note": data.note,
                    "updated_at": now,
                    "changed_on": today,
                },
            )
            updated.append(params)
            afters.append(after)
            before = audit.snapshot_values(NeedRecord, need._mapping)
            entries.append(
                _entry(NeedRecord, AuditAction.UPDATE, after, before, actor_id, now, _school_id(row))
            )
        await _update_many(session, NeedRecord, updated)
        # Each need's state from today (a second row the same day wins by its id).
        history = [
            {
                "student_id": need["student_id"],
                "changed_on": today,
                "category": need["category"],
                "needs_device": need["needs_device"],
                "needs_connectivity": need["needs_connectivity"],
                "closed": False,
                "entered_by_id": actor_id,
                "entered_at": now,
            }
            for need in created + afters
        ]
        if history:
            await session.execute(insert(NeedHistory.__table__), history)
        # The need's group is the student's priority group.
        regrouped = []
        for row in [*self.creates, *(r for r, _ in self.updates)]:
            student = row.extra["student"]
            if student.priority_group != row.parsed.category:
                params, after = _changed(student, {"priority_group": row.parsed.category, "updated_at": now})
                regrouped.append(params)
                before = audit.snapshot_values(Student, student._mapping)
                entries.append(
                    _entry(Student, AuditAction.UPDATE, after, before, actor_id, now, student.school_id)
                )
        await _update_many(session, Student, regrouped)
        await _write_audit(session, entries)
        await refresh_statistics(session, NeedRecord, len(created))


class _DosesPlan(_Plan):
    """Doses by student and dose number, judged by `judge_dose` against the student's other doses —
    those stored and those of the same file."""

    NAMES: dict[str, str | None] = {"student_id": "student_code", "product_id": "product"}

    async def plan(self, session: AsyncSession) -> None:
        placed = self.placed()
        await self.students_by_code(session, placed)
        products = {p.id: p for p in await session.scalars(select(VaccineProduct))}
        by_key: dict[str, VaccineProduct] = {}
        for known in sorted(products.values(), key=lambda p: (not p.active, p.sort_order, p.id)):
            for key in product_keys(known.code, known.name):
                by_key.setdefault(key, known)

        def product_of(value: Any) -> VaccineProduct:
            found = by_key.get(fold_key(cell_text(value)))
            if found is None:
                raise DomainError("vaccines.unknown_product")
            return found

        def given_on(value: Any) -> date:
            parsed = cell_date(value)
            return parsed if isinstance(parsed, date) else parse_date(parsed, self.today, allow_future=True)

        cells = _Cells()
        for index, row in enumerate(placed):
            await _breathe(index)
            chosen = cells.coerce(row, "product", product_of)
            fields = {
                "student_id": _student_id(row),
                "dose_number": cells.coerce(row, "dose_number", cell_int),
                "given_on": cells.coerce(row, "given_on", given_on),
                "product_id": chosen.id if chosen is not None else None,
                "product_other_name": row.text("product_other_name"),
                "place": cells.coerce(row, "place", parse_place),
            }
            row.parsed = _validate(row, DoseIn, fields, self.NAMES, self.today)
            row.extra["product"] = chosen
        await self.refuse_locked(session, "vaccines", "given_on", lambda parsed: parsed.given_on)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None],
            lambda r: (r.parsed.student_id, r.parsed.dose_number),
            ["student_code", "dose_number"],
        )
        student_ids = sorted({row.parsed.student_id for row in rows})
        stored: dict[int, dict[int, Any]] = defaultdict(dict)  # plain rows of vaccine_dose
        table = VaccineDose.__table__
        for chunk in _chunks(student_ids):
            for dose in await session.execute(select(table).where(table.c.student_id.in_(chunk))):
                stored[dose.student_id][dose.dose_number] = dose
        # Each student's doses as they would be after the import: the stored ones, replaced or
        # completed by the rows of the file.
        merged: dict[int, dict[int, tuple[date, int]]] = defaultdict(dict)
        for student_id, doses in stored.items():
            for number, dose in doses.items():
                merged[student_id][number] = (dose.given_on, dose.product_id)
        for row in rows:
            merged[row.parsed.student_id][row.parsed.dose_number] = (
                row.parsed.given_on,
                row.parsed.product_id,
            )
        self.creates: list[_Row] = []
        self.updates: list[tuple[_Row, Any]] = []  # the row, the stored dose
        judged: list[_Row] = []
        for index, row in enumerate(rows):
            await _breathe(index)
            data: DoseIn = row.parsed
            product: VaccineProduct = row.extra["product"]
            other_name = data.product_other_name if product.code == OTHER_PRODUCT_CODE else ""
            row.extra["other_name"] = other_name
            existing = stored[_known(data.student_id)].get(data.dose_number)
            row.extra["existing"] = existing
            if existing is not None and (
                existing.given_on,
                existing.product_id,
                existing.product_other_name,
                existing.place,
            ) == (data.given_on, product.id, other_name, data.place):
                row.result.outcome = Outcome.UNCHANGED
            elif not product.active and (existing is None or existing.product_id != product.id):
                row.reject("product", DomainError("vaccines.unknown_product"))
                _forget(merged, stored, data)
            else:
                judged.append(row)
        # A refused row's dose will not be there: judge the others again without it, until stable.
        while True:
            verdicts = {id(row): self._judge(row, merged, products) for row in judged}
            refused = [row for row in judged if verdicts[id(row)][0]]
            for row in refused:
                for finding in verdicts[id(row)][0]:
                    row.reject(None, finding.as_error())
                _forget(merged, stored, row.parsed)
            judged = [row for row in judged if not verdicts[id(row)][0]]
            if not refused:
                break
        for row in judged:
            for finding in verdicts[id(row)][1]:
                row.reject(None, finding.as_error(), warning=True)
            existing = row.extra["existing"]
            if existing is None:
                row.result.outcome = Outcome.CREATED
                self.creates.append(row)
            else:
                row.result.outcome = Outcome.UPDATED
                self.updates.append((row, existing))

    def _judge(
        self, row: _Row, merged: dict[int, dict[int, tuple[date, int]]], products: dict[int, VaccineProduct]
    ) -> tuple[list[Finding], list[Finding]]:
        data: DoseIn = row.parsed
        others = [
            VaccineDose(dose_number=number, given_on=given, product_id=product_id)
            for number, (given, product_id) in merged[_known(data.student_id)].items()
            if number != data.dose_number
        ]
        facts = DoseFacts(
            date_of_birth=row.extra["student"].date_of_birth,
            dose_number=data.dose_number,
            given_on=data.given_on,
            product=row.extra["product"],
            product_other_name=row.extra["other_name"],
            others=others,
        )
        return judge_dose(facts, products, self.today)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, tz = self.clock.now(), self.clock.tz
        created = [
            {
                "student_id": row.parsed.student_id,
                "dose_number": row.parsed.dose_number,
                "given_on": row.parsed.given_on,
                "product_id": row.parsed.product_id,
                "product_other_name": row.extra["other_name"],
                "place": row.parsed.place,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": is_late_entry(row.parsed.given_on, now, tz),
                "request_key": None,
            }
            for row in self.creates
        ]
        await _insert_many(session, VaccineDose, created, ("student_id", "dose_number"))
        entries = [
            _entry(VaccineDose, AuditAction.CREATE, values, None, actor_id, now, _school_id(row))
            for row, values in zip(self.creates, created, strict=True)
        ]
        updated = []
        for row, dose in self.updates:
            data: DoseIn = row.parsed
            params, after = _changed(
                dose,
                {
                    "given_on": data.given_on,
                    "product_id": data.product_id,
                    "product_other_name": row.extra["other_name"],
                    "place": data.place,
                    # Late is judged from when the dose was first entered, against its corrected date.
                    "entered_late": is_late_entry(data.given_on, dose.entered_at, tz),
                    "updated_at": now,
                },
            )
            updated.append(params)
            before = audit.snapshot_values(VaccineDose, dose._mapping)
            entries.append(
                _entry(VaccineDose, AuditAction.UPDATE, after, before, actor_id, now, _school_id(row))
            )
        await _update_many(session, VaccineDose, updated)
        await _write_audit(session, entries)
        await refresh_statistics(session, VaccineDose, len(created))


class _BatchesPlan(_Plan):
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
            await _breathe(index)
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
                "source": _coerce(row, "source", parse_source),
                "donor_id": donor_id,
                "received_on": _coerce(row, "received_on", cell_date),
                "quantity": _coerce(row, "quantity", cell_int),
                "device_type": _coerce(row, "device_type", parse_device_type),
                "make_model": row.text("make_model"),
                "condition": _coerce(row, "condition", parse_condition) or DeviceCondition.NEW,
                "specs": row.text("specs"),
                "note": row.text("note"),
            }
            parsed = _validate(row, BatchIn, fields, self.NAMES, self.today)
            if parsed is None:
                continue
            try:
                check_event_date(parsed.received_on, self.today)
            except DomainError as error:
                row.reject("received_on", error)
                continue
            row.parsed = parsed
        await self.refuse_locked(session, "devices", "received_on", lambda parsed: parsed.received_on)

        def key(row: _Row) -> tuple[Any, ...]:
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
        self.creates: list[_Row] = []
        self.updates: list[tuple[_Row, DonationBatch]] = []
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

    def _new_donor(self, row: _Row, name: str) -> None:
        assert row.school is not None
        key = (row.school.id, fold(name))
        if key in self.new_donors:
            return
        if row.blank("donor_kind"):
            row.reject("donor_kind", DomainError("excel.donor.kind_required", name=name))
            return
        kind = _coerce(row, "donor_kind", parse_donor_kind)
        if kind is None:
            return
        donor = _validate(
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
                    DonationBatch(
                        school_id=row.school.id,
                        source=data.source,
                        donor_id=donor_id,
                        received_on=data.received_on,
                        quantity=data.quantity,
                        device_type=data.device_type,
                        make_model=data.make_model,
                        condition=data.condition,
                        specs=data.specs,
                        note=data.note,
                        allocated=0,
                        entered_by_id=actor_id,
                        entered_at=now,
                        entered_late=is_late_entry(data.received_on, now, tz),
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
        entries = [_audit(actor_id, AuditAction.CREATE, d, None, now, d.school_id) for d in donors.values()]
        entries += [_audit(actor_id, AuditAction.CREATE, b, None, now, b.school_id) for _, b in created]
        entries += [
            _audit(actor_id, AuditAction.UPDATE, b, before, now, b.school_id)
            for (_, b), before in zip(self.updates, befores, strict=True)
        ]
        await _write_audit(session, entries)
        await refresh_statistics(session, DonationBatch, len(created))


class _HandoversPlan(_Plan):
    """Handovers by batch and student; a batch never gives more devices than it has left."""

    NAMES: dict[str, str | None] = {
        "batch_id": "batch",
        "student_id": "student_code",
        "kind": "handover_kind",
    }

    async def plan(self, session: AsyncSession) -> None:
        live = self.placed()
        await self.students_by_code(session, live)
        refs = {id(row): _coerce(row, "batch", parse_batch_ref) for row in live}
        wanted = sorted({ref for ref in refs.values() if ref is not None})
        school_ids = sorted({row.school.id for row in live if row.school is not None})
        # A row names the batch by its school's own number, as the chat and the template show it.
        batches: dict[tuple[int, int], DonationBatch] = {}
        for chunk in _chunks(wanted):
            for stored_batch in await session.scalars(
                select(DonationBatch).where(
                    DonationBatch.number.in_(chunk), DonationBatch.school_id.in_(school_ids)
                )
            ):
                batches[(stored_batch.school_id, stored_batch.number)] = stored_batch
        for index, row in enumerate(live):
            await _breathe(index)
            ref = refs.get(id(row))
            batch = batches.get((row.school.id, ref)) if ref is not None and row.school is not None else None
            if ref is not None and batch is None:
                row.reject("batch", DomainError("excel.batch.unknown", batch=ref))
                batch = None
            fields = {
                "batch_id": batch.id if batch is not None else 0,
                "student_id": _student_id(row),
                "kind": _coerce(row, "handover_kind", parse_handover_kind),
                "handed_on": _coerce(row, "handed_on", cell_date),
                "note": row.text("note"),
            }
            parsed = _validate(row, HandoverIn, fields, self.NAMES, self.today)
            if parsed is None or batch is None:
                continue
            try:
                devices.check_handed_on(parsed.handed_on, batch.received_on, self.today)
            except DomainError as error:
                row.reject("handed_on", error)
                continue
            row.parsed = parsed
            row.extra["batch"] = batch
        await self.refuse_locked(session, "devices", "handed_on", lambda parsed: parsed.handed_on)
        rows = self.mark_duplicates(
            [r for r in self.live() if r.parsed is not None],
            lambda r: (r.parsed.batch_id, r.parsed.student_id),
            ["batch", "student_code"],
        )
        student_ids = sorted({row.parsed.student_id for row in rows})
        active: dict[tuple[int, int], Handover] = {}
        program_held: dict[int, tuple[Handover, DonationBatch]] = {}
        for chunk in _chunks(student_ids):
            result = await session.execute(
                select(Handover, DonationBatch)
                .join(DonationBatch, DonationBatch.id == Handover.batch_id)
                .where(Handover.student_id.in_(chunk), Handover.returned_on.is_(None))
                .order_by(Handover.handed_on, Handover.id)
            )
            for handover, batch in result:
                active[(handover.batch_id, handover.student_id)] = handover
                if devices.may_warn(batch.source):
                    program_held.setdefault(handover.student_id, (handover, batch))
        needing: set[int] = set()  # students with a recorded need for a device
        for chunk in _chunks(student_ids):
            needing.update(
                await session.scalars(
                    select(NeedRecord.student_id).where(
                        NeedRecord.student_id.in_(chunk), NeedRecord.needs_device
                    )
                )
            )
        self.creates: list[_Row] = []
        self.updates: list[tuple[_Row, Handover]] = []
        taken: dict[int, int] = defaultdict(int)
        for row in rows:
            data: HandoverIn = row.parsed
            student_id = _known(data.student_id)
            batch = row.extra["batch"]
            existing = active.get((data.batch_id, student_id))
            if existing is not None:
                if (existing.kind, existing.handed_on, existing.note) == (
                    data.kind,
                    data.handed_on,
                    data.note,
                ):
                    row.result.outcome = Outcome.UNCHANGED
                else:
                    row.result.outcome = Outcome.UPDATED
                    self.updates.append((row, existing))
                continue
            try:
                devices.check_devices_left(batch.quantity, batch.allocated + taken[batch.id])
            except DomainError as error:
                row.reject("batch", error)
                continue
            taken[batch.id] += 1
            held = program_held.get(student_id)
            student = row.extra["student"]
            # The chat's rule (HandoverService.check_handover), with this file's earlier rows counted
            # as held: a second programme device, no recorded need and no group, are notes.
            for finding in devices.judge_handover(
                batch.source,
                student=student.full_name,
                priority_group=student.priority_group,
                needs_device=student_id in needing,
                held=devices.Held(held[0].handed_on, held[0].kind, held[1].number)
                if held is not None and held[1].id != batch.id
                else None,
            ):
                row.reject("student_code", finding.as_error(), warning=True)
            if devices.may_warn(batch.source) and held is None:
                program_held[student_id] = (
                    Handover(batch_id=batch.id, handed_on=data.handed_on, kind=data.kind),
                    batch,
                )
            row.result.outcome = Outcome.CREATED
            self.creates.append(row)
        self.taken = dict(taken)

    async def apply(self, session: AsyncSession, actor_id: int | None) -> None:
        now, tz = self.clock.now(), self.clock.tz
        for batch_id, count in sorted(self.taken.items()):
            # The same guard as `allocate_one`, for several devices at once.
            result = await session.execute(
                update(DonationBatch)
                .where(
                    DonationBatch.id == batch_id, DonationBatch.allocated + count <= DonationBatch.quantity
                )
                .values(allocated=DonationBatch.allocated + count)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) != 1:
                raise Conflict("excel.conflict")
        created = [
            {
                "batch_id": row.parsed.batch_id,
                "student_id": row.parsed.student_id,
                "kind": row.parsed.kind,
                "handed_on": row.parsed.handed_on,
                "returned_on": None,
                "receipt_photo_file_id": None,
                "note": row.parsed.note,
                "return_entered_at": None,
                "return_entered_late": False,
                "entered_by_id": actor_id,
                "entered_at": now,
                "updated_at": None,
                "entered_late": is_late_entry(row.parsed.handed_on, now, tz),
                "request_key": None,
            }
            for row in self.creates
        ]
        # (batch, student) is unique among active handovers, and so among the file's new ones.
        await _insert_many(session, Handover, created, ("batch_id", "student_id"))
        entries = [
            _entry(Handover, AuditAction.CREATE, values, None, actor_id, now, _school_id(row))
            for row, values in zip(self.creates, created, strict=True)
        ]
        # Updates stay on the loaded objects: a file changes few handovers (a note, a date).
        befores = []
        for row, handover in self.updates:
            data = row.parsed
            befores.append(audit.snapshot(handover))
            handover.kind, handover.handed_on, handover.note = data.kind, data.handed_on, data.note
            handover.entered_late = is_late_entry(handover.handed_on, handover.entered_at, tz)
            handover.updated_at = now
        await session.flush()
        entries += _row_audit(actor_id, [], self.updates, befores, now)
        await _write_audit(session, entries)
        await refresh_statistics(session, Handover, len(created))


PLANS: dict[ImportKind, type[_Plan]] = {
    ImportKind.STUDENTS: _StudentsPlan,
    ImportKind.NEEDS: _NeedsPlan,
    ImportKind.DOSES: _DosesPlan,
    ImportKind.BATCHES: _BatchesPlan,
    ImportKind.HANDOVERS: _HandoversPlan,
}


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
    ) -> _Plan:
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
