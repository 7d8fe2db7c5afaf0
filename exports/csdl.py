"""The CSDL upload workbook: plain functions over a layout, rows and bytes.

- `build_csdl_workbook`: one sheet per part of the menu, laid out as the layout says (title rows, the
  header row, the columns in order, values spelt as the layout says); the export's token rides in a
  custom document property, so `schoolbot csdl mark-uploaded FILE` finds the export from the file.
- `export_token`: that token, read back (the zip checked first, as every upload is).
- `layout_from_template`: a layout from a real CSDL template: its header row found and its columns
  mapped by the import's header matching (`exports.reader.header_keys`) and the current layout's own
  headers; unknown columns are kept (left blank) so the file still matches the CSDL's.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from defusedxml import ElementTree

from exports.reader import header_keys, inspect_zip, open_workbook, sniff
from exports.xlsx import Workbook, safe_sheet_name
from storage.enums import CsdlRecordKind
from storage.errors import DomainError
from storage.schemas.csdl import (
    FIELDS,
    CsdlLayoutSpec,
    CsdlRecord,
    FieldType,
    LayoutColumn,
    LayoutSheet,
)
from storage.schemas.imports import HEADER_SCAN_ROWS, ImportKind, cell_text, header_key, is_blank

TOKEN_PROPERTY = "schoolbot_csdl_export"
_CUSTOM_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/custom-properties}"
_VT_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes}"
# The import kind whose header aliases describe each record's columns.
IMPORT_KINDS: dict[CsdlRecordKind, ImportKind] = {
    CsdlRecordKind.NEED: ImportKind.NEEDS,
    CsdlRecordKind.BATCH: ImportKind.BATCHES,
    CsdlRecordKind.HANDOVER: ImportKind.HANDOVERS,
    CsdlRecordKind.DOSE: ImportKind.DOSES,
}
# Import field names that differ from the layout's.
IMPORT_FIELD_NAMES = {"batch": "batch_id"}


def cell_value(
    layout: CsdlLayoutSpec, sheet: LayoutSheet, column: LayoutColumn, values: Mapping[str, Any]
) -> Any:
    """What a column's cell holds for a record: text, a whole number, or None (blank)."""
    if column.field is None:
        return None
    spec = FIELDS[sheet.records][column.field]
    value = values.get(column.field)
    if value is None or value == "":
        return None
    if spec.type is FieldType.DATE:
        return value.strftime(layout.strftime) if isinstance(value, date | datetime) else str(value)
    if spec.type in (FieldType.INT, FieldType.ROW_NUMBER):
        return int(value)
    if spec.type is FieldType.CODED:
        code = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        spelt = layout.spelling(sheet, column, code)
        if spelt is None and column.field == "product":
            spelt = values.get("product_name") or code
        return spelt if spelt is not None else code
    return str(value)


def sheet_rows(layout: CsdlLayoutSpec, sheet: LayoutSheet, records: Sequence[CsdlRecord]) -> list[list[Any]]:
    """The data rows of a sheet, in column order (what the workbook holds below the header)."""
    rows = []
    for number, record in enumerate(records, start=1):
        values = {**record.values, "row_number": number}
        rows.append([cell_value(layout, sheet, column, values) for column in sheet.columns])
    return rows


def build_csdl_workbook(
    layout: CsdlLayoutSpec,
    parts: Sequence[tuple[CsdlRecordKind, Sequence[CsdlRecord]]],
    *,
    token: str,
    tz: ZoneInfo,
    row_notes: Mapping[tuple[str, int], str] | None = None,
    title: str = "",
) -> bytes:
    """The upload workbook; `row_notes` puts a comment on a record's first cell (what changed)."""
    target = io.BytesIO()
    workbook = Workbook(target, tz=tz)
    book, formats = workbook.book, workbook.formats
    book.set_properties({"title": title or layout.title, "comments": layout.version})
    book.set_custom_property(TOKEN_PROPERTY, token)
    notes = row_notes or {}
    for sheet_spec, (kind, records) in zip(layout.sheets, parts, strict=True):
        assert sheet_spec.records is kind
        sheet = book.add_worksheet(safe_sheet_name(sheet_spec.name))
        for index, column in enumerate(sheet_spec.columns):
            sheet.set_column(index, index, column.width)
        for row, text in enumerate(sheet_spec.title_rows):
            if text:
                workbook.write_text(sheet, row, 0, text, formats.title if row == 0 else formats.subtitle)
        header = sheet_spec.header_row - 1
        sheet.set_row(header, 32)
        for index, column in enumerate(sheet_spec.columns):
            sheet.write_string(header, index, column.header, formats.header)
        sheet.freeze_panes(header + 1, 0)
        for offset, (record, values) in enumerate(
            zip(records, sheet_rows(layout, sheet_spec, records), strict=True), start=1
        ):
            row = header + offset
            for index, value in enumerate(values):
                if value is None:
                    sheet.write_blank(row, index, None, formats.body["text"])
                elif isinstance(value, int):
                    sheet.write_number(row, index, value, formats.body["int"])
                else:
                    workbook.write_text(sheet, row, index, value, formats.body["text"])
            note = notes.get((kind.value, record.id))
            if note:
                sheet.write_comment(row, 0, note, {"x_scale": 2, "y_scale": 1.5})
    workbook.close()
    return target.getvalue()


def export_token(content: bytes) -> str | None:
    """The export token of a workbook the bot wrote (None when the file has none)."""
    parts = inspect_zip(content)  # refuses bombs and broken zips before anything is decompressed
    if "docProps/custom.xml" not in parts:
        return None
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        xml = archive.read("docProps/custom.xml")
    try:
        root = ElementTree.fromstring(xml)
    except Exception as exc:  # defusedxml refuses entities; a broken part is a broken file
        raise DomainError("excel.file.corrupted") from exc
    for prop in root.iter(f"{_CUSTOM_NS}property"):
        if prop.get("name") == TOKEN_PROPERTY:
            for child in prop:
                if child.tag.startswith(_VT_NS) and child.text:
                    return child.text.strip()
    return None


# --- a layout from a real CSDL template -----------------------------------------------------------


def _field_keys(layout: CsdlLayoutSpec, sheet: LayoutSheet) -> dict[str, str]:
    """header key -> field: the current layout's headers first, then the import's aliases."""
    known = FIELDS[sheet.records]
    keys: dict[str, str] = {}
    for column in sheet.columns:
        if column.field is not None:
            keys.setdefault(header_key(column.header), column.field)
    for key, name in header_keys()[IMPORT_KINDS[sheet.records]].items():
        name = IMPORT_FIELD_NAMES.get(name, name)
        if name in known:
            keys.setdefault(key, name)
    for name in known:
        keys.setdefault(header_key(name), name)
    return keys


def _best_header(
    grids: Mapping[str, list[list[Any]]], keys: Mapping[str, str]
) -> tuple[str, int, dict[int, str]] | None:
    best: tuple[str, int, dict[int, str]] | None = None
    for name, grid in grids.items():
        for row, cells in enumerate(grid[:HEADER_SCAN_ROWS]):
            matched: dict[int, str] = {}
            for index, cell in enumerate(cells):
                if isinstance(cell, str) and cell.strip():
                    found = keys.get(header_key(cell))
                    if found is not None and found not in matched.values():
                        matched[index] = found
            if len(matched) >= 2 and (best is None or len(matched) > len(best[2])):
                best = (name, row, matched)
    return best


def layout_from_template(content: bytes, filename: str, base: CsdlLayoutSpec) -> CsdlLayoutSpec:
    """`base` laid out as a real CSDL template: for each of its sheets, the template's sheet and header
    row matching most of its fields; the template's columns in its order, with its header texts."""
    sniff(content, filename)
    workbook = open_workbook(content)
    try:
        grids = {
            name: workbook.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS)
            for name in workbook.sheet_names
        }
    except Exception as exc:
        raise DomainError("excel.file.corrupted") from exc
    finally:
        workbook.close()
    sheets = []
    for sheet in base.sheets:
        found = _best_header(grids, _field_keys(base, sheet))
        if found is None:
            raise DomainError("csdl.template_no_header", sheet=sheet.name, records=sheet.records.value)
        name, row, matched = found
        cells = grids[name][row]
        last = max(i for i, cell in enumerate(cells) if not is_blank(cell))
        widths = {column.field: column for column in sheet.columns if column.field}
        columns = []
        for index in range(last + 1):
            text = " ".join(cell_text(cells[index]).split()) if index < len(cells) else ""
            field = matched.get(index)
            old = widths.get(field) if field else None
            columns.append(
                LayoutColumn(
                    header=text or f"({index + 1})",
                    field=field,
                    width=old.width if old is not None else 16,
                    words=old.words if old is not None else None,
                )
            )
        titles = [
            " ".join(" ".join(cell_text(c).split()) for c in grids[name][r] if not is_blank(c))
            for r in range(row)
        ]
        sheets.append(
            LayoutSheet(
                name=name[:31], records=sheet.records, title_rows=titles, header_row=row + 1, columns=columns
            )
        )
    return CsdlLayoutSpec(
        menu=base.menu,
        version=f"{filename}"[:100],
        title=base.title,
        date_format=base.date_format,
        words=base.words,
        sheets=sheets,
    )
