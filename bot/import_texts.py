"""The words of an import's verdict (chat and command line), from the catalogue, and the checked copy
in the person's language (`annotated_copy`: exports/annotate.py with the catalogue's words).

`message(code, params, language)` renders an import error: field names become the column headers of
the person's language, a kind becomes its label, then `bot.errors.render_error` does the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.errors import render_error
from bot.texts import LANGUAGES, load, t
from exports.annotate import annotated_workbook
from exports.labels import Labels
from storage.errors import DomainError
from storage.schemas.imports import CellIssue, ImportCheck, ImportKind

MAX_IGNORED_SHOWN = 8
MAX_PROBLEM_CHARS = 400  # a chat message holds 4096 characters: a long cell must not crowd it out
_KINDS = {kind.value for kind in ImportKind}


def column_label(name: str, language: str) -> str:
    return t(f"excel.column.{name}.header", language)


def message(code: str, params: Mapping[str, Any], language: str) -> str:
    """An import error in `language`, with columns and kinds named as the person sees them."""
    values = dict(params)
    column = values.get("column")
    if isinstance(column, str) and f"excel.column.{column}.header" in _catalogue(language):
        values["column"] = f"«{column_label(column, language)}»"
        values.setdefault("rule", t(f"excel.column.{column}.rule", language))
    columns = values.get("columns")
    if isinstance(columns, list | tuple):
        values["columns"] = ", ".join(f"«{column_label(str(c), language)}»" for c in columns)
    values.setdefault("rule", "")
    kind = values.get("kind")
    if isinstance(kind, str) and kind in _KINDS:
        values["kind"] = t(f"excel.kind.{kind}", language)
    return render_error(DomainError(code, **values), language)


def _catalogue(language: str) -> dict[str, str]:
    return load(language if language in LANGUAGES else "vi")


def issue_text(issue: CellIssue, language: str) -> str:
    text = message(issue.code, issue.params, language)
    return t("excel.annotate.warning", language, message=text) if issue.warning else text


def annotated_copy(check: ImportCheck, language: str = "vi") -> bytes:
    """The upload with its problems marked and a verdict column, in `language` (.xlsx bytes)."""
    return annotated_workbook(check, Labels(t, language), lambda issue: issue_text(issue, language))


def annotated_filename(filename: str, language: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", filename.rsplit("/", 1)[-1]) or "upload"
    return t("excel.filename.annotated", language, name=stem)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the verdict in words (chat and command line) -------------------------------------------------


def problem_lines(check: ImportCheck, language: str, limit: int) -> list[str]:
    """The first `limit` refusals as "Dòng 7, cột «Ngày sinh»: …", then how many more there are."""
    problems = [
        (row, issue) for row in check.rows if row.rejected for issue in row.issues if not issue.warning
    ]
    lines = []
    for row, issue in problems[:limit]:
        text = _short(message(issue.code, issue.params, language), MAX_PROBLEM_CHARS)
        if issue.field and issue.field in check.columns:
            column = column_label(issue.field, language)
            lines.append(t("excel.reply.problem", language, row=row.row, column=column, message=text))
        else:
            lines.append(t("excel.reply.problem_row", language, row=row.row, message=text))
    if len(problems) > limit:
        lines.append(t("excel.reply.more_problems", language, count=len(problems) - limit))
    return lines


def verdict_text(check: ImportCheck, language: str, *, max_problems: int = 5) -> str:
    """Counts new / updated / unchanged / rejected, the columns not used, the first refusals."""
    counts = check.counts
    lines = [
        t(
            "excel.reply.verdict",
            language,
            filename=check.filename,
            kind=t(f"excel.kind.{check.kind.value}", language),
            sheet=check.sheet,
            header_row=check.header_row,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            rejected=counts.rejected,
        )
    ]
    if counts.warned:
        lines.append(t("excel.reply.verdict_warned", language, warned=counts.warned))
    if check.ignored_headers:
        shown = [_short(header, 40) for header in check.ignored_headers[:MAX_IGNORED_SHOWN]]
        columns = ", ".join(f"«{header}»" for header in shown)
        if len(check.ignored_headers) > MAX_IGNORED_SHOWN:
            columns += ", …"
        lines.append(t("excel.reply.ignored_columns", language, columns=columns))
    problems = problem_lines(check, language, max_problems)
    if problems:
        lines += ["", t("excel.reply.problems", language), *problems]
    return "\n".join(lines)


def imported_text(check: ImportCheck, language: str) -> str:
    counts = check.counts
    return t(
        "excel.reply.imported",
        language,
        kind=t(f"excel.kind.{check.kind.value}", language),
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=counts.rejected,
    )
