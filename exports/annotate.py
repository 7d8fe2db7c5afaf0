"""The checked copy of an upload.

`annotated_workbook(check, labels, issue_text)` writes (openpyxl, write-only: a 50,000-row file costs
little memory) every sheet of the upload in its order and visibility (instructions and hidden lists
included), the table's data validations (drop-downs) and the workbook's names, and the table's sheet
cell for cell at the same addresses — values as read, formulas as their cached values, text that looks
like a formula (= + - @, tab, CR first) as text with Excel's quote prefix — plus a verdict column after
the last one. Each cell with a problem is filled (red for a refusal, yellow for a warning) and carries a
comment with the catalogue text saying what is wrong and how to fix it; problems of the row as a whole
go on its verdict cell. The words come from the caller: `labels` (exports/labels.py) and `issue_text`,
the catalogue's text of a problem (bot/import_texts.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Protocol, cast

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.datavalidation import DataValidation, DataValidationList
from openpyxl.worksheet.dimensions import ColumnDimension, DimensionHolder

from exports.labels import Labels
from exports.reader import SheetInfo, ValidationRule
from exports.xlsx import looks_like_formula
from storage.schemas.imports import SPECS, CellIssue, ImportCheck, Outcome, RowResult

ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
WARNING_FILL = PatternFill("solid", fgColor="FFEB9C")
VALID_FILL = PatternFill("solid", fgColor="C6EFCE")
DATE_FORMAT = "DD/MM/YYYY"
VERDICT_WIDTH = 48
MIN_PLAIN_WIDTH, MAX_PLAIN_WIDTH = 10, 80
MAX_COMMENT_CHARS = 2000
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


IssueText = Callable[[CellIssue], str]  # a problem of a cell or row in the person's words


class _Layout(Protocol):
    column_dimensions: DimensionHolder[str, ColumnDimension]
    data_validations: DataValidationList


def _layout(sheet: WriteOnlyWorksheet) -> _Layout:
    # A write-only sheet has these at run time (Worksheet._setup gives them to it);
    # types-openpyxl's WriteOnlyWorksheet leaves them out.
    return cast(_Layout, sheet)


def outcome_label(row: RowResult, labels: Labels) -> str:
    if row.outcome is Outcome.REJECTED:
        errors = sum(1 for issue in row.issues if not issue.warning)
        return labels("excel.annotate.rejected", count=errors)
    return labels(f"excel.annotate.{row.outcome.value}")


def annotated_workbook(check: ImportCheck, labels: Labels, issue_text: IssueText) -> bytes:
    """The workbook that was read — every sheet in its order and visibility (the instructions, the
    hidden lists), the table's drop-downs and other data validations — with the table's problems
    marked and a verdict column (.xlsx bytes), so fixing and sending it back keeps the help."""
    table = check.table
    assert table is not None, "the check keeps the table it read"
    workbook = Workbook(write_only=True)
    data_title = _sheet_title(check.sheet) or labels(f"excel.sheet.{check.kind.value}")
    infos = list(getattr(table, "sheets", []) or [])
    if not any(info.name == check.sheet for info in infos):
        infos.insert(0, SheetInfo(check.sheet, "visible"))
    titles = _unique_titles(infos, check.sheet, data_title)
    other_grids: dict[str, list[list[Any]]] = getattr(table, "other_grids", {}) or {}
    for position, info in enumerate(infos):
        if info.name == check.sheet:
            sheet = workbook.create_sheet(titles[info.name])
            _write_table_sheet(sheet, check, labels, issue_text)
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
        _layout(sheet).column_dimensions[get_column_letter(column + 1)].width = min(
            MAX_PLAIN_WIDTH, max(MIN_PLAIN_WIDTH, longest + 2)
        )
    for cells in grid:
        sheet.append([_plain(sheet, value) for value in cells])


def _write_table_sheet(
    sheet: WriteOnlyWorksheet, check: ImportCheck, labels: Labels, issue_text: IssueText
) -> None:
    """The table's sheet cell for cell at the same addresses, its data validations, the problems
    marked and the verdict column after the last column."""
    table = check.table
    width = max(table.width, max(check.columns.values(), default=0) + 1)
    verdict_column = width  # 0-based: right of everything the sheet had
    spec = SPECS[check.kind]
    layout = _layout(sheet)
    for spec_column in spec.columns:
        if spec_column.field in check.columns:
            letter = get_column_letter(check.columns[spec_column.field] + 1)
            layout.column_dimensions[letter].width = spec_column.width
    layout.column_dimensions[get_column_letter(verdict_column + 1)].width = VERDICT_WIDTH
    sheet.freeze_panes = f"A{check.header_row + 1}"
    for rule in getattr(table, "validations", []) or []:
        validation = _validation(rule)
        if validation is not None:
            layout.data_validations.append(validation)
    results = {row.row: row for row in check.rows}
    by_column = {index: name for name, index in check.columns.items()}
    author = labels("excel.annotate.comment_author")
    header_index = check.header_row - 1
    for index, cells in enumerate(table.grid):
        values: list[Any] = [_plain(sheet, value) for value in cells]
        values += [None] * (width - len(values))
        result = results.get(index + 1)
        if index == header_index:
            for column in range(width):
                if values[column] is not None:
                    values[column] = _bold(sheet, values[column])
            values.append(_bold(sheet, labels("excel.annotate.verdict_header")))
        elif result is not None:
            _mark_row(sheet, values, result, by_column, verdict_column, author, labels, issue_text)
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
    labels: Labels,
    issue_text: IssueText,
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
        cell.comment = _comment("\n".join(issue_text(i) for i in issues), author)
        values[column] = cell
    verdict = _cell(sheet, outcome_label(result, labels))
    if result.rejected:
        verdict.fill = ERROR_FILL
    elif result.warned:
        verdict.fill = WARNING_FILL
    else:
        verdict.fill = VALID_FILL
    if row_issues:
        verdict.comment = _comment("\n".join(issue_text(i) for i in row_issues), author)
    values.append(verdict)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _comment(text: str, author: str) -> Comment:
    comment = Comment(_short(text, MAX_COMMENT_CHARS), author)
    lines = sum(1 + len(line) // 48 for line in text.splitlines())
    comment.width, comment.height = 340, min(400, 24 + 16 * lines)
    return comment


def _cell(sheet: WriteOnlyWorksheet, value: Any) -> Cell:
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


def _bold(sheet: WriteOnlyWorksheet, value: Any) -> Cell:
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
