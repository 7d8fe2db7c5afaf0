"""Reading an uploaded workbook: refuse what must not be opened, read the values with python-calamine,
and find the table — its sheet, its header row and its kind — from the header texts.

Plain functions over bytes. Every refusal is a `DomainError` whose code names `errors.excel.*`, a
text that says what to do instead.

Safety, before any parser sees the bytes:
- the size and the number of rows are bounded (settings `import_max_bytes`, `import_max_rows`);
- a zip (xlsx, xlsb, ods) is refused when its declared uncompressed sizes, its compression ratio or its
  number of parts are those of a zip bomb; then every part is decompressed once, in chunks, bounded by
  its declared size (zipfile stops there and checks the CRC), and XML parts declaring a DTD or an
  entity (`<!DOCTYPE`, `<!ENTITY`: "billion laughs") are refused — OOXML and ODF never need one;
- macro workbooks (a `vbaProject`), password-protected files (OLE CFB with `EncryptedPackage`), CSV
  and anything that is not a spreadsheet are refused with their own reply;
- the extent of every sheet — its declared dimension and its farthest cell — is bounded in rows and
  columns (`ReadLimits.max_rows` plus slack, `max_columns`), found in the same pass: calamine builds a
  dense grid over a sheet's used range (32 bytes a cell), so one cell at XFD1048576 in a 5 KB file
  would cost 512 GiB. `.xlsx`: `<dimension ref>`, `<row r>`, `<c r>`; `.xlsb`: BrtWsDim, row and cell
  records; `.ods`: rows and cells with their `number-*-repeated`; `.xls`: the DIMENSIONS and cell
  records of each sheet's BIFF substream.
Whatever these checks miss is bounded by the process that reads uploads (`exports.upload_worker`:
a memory cap, and its death is a refusal).
python-calamine never evaluates formulas: a formula cell is read as the value Excel last cached.
"""

from __future__ import annotations

import io
import operator
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePath
from typing import Any
from xml.etree import ElementTree
from xml.parsers import expat

from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook, PasswordError

from storage.errors import DomainError
from storage.schemas.imports import (
    HEADER_SCAN_ROWS,
    RECOGNITION_ORDER,
    SPECS,
    VERDICT_HEADER_KEYS,
    ImportKind,
    ReadLimits,
    header_key,
    is_blank,
    is_example_mark,
    is_total_mark,
)

# A zip is a bomb when it declares more than this once unpacked (a 10 MB workbook of real data
# unpacks to about 100 MB of XML) …
MAX_UNZIPPED_BYTES = 200 * 2**20
# … or when a large part is compressed more than this (sheets: 5–30×; a deflate bomb: ~1000×) …
MAX_RATIO = 200
RATIO_FROM_BYTES = 2 * 2**20  # small parts (an empty styles part) may compress better
# … or has more parts than any workbook.
MAX_PARTS = 5_000
CHUNK = 1 << 16
_DTD_MARKS = tuple(
    mark.encode(encoding)
    for mark in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("ascii", "utf-16-le", "utf-16-be")
)
_XML_PARTS = (".xml", ".rels", ".vml")
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))
_VBA = "_VBA_PROJECT".encode("utf-16-le")
_XLS_STREAMS = ("Workbook".encode("utf-16-le"), "Book".encode("utf-16-le"))
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
# Rows read beyond the limit, so blank lines between data rows do not hide rows over the limit.
BLANK_ROWS_SLACK = 1_000
# An attribute list longer than this is not a cell's (`sqref` lists of data validation can be long).
_TAG_TAIL_MAX = 4096
_NUMBERING = re.compile(r"^\(?\d{1,3}\)?$")


@dataclass(frozen=True)
class SheetInfo:
    name: str
    state: str  # "visible", "hidden" or "veryHidden", as in the xlsx workbook part


@dataclass(frozen=True)
class ValidationRule:
    """One data validation (a drop-down list, a date or number range) of the table's sheet: its
    attributes as in the xlsx (`type`, `allowBlank`, …), its formulas and the cells it covers."""

    attributes: dict[str, str]
    formula1: str | None
    formula2: str | None
    sqref: str


@dataclass
class Table:
    """The table found in a workbook: `grid` holds the sheet's values from A1 (row i = Excel row i+1)."""

    format: str
    sheet: str
    kind: ImportKind
    header_row: int  # 0-based index in `grid`
    columns: dict[str, int]  # field -> 0-based column
    grid: list[list[Any]]
    data_rows: list[int] = field(default_factory=list)  # 0-based indexes of the rows to import
    ignored_headers: list[str] = field(default_factory=list)
    # What the checked copy keeps besides the table (the template's instructions and drop-downs):
    # every sheet in the workbook's order with its visibility, the other sheets' values, the table
    # sheet's data validations and the workbook's names (xlsx only; plain data, it crosses processes).
    sheets: list[SheetInfo] = field(default_factory=list)
    other_grids: dict[str, list[list[Any]]] = field(default_factory=dict)
    validations: list[ValidationRule] = field(default_factory=list)
    defined_names: list[tuple[str, str]] = field(default_factory=list)

    @property
    def width(self) -> int:
        return max((len(row) for row in self.grid), default=0)

    def value(self, row: int, name: str) -> Any:
        column = self.columns.get(name)
        if column is None:
            return None
        cells = self.grid[row]
        return cells[column] if column < len(cells) else None

    def record(self, row: int) -> dict[str, Any]:
        """The row's values by field; a missing column gives None, a blank cell ""."""
        cells = self.grid[row]
        size = len(cells)
        return {name: cells[column] if column < size else None for name, column in self.columns.items()}

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(Excel row number, values by field) of every data row."""
        names, columns = list(self.columns), list(self.columns.values())
        if len(columns) < 2:
            for row in self.data_rows:
                yield row + 1, self.record(row)
            return
        # `record` at C speed for the rows long enough to hold every column (nearly all of them).
        pick, end, grid = operator.itemgetter(*columns), max(columns), self.grid
        for row in self.data_rows:
            cells = grid[row]
            yield (
                row + 1,
                dict(zip(names, pick(cells), strict=True)) if len(cells) > end else self.record(row),
            )


# --- refusing what must not be opened -------------------------------------------------------------


def check_size(size: int | None, limits: ReadLimits) -> None:
    """Refuse a file over the size limit (also before downloading it, from its announced size)."""
    if size is not None and size > limits.max_bytes:
        raise DomainError("excel.file.too_big", size_mb=_mb(size), max_mb=_mb(limits.max_bytes))


def sniff(content: bytes, filename: str, limits: ReadLimits | None = None) -> str:
    """The spreadsheet format of `content` ("xlsx", "xlsb", "xls" or "ods"), judged by its bytes, not
    its name; anything else is refused with the reply that fits it. With `limits`, a sheet spanning
    more rows or columns than they allow is refused too."""
    name = PurePath(filename or "").name
    extension = PurePath(name).suffix.lower()
    if not content:
        raise DomainError("excel.file.empty", filename=name)
    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_format(content, name, limits)
    if content.startswith(CFB_MAGIC):
        fmt = _cfb_format(content, name)
        if limits is not None:
            check_xls_extent(content, limits)
        return fmt
    if _looks_like_html(content):
        # Web systems often save an HTML table under an .xls name.
        raise DomainError("excel.file.html", filename=name)
    if extension in TEXT_EXTENSIONS or _looks_like_csv(content):
        raise DomainError("excel.file.csv", filename=name)
    raise DomainError("excel.file.not_spreadsheet", filename=name)


def _zip_format(content: bytes, name: str, limits: ReadLimits | None) -> str:
    parts = inspect_zip(content, limits)
    lowered = {part.lower() for part in parts}
    if any(part.endswith("vbaproject.bin") for part in lowered):
        raise DomainError("excel.file.macro", filename=name)
    if "xl/workbook.xml" in lowered:
        return "xlsx"
    if "xl/workbook.bin" in lowered:
        return "xlsb"
    if "content.xml" in lowered and parts.get("mimetype", b"").strip() == ODS_MIMETYPE:
        return "ods"
    raise DomainError("excel.file.not_spreadsheet", filename=name)


def _cfb_format(content: bytes, name: str) -> str:
    """OLE compound files: an old .xls, or an encrypted (password-protected) .xlsx, or a Word .doc."""
    if any(mark in content for mark in _ENCRYPTED):
        raise DomainError("excel.file.encrypted", filename=name)
    if _VBA in content:
        raise DomainError("excel.file.macro", filename=name)
    if any(mark in content for mark in _XLS_STREAMS):
        return "xls"
    raise DomainError("excel.file.not_spreadsheet", filename=name)


def _looks_like_html(content: bytes) -> bool:
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<table")) or b"<html" in head[:512]


def _looks_like_csv(content: bytes) -> bool:
    head = content[:4096]
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head.decode("cp1258")
        except UnicodeDecodeError:
            return False
    lines = [line for line in text.splitlines() if line.strip()][:5]
    return bool(lines) and all(any(sep in line for sep in ",;\t") for line in lines)


def inspect_zip(content: bytes, limits: ReadLimits | None = None) -> dict[str, bytes]:
    """Check a zip without trusting it; returns its part names (with the `mimetype` part's content).

    Declared sizes and ratios first (nothing is decompressed yet), then every part is decompressed
    in chunks: zipfile never returns more than the declared size and checks the CRC at the end, so a
    zip that lies about its sizes fails here, with bounded memory, before any parser sees it. With
    `limits`, the sheets' extents are measured in the same pass (see `_extent_scanner`)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_PARTS:
                raise DomainError("excel.file.zip_bomb")
            if sum(info.file_size for info in infos) > MAX_UNZIPPED_BYTES:
                raise DomainError("excel.file.zip_bomb")
            for info in infos:
                if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(
                    info.compress_size, 1
                ):
                    raise DomainError("excel.file.zip_bomb")
            if any(info.flag_bits & 0x1 for info in infos):
                raise DomainError("excel.file.encrypted", filename="")
            parts: dict[str, bytes] = {}
            for info in infos:
                if info.is_dir():
                    continue
                scanner = _extent_scanner(info.filename, limits) if limits is not None else None
                parts[info.filename] = _scan_part(archive, info, scanner)
            return parts
    except DomainError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        ValueError,
        struct.error,
        expat.ExpatError,
    ) as exc:
        raise DomainError("excel.file.corrupted") from exc


def _scan_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, scanner: _Extent | None = None) -> bytes:
    """Decompress one part in chunks; refuse a DTD in XML; feed a sheet's chunks to its extent
    scanner; return the content of `mimetype` only."""
    is_xml = info.filename.lower().endswith(_XML_PARTS)
    keep = info.filename == "mimetype"
    kept = b""
    tail = b""
    read = 0
    with archive.open(info) as part:
        while chunk := part.read(CHUNK):
            read += len(chunk)
            if read > info.file_size:
                raise DomainError("excel.file.zip_bomb")
            if is_xml:
                window = tail + chunk
                if any(mark in window for mark in _DTD_MARKS):
                    raise DomainError("excel.file.unsafe_xml")
                tail = window[-32:]
            if scanner is not None:
                scanner.feed(chunk)  # after the DTD check: a scanner never sees a DTD
            if keep and len(kept) < 256:
                kept += chunk[:256]
    if scanner is not None:
        scanner.close()
    return kept


# --- the extent of a sheet ------------------------------------------------------------------------


def sheet_row_limit(limits: ReadLimits) -> int:
    """Rows a sheet may span: the data rows, the header (found in the first HEADER_SCAN_ROWS rows),
    the row of column numbers under it, and the blank lines `read_table` reads beyond the limit."""
    return limits.max_rows + HEADER_SCAN_ROWS + 2 + BLANK_ROWS_SLACK


class _Extent:
    """The rows and columns a sheet spans (1-based, the farthest cell or declared end), refused as
    soon as either goes over the limits — before the rest of the part is even decompressed."""

    def __init__(self, limits: ReadLimits) -> None:
        self.max_rows = sheet_row_limit(limits)
        self.max_columns = limits.max_columns
        self.rows = 0
        self.columns = 0

    def reach(self, row: int, column: int) -> None:
        if row > self.rows or column > self.columns:
            self.rows, self.columns = max(self.rows, row), max(self.columns, column)
            if self.rows > self.max_rows or self.columns > self.max_columns:
                raise DomainError(
                    "excel.file.sheet_too_large",
                    rows=self.rows,
                    columns=self.columns,
                    max_rows=self.max_rows,
                    max_columns=self.max_columns,
                )

    def feed(self, chunk: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """The part is complete."""


def _extent_scanner(name: str, limits: ReadLimits) -> _Extent | None:
    lowered = name.lower()
    if lowered.startswith("xl/worksheets/") and lowered.endswith(".xml"):
        return _XlsxSheetExtent(limits)
    if lowered.startswith("xl/worksheets/") and lowered.endswith(".bin"):
        return _XlsbSheetExtent(limits)
    if lowered == "content.xml":
        return _OdsExtent(limits)
    return None


# <row …>, <c …>, <dimension …> with any namespace prefix; not <cols>, <col>, <cfRule>, <c:chart>.
_XLSX_TAG = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?(row|c|dimension)(?=[\s/>])([^>]*)>")
_XLSX_REF_ATTR = re.compile(rb"""(?:^|\s)(?:r|ref)\s*=\s*["']([^"']*)["']""")
_CELL_REF = re.compile(rb"\$?([A-Za-z]*)\$?(\d*)")
# The same tags as `_XLSX_TAG`, at the same places with the same ends (each alternative runs to the
# first ">"), with the usual explicit forms taken apart: (letters, row) of `<c r="B12" …>`, (row) of
# `<row r="12" …>`, and the name of any other form (a prefix, no `r`, `$`, a dimension, …).
_XLSX_TAG_PARTS = re.compile(
    rb'<(?:c r="([A-Z]{1,3})([1-9]\d{0,6})"(?=[\s/>])|row r="(\d{1,7})"(?=[\s/>])'
    rb"|((?:[A-Za-z_][\w.\-]*:)?(?:row|c|dimension))(?=[\s/>]))[^>]*>"
)


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number


class _XlsxSheetExtent(_Extent):
    """`<dimension ref="A1:F51">` as declared, and every cell where calamine will put it: `<c r="…">`,
    or for a cell without `r` the column after the previous one, in the row of `<row r>` (or the row
    after the previous). Empty `<row>` elements (a row height) span nothing."""

    def __init__(self, limits: ReadLimits) -> None:
        super().__init__(limits)
        self.tail = b""
        self.skipping = False  # inside a long tag that is not a cell's: skip to its '>'
        self.row = 0
        self.column = 0

    def feed(self, chunk: bytes) -> None:
        if self.skipping:
            end = chunk.find(b">")
            if end == -1:
                return
            chunk, self.skipping = chunk[end + 1 :], False
        window = self.tail + chunk
        cut = window.rfind(b"<")
        if cut != -1 and window.find(b">", cut) == -1:
            window, self.tail = window[:cut], window[cut:]
            if len(self.tail) > _TAG_TAIL_MAX:
                # A tag this long is not a cell's (a long `sqref`): read what matters, skip the rest.
                window, self.tail, self.skipping = window + self.tail[:_TAG_TAIL_MAX] + b">", b"", True
        else:
            self.tail = b""
        if not self._explicit(window):
            for match in _XLSX_TAG.finditer(window):
                self._tag(match.group(1), match.group(2))

    def _explicit(self, window: bytes) -> bool:
        """The common case at C speed: when every cell and row tag of the window has its explicit
        `r` (Excel, LibreOffice and every library we know write them), the extent is the largest row
        and column among the cells, whatever their order, and the position after the window is the
        last tag's. False (nothing done) for any other window, or one that would go over the limits:
        `_tag` then reads it tag by tag, refusing at the same cell with the same figures."""
        tags = _XLSX_TAG_PARTS.findall(window)
        if not tags:
            return True
        letters, digits, _, others = zip(*tags, strict=True)
        if any(others):
            return False
        cell_rows = [int(d) for d in set(digits) if d]
        if not cell_rows:
            rows, columns = self.rows, self.columns
        else:
            rows = max(self.rows, max(cell_rows))
            columns = max(self.columns, max(_column_number(c) for c in set(letters) if c))
        if rows > self.max_rows or columns > self.max_columns:
            return False
        self.rows, self.columns = rows, columns
        last_letters, last_digits, last_row, _ = tags[-1]
        if last_letters:
            self.row, self.column = int(last_digits), _column_number(last_letters)
        else:
            self.row, self.column = int(last_row), 0
        return True

    def _tag(self, name: bytes, attributes: bytes) -> None:
        found = _XLSX_REF_ATTR.search(attributes)
        ref = found.group(1) if found else None
        if name == b"c":
            if ref:
                # _CELL_REF matches any text (every part optional): match() is never None.
                letters, digits = _CELL_REF.match(ref).groups()  # type: ignore[union-attr]
                self.column = _column_number(letters) if letters else self.column + 1
                if digits:
                    self.row = int(digits)
            else:
                self.column += 1
            self.reach(max(self.row, 1), self.column)
        elif name == b"row":
            self.row = int(ref) if ref and ref.isdigit() else self.row + 1
            self.column = 0
        elif ref:  # dimension: "A1:F51", or a single cell "A1"
            for corner in ref.split(b":"):
                letters, digits = _CELL_REF.match(corner).groups()  # type: ignore[union-attr]  # as above
                self.reach(int(digits) if digits else 0, _column_number(letters))


# xlsb (MS-XLSB): BrtRowHdr (0) starts a row: rw; BrtCellBlank … BrtFmlaError (1–11) and
# BrtCellRString (62) start with their column; the "short" cells (12–19) sit in the next column;
# BrtWsDim (148) declares rwFirst, rwLast, colFirst, colLast (0-based, inclusive).
_XLSB_CELLS = frozenset({*range(1, 12), 62})
_XLSB_SHORT_CELLS = frozenset(range(12, 20))


class _XlsbSheetExtent(_Extent):
    def __init__(self, limits: ReadLimits) -> None:
        super().__init__(limits)
        self.buffer = bytearray()
        self.skip = 0  # bytes of the current record's body not needed
        self.row = 0
        self.column = 0

    def feed(self, chunk: bytes) -> None:
        if self.skip:
            dropped = min(self.skip, len(chunk))
            chunk, self.skip = chunk[dropped:], self.skip - dropped
        self.buffer += chunk
        data = self.buffer
        position = 0
        while True:
            header = _xlsb_header(data, position)
            if header is None:
                break
            kind, size, body = header
            needed = min(size, 16)
            if len(data) - body < needed:
                break
            self._record(kind, bytes(data[body : body + needed]))
            if len(data) - body >= size:
                position = body + size
            else:
                self.skip = size - (len(data) - body)
                position = len(data)
                break
        del data[:position]

    def _record(self, kind: int, body: bytes) -> None:
        if kind == 0 and len(body) >= 4:
            self.row = struct.unpack_from("<I", body)[0] + 1
            self.column = 0
        elif kind in _XLSB_CELLS and len(body) >= 4:
            self.column = struct.unpack_from("<I", body)[0] + 1
            self.reach(max(self.row, 1), self.column)
        elif kind in _XLSB_SHORT_CELLS:
            self.column += 1
            self.reach(max(self.row, 1), self.column)
        elif kind == 148 and len(body) >= 16:
            _, last_row, _, last_column = struct.unpack_from("<IIII", body)
            self.reach(last_row + 1, last_column + 1)


def _xlsb_header(data: bytearray, position: int) -> tuple[int, int, int] | None:
    """(record type, body size, body offset) of the record at `position`; None if incomplete."""
    values = []
    for width in (2, 4):  # the type: at most 2 bytes of 7 bits; the size: at most 4
        value = shift = 0
        for index in range(width):
            if position >= len(data):
                return None
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if index == width - 1:
                raise DomainError("excel.file.corrupted")
        values.append(value)
    return values[0], values[1], position


_ODS_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_ODS_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_ODS_CELLS = (f"{_ODS_TABLE} table-cell", f"{_ODS_TABLE} covered-table-cell")


class _OdsExtent(_Extent):
    """content.xml, streamed through expat (after the DTD check): each `table:table` is a sheet; a
    row or cell repeated `number-rows-repeated` / `number-columns-repeated` times spans them all when
    it holds something (a value type or text). Empty repeats (LibreOffice ends every sheet with
    ~1,000 empty columns and ~1,000,000 empty rows) span nothing, as calamine skips them."""

    def __init__(self, limits: ReadLimits) -> None:
        super().__init__(limits)
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.row = 0  # rows before the current one, in the current sheet
        self.row_repeat = 1
        self.column = 0  # columns before the current cell's end
        self.row_end = 0  # the end of the last cell holding something in the current row
        self.in_cell = False

    def feed(self, chunk: bytes) -> None:
        self.parser.Parse(chunk, False)

    def close(self) -> None:
        self.parser.Parse(b"", True)

    @staticmethod
    def _repeat(attributes: dict[str, str], name: str) -> int:
        value = attributes.get(f"{_ODS_TABLE} {name}")
        return max(int(value), 1) if value else 1

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if self.in_cell:
            self.row_end = self.column  # text in the cell
        elif name in _ODS_CELLS:
            self.column += self._repeat(attributes, "number-columns-repeated")
            self.in_cell = True
            if f"{_ODS_OFFICE} value-type" in attributes:
                self.row_end = self.column
        elif name == f"{_ODS_TABLE} table-row":
            self.row_repeat = self._repeat(attributes, "number-rows-repeated")
            self.column = self.row_end = 0
        elif name == f"{_ODS_TABLE} table":
            self.row = 0

    def _end(self, name: str) -> None:
        if name in _ODS_CELLS:
            self.in_cell = False
        elif name == f"{_ODS_TABLE} table-row":
            if self.row_end:
                self.reach(self.row + self.row_repeat, self.row_end)
            self.row += self.row_repeat


# .xls: an OLE compound file (MS-CFB) holding a BIFF stream (MS-XLS) ------------------------------

_CFB_FREE = 0xFFFFFFFF
_CFB_END = 0xFFFFFFFE
_BIFF_BOF, _BIFF_EOF, _BIFF_DIMENSIONS = 0x0809, 0x000A, 0x0200
# Cell records: row (2 bytes), column (2 bytes) first. MULRK/MULBLANK end with their last column.
_BIFF_CELLS = frozenset({0x0006, 0x00FD, 0x0203, 0x027E, 0x0205, 0x0204, 0x0201, 0x00D6})
_BIFF_MULTI = frozenset({0x00BD, 0x00BE})


def check_xls_extent(content: bytes, limits: ReadLimits) -> None:
    """Refuse an .xls whose sheets span more rows or columns than `limits` allow: each worksheet
    substream's DIMENSIONS record and its farthest cell record."""
    try:
        stream = _cfb_stream(content, ("Workbook", "Book"))
    except (IndexError, struct.error, ValueError) as exc:
        raise DomainError("excel.file.corrupted") from exc
    if stream is None:
        raise DomainError("excel.file.corrupted")
    sheets: list[_Extent] = []  # substreams open (a chart may sit inside a sheet)
    position, size = 0, len(stream)
    while position + 4 <= size:
        kind, length = struct.unpack_from("<HH", stream, position)
        body = position + 4
        position = body + length
        if kind == _BIFF_BOF:
            sheets.append(_Extent(limits))
        elif kind == _BIFF_EOF:
            if sheets:
                sheets.pop()
        elif not sheets:
            continue
        elif kind in _BIFF_CELLS and length >= 4:
            row, column = struct.unpack_from("<HH", stream, body)
            sheets[-1].reach(row + 1, column + 1)
        elif kind in _BIFF_MULTI and length >= 6:
            row = struct.unpack_from("<H", stream, body)[0]
            last = struct.unpack_from("<H", stream, body + length - 2)[0]
            sheets[-1].reach(row + 1, last + 1)
        elif kind == _BIFF_DIMENSIONS and length >= 14:  # BIFF8: rwMac, colMac are one past the end
            _, rows, _, columns = struct.unpack_from("<IIHH", stream, body)
            sheets[-1].reach(rows, columns)
        elif kind == _BIFF_DIMENSIONS and length >= 8:  # BIFF5
            _, rows, _, columns = struct.unpack_from("<HHHH", stream, body)
            sheets[-1].reach(rows, columns)


def _cfb_stream(content: bytes, names: Sequence[str]) -> bytes | None:
    """The first stream named in `names` of an OLE compound file, following its FAT (or mini FAT)
    chain; every index is bounds-checked and every chain is bounded by the number of sectors."""
    shift, mini_shift = struct.unpack_from("<HH", content, 30)
    if not 7 <= shift <= 16 or not 2 <= mini_shift < shift:
        raise ValueError("bad sector size")
    sector_size, mini_size = 1 << shift, 1 << mini_shift
    fat_count, first_directory = struct.unpack_from("<II", content, 44)
    mini_cutoff, first_mini_fat, _, first_difat, difat_count = struct.unpack_from("<IIIII", content, 56)
    sector_count = max(0, (len(content) - sector_size) // sector_size)
    per_sector = sector_size // 4

    def sector(index: int) -> bytes:
        if index >= sector_count:
            raise ValueError("sector out of the file")
        start = (index + 1) * sector_size
        return content[start : start + sector_size]

    fat_sectors = [s for s in struct.unpack_from("<109I", content, 76) if s < sector_count]
    next_difat = first_difat
    for _ in range(min(difat_count, sector_count)):
        if next_difat >= sector_count:
            break
        entries = struct.unpack(f"<{per_sector}I", sector(next_difat))
        fat_sectors += [s for s in entries[:-1] if s < sector_count]
        next_difat = entries[-1]
    del fat_sectors[fat_count:]
    fat: list[int] = []
    for index in fat_sectors:
        fat += struct.unpack(f"<{per_sector}I", sector(index))

    def chain(start: int, table: list[int], limit: int) -> list[int]:
        found: list[int] = []
        while start < len(table) and start not in (_CFB_FREE, _CFB_END) and len(found) <= limit:
            found.append(start)
            start = table[start]
        if len(found) > limit:
            raise ValueError("a chain loops")
        return found

    directory = b"".join(sector(i) for i in chain(first_directory, fat, sector_count))
    records = [directory[i : i + 128] for i in range(0, len(directory) - 127, 128)]
    if not records:
        return None
    root_start, root_size = struct.unpack_from("<IQ", records[0], 116)
    for entry in records:
        name_size = struct.unpack_from("<H", entry, 64)[0]
        name = entry[: max(0, min(name_size, 64) - 2)].decode("utf-16-le", "replace")
        if entry[66] != 2 or name not in names:
            continue
        start, size = struct.unpack_from("<IQ", entry, 116)
        if shift == 9:
            size &= 0xFFFFFFFF  # version 3 files: the high half of the size is undefined
        if size >= mini_cutoff:
            data = b"".join(sector(i) for i in chain(start, fat, sector_count))
            return data[:size]
        mini_fat: list[int] = []
        for index in chain(first_mini_fat, fat, sector_count):
            mini_fat += struct.unpack(f"<{per_sector}I", sector(index))
        mini_stream = b"".join(sector(i) for i in chain(root_start, fat, sector_count))[:root_size]
        limit = len(mini_stream) // mini_size
        data = b"".join(
            mini_stream[i * mini_size : (i + 1) * mini_size] for i in chain(start, mini_fat, limit)
        )
        return data[:size]
    return None


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f}".rstrip("0").rstrip(".")


# --- finding the table ----------------------------------------------------------------------------


@cache
def header_keys() -> dict[ImportKind, dict[str, str]]:
    """kind -> {header key -> field}: each column's aliases and its field name. The catalogue's
    headers of every language are among the aliases (tested), so a template reads back in any
    language, and this module needs no catalogue."""
    found: dict[ImportKind, dict[str, str]] = {}
    for kind, spec in SPECS.items():
        keys: dict[str, str] = {}
        for column in spec.columns:
            for name in (*column.aliases, column.field):
                keys.setdefault(header_key(name), column.field)
        found[kind] = keys
    return found


@dataclass
class _Match:
    kind: ImportKind
    row: int
    columns: dict[str, int]
    ignored: list[str]

    @property
    def complete(self) -> bool:
        return all(name in self.columns for name in SPECS[self.kind].required)

    @property
    def signature_found(self) -> int:
        return sum(1 for name in SPECS[self.kind].signature if name in self.columns)


def match_row(cells: Sequence[Any], row: int, kind: ImportKind) -> _Match:
    keys = header_keys()[kind]
    columns: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, str) or not cell.strip():
            continue
        key = header_key(cell)
        name = keys.get(key)
        if name is None or name in columns:
            if key not in VERDICT_HEADER_KEYS:
                ignored.append(" ".join(cell.split()))
        else:
            columns[name] = index
    return _Match(kind, row, columns, ignored)


def find_header(head: Sequence[Sequence[Any]]) -> tuple[_Match | None, _Match | None]:
    """(the header row and kind found, else None; the closest partial match, for the reply)."""
    best: _Match | None = None
    closest: _Match | None = None
    for row, cells in enumerate(head[:HEADER_SCAN_ROWS]):
        if sum(1 for cell in cells if isinstance(cell, str) and cell.strip()) < 2:
            continue
        for kind in RECOGNITION_ORDER:
            match = match_row(cells, row, kind)
            if match.complete:
                if best is None or _rank(match) < _rank(best):
                    best = match
            elif closest is None or match.signature_found > closest.signature_found:
                closest = match
    return best, closest


def _rank(match: _Match) -> tuple[int, int, int]:
    return (RECOGNITION_ORDER.index(match.kind), -len(match.columns), match.row)


# --- reading --------------------------------------------------------------------------------------


def open_workbook(content: bytes) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(content))
    except PasswordError as exc:
        raise DomainError("excel.file.encrypted", filename="") from exc
    except (CalamineError, ValueError, OSError) as exc:
        raise DomainError("excel.file.corrupted") from exc
    except BaseException as exc:  # XmlError, ZipError…, and a Rust panic (pyo3: a BaseException)
        _reraise_interrupts(exc)
        raise DomainError("excel.file.corrupted") from exc


def _sheet(workbook: CalamineWorkbook, name: str) -> CalamineSheet:
    """The sheet, parsed (once: calamine reads the whole sheet here)."""
    try:
        return workbook.get_sheet_by_name(name)
    except PasswordError as exc:
        raise DomainError("excel.file.encrypted", filename="") from exc
    except BaseException as exc:
        _reraise_interrupts(exc)
        raise DomainError("excel.file.corrupted") from exc


def _rows(sheet: CalamineSheet, nrows: int | None) -> tuple[list[list[Any]], int]:
    """(the sheet's values from A1, at most `nrows` rows; the number of rows the sheet spans)."""
    try:
        spans = sheet.start[0] + sheet.height if sheet.start else 0
        return sheet.to_python(skip_empty_area=False, nrows=nrows), spans
    except BaseException as exc:
        _reraise_interrupts(exc)
        raise DomainError("excel.file.corrupted") from exc


def _reraise_interrupts(exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
        raise exc


def _visible_sheets(workbook: CalamineWorkbook) -> list[str]:
    names = []
    for meta in workbook.sheets_metadata:
        if str(meta.visible).endswith("Visible") and str(meta.typ).endswith("WorkSheet"):
            names.append(meta.name)
    return names or list(workbook.sheet_names)


def _sheet_state(visible: Any) -> str:
    text = str(visible)
    if text.endswith("VeryHidden"):
        return "veryHidden"
    return "hidden" if text.endswith("Hidden") else "visible"


def _other_sheets(
    workbook: CalamineWorkbook, table_sheet: str, nrows: int
) -> tuple[list[SheetInfo], dict[str, list[list[Any]]]]:
    """Every worksheet in order with its visibility, and the values of those besides the table's
    (bounded like the table's: their extent was checked before anything was parsed)."""
    infos: list[SheetInfo] = []
    grids: dict[str, list[list[Any]]] = {}
    for meta in workbook.sheets_metadata:
        if not str(meta.typ).endswith("WorkSheet"):
            continue  # a chart sheet holds no cells
        infos.append(SheetInfo(meta.name, _sheet_state(meta.visible)))
        if meta.name != table_sheet:
            try:
                grids[meta.name], _ = _rows(_sheet(workbook, meta.name), nrows)
            except DomainError:
                grids[meta.name] = []  # unreadable: the copy keeps its place, the import is unharmed
    return infos, grids


_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_X14_NS = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
_XM_NS = "http://schemas.microsoft.com/office/excel/2006/main"


def xlsx_validations(content: bytes, sheet_name: str) -> tuple[list[ValidationRule], list[tuple[str, str]]]:
    """The data validations of one sheet of an xlsx — both the plain ones and those Excel 2010+
    writes in its extension list (lists drawn from another sheet, as a saved template has them) —
    and the workbook's global names (a list may refer to one). The file passed `sniff` (no DTD, no
    bomb). Anything unreadable here only loses the drop-downs of the copy, never the import."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            targets = {
                r.get("Id"): r.get("Target", "") for r in rels.iter(f"{{{_PACKAGE_REL_NS}}}Relationship")
            }
            names = [
                (d.get("name", ""), d.text or "")
                for d in workbook.iter(f"{{{_MAIN_NS}}}definedName")
                if d.get("localSheetId") is None and not d.get("name", "").startswith("_xlnm.")
            ]
            part = None
            for sheet in workbook.iter(f"{{{_MAIN_NS}}}sheet"):
                if sheet.get("name") == sheet_name:
                    target = targets.get(sheet.get(f"{{{_REL_NS}}}id"), "")
                    part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            if part is None:
                return [], names
            with archive.open(part) as stream:
                rules = _validations_around_cells(stream)
            if rules is None:
                with archive.open(part) as stream:
                    rules = _validations_in(stream)
            return rules, names
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError, ValueError, OSError):
        return [], []


_SHEET_DATA_START = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?sheetData(?=[\s/>])[^>]*>")
_SHEET_DATA_END = re.compile(rb"</(?:[A-Za-z_][\w.\-]*:)?sheetData\s*>")


def _validations_around_cells(stream: Any) -> list[ValidationRule] | None:
    """`_validations_in` without parsing the cells: the validations sit outside `<sheetData>`, which
    holds nearly all of a sheet's bytes (parsing it took 0.5 s for 50,000 rows). The parser gets
    the part with `<sheetData …>`'s content left out. None when that cut could differ from a full
    parse — a comment, CDATA or processing instruction before or inside the cells, a validation
    among the cells, a tag split oddly, anything the parser refuses — and the caller parses the
    whole part instead (`tests/test_reader_fast_paths.py` holds the two equal)."""
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(events=("end",))
    rules: list[ValidationRule] = []
    first = stream.read(CHUNK)
    while len(first) < 256 and (more := stream.read(CHUNK)):
        first += more  # the XML declaration whole, however the stream answers
    declaration = first.find(b"?>") + 2 if first.startswith(b"<?xml") else 0
    state = "before"  # then "inside" (skipping the cells), then "after"
    tail = b""
    try:
        while chunk := first or stream.read(CHUNK):
            first = b""
            window = tail + chunk
            tail = b""
            if state == "before":
                start = _SHEET_DATA_START.search(window)
                if start is None:
                    cut = window.rfind(b"<")
                    window, tail = (window, b"") if cut == -1 else (window[:cut], window[cut:])
                    if _not_plain(window, declaration) or len(tail) > _TAG_TAIL_MAX:
                        return None
                    parser.feed(window)
                    declaration = 0
                    continue
                if _not_plain(window[: start.start()], declaration):
                    return None
                parser.feed(window[: start.end()])
                window = window[start.end() :]
                state = "after" if start.group().endswith(b"/>") else "inside"
            if state == "inside":
                end = _SHEET_DATA_END.search(window)
                skipped = window if end is None else window[: end.start()]
                if b"<!" in skipped or b"<?" in skipped or b"dataValidation" in skipped:
                    return None  # what a full parse would read differently, or find in there
                if end is None:
                    tail = window[-64:]  # a closing tag split between two chunks
                    continue
                window = window[end.start() :]
                state = "after"
            parser.feed(window)
            _collect_validations(parser.read_events(), rules)
        if state != "after" or tail:
            return None
        parser.close()
        _collect_validations(parser.read_events(), rules)
    except ElementTree.ParseError:
        return None
    return [rule for rule in rules if rule.sqref]


def _not_plain(xml: bytes, declaration: int) -> bool:
    """A comment, CDATA, DOCTYPE or processing instruction (past the XML declaration's bytes)."""
    return b"<!" in xml or b"<?" in xml[declaration:]


def _validations_in(stream: Any) -> list[ValidationRule]:
    rules: list[ValidationRule] = []
    _collect_validations(ElementTree.iterparse(stream), rules)
    return [rule for rule in rules if rule.sqref]


def _collect_validations(events: Any, rules: list[ValidationRule]) -> None:
    plain, extended = f"{{{_MAIN_NS}}}dataValidation", f"{{{_X14_NS}}}dataValidation"
    for _, element in events:
        if element.tag == plain:
            rules.append(
                ValidationRule(
                    attributes={k: v for k, v in element.attrib.items() if k != "sqref"},
                    formula1=element.findtext(f"{{{_MAIN_NS}}}formula1"),
                    formula2=element.findtext(f"{{{_MAIN_NS}}}formula2"),
                    sqref=element.get("sqref", ""),
                )
            )
        elif element.tag == extended:
            rules.append(
                ValidationRule(
                    attributes={k: v for k, v in element.attrib.items() if "}" not in k},
                    formula1=element.findtext(f"{{{_X14_NS}}}formula1/{{{_XM_NS}}}f"),
                    formula2=element.findtext(f"{{{_X14_NS}}}formula2/{{{_XM_NS}}}f"),
                    sqref=element.findtext(f"{{{_XM_NS}}}sqref") or "",
                )
            )
        elif element.tag == f"{{{_MAIN_NS}}}row":
            element.clear()  # the cells are not needed here: keep the memory flat


def read_table(content: bytes, filename: str, limits: ReadLimits) -> Table:
    """Check, open and read an upload; find the table and its data rows."""
    check_size(len(content), limits)
    fmt = sniff(content, filename, limits)
    workbook = open_workbook(content)
    try:
        best: _Match | None = None
        best_sheet = ""
        closest: _Match | None = None
        sheets: dict[str, CalamineSheet] = {}  # the best sheet so far only: each holds its whole grid
        for name in _visible_sheets(workbook):
            sheet = _sheet(workbook, name)
            head, _ = _rows(sheet, HEADER_SCAN_ROWS)
            match, near = find_header(head)
            if match is not None and (best is None or _rank(match) < _rank(best)):
                best, best_sheet = match, name
                sheets = {name: sheet}
            del sheet
            if near is not None and (closest is None or near.signature_found > closest.signature_found):
                closest = near
        if best is None:
            if closest is not None and closest.signature_found >= 2:
                missing = [n for n in SPECS[closest.kind].required if n not in closest.columns]
                raise DomainError("excel.table.missing_columns", kind=closest.kind.value, columns=missing)
            raise DomainError("excel.table.not_found")
        wanted = best.row + 2 + limits.max_rows + BLANK_ROWS_SLACK
        grid, spans = _rows(sheets[best_sheet], wanted)
        sheets.clear()
        infos, other_grids = _other_sheets(workbook, best_sheet, wanted)
    finally:
        workbook.close()
    table = Table(
        format=fmt,
        sheet=best_sheet,
        kind=best.kind,
        header_row=best.row,
        columns=best.columns,
        grid=grid,
        ignored_headers=best.ignored,
        sheets=infos,
        other_grids=other_grids,
    )
    if fmt == "xlsx":
        table.validations, table.defined_names = xlsx_validations(content, best_sheet)
    table.data_rows = _data_rows(table)
    if len(table.data_rows) > limits.max_rows or spans > wanted:
        raise DomainError(
            "excel.file.too_many_rows",
            rows=max(len(table.data_rows), spans - best.row - 1),
            maximum=limits.max_rows,
        )
    last = table.data_rows[-1] + 1 if table.data_rows else best.row + 1
    del table.grid[last:]
    return table


def _data_rows(table: Table) -> list[int]:
    """Rows below the header with something in a recognised column: not blank lines, not a row of
    column numbers ("(1) (2) (3)" under the header of ministry forms), not the template's example
    row, not a total line."""
    columns = list(table.columns.values())
    number_column = table.columns.get("row_number")
    found: list[int] = []
    first = table.header_row + 1
    grid = table.grid
    end = max(columns, default=-1)
    pick = operator.itemgetter(*columns) if len(columns) > 1 else None
    for index in range(first, len(grid)):
        cells = grid[index]
        size = len(cells)
        picked = pick(cells) if pick is not None and size > end else [cells[c] for c in columns if c < size]
        # Inlined (50,000 rows): a value counts unless None, "" or white space only; the first that
        # counts decides (nearly always the row's first column), the others are not looked at.
        for value in picked:
            if value is not None and value != "" and not (isinstance(value, str) and value.isspace()):
                break
        else:
            continue
        if not found and index <= first + 1:
            filled = [
                value
                for value in picked
                if value is not None and value != "" and not (isinstance(value, str) and value.isspace())
            ]
            if _is_numbering(filled):
                continue
        if number_column is not None and number_column < size:
            number = cells[number_column]
            if isinstance(number, str) and is_example_mark(number):
                continue
        first_filled = None
        for cell in cells:
            if not is_blank(cell):
                first_filled = cell
                break
        total = isinstance(first_filled, str) and is_total_mark(first_filled)
        if total and is_blank(table.value(index, "student_code")):
            continue
        found.append(index)
    return found


def _is_numbering(values: list[Any]) -> bool:
    if len(values) < 2:
        return False
    numbers = []
    for value in values:
        text = f"{int(value)}" if isinstance(value, float) and value.is_integer() else str(value).strip()
        if isinstance(value, bool) or not _NUMBERING.match(text):
            return False
        numbers.append(int(text.strip("()")))
    return numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
