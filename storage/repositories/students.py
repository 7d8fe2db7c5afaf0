"""Student queries: the picker's search, lookups by code for the import, class lists."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Row,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    column,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.models import Student
from storage.schemas.students import PROVISIONAL_CODE_PREFIX
from storage.text import fold, nfc

CODE_CHUNK = 5_000  # codes per statement of `rows_by_codes`
_CODE_CHARS = re.compile(r"[0-9A-Z._\-]+")


def search_conditions(school_id: int, query: str) -> tuple[ColumnElement[bool], str, str]:
    """WHERE clause of a picker search: every word of the query in the folded name, or the query in
    the student code. Returns (clause, folded query, code query)."""
    folded = fold(query)
    code_query = re.sub(r"\s+", "", nfc(query)).upper()
    words = [Student.search_name.contains(word, autoescape=True) for word in folded.split()]
    matches: list[ColumnElement[bool]] = [and_(*words)] if words else []
    if code_query and _CODE_CHARS.fullmatch(code_query):
        matches.append(Student.code.contains(code_query, autoescape=True))
    clause = and_(Student.school_id == school_id, Student.active.is_(True), or_(*matches))
    return clause, folded, code_query


async def search(
    session: AsyncSession, school_id: int, query: str, *, offset: int, limit: int
) -> tuple[list[Student], int]:
    """One page of matches and the total. Exact code first, then names starting with the query,
    then by name; namesakes next to each other, told apart by class and birth date."""
    return await session.run_sync(search_sync, school_id, query, offset=offset, limit=limit)


def search_sync(
    session: Session, school_id: int, query: str, *, offset: int, limit: int
) -> tuple[list[Student], int]:
    rows, total = _search_page(session.execute, school_id, query, offset=offset, limit=limit)
    return [row[0] for row in rows], total


def search_rows_sync(
    connection: Connection, school_id: int, query: str, *, offset: int, limit: int
) -> tuple[list[Row[Any]], int]:
    """`search_sync` as plain rows (every column of the student, by name), for Core's hot path."""
    return _search_page(connection.execute, school_id, query, offset=offset, limit=limit)


def _search_page(
    execute: Callable[[Any, dict[str, Any]], Any],
    school_id: int,
    query: str,
    *,
    offset: int,
    limit: int,
) -> tuple[list[Row[Any]], int]:
    # The clause of `search_conditions` with the typed words as bound values, so that the statements
    # are built once per shape (how many words, a code or not) instead of on every search. The page
    # carries the number of matches (a window count), so a search is one statement; only a page past
    # the end asks for the count alone.
    folded = fold(query)
    code_query = re.sub(r"\s+", "", nfc(query)).upper()
    words = folded.split()
    with_code = bool(code_query and _CODE_CHARS.fullmatch(code_query))
    count, page = _search_queries(len(words), with_code)
    values: dict[str, Any] = {f"w{n}": f"%{_like_escaped(word)}%" for n, word in enumerate(words)}
    values |= {"school_id": school_id, "code_like": f"%{_like_escaped(code_query)}%"}
    values |= {"code": code_query, "prefix": f"{_like_escaped(folded)}%", "offset": offset, "limit": limit}
    rows = list(execute(page, values).all())
    if rows:
        return rows, int(rows[0].matches)
    return rows, int(execute(count, values).scalar() or 0) if offset else 0


def _like_escaped(text: str) -> str:
    """`text` as a LIKE pattern matches it literally (what `contains(…, autoescape=True)` does)."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


@functools.cache
def _search_queries(words: int, with_code: bool) -> tuple[Any, Any]:
    """(count, one page) of a search of `words` words, and of the code if `with_code`."""
    matches: list[ColumnElement[bool]] = []
    if words:
        matches.append(
            and_(*[Student.search_name.like(bindparam(f"w{n}"), escape="/") for n in range(words)])
        )
    if with_code:
        matches.append(Student.code.like(bindparam("code_like"), escape="/"))
    clause = and_(Student.school_id == bindparam("school_id"), Student.active.is_(True), or_(*matches))
    page = (
        select(Student, func.count().over().label("matches"))
        .where(clause)
        .order_by(
            case((Student.code == bindparam("code"), 0), else_=1),
            case((Student.search_name.like(bindparam("prefix"), escape="/"), 0), else_=1),
            Student.search_name,
            Student.class_name,
            Student.date_of_birth,
            Student.id,
        )
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )
    return select(func.count(Student.id)).where(clause), page


async def in_school(
    session: AsyncSession, student_id: int, school_id: int, *, for_update: bool = False
) -> Student | None:
    """The student if it belongs to `school_id` and is active; `for_update` row-locks it (PostgreSQL)."""
    return await session.run_sync(in_school_sync, student_id, school_id, for_update=for_update)


def in_school_sync(
    session: Session, student_id: int, school_id: int, *, for_update: bool = False
) -> Student | None:
    return session.scalar(_in_school_query(for_update), {"student_id": student_id, "school_id": school_id})


@functools.cache
def _in_school_query(for_update: bool) -> Select[Student]:
    """Built once (a flow's steps and every save ask it); values bound at execution."""
    query = select(Student).where(
        Student.id == bindparam("student_id"),
        Student.school_id == bindparam("school_id"),
        Student.active.is_(True),
    )
    return query.with_for_update() if for_update else query


async def rows_by_codes(
    session: AsyncSession, codes: Iterable[str], *, columns: Sequence[str] | None = None
) -> dict[str, Row[Any]]:
    """Students of any school by code, as plain rows (`row.code`, `row.school_id`, …) of every column,
    or of `columns` (which must hold "code"): an import of 50,000 rows compares them and lets them go,
    so no ORM object is built for them, and a column it does not compare is not read (on SQLite each
    date and time is parsed from text). A statement per `CODE_CHUNK` codes, bound as one value
    (`_by_values`); chunked only so that the driver's raw rows of one statement and their `Row`s are
    not all held at once."""
    return {row.code: row for row in await _rows_by(session, "code", sorted(set(codes)), columns)}


async def rows_by_ids(session: AsyncSession, ids: Iterable[int]) -> dict[int, Row[Any]]:
    """Students by id, as plain rows of every column (`rows_by_codes`' way)."""
    return {row.id: row for row in await _rows_by(session, "id", sorted(set(ids)), None)}


async def _rows_by(
    session: AsyncSession, key: str, wanted: list[Any], columns: Sequence[str] | None
) -> list[Row[Any]]:
    found: list[Row[Any]] = []
    if not wanted:
        return found
    connection = await session.connection()
    postgres = connection.dialect.name == "postgresql"
    statement = _by_values(postgres, key, tuple(columns) if columns is not None else None)
    for start in range(0, len(wanted), CODE_CHUNK):
        chunk = wanted[start : start + CODE_CHUNK]
        result = await session.execute(statement, {"wanted": chunk if postgres else json.dumps(chunk)})
        found.extend(result)
    return found


@functools.cache
def _by_values(postgres: bool, key: str, columns: tuple[str, ...] | None) -> Select[Any]:
    """Students whose `key` ("code" or "id") is in the bound list: `key = ANY(:wanted)` (an array) on
    PostgreSQL, `key IN (SELECT value FROM json_each(:wanted))` (a JSON array) on SQLite — one
    statement and one parameter, where an `IN (…)` of literal values needed a statement per 500
    values (both databases cap the parameters of one statement) and SQLAlchemy expanded each. Either
    probes the key's unique index."""
    table = Student.__table__
    target = table.c[key]
    if postgres:
        condition = target == any_(bindparam("wanted", type_=ARRAY(target.type)))
    else:
        listed: Select[Any] = select(column("value")).select_from(
            func.json_each(bindparam("wanted", type_=String))
        )
        condition = target.in_(listed)
    picked = [table.c[name] for name in columns] if columns is not None else [table]
    return select(*picked).where(condition)


async def class_list(session: AsyncSession, school_id: int, class_name: str) -> Sequence[Student]:
    rows = await session.scalars(
        select(Student).where(
            Student.school_id == school_id, Student.class_name == class_name, Student.active.is_(True)
        )
    )
    # Vietnamese class lists are ordered by given name (the last word), then the whole name.
    return sorted(rows, key=lambda s: (fold(s.full_name.split(" ")[-1]), s.search_name, s.date_of_birth))


async def classes(session: AsyncSession, school_id: int) -> list[tuple[str, int, int]]:
    """(class name, grade, active students) of a school, by grade then class name."""
    result = await session.execute(
        select(Student.class_name, Student.grade, func.count(Student.id))
        .where(Student.school_id == school_id, Student.active.is_(True))
        .group_by(Student.class_name, Student.grade)
        .order_by(Student.grade, Student.class_name)
    )
    return [(name, grade, count) for name, grade, count in result]


def shown_student_code() -> ColumnElement[str]:
    """The student's ministry code as reports and CSDL files show it: blank for a student added in a flow
    without a code yet (the placeholder is no code; the school fills the real one in)."""
    return case((Student.code.startswith(PROVISIONAL_CODE_PREFIX), ""), else_=Student.code)
