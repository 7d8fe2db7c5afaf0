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
  and anything that is not a spreadsheet are refused with their own reply.
python-calamine never evaluates formulas: a formula cell is read as the value Excel last cached.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePath
from typing import Any

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
_NUMBERING = re.compile(r"^\(?\d{1,3}\)?$")


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
        for row in self.data_rows:
            yield row + 1, self.record(row)


# --- refusing what must not be opened -------------------------------------------------------------


def check_size(size: int | None, limits: ReadLimits) -> None:
    """Refuse a file over the size limit (also before downloading it, from its announced size)."""
    if size is not None and size > limits.max_bytes:
        raise DomainError("excel.file.too_big", size_mb=_mb(size), max_mb=_mb(limits.max_bytes))


def sniff(content: bytes, filename: str) -> str:
    """The spreadsheet format of `content` ("xlsx", "xlsb", "xls" or "ods"), judged by its bytes, not
    its name; anything else is refused with the reply that fits it."""
    name = PurePath(filename or "").name
    extension = PurePath(name).suffix.lower()
    if not content:
        raise DomainError("excel.file.empty", filename=name)
    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_format(content, name)
    if content.startswith(CFB_MAGIC):
        return _cfb_format(content, name)
    if _looks_like_html(content):
        # Web systems often save an HTML table under an .xls name.
        raise DomainError("excel.file.html", filename=name)
    if extension in TEXT_EXTENSIONS or _looks_like_csv(content):
        raise DomainError("excel.file.csv", filename=name)
    raise DomainError("excel.file.not_spreadsheet", filename=name)


def _zip_format(content: bytes, name: str) -> str:
    parts = inspect_zip(content)
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


def inspect_zip(content: bytes) -> dict[str, bytes]:
    """Check a zip without trusting it; returns its part names (with the `mimetype` part's content).

    Declared sizes and ratios first (nothing is decompressed yet), then every part is decompressed
    in chunks: zipfile never returns more than the declared size and checks the CRC at the end, so a
    zip that lies about its sizes fails here, with bounded memory, before any parser sees it."""
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
                parts[info.filename] = _scan_part(archive, info)
            return parts
    except DomainError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise DomainError("excel.file.corrupted") from exc


def _scan_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Decompress one part in chunks; refuse a DTD in XML; return the content of `mimetype` only."""
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
            if keep and len(kept) < 256:
                kept += chunk[:256]
    return kept


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


def read_table(content: bytes, filename: str, limits: ReadLimits) -> Table:
    """Check, open and read an upload; find the table and its data rows."""
    check_size(len(content), limits)
    fmt = sniff(content, filename)
    workbook = open_workbook(content)
    try:
        best: _Match | None = None
        best_sheet = ""
        closest: _Match | None = None
        sheets: dict[str, CalamineSheet] = {}
        for name in _visible_sheets(workbook):
            sheets[name] = _sheet(workbook, name)
            head, _ = _rows(sheets[name], HEADER_SCAN_ROWS)
            match, near = find_header(head)
            if match is not None and (best is None or _rank(match) < _rank(best)):
                best, best_sheet = match, name
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
    )
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
    found: list[int] = []
    first = table.header_row + 1
    for index in range(first, len(table.grid)):
        cells = table.grid[index]
        size = len(cells)
        filled = [
            value
            for value in (cells[c] for c in columns if c < size)
            if value is not None and value != "" and not (isinstance(value, str) and value.isspace())
        ]
        if not filled:
            continue
        if not found and index <= first + 1 and _is_numbering(filled):
            continue
        if is_example_mark(table.value(index, "row_number")):
            continue
        first_filled = next((c for c in cells if not is_blank(c)), None)
        if is_total_mark(first_filled) and is_blank(table.value(index, "student_code")):
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
