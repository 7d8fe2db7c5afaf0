"""The checked copy of an upload, and the words of an import's verdict.

`annotated_copy(check, language)` writes (openpyxl, write-only: a 50,000-row file costs little memory)
every sheet of the upload in its order and visibility (instructions and hidden lists included), the
table's data validations (drop-downs) and the workbook's names, and the table's sheet cell for cell
at the same addresses — values as read, formulas as their cached values, text that looks like a
formula (= + - @, tab, CR first) as text with Excel's quote prefix — plus a verdict column after the
last one. Each cell with a problem is filled (red for
a refusal, yellow for a warning) and carries a comment with the catalogue text saying what is wrong
and how to fix it; problems of the row as a whole go on its verdict cell.

`message(code, params, language)` renders an import error: field names become the column headers of
the person's language, a kind becomes its label, then `bot.errors.render_error` does the rest.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.datavalidation import DataValidation

from bot.errors import render_error
from bot.texts import LANGUAGES, load, t
from exports.reader import SheetInfo, ValidationRule
from exports.xlsx import looks_like_formula
from storage.errors import DomainError
from storage.schemas.imports import SPECS, CellIssue, ImportCheck, ImportKind, Outcome, RowResult

ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
WARNING_FILL = PatternFill("solid", fgColor="FFEB9C")
VALID_FILL = PatternFill("solid", fgColor="C6EFCE")
DATE_FORMAT = "DD/MM/YYYY"
VERDICT_WIDTH = 48
MIN_PLAIN_WIDTH, MAX_PLAIN_WIDTH = 10, 80
MAX_IGNORED_SHOWN = 8
MAX_PROBLEM_CHARS = 400  # a chat message holds 4096 characters: a long cell must not crowd it out
MAX_COMMENT_CHARS = 2000
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
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


def outcome_label(row: RowResult, language: str) -> str:
    if row.outcome is Outcome.REJECTED:
        errors = sum(1 for issue in row.issues if not issue.warning)
        return t("excel.annotate.rejected", language, count=errors)
    return t(f"excel.annotate.{row.outcome.value}", language)


def annotated_filename(filename: str, language: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", filename.rsplit("/", 1)[-1]) or "upload"
    return t("excel.filename.annotated", language, name=stem)


def annotated_copy(check: ImportCheck, language: str = "vi") -> bytes:
    """The workbook that was read — every sheet in its order and visibility (the instructions, the
    hidden lists), the table's drop-downs and other data validations — with the table's problems
    marked and a verdict column (.xlsx bytes), so fixing and sending it back keeps the help."""
    table = check.table
    assert table is not None, "the check keeps the table it read"
    workbook = Workbook(write_only=True)
    data_title = _sheet_title(check.sheet) or t(f"excel.sheet.{check.kind.value}", language)
    infos = list(getattr(table, "sheets", []) or [])
    if not any(info.name == check.sheet for info in infos):
        infos.insert(0, SheetInfo(check.sheet, "visible"))
    titles = _unique_titles(infos, check.sheet, data_title)
    other_grids: dict[str, list[list[Any]]] = getattr(table, "other_grids", {}) or {}
    for position, info in enumerate(infos):
        if info.name == check.sheet:
            sheet = workbook.create_sheet(titles[info.name])
            _write_table_sheet(sheet, check, language)
            workbook.active = position
        else:
            other = workbook.create_sheet(titles[info.name])
            other.sheet_state = info.state
            _write_plain_sheet(other, other_grids.get(info.name, []))
    for name, value in getattr(table, "defined_names", []) or []:
        try:
            workbook.defined_names[name] = DefinedName(name, attr_text=value)
        except ValueError:
            continue  # a name openpyxl cannot write: the lists themselves are still there
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet_title(name: str) -> str:
    return _SHEET_FORBIDDEN.sub(" ", name).strip()[:SHEET_NAME_MAX]


def _unique_titles(infos: list[SheetInfo], table_sheet: str, table_title: str) -> dict[str, str]:
    """A valid, distinct title for every sheet; the names are kept as they were wherever Excel allows
    it, since the drop-downs refer to their lists by sheet name."""
    titles: dict[str, str] = {}
    taken: set[str] = set()
    for info in infos:
        title = table_title if info.name == table_sheet else (_sheet_title(info.name) or "Sheet")
        base, number = title, 1
        while title.casefold() in taken:
            number += 1
            suffix = f" ({number})"
            title = base[: SHEET_NAME_MAX - len(suffix)] + suffix
        taken.add(title.casefold())
        titles[info.name] = title
    return titles


def _write_plain_sheet(sheet: WriteOnlyWorksheet, grid: list[list[Any]]) -> None:
    """Another sheet of the upload, values as read (formulas as their cached values, formula-looking
    text quoted), columns as wide as their text so the instructions stay readable."""
    widths: dict[int, int] = {}
    for cells in grid:
        for column, value in enumerate(cells):
            if isinstance(value, str) and value:
                longest = max(len(line) for line in value.splitlines() or [value])
                widths[column] = max(widths.get(column, 0), longest)
    for column, longest in widths.items():
        sheet.column_dimensions[get_column_letter(column + 1)].width = min(
            MAX_PLAIN_WIDTH, max(MIN_PLAIN_WIDTH, longest + 2)
        )
    for cells in grid:
        sheet.append([_plain(sheet, value) for value in cells])


def _write_table_sheet(sheet: WriteOnlyWorksheet, check: ImportCheck, language: str) -> None:
    """The table's sheet cell for cell at the same addresses, its data validations, the problems
    marked and the verdict column after the last column."""
    table = check.table
    width = max(table.width, max(check.columns.values(), default=0) + 1)
    verdict_column = width  # 0-based: right of everything the sheet had
    spec = SPECS[check.kind]
    for column in spec.columns:
        if column.field in check.columns:
            letter = get_column_letter(check.columns[column.field] + 1)
            sheet.column_dimensions[letter].width = column.width
    sheet.column_dimensions[get_column_letter(verdict_column + 1)].width = VERDICT_WIDTH
    sheet.freeze_panes = f"A{check.header_row + 1}"
    for rule in getattr(table, "validations", []) or []:
        validation = _validation(rule)
        if validation is not None:
            sheet.data_validations.append(validation)
    results = {row.row: row for row in check.rows}
    by_column = {index: name for name, index in check.columns.items()}
    author = t("excel.annotate.comment_author", language)
    header_index = check.header_row - 1
    for index, cells in enumerate(table.grid):
        values: list[Any] = [_plain(sheet, value) for value in cells]
        values += [None] * (width - len(values))
        result = results.get(index + 1)
        if index == header_index:
            for column in range(width):
                if values[column] is not None:
                    values[column] = _bold(sheet, values[column])
            values.append(_bold(sheet, t("excel.annotate.verdict_header", language)))
        elif result is not None:
            _mark_row(sheet, values, result, by_column, verdict_column, author, language)
        sheet.append(values)


_VALIDATION_FLAGS = ("allowBlank", "showErrorMessage", "showInputMessage", "showDropDown")
_VALIDATION_TEXTS = (
    "type",
    "operator",
    "errorStyle",
    "errorTitle",
    "error",
    "promptTitle",
    "prompt",
    "imeMode",
)


def _validation(rule: ValidationRule) -> DataValidation | None:
    """A data validation of the upload as openpyxl writes it; one it cannot write is left out."""
    attributes = rule.attributes
    values: dict[str, Any] = {key: attributes[key] for key in _VALIDATION_TEXTS if key in attributes}
    for key in _VALIDATION_FLAGS:
        if key in attributes:
            values[key] = attributes[key].strip().lower() in ("1", "true")
    try:
        return DataValidation(formula1=rule.formula1, formula2=rule.formula2, sqref=rule.sqref, **values)
    except (TypeError, ValueError):
        return None


def _mark_row(
    sheet: WriteOnlyWorksheet,
    values: list[Any],
    result: RowResult,
    by_column: dict[int, str],
    verdict_column: int,
    author: str,
    language: str,
) -> None:
    columns = {name: index for index, name in by_column.items()}
    per_cell: dict[int, list[CellIssue]] = {}
    row_issues: list[CellIssue] = []
    for issue in result.issues:
        column = columns.get(issue.field) if issue.field else None
        if column is None:
            row_issues.append(issue)
        else:
            per_cell.setdefault(column, []).append(issue)
    for column, issues in per_cell.items():
        cell = values[column]
        cell = _cell(sheet, cell)
        warning_only = all(issue.warning for issue in issues)
        cell.fill = WARNING_FILL if warning_only else ERROR_FILL
        cell.comment = _comment("\n".join(issue_text(i, language) for i in issues), author)
        values[column] = cell
    verdict = _cell(sheet, outcome_label(result, language))
    if result.rejected:
        verdict.fill = ERROR_FILL
    elif result.warned:
        verdict.fill = WARNING_FILL
    else:
        verdict.fill = VALID_FILL
    if row_issues:
        verdict.comment = _comment("\n".join(issue_text(i, language) for i in row_issues), author)
    values.append(verdict)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _comment(text: str, author: str) -> Comment:
    comment = Comment(_short(text, MAX_COMMENT_CHARS), author)
    lines = sum(1 + len(line) // 48 for line in text.splitlines())
    comment.width, comment.height = 340, min(400, 24 + 16 * lines)
    return comment


def _cell(sheet: WriteOnlyWorksheet, value: Any) -> WriteOnlyCell:
    if isinstance(value, Cell):
        return value
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and looks_like_formula(value):
        # A text starting with = + - @ (or tab, CR) stays text, and with Excel's quote prefix (as in
        # the reports) editing the cell later does not turn it into a formula: the copy goes back to
        # the person who may open it and fix it, and its text came from someone else's file.
        cell.data_type = "s"
        cell.quotePrefix = True
    if isinstance(value, date):
        cell.number_format = DATE_FORMAT if not isinstance(value, datetime) else "DD/MM/YYYY HH:MM"
    return cell


def _bold(sheet: WriteOnlyWorksheet, value: Any) -> WriteOnlyCell:
    cell = _cell(sheet, value)
    cell.font = Font(bold=True)
    return cell


def _plain(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """A value as read, ready for openpyxl: text cleaned of control characters, never a formula."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        return _cell(sheet, value) if looks_like_formula(value) else value
    if isinstance(value, date):
        return _cell(sheet, value)
    return value


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
