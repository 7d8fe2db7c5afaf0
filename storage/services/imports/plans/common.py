"""What every import plan shares: the row and its verdict, cell conversion, bulk writes and audit
rows, and `ImportPlan`, the checks every kind runs before its own plan and apply."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from exports.reader import Table
from storage.enums import AuditAction, SchoolLevel
from storage.errors import DomainError, NotFound
from storage.models import Base, School
from storage.repositories import audit, locks
from storage.repositories import students as students_repo
from storage.schemas.imports import (
    ERROR_FIELDS,
    SPECS,
    CellIssue,
    ImportCheck,
    ImportScope,
    Outcome,
    RowResult,
    cell_text,
    is_blank,
    same_name,
)
from storage.schemas.parsing import clean_code

if TYPE_CHECKING:
    from storage.services.imports.service import ImportService

CHUNK = 500  # ids and codes per IN (…): both databases cap bound parameters
ANALYZE_FROM_ROWS = 1_000  # rows written at once that make PostgreSQL's statistics stale


# --- rows -----------------------------------------------------------------------------------------


@dataclass
class _School:
    id: int
    code: str
    level: SchoolLevel
    district_id: int


_NONE_FAILED: frozenset[str] = frozenset()


@dataclass(slots=True)
class SheetRow:
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


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def validate_row(
    row: SheetRow, model: type[BaseModel], data: dict[str, Any], names: dict[str, str | None], today: date
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


def coerce_cell(row: SheetRow, name: str, convert: Any) -> Any:
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


class Cells:
    """`coerce_cell` for one file, each distinct cell value converted once: a file repeats its dates,
    classes, genders, products and places thousands of times. Conversions are pure functions of the
    value (and of the import's pinned day), so the result — or the refusal — is the same every time."""

    def __init__(self) -> None:
        self._seen: dict[tuple[Any, type, Any], Any] = {}

    def coerce(self, row: SheetRow, name: str, convert: Any) -> Any:
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


def orm_audit_entry(
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


def resolved_student_id(student_id: int | None) -> int:
    """A parsed row's student id: the plans resolve every code first (0 when refused), so an
    import's record never has the chat's "new student" None."""
    assert student_id is not None
    return student_id


_BREATH_SECONDS = 0.02
_last_breath = [0.0]


class _Ready:
    """An awaitable that is done at once: `breathe` on the rows that need no pause costs no
    coroutine (it is awaited 200,000 times for a 50,000-row file)."""

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_READY = _Ready()


def breathe(index: int) -> Awaitable[None]:
    """Checking rows is CPU work on the event loop: every 20 ms of it (looked at every 50 rows; a
    row's validation can take a millisecond) let other chats' updates run."""
    if index % 50 == 0 and time.perf_counter() - _last_breath[0] > _BREATH_SECONDS:
        _last_breath[0] = time.perf_counter()
        return asyncio.sleep(0)
    return _READY


_FULL_COLLECTIONS_PAUSED = 1_000_000  # young collections between two full ones, while paused
_paused: list[Any] = [0, None]  # imports running with full collections paused; the thresholds before


@contextlib.contextmanager
def full_collections_paused() -> Iterator[None]:
    """No full pass of Python's cyclic garbage collector while a file's rows are checked and written.
    A full collection walks every live object — the file's 50,000 rows, their schemas, the stored
    rows — and such an import triggered about five in its write and as many in its check (0.2 s each,
    on the event loop: the longest pause other chats saw). The young generations are still collected
    (what an import leaves in cycles is young), and every object of the rows is freed by reference
    counting anyway. Imports overlapping on the event loop share one pause; the thresholds come back
    when the last one ends."""
    if _paused[0] == 0:
        _paused[1] = gc.get_threshold()
        young, middle, _ = _paused[1]
        gc.set_threshold(young, middle, _FULL_COLLECTIONS_PAUSED)
    _paused[0] += 1
    try:
        yield
    finally:
        _paused[0] -= 1
        if _paused[0] == 0:
            gc.set_threshold(*_paused[1])


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


def school_of_row(row: SheetRow) -> int:
    assert row.school is not None  # only rows placed in a school are written
    return row.school.id


def student_of_row(row: SheetRow) -> int:
    """The resolved student's id; 0 when the code was refused (the schema still checks the rest)."""
    student = row.extra.get("student")
    return student.id if student is not None else 0


async def write_audit(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    await audit.record_many(session, entries)


# Bulk writes: Core statements with many parameter sets, not ORM objects through the unit of work
# (one object, one snapshot through the instrumentation, per row). SQLAlchemy sends an executemany
# with RETURNING as multi-row INSERTs on both databases.


async def insert_many(
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


async def update_many(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """UPDATE rows by id ("row_id"), one executemany; every dict has the same keys (the SET clause)."""
    if rows:
        table = model.__table__
        await session.execute(update(table).where(table.c.id == bindparam("row_id")), rows)


def changed_row(stored: Any, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the parameters of `update_many`, the row's values after) for a stored row and its changes."""
    after = {**stored._mapping, **changes}
    return {"row_id": stored.id, **changes}, after


# --- the plan of one file -------------------------------------------------------------------------


def rows_audit(
    actor_id: int | None,
    created: Sequence[tuple[SheetRow, Base]],
    updated: Sequence[tuple[SheetRow, Base]],
    befores: Sequence[dict[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The audit rows of the records a file's rows added and changed, each under its row's school."""
    entries = [
        orm_audit_entry(actor_id, AuditAction.CREATE, record, None, now, school_of_row(r))
        for r, record in created
    ]
    entries += [
        orm_audit_entry(actor_id, AuditAction.UPDATE, record, before, now, school_of_row(r))
        for (r, record), before in zip(updated, befores, strict=True)
    ]
    return entries


class ImportPlan:
    """What one file would do: checks shared by every kind, then the kind's own plan and apply."""

    def __init__(self, service: ImportService, scope: ImportScope, table: Table) -> None:
        self.service = service
        self.scope = scope
        self.table = table
        self.spec = SPECS[table.kind]
        self.clock = service.clock
        self.today = service.clock.today()
        self.rows: list[SheetRow] = []

    # Shared checks ---------------------------------------------------------------------------------

    async def prepare(self, session: AsyncSession) -> None:
        required = self.spec.required  # a property: worked out once, not once per row
        for index, (number, values) in enumerate(self.table.records()):
            await breathe(index)
            row = SheetRow(RowResult(number), values)
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
            await breathe(index)
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
        for chunk in chunks(sorted(wanted)):
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
            await breathe(index)
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

    def placed(self) -> list[SheetRow]:
        """Rows whose school is known: every cell of them is checked, to say all that is wrong."""
        return [row for row in self.rows if row.school is not None]

    def live(self) -> list[SheetRow]:
        """Rows still worth comparing with the database: a school, and no refusal so far."""
        return [row for row in self.rows if row.school is not None and row.ok]

    def mark_duplicates(self, rows: Sequence[SheetRow], key: Any, columns: Sequence[str]) -> list[SheetRow]:
        """A second row with the same natural key is refused, pointing at the first."""
        first: dict[Any, SheetRow] = {}
        kept: list[SheetRow] = []
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

    async def students_by_code(self, session: AsyncSession, rows: Sequence[SheetRow]) -> None:
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
            session, area, [(school_of_row(row), day_of(row.parsed)) for row in rows], standing=standing
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
