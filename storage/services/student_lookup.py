"""The student picker's reads on the hot path of a flow (issue 17, item 3): a search and a look-up by
id, as `StudentService.search` / `get` answer them, each read in one thread hop on SQLite
(`storage.db.read_core`) instead of a session whose every statement crosses threads 4–6 times."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from storage.db import read_core
from storage.errors import DomainError, NotFound
from storage.models import Student
from storage.repositories import core
from storage.repositories import students as repo
from storage.schemas.students import StudentOut, StudentPage
from storage.services.base import ServiceBase
from storage.services.students import MIN_QUERY_LENGTH, PAGE_SIZE
from storage.text import fold


class StudentLookupService(ServiceBase):
    async def search(
        self, school_id: int, query: str, page: int = 1, page_size: int = PAGE_SIZE
    ) -> StudentPage:
        """Students of one school whose name (any case, with or without diacritics) or code
        contains what was typed; `page` counts from 1 (the same answer as `StudentService.search`)."""
        if len(fold(query).replace(" ", "")) < MIN_QUERY_LENGTH:
            raise DomainError("students.query_too_short", minimum=MIN_QUERY_LENGTH)
        page = max(1, page)

        def read(session: Session) -> StudentPage:
            # The repository's statements, run as Core (rows, not ORM objects).
            rows, total = repo.search_rows_sync(
                session.connection(),
                school_id,
                query,
                offset=(page - 1) * page_size,
                limit=page_size,
            )
            items = [StudentOut.model_validate(s) for s in rows]
            return StudentPage(items=items, total=total, page=page, page_size=page_size)

        return await read_core(self.sessionmaker, read)

    async def get(self, student_id: int, *, school_id: int) -> StudentOut:
        """The student, only if they belong to `school_id` (another school's student is "not found")."""

        def read(session: Session) -> StudentOut | None:
            student = student_record_sync(session, student_id, school_id)
            return StudentOut.model_validate(student) if student is not None else None

        found = await read_core(self.sessionmaker, read)
        if found is None:
            raise NotFound("student")
        return found


def student_record_sync(
    session: Session, student_id: int, school_id: int, *, for_update: bool = False
) -> Any | None:
    """`students.in_school_sync` as a plain record (`storage.repositories.core`): the student if it
    belongs to `school_id` and is active; `for_update` row-locks it (PostgreSQL)."""
    row = core.execute(session, _in_school(for_update), {"student_id": student_id, "school_id": school_id})
    return core.record(row.first(), Student)


@functools.cache
def _in_school(for_update: bool) -> Any:
    student = core.table(Student).c
    query = select(*core.columns(Student)).where(
        student.id == bindparam("student_id"),
        student.school_id == bindparam("school_id"),
        student.active.is_(True),
    )
    return query.with_for_update() if for_update else query
