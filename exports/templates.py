"""The bulk entry templates: one workbook per kind, written with openpyxl.

`build_template(context, labels)` returns the .xlsx bytes. Each workbook has
- the data sheet: a title, a note, the header row (required columns marked *, each header with a
  comment stating its rule), an example row (its «STT» cell says «Ví dụ», so the import skips it),
  column widths and formats (dates dd/mm/yyyy, codes as text), and data validation: a drop-down list
  for every coded column, whole numbers and dates where they apply;
- the instruction sheet «Hướng dẫn»: how to fill and send the file, the accepted date form, and a
  table with every column's rule and accepted values;
- a hidden sheet «Danh mục» holding the drop-down lists (lists can hold commas and be long).
Every word comes from the catalogue (`bot/texts/<lang>/excel.toml`), through the `Labels` the caller
passes in (exports/labels.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from exports.labels import Labels
from storage.enums import (
    DeviceCondition,
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    Gender,
    HandoverKind,
    PriorityGroup,
)
from storage.rules.dates import show_date
from storage.rules.numbers import show_number
from storage.schemas.imports import (
    SPECS,
    BatchChoice,
    CodeList,
    ColumnSpec,
    ColumnType,
    TemplateContext,
)
from storage.schemas.students import MAX_GRADE, MIN_GRADE
from storage.schemas.vaccines import MAX_DOSE_NUMBER

TITLE_ROW = 1
NOTE_ROW = 2
HEADER_ROW = 3
EXAMPLE_ROW = 4
FIRST_DATA_ROW = 5
# Rows below the header that carry the drop-downs and formats (the import's row limit).
VALIDATED_ROWS = 50_000
MAX_QUANTITY = 100_000
REQUIRED_MARK = " *"
DATE_FORMAT = "DD/MM/YYYY"
TEXT_FORMAT = "@"
DATE_MIN = date(1990, 1, 1)
DATE_MAX = date(2099, 12, 31)

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
REQUIRED_FILL = PatternFill("solid", fgColor="FCE4D6")
EXAMPLE_FONT = Font(italic=True, color="7F7F7F")
THIN = Side(style="thin", color="A6A6A6")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")

# The stored values of each coded list, in the order the drop-down shows them.
CODE_VALUES: dict[CodeList, tuple[str, ...]] = {
    CodeList.GENDER: tuple(g.value for g in Gender),
    CodeList.PRIORITY_GROUP: tuple(g.value for g in PriorityGroup if g is not PriorityGroup.NONE),
    CodeList.YES_NO: ("yes", "no"),
    CodeList.SOURCE: tuple(s.value for s in DonationSource),
    CodeList.DONOR_KIND: tuple(k.value for k in DonorKind),
    CodeList.DEVICE_TYPE: tuple(d.value for d in DeviceType),
    CodeList.CONDITION: tuple(c.value for c in DeviceCondition),
    CodeList.HANDOVER_KIND: tuple(k.value for k in HandoverKind),
    CodeList.PLACE: tuple(p.value for p in DosePlace),
}
WHOLE_RANGES: dict[str, tuple[int, int]] = {
    "quantity": (1, MAX_QUANTITY),
    "dose_number": (1, MAX_DOSE_NUMBER),
}


def code_label(codes: CodeList, value: str, labels: Labels) -> str:
    return labels(f"excel.codes.{codes.value}.{value}")


def code_labels(codes: CodeList, labels: Labels) -> list[str]:
    return [code_label(codes, value, labels) for value in CODE_VALUES[codes]]


def product_label(name: str, labels: Labels) -> str:
    """A product as the template shows it. A bilingual name in the product table ("Khác / Other":
    Vietnamese, then English) shows only the template's language; the import accepts either side."""
    parts = [part.strip() for part in name.split(" / ")]
    if len(parts) != 2 or not all(parts):
        return name
    return parts[0] if labels.language == "vi" else parts[1]


def header_text(column: ColumnSpec, labels: Labels) -> str:
    return labels(f"excel.column.{column.field}.header")


def rule_text(column: ColumnSpec, labels: Labels) -> str:
    key = "rule_check" if column.informative else "rule"
    return labels(f"excel.column.{column.field}.{key}")


def batch_label(batch: BatchChoice, labels: Labels) -> str:
    values: dict[str, Any] = {
        "number": batch.number,
        "received_on": show_date(batch.received_on),
        "device_type": code_label(CodeList.DEVICE_TYPE, batch.device_type.value, labels),
        "left": batch.left,
    }
    if batch.donor_name:
        return labels("excel.template.batch_label", donor=batch.donor_name, **values)
    return labels("excel.template.batch_label_no_donor", **values)


def template_columns(context: TemplateContext) -> list[ColumnSpec]:
    columns = list(SPECS[context.kind].columns)
    if not context.with_school_column:
        columns = [c for c in columns if c.field != "school_code"]
    return columns


def is_required(column: ColumnSpec, context: TemplateContext) -> bool:
    return column.required or (column.field == "school_code" and context.with_school_column)


def list_values(column: ColumnSpec, context: TemplateContext, labels: Labels) -> list[str] | None:
    """The drop-down values of a column, or None when it has no list."""
    if column.codes is None:
        return None
    if column.codes is CodeList.GRADE:
        return [str(grade) for grade in range(MIN_GRADE, MAX_GRADE + 1)]
    if column.codes is CodeList.PRODUCT:
        return [product_label(name, labels) for name in context.products]
    if column.codes is CodeList.BATCH:
        return [batch_label(b, labels) for b in context.batches] or None
    return code_labels(column.codes, labels)


def example_value(column: ColumnSpec, context: TemplateContext, labels: Labels) -> Any:
    def label(codes: CodeList, value: str) -> str:
        return code_label(codes, value, labels)

    values: dict[str, Any] = {
        "row_number": labels("excel.template.example_mark"),
        "school_code": context.school_code or "79785001",
        "student_code": "7978500123",
        "full_name": labels("excel.example.full_name"),
        "date_of_birth": date(2012, 3, 14),
        "gender": label(CodeList.GENDER, Gender.MALE.value),
        "class_name": "4A1",
        "grade": 4,
        "category": label(CodeList.PRIORITY_GROUP, PriorityGroup.POOR.value),
        "needs_device": label(CodeList.YES_NO, "yes"),
        "needs_connectivity": label(CodeList.YES_NO, "no"),
        "note": labels("excel.example.note"),
        "source": label(CodeList.SOURCE, DonationSource.OTHER.value),
        "donor_name": labels("excel.example.donor_name"),
        "donor_kind": label(CodeList.DONOR_KIND, DonorKind.BUSINESS.value),
        "donor_contact": labels("excel.example.donor_contact"),
        "received_on": date(2021, 11, 12),
        "device_type": label(CodeList.DEVICE_TYPE, DeviceType.LAPTOP.value),
        "quantity": 20,
        "make_model": labels("excel.example.make_model"),
        "condition": label(CodeList.CONDITION, DeviceCondition.NEW.value),
        "specs": labels("excel.example.specs"),
        "batch": (
            batch_label(context.batches[0], labels)
            if context.batches
            else labels("excel.template.batch_example")
        ),
        "handover_kind": label(CodeList.HANDOVER_KIND, HandoverKind.GIFT.value),
        "handed_on": date(2021, 11, 13),
        "dose_number": 1,
        "given_on": date(2021, 11, 10),
        "product": product_label(context.products[0], labels) if context.products else "COMIRNATY",
        "product_other_name": None,
        "place": label(CodeList.PLACE, DosePlace.SCHOOL.value),
    }
    return values.get(column.field)


def accepted_values(column: ColumnSpec, context: TemplateContext, labels: Labels) -> str:
    values = list_values(column, context, labels)
    if values:
        return "; ".join(values)
    if column.codes is CodeList.BATCH:
        return labels("excel.guide.values_batch_free")
    if column.type is ColumnType.DATE:
        return labels("excel.guide.values_date")
    if column.field in WHOLE_RANGES:
        minimum, maximum = WHOLE_RANGES[column.field]
        return labels("excel.guide.values_whole", minimum=minimum, maximum=maximum)
    return ""


def build_template(
    context: TemplateContext, labels: Labels, *, max_bytes: int = 10 * 2**20, max_rows: int = 50_000
) -> bytes:
    """The template of `context.kind` as .xlsx bytes."""
    kind = context.kind
    columns = template_columns(context)
    workbook = Workbook()
    data = workbook.active
    assert data is not None
    data.title = labels(f"excel.sheet.{kind.value}")
    guide = workbook.create_sheet(labels("excel.sheet.guide"))
    lists = workbook.create_sheet(labels("excel.sheet.lists"))
    lists.sheet_state = "hidden"

    _write_data_sheet(data, lists, columns, context, labels)
    _write_guide(guide, data.title, columns, context, labels, max_bytes=max_bytes, max_rows=max_rows)
    workbook.active = 0
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_data_sheet(
    sheet: Worksheet,
    lists: Worksheet,
    columns: Sequence[ColumnSpec],
    context: TemplateContext,
    labels: Labels,
) -> None:
    guide_name = labels("excel.sheet.guide")
    last = get_column_letter(len(columns))
    sheet.cell(TITLE_ROW, 1, labels("excel.template.title", kind=labels(f"excel.kind.{context.kind}")))
    sheet.cell(TITLE_ROW, 1).font = Font(bold=True, size=14)
    if context.school_code and not context.with_school_column:
        note = labels(
            "excel.template.subtitle_school",
            school=context.school_name or "",
            code=context.school_code,
            first_row=FIRST_DATA_ROW,
            guide=guide_name,
        )
    else:
        note = labels("excel.template.subtitle_district", first_row=FIRST_DATA_ROW, guide=guide_name)
    sheet.cell(NOTE_ROW, 1, note).font = Font(italic=True)
    sheet.merge_cells(f"A{TITLE_ROW}:{last}{TITLE_ROW}")
    sheet.merge_cells(f"A{NOTE_ROW}:{last}{NOTE_ROW}")
    sheet.row_dimensions[NOTE_ROW].height = 30
    sheet.cell(NOTE_ROW, 1).alignment = WRAP
    author = labels("excel.annotate.comment_author")
    last_row = HEADER_ROW + VALIDATED_ROWS
    list_column = 0
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        required = is_required(column, context)
        header = sheet.cell(
            HEADER_ROW, index, header_text(column, labels) + (REQUIRED_MARK if required else "")
        )
        header.font = Font(bold=True)
        header.fill = REQUIRED_FILL if required else HEADER_FILL
        header.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        header.border = BORDER
        comment = Comment(rule_text(column, labels), author)
        comment.width, comment.height = 320, 140
        header.comment = comment
        example = sheet.cell(EXAMPLE_ROW, index, example_value(column, context, labels))
        example.font = EXAMPLE_FONT
        dimension = sheet.column_dimensions[letter]
        dimension.width = column.width
        if column.type is ColumnType.DATE:
            dimension.number_format = DATE_FORMAT
            example.number_format = DATE_FORMAT
        elif column.type in (ColumnType.CODE, ColumnType.TEXT, ColumnType.NAME) and column.codes is None:
            dimension.number_format = TEXT_FORMAT
        cells = f"{letter}{EXAMPLE_ROW}:{letter}{last_row}"
        values = list_values(column, context, labels)
        if values:
            list_column += 1
            reference = _write_list(lists, list_column, header_text(column, labels), values)
            validation = DataValidation(
                type="list",
                formula1=reference,
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=labels("excel.template.list_error_title"),
                error=labels("excel.template.list_error", guide=guide_name),
            )
        elif column.type is ColumnType.DATE:
            validation = DataValidation(
                type="date",
                operator="between",
                formula1=f"DATE({DATE_MIN.year},{DATE_MIN.month},{DATE_MIN.day})",
                formula2=f"DATE({DATE_MAX.year},{DATE_MAX.month},{DATE_MAX.day})",
                allow_blank=True,
                showErrorMessage=True,
                errorStyle="warning",  # a date typed as text (dd/mm/yyyy on an English Excel) is fine
                errorTitle=labels("excel.template.date_error_title"),
                error=labels("excel.template.date_error"),
            )
        elif column.field in WHOLE_RANGES:
            minimum, maximum = WHOLE_RANGES[column.field]
            validation = DataValidation(
                type="whole",
                operator="between",
                formula1=str(minimum),
                formula2=str(maximum),
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=labels("excel.template.whole_error_title"),
                error=labels("excel.template.whole_error", minimum=minimum, maximum=maximum),
            )
        else:
            continue
        validation.add(cells)
        sheet.add_data_validation(validation)
    sheet.row_dimensions[HEADER_ROW].height = 32
    sheet.freeze_panes = f"A{EXAMPLE_ROW}"


def _write_list(sheet: Worksheet, column: int, header: str, values: Sequence[str]) -> str:
    sheet.cell(1, column, header).font = Font(bold=True)
    for row, value in enumerate(values, start=2):
        sheet.cell(row, column, value)
    letter = get_column_letter(column)
    sheet.column_dimensions[letter].width = max(12, min(60, max(len(v) for v in values) + 2))
    return f"{quote_sheetname(sheet.title)}!${letter}$2:${letter}${len(values) + 1}"


def _write_guide(
    sheet: Worksheet,
    data_title: str,
    columns: Sequence[ColumnSpec],
    context: TemplateContext,
    labels: Labels,
    *,
    max_bytes: int,
    max_rows: int,
) -> None:
    kind = context.kind
    sheet.cell(1, 1, labels("excel.guide.title", kind=labels(f"excel.kind.{kind}")))
    sheet.cell(1, 1).font = Font(bold=True, size=14)
    intro = labels(
        "excel.guide.intro",
        sheet=data_title,
        first_row=FIRST_DATA_ROW,
        max_mb=max_bytes // 2**20,
        max_rows=show_number(max_rows, "vi"),  # dotted in both languages, as it always was
        key=labels(f"excel.guide.key_{kind.value}"),
    )
    row = 3
    for line in intro.splitlines():
        cell = sheet.cell(row, 1, line)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        sheet.merge_cells(start_row=row, start_column=1, end_row=row, end_column=5)
        sheet.row_dimensions[row].height = 15 * max(1, -(-len(line) // 120))
        row += 1
    row += 1
    headers = ("table_column", "table_required", "table_rule", "table_values")
    sheet.cell(row, 1, "#").font = Font(bold=True)
    for offset, key in enumerate(headers, start=2):
        cell = sheet.cell(row, offset, labels(f"excel.guide.{key}"))
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.border = BORDER
    for number, column in enumerate(columns, start=1):
        row += 1
        if column.field == "school_code":
            required = labels("excel.guide.required_district")
        elif column.required:
            required = labels("excel.guide.required_yes")
        else:
            required = labels("excel.guide.required_no")
        values: tuple[int | str, ...] = (
            number,
            header_text(column, labels),
            required,
            rule_text(column, labels),
            accepted_values(column, context, labels),
        )
        for offset, value in enumerate(values, start=1):
            cell = sheet.cell(row, offset, value)
            cell.alignment = WRAP
            cell.border = BORDER
        longest = max(len(str(values[3])), len(str(values[4])) // 2)
        sheet.row_dimensions[row].height = 15 * max(1, -(-longest // 60))
    for letter, width in zip("ABCDE", (5, 24, 18, 70, 50), strict=True):
        sheet.column_dimensions[letter].width = width
