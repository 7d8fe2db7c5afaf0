"""Shared xlsxwriter helpers: formats, formula-safe text, streamed table sheets, print setup.

Every workbook is written in `constant_memory` mode: rows go to disk as they are written, so a sheet
of 200,000 rows costs no more memory than one of 20. The price is that each sheet is written top to
bottom, row by row; the table sheet below does exactly that (title, header, data, totals, signature).

Text that people typed (names, donors, notes) is always written with `write_string`, and the workbook
never turns strings into formulas, numbers or links. Text that starts with `=`, `+`, `-`, `@` (or a
tab / carriage return) also gets Excel's quote prefix, whatever the cell's format (a quoted twin of
each format is made on demand), so editing the cell later keeps it text.

Printing: every table fits A4's width at a scale that keeps 11 pt text at 8 pt or more
(`print_scale`), header rows are as tall as their wrapped text, every table cell has a border, and
every sheet has page numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

# Column kinds.
TEXT = "text"
INT = "int"
NUMBER = "number"
PERCENT = "percent"
DATE = "date"
DATETIME = "datetime"  # aware datetimes, shown in the workbook's local time
LABEL = "label"  # a stored code shown through `labels`
BOOL = "bool"  # True / False shown through `labels` (True: "Có")

FORMULA_TRIGGERS = frozenset("=+-@\t\r")
EXCEL_MAX_ROWS = 1_048_576
SHEET_NAME_MAX = 31

# Table sheet layout: a title, a subtitle (scope and period), a note, then the header row.
TITLE_ROW = 0
SUBTITLE_ROW = 1
NOTE_ROW = 2
HEADER_ROW = 3
FIRST_DATA_ROW = 4

A4 = 9
# Printing: A4's printable width (inches) with the tables' margins, and the smallest scale that keeps
# the 11 pt body text at 8 pt or more.
PRINT_WIDTH_IN = {True: 11.69 - 0.8, False: 8.27 - 0.8}
MIN_PRINT_SCALE = 8 / 11
LINE_POINTS = 15.0  # one line of 11 pt text


def column_pixels(width: float) -> int:
    """Excel's pixel width of a column `width` characters wide (Calibri 11, 7-pixel digits)."""
    return int(width * 7 + 5)


def print_scale(widths: Sequence[float], *, landscape: bool = True) -> float:
    """The scale "fit to one page wide" gives a table of these column widths on A4 (1.0 at most)."""
    pixels = sum(column_pixels(w) for w in widths)
    return min(1.0, PRINT_WIDTH_IN[landscape] * 96 / max(pixels, 1))


def wrapped_lines(text: str, width: float) -> int:
    """Lines `text` takes, word-wrapped in a column `width` characters wide (a safe estimate for
    Times New Roman 11: about one character per width unit)."""
    per_line = max(4, int(width))
    lines = 0
    for paragraph in text.split("\n"):
        count, used = 1, 0
        for word in paragraph.split():
            need = len(word) if used == 0 else used + 1 + len(word)
            if need <= per_line:
                used = need
            else:
                count += 1 + (len(word) - 1) // per_line
                used = len(word) % per_line or per_line
        lines += count
    return max(1, lines)


def workbook_options(tmpdir: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_numbers": False,
        "strings_to_urls": False,
        "remove_timezone": True,
        "default_date_format": "dd/mm/yyyy",
    }
    if tmpdir:
        options["tmpdir"] = tmpdir
    return options


def looks_like_formula(value: str) -> bool:
    return bool(value) and value[0] in FORMULA_TRIGGERS


def safe_sheet_name(name: str) -> str:
    for char in "[]:*?/\\":
        name = name.replace(char, "-")
    return name[:SHEET_NAME_MAX]


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = TEXT
    width: float = 12.0
    labels: Mapping[Any, str] | None = None
    wrap: bool = False  # long text: wrapped, and the row made as tall as it needs


@dataclass(frozen=True)
class PrintSetup:
    landscape: bool = True
    fit_width: bool = True
    repeat_header: bool = True
    footer: str = "&P/&N"


class Formats:
    """The workbook's cell formats, made once."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self._book = book
        self._props: dict[int, dict[str, Any]] = {}
        self._quoted: dict[int, Format] = {}

        def make(**props: Any) -> Format:
            full = {"font_name": "Times New Roman", "font_size": 11, "valign": "top", **props}
            fmt = book.add_format(full)
            self._props[id(fmt)] = full
            return fmt

        cell = {"border": 1}
        self.title = make(bold=True, font_size=14)
        self.subtitle = make(italic=True)
        self.note = make(italic=True, font_color="#444444")  # 11 pt: 8 pt or more when fitted
        # A table's title, subtitle and note, merged across its columns and wrapped there.
        self.title_wrap = make(bold=True, font_size=14, text_wrap=True)
        self.subtitle_wrap = make(italic=True, text_wrap=True)
        self.note_wrap = make(italic=True, font_color="#444444", text_wrap=True)
        self.header = make(
            bold=True, text_wrap=True, align="center", valign="vcenter", bg_color="#DDEBF7", **cell
        )
        self.body: dict[str, Format] = {}
        self.bold: dict[str, Format] = {}
        number_formats = {
            TEXT: None,
            LABEL: None,
            BOOL: None,
            INT: "#,##0",
            NUMBER: "#,##0.0",
            PERCENT: "0.0%",
            DATE: "dd/mm/yyyy",
            DATETIME: "dd/mm/yyyy hh:mm",
        }
        for kind, num_format in number_formats.items():
            # Text wraps inside its column (the row is made tall enough): never cut off by the next
            # cell, never running over an empty one.
            extra = {"num_format": num_format} if num_format else {"text_wrap": True}
            self.body[kind] = make(**cell, **extra)
            self.bold[kind] = make(bold=True, bg_color="#F2F2F2", **cell, **extra)
        # The same text formats with Excel's quote prefix, for text that looks like a formula.
        self.quoted = make(quote_prefix=True, text_wrap=True, **cell)
        self.quoted_bold = make(quote_prefix=True, bold=True, bg_color="#F2F2F2", text_wrap=True, **cell)
        self.wrap = make(text_wrap=True, **cell)
        self.quoted_wrap = make(quote_prefix=True, text_wrap=True, **cell)
        # Free layout (cover sheet, signature block, metadata).
        self.plain = make()
        self.plain_wrap = make(text_wrap=True)
        self.plain_bold = make(bold=True)
        self.center = make(align="center", text_wrap=True)
        self.center_bold = make(align="center", bold=True, text_wrap=True)
        self.center_italic = make(align="center", italic=True, text_wrap=True)
        self.center_title = make(align="center", valign="vcenter", bold=True, font_size=15, text_wrap=True)
        self.key = make(bold=True, text_wrap=True, **cell)
        self.value_text = make(text_wrap=True, **cell)
        self.value_right = make(align="right", **cell)  # "3/5" figures read as numbers
        self.value_int = make(num_format="#,##0", **cell)
        self.value_percent = make(num_format="0.0%", **cell)
        self.value_date = make(num_format="dd/mm/yyyy", **cell, align="left")
        self.value_datetime = make(num_format="dd/mm/yyyy hh:mm", **cell, align="left")

    def quoted_of(self, fmt: Format | None) -> Format:
        """The same format with Excel's quote prefix (made once per format)."""
        if fmt is None:
            return self.quoted
        found = self._quoted.get(id(fmt))
        if found is None:
            props = self._props.get(id(fmt))
            if props is None:  # a format made elsewhere: the plain quoted one keeps the text safe
                return self.quoted
            found = self._book.add_format({**props, "quote_prefix": True})
            self._props[id(found)] = {**props, "quote_prefix": True}
            self._quoted[id(fmt)] = found
            self._quoted[id(found)] = found
        return found


CellWriter = Callable[[int, int, Any], None]


def _fast_writers(sheet: Worksheet) -> tuple[Callable[..., Any], ...]:
    """write_string / write_number / write_datetime / write_blank for row and column numbers.

    xlsxwriter's public `write_*` methods only convert A1 notation (a decorator) and call these
    `_write_*` methods; calling them directly saves two Python calls per cell, a fifth of the
    writing time of a long list. Falls back to the public methods if a version lacks them."""
    names = ("string", "number", "datetime", "blank")
    return tuple(getattr(sheet, f"_write_{name}", getattr(sheet, f"write_{name}")) for name in names)


class Workbook:
    """An xlsxwriter workbook in constant-memory mode, with the helpers below."""

    def __init__(self, target: str | IO[bytes], *, tz: ZoneInfo, tmpdir: str | None = None) -> None:
        self.book = xlsxwriter.Workbook(target, workbook_options(tmpdir))
        self.formats = Formats(self.book)
        self.tz = tz

    def add_sheet(self, name: str) -> Worksheet:
        return self.book.add_worksheet(safe_sheet_name(name))

    def table(
        self,
        name: str,
        columns: Sequence[Column],
        *,
        title: str,
        subtitle: str = "",
        note: str = "",
        print_setup: PrintSetup | None = None,
        borders_on_blanks: bool = True,
    ) -> TableSheet:
        return TableSheet(
            self,
            self.add_sheet(name),
            columns,
            title=title,
            subtitle=subtitle,
            note=note,
            print_setup=print_setup or PrintSetup(),
            borders_on_blanks=borders_on_blanks,
        )

    def local(self, value: datetime) -> datetime:
        """An aware datetime as the naive local time Excel shows."""
        if value.tzinfo is None:
            return value
        return value.astimezone(self.tz).replace(tzinfo=None)

    def write_text(self, sheet: Worksheet, row: int, col: int, value: str, fmt: Format | None = None) -> None:
        """Write text that may have come from a person: always a string, never a formula; quote-
        prefixed when it starts like one, whatever the format."""
        if looks_like_formula(value):
            sheet.write_string(row, col, value, self.formats.quoted_of(fmt))
        else:
            sheet.write_string(row, col, value, fmt)

    def close(self) -> None:
        self.book.close()


class TableSheet:
    """A sheet holding one table: title, subtitle, note, a frozen and filtered header row, data rows
    written as they come, bold total rows under them, and an optional signature block."""

    def __init__(
        self,
        workbook: Workbook,
        sheet: Worksheet,
        columns: Sequence[Column],
        *,
        title: str,
        subtitle: str,
        note: str,
        print_setup: PrintSetup,
        borders_on_blanks: bool,
    ) -> None:
        self.workbook = workbook
        self.sheet = sheet
        self.columns = list(columns)
        self.row = FIRST_DATA_ROW
        self.data_rows = 0
        self._filter_set = False
        self._borders_on_blanks = borders_on_blanks
        formats = workbook.formats
        for index, column in enumerate(self.columns):
            sheet.set_column(index, index, column.width)
        # The header row as tall as its longest wrapped header (bold text: a little wider).
        lines = max((wrapped_lines(c.header, c.width * 0.9) for c in self.columns), default=1)
        sheet.set_row(HEADER_ROW, max(30.0, lines * LINE_POINTS + 4))
        # Title, subtitle and note wrap inside the table's width: text running past the last column
        # would widen what "fit to the page's width" fits (LibreOffice fits it all, down to 4 pt).
        table_width = sum(c.width for c in self.columns)
        last_col = len(self.columns) - 1
        for row, text, fmt, size in (
            (TITLE_ROW, title, formats.title_wrap, 14),
            (SUBTITLE_ROW, subtitle, formats.subtitle_wrap, 11),
            (NOTE_ROW, note, formats.note_wrap, 11),
        ):
            if not text:
                continue
            lines = wrapped_lines(text, table_width * 11 / size * 0.95)
            if lines > 1:
                sheet.set_row(row, lines * LINE_POINTS * size / 11 + 2)
            if last_col > 0:
                sheet.merge_range(row, 0, row, last_col, "", fmt)
            workbook.write_text(sheet, row, 0, text, fmt)
        # Only the table's columns print (and are fitted to the page).
        sheet.print_area(0, 0, EXCEL_MAX_ROWS - 2, max(last_col, 0))
        for index, column in enumerate(self.columns):
            sheet.write_string(HEADER_ROW, index, column.header, formats.header)
        sheet.freeze_panes(FIRST_DATA_ROW, 0)
        sheet.set_paper(A4)
        if print_setup.landscape:
            sheet.set_landscape()
        else:
            sheet.set_portrait()
        if print_setup.fit_width:
            sheet.fit_to_pages(1, 0)
        if print_setup.repeat_header:
            sheet.repeat_rows(HEADER_ROW)
        sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
        sheet.center_horizontally()
        if print_setup.footer:
            sheet.set_footer(f"&C{print_setup.footer}")
        # Every text column wraps; a row is made as tall as its longest text (labels as shown).
        self._wrapped = [
            (i, c.width, dict(c.labels or {}) if c.kind in (LABEL, BOOL) else None)
            for i, c in enumerate(self.columns)
            if c.kind in (TEXT, LABEL, BOOL)
        ]
        self._writers = [self._cell_writer(column, bold=False) for column in self.columns]
        self._bold_writers = [self._cell_writer(column, bold=True) for column in self.columns]

    # -- cells -------------------------------------------------------------------------------------

    def _cell_writer(self, column: Column, *, bold: bool) -> CellWriter:
        formats = self.workbook.formats
        sheet = self.sheet
        kind = column.kind
        fmt = (formats.bold if bold else formats.body)[kind]
        write_string, write_number, write_datetime, write_blank = _fast_writers(sheet)
        # An empty text still gets its bordered cell when the table borders its blanks.
        borders = self._borders_on_blanks or bold
        if kind == TEXT:
            quoted = formats.quoted_bold if bold else formats.quoted
            if column.wrap and not bold:
                fmt, quoted = formats.wrap, formats.quoted_wrap

            def text(row: int, col: int, value: Any) -> None:
                if not isinstance(value, str):
                    value = str(value)
                if value and value[0] in FORMULA_TRIGGERS:
                    write_string(row, col, value, quoted)
                elif value:
                    write_string(row, col, value, fmt)
                elif borders:
                    write_blank(row, col, None, fmt)

            return text
        if kind in (LABEL, BOOL):
            labels = dict(column.labels or {})

            def label(row: int, col: int, value: Any) -> None:
                shown = labels.get(value)
                if shown is None:
                    shown = "" if value is None else str(value)
                if shown:
                    if shown[0] in FORMULA_TRIGGERS:
                        write_string(row, col, shown, formats.quoted_bold if bold else formats.quoted)
                    else:
                        write_string(row, col, shown, fmt)
                elif borders:
                    write_blank(row, col, None, fmt)

            return label
        if kind in (INT, NUMBER, PERCENT):

            def number(row: int, col: int, value: Any) -> None:
                write_number(row, col, value, fmt)

            return number
        if kind == DATE:

            def day(row: int, col: int, value: Any) -> None:
                write_datetime(row, col, value, fmt)

            return day
        if kind == DATETIME:
            to_local = self.workbook.local

            def moment(row: int, col: int, value: Any) -> None:
                write_datetime(row, col, to_local(value), fmt)

            return moment
        raise ValueError(f"unknown column kind {kind!r}")

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Write data rows (values in column order); None leaves a cell empty. Returns rows written."""
        plan = list(enumerate(self._writers))
        blank = _fast_writers(self.sheet)[3] if self._borders_on_blanks else None
        blank_formats = [self.workbook.formats.body[c.kind] for c in self.columns]
        row = self.row
        wrapped = self._wrapped
        set_row = self.sheet.set_row
        for values in rows:
            if wrapped:
                lines = 1
                for i, w, labels in wrapped:
                    value = values[i]
                    if value is None:
                        continue
                    shown = str(labels.get(value, value) if labels is not None else value)
                    if len(shown) > w:  # most texts fit: measured only when they might not
                        lines = max(lines, wrapped_lines(shown, w))
                if lines > 1:
                    set_row(row, lines * LINE_POINTS + 2)
            for col, write in plan:
                value = values[col]
                if value is None:
                    if blank is not None:
                        blank(row, col, None, blank_formats[col])
                else:
                    write(row, col, value)
            row += 1
        written = row - self.row
        self.row = row
        self.data_rows += written
        return written

    def write_records(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write data rows given as mappings by column key."""
        keys = [c.key for c in self.columns]
        return self.write_rows([record.get(key) for key in keys] for record in records)

    def end_data(self) -> None:
        """Close the data part: the filter covers the header and the data rows (not the totals)."""
        if not self._filter_set:
            last = max(HEADER_ROW, self.row - 1)
            self.sheet.autofilter(HEADER_ROW, 0, last, len(self.columns) - 1)
            self._filter_set = True

    def write_totals(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Bold total rows under the data (values computed by the database, not formulas)."""
        self.end_data()
        keys = [c.key for c in self.columns]
        blank_formats = [self.workbook.formats.bold[c.kind] for c in self.columns]
        for record in records:
            for col, key in enumerate(keys):
                value = record.get(key)
                if value is None:
                    self.sheet.write_blank(self.row, col, None, blank_formats[col])
                else:
                    self._bold_writers[col](self.row, col, value)
            self.row += 1

    # -- free rows ---------------------------------------------------------------------------------

    def write_note_line(self, text: str) -> None:
        self.end_data()
        self.row += 1
        self.workbook.write_text(self.sheet, self.row, 0, text, self.workbook.formats.note)
        self.row += 1

    def signature_block(self, block: SignatureBlock) -> None:
        """Two signatures side by side under the table: người lập biểu (left) and trưởng phòng."""
        self.end_data()
        write_signature_block(self.workbook, self.sheet, self.row + 1, len(self.columns), block)
        self.row += 1 + block.height

    def finish(self) -> None:
        self.end_data()


@dataclass(frozen=True)
class SignatureBlock:
    place_date: str  # "Nhà Bè, ngày 15 tháng 11 năm 2021"
    left_title: str
    left_hint: str
    left_name: str
    right_title: str
    right_hint: str
    right_name: str = ""
    gap_rows: int = 4

    @property
    def height(self) -> int:
        return 4 + self.gap_rows


def write_signature_block(
    workbook: Workbook, sheet: Worksheet, first_row: int, width: int, block: SignatureBlock
) -> None:
    formats = workbook.formats
    width = max(width, 2)
    half = width // 2
    left = (0, max(0, half - 1))
    right = (half, width - 1)

    def put(row: int, span: tuple[int, int], text: str, fmt: Format) -> None:
        if span[0] == span[1]:
            if text:
                workbook.write_text(sheet, row, span[0], text, fmt)
            else:
                sheet.write_blank(row, span[0], None, fmt)
        else:
            sheet.merge_range(row, span[0], row, span[1], "", fmt)
            if text:
                workbook.write_text(sheet, row, span[0], text, fmt)

    row = first_row
    put(row, right, block.place_date, formats.center_italic)
    row += 1
    put(row, left, block.left_title, formats.center_bold)
    put(row, right, block.right_title, formats.center_bold)
    row += 1
    put(row, left, block.left_hint, formats.center_italic)
    put(row, right, block.right_hint, formats.center_italic)
    row += 1 + block.gap_rows
    put(row, left, block.left_name, formats.center_bold)
    put(row, right, block.right_name, formats.center_bold)


@dataclass
class KeyValueSheet:
    """A two-column sheet of labelled values (metadata, key figures)."""

    workbook: Workbook
    sheet: Worksheet
    row: int = 0
    widths: tuple[float, float] = (34.0, 70.0)
    _started: bool = field(default=False)

    def __post_init__(self) -> None:
        self.sheet.set_column(0, 0, self.widths[0])
        self.sheet.set_column(1, 1, self.widths[1])

    def heading(self, text: str) -> None:
        self.sheet.write_string(self.row, 0, text, self.workbook.formats.title)
        self.row += 2

    def pair(self, label: str, value: Any) -> None:
        formats = self.workbook.formats
        self.sheet.write_string(self.row, 0, label, formats.key)
        write_value(self.workbook, self.sheet, self.row, 1, value)
        self.row += 1


def write_value(workbook: Workbook, sheet: Worksheet, row: int, col: int, value: Any) -> None:
    """One free cell, by the value's type (text always as text)."""
    formats = workbook.formats
    if value is None:
        sheet.write_blank(row, col, None, formats.value_text)
    elif isinstance(value, bool):
        sheet.write_boolean(row, col, value, formats.value_text)
    elif isinstance(value, int | float):
        sheet.write_number(row, col, value, formats.value_int)
    elif isinstance(value, datetime):
        sheet.write_datetime(row, col, workbook.local(value), formats.value_datetime)
    elif isinstance(value, date):
        sheet.write_datetime(row, col, value, formats.value_date)
    elif isinstance(value, Percent):
        sheet.write_number(row, col, value.value, formats.value_percent)
    else:
        workbook.write_text(sheet, row, col, str(value), formats.value_text)


@dataclass(frozen=True)
class Percent:
    """A fraction to show as a percentage in a free cell."""

    value: float


def ratio(part: int | None, whole: int | None) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    if not whole:
        return None
    return (part or 0) / whole
