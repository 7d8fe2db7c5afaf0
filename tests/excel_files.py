"""Workbooks for the import tests: good ones in every format, and every kind of bad file."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import xlsxwriter
from openpyxl import Workbook

DATA = Path(__file__).parent / "data"
XLS_WITH_TITLE_ROWS = DATA / "hoc_sinh_bo.xls"


def xlsx(rows: Sequence[Sequence[Any]], *, sheet: str = "Danh sách") -> bytes:
    """An .xlsx whose first sheet holds `rows` from A1 (None: an empty cell)."""
    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.title = sheet
    for row in rows:
        worksheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_with_formulas(rows: Sequence[Sequence[Any]]) -> bytes:
    """Like `xlsx`, but a value `("=FORMULA", cached)` is a formula cell with its cached value."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    worksheet = workbook.add_worksheet("Danh sách")
    dates = workbook.add_format({"num_format": "dd/mm/yyyy"})
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, tuple):
                worksheet.write_formula(r, c, value[0], None, value[1])
            elif hasattr(value, "year"):
                worksheet.write_datetime(r, c, value, dates)
            elif value is not None:
                worksheet.write(r, c, value)
    workbook.close()
    return buffer.getvalue()


def ods(rows: Sequence[Sequence[Any]], *, extra_rows: str = "") -> bytes:
    """A minimal OpenDocument spreadsheet (what LibreOffice writes, without the styles); `extra_rows`
    is raw `<table:table-row>` XML put after the rows."""
    cells = []
    for row in rows:
        parts = []
        for value in row:
            if value is None:
                parts.append("<table:table-cell/>")
            elif hasattr(value, "isoformat"):
                parts.append(
                    f'<table:table-cell office:value-type="date" office:date-value="{value.isoformat()}">'
                    f"<text:p>{value.strftime('%d/%m/%Y')}</text:p></table:table-cell>"
                )
            elif isinstance(value, int | float):
                parts.append(
                    f'<table:table-cell office:value-type="float" office:value="{value}">'
                    f"<text:p>{value}</text:p></table:table-cell>"
                )
            else:
                parts.append(
                    f'<table:table-cell office:value-type="string"><text:p>{escape(str(value))}</text:p>'
                    "</table:table-cell>"
                )
        cells.append(f"<table:table-row>{''.join(parts)}</table:table-row>")
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Hoc sinh">'
        f"{''.join(cells)}{extra_rows}</table:table></office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED
        )
        archive.writestr("content.xml", content)
        archive.writestr("META-INF/manifest.xml", manifest)
    return buffer.getvalue()


def _cell_xml(ref: str, value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{value}</v></c>'
    text = value.strftime("%d/%m/%Y") if hasattr(value, "strftime") else str(value)
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(text)}</t></is></c>'


def column_letters(number: int) -> str:
    """1 -> A, 16384 -> XFD."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def raw_xlsx(
    rows: Sequence[Sequence[Any]],
    *,
    far_cells: Sequence[tuple[int, int, Any]] = (),
    dimension: str | None = None,
    sheet_data: str | None = None,
    compress: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """An .xlsx written by hand (inline strings, no styles), so a test controls every reference:
    `rows` from A1, then `far_cells` as (1-based row, 1-based column, value); `dimension` the
    declared `<dimension ref>` (None: none); `sheet_data` replaces the whole `<sheetData>` body."""
    if sheet_data is None:
        by_row: dict[int, list[tuple[int, Any]]] = {}
        for r, row in enumerate(rows, start=1):
            by_row[r] = [(c, value) for c, value in enumerate(row, start=1) if value is not None]
        for r, c, value in far_cells:
            by_row.setdefault(r, []).append((c, value))
        parts = []
        for r in sorted(by_row):
            by_column = dict(by_row[r])  # one cell per address: the last given
            cells = "".join(_cell_xml(f"{column_letters(c)}{r}", by_column[c]) for c in sorted(by_column))
            parts.append(f'<row r="{r}">{cells}</row>')
        sheet_data = "".join(parts)
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"{declared}<sheetData>{sheet_data}</sheetData></worksheet>"
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    relationships = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    parts_xml = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{relationships}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{relationships}">'
            '<sheets><sheet name="Danh sách" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{relationships}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": sheet,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compress) as archive:
        for name, text in parts_xml.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def xls_with_cell(row: int, column: int, value: float = 1.0, source: Path = XLS_WITH_TITLE_ROWS) -> bytes:
    """A copy of an .xls (BIFF8) with one more NUMBER cell at 0-based (`row`, `column`) in its first
    sheet: the record goes before that sheet's EOF, the sheets' offsets (BOUNDSHEET) move along, and
    the Workbook stream goes into a new OLE compound file."""
    from exports.reader import _cfb_stream

    stream = _cfb_stream(source.read_bytes(), ("Workbook",))
    assert stream is not None
    records: list[tuple[int, int, bytes]] = []  # (offset, type, body)
    position = 0
    while position + 4 <= len(stream):
        kind, length = struct.unpack_from("<HH", stream, position)
        records.append((position, kind, stream[position + 4 : position + 4 + length]))
        position += 4 + length
    sheet_offsets = [struct.unpack_from("<I", body)[0] for _, kind, body in records if kind == 0x0085]
    first_sheet = min(sheet_offsets)
    insert_at = next(off for off, kind, _ in records if kind == 0x000A and off > first_sheet)
    cell = struct.pack("<HHHHHd", 0x0203, 14, row, column, 15, value)
    out = bytearray()
    for offset, kind, body in records:
        if offset == insert_at:
            out += cell
        if kind == 0x0085:
            start = struct.unpack_from("<I", body)[0]
            body = struct.pack("<I", start + len(cell) if start > insert_at else start) + body[4:]
        out += struct.pack("<HH", kind, len(body)) + body
    return cfb_file({"Workbook": bytes(out)})


def cfb_file(streams: dict[str, bytes]) -> bytes:
    """An OLE compound file (version 3, 512-byte sectors) holding `streams`, each in the regular FAT
    (a stream under 4096 bytes is padded with zeros up to it)."""
    sector = 512
    end_of_chain, fat_sector, free = 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    datas = [data.ljust(4096, b"\x00") for data in streams.values()]
    counts = [-(-len(data) // sector) for data in datas]
    entries_needed = 1 + len(streams)
    directory_sectors = -(-entries_needed * 128 // sector)
    total = directory_sectors + sum(counts)
    fat_sectors = 1
    while fat_sectors * (sector // 4) < total + fat_sectors:
        fat_sectors += 1
    fat: list[int] = [fat_sector] * fat_sectors
    directory_start = len(fat)
    fat += [*range(directory_start + 1, directory_start + directory_sectors), end_of_chain]
    starts = []
    for count in counts:
        start = len(fat)
        starts.append(start)
        fat += [*range(start + 1, start + count), end_of_chain]
    fat += [free] * (fat_sectors * (sector // 4) - len(fat))
    header = bytearray(sector)
    header[0:8] = bytes.fromhex("D0CF11E0A1B11AE1")
    struct.pack_into("<HHHH", header, 24, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 32, 6)
    struct.pack_into(
        "<IIIIIII", header, 44, fat_sectors, directory_start, 0, 4096, end_of_chain, 0, end_of_chain
    )
    struct.pack_into("<I", header, 68, end_of_chain)
    for index in range(109):
        struct.pack_into("<I", header, 76 + 4 * index, index if index < fat_sectors else free)

    def entry(name: str, kind: int, start: int, size: int, child: int = free, right: int = free) -> bytes:
        raw = bytearray(128)
        encoded = (name + "\x00").encode("utf-16-le")
        raw[0 : len(encoded)] = encoded
        struct.pack_into("<HBB", raw, 64, len(encoded), kind, 1)
        struct.pack_into("<III", raw, 68, free, right, child)
        struct.pack_into("<IQ", raw, 116, start, size)
        return bytes(raw)

    names = list(streams)
    directory = entry("Root Entry", 5, end_of_chain, 0, child=1)
    for index, (name, start) in enumerate(zip(names, starts, strict=True)):
        right = index + 2 if index + 1 < len(names) else free
        directory += entry(name, 2, start, len(datas[index]), right=right)
    directory = directory.ljust(directory_sectors * sector, b"\x00")
    body = struct.pack(f"<{len(fat)}I", *fat) + directory
    for data, count in zip(datas, counts, strict=True):
        body += data.ljust(count * sector, b"\x00")
    return bytes(header) + body


def _rewrite(
    content: bytes, changes: dict[str, bytes | None], extra: dict[str, bytes] | None = None
) -> bytes:
    """A copy of a zip with some parts replaced (None: removed) or added."""
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename in changes:
                replacement = changes[info.filename]
                if replacement is not None:
                    target.writestr(info.filename, replacement)
            else:
                target.writestr(info.filename, source.read(info.filename))
        for name, data in (extra or {}).items():
            target.writestr(name, data)
    return buffer.getvalue()


def xlsm(rows: Sequence[Sequence[Any]]) -> bytes:
    """A macro workbook: the same parts plus `xl/vbaProject.bin`."""
    return _rewrite(xlsx(rows), {}, {"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0" + b"\x00" * 512})


def billion_laughs(rows: Sequence[Sequence[Any]]) -> bytes:
    """An .xlsx whose shared strings declare nested entities ("billion laughs": ~3 GB once expanded)."""
    workbook = xlsxwriter.Workbook(buffer := io.BytesIO(), {"in_memory": True})
    worksheet = workbook.add_worksheet("Danh sách")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            worksheet.write_string(r, c, str(value))
    workbook.close()
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    strings = source.read("xl/sharedStrings.xml").decode()
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
    )
    declaration = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    strings = strings.replace(declaration, f'<?xml version="1.0"?><!DOCTYPE sst [{entities}]>')
    strings = strings.replace("<t>", "<t>&lol9;", 1)
    return _rewrite(buffer.getvalue(), {"xl/sharedStrings.xml": strings.encode()})


def zip_bomb(megabytes: int = 40) -> bytes:
    """An .xlsx-looking zip with a sheet of `megabytes` MB of zeros, compressed ~1000 times."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            chunk = b"\x00" * 2**20
            for _ in range(megabytes):
                part.write(chunk)
    return buffer.getvalue()


def lying_zip(content: bytes, declared: int = 3 * 2**30, name: bytes = b"xl/worksheets/sheet1.xml") -> bytes:
    """A zip whose central directory claims its part `name` unpacks to `declared` bytes."""
    content = bytearray(content)
    start = content.find(b"PK\x01\x02")  # the central directory
    while start != -1:
        name_length = struct.unpack_from("<H", content, start + 28)[0]
        if bytes(content[start + 46 : start + 46 + name_length]) == name:
            struct.pack_into("<I", content, start + 24, declared & 0xFFFFFFFF)
        start = content.find(b"PK\x01\x02", start + 4)
    return bytes(content)


def encrypted_workbook() -> bytes:
    """An OLE compound file like Excel's "Encrypt with Password": an `EncryptionInfo` and an
    `EncryptedPackage` stream instead of the zip."""
    sector = 512
    end_of_chain, fat_sector, free = 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
    info, package = b"\x04\x00\x04\x00" + b"\x00" * 4092, b"\x00" * 8192
    # Sectors: 0 FAT, 1 directory, 2-9 EncryptionInfo, 10-25 EncryptedPackage.
    fat = [fat_sector, end_of_chain]
    fat += [*range(3, 10), end_of_chain]
    fat += [*range(11, 26), end_of_chain]
    fat += [free] * (sector // 4 - len(fat))
    header = bytearray(sector)
    header[0:8] = bytes.fromhex("D0CF11E0A1B11AE1")
    struct.pack_into("<HHHH", header, 24, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 32, 6)
    struct.pack_into("<IIIIIII", header, 44, 1, 1, 0, 4096, end_of_chain, 0, end_of_chain)
    struct.pack_into("<I", header, 68, 0)
    struct.pack_into("<I", header, 76, 0)
    for index in range(1, 109):
        struct.pack_into("<I", header, 76 + 4 * index, free)

    def entry(name: str, kind: int, start: int, size: int, child: int = free, right: int = free) -> bytes:
        raw = bytearray(128)
        encoded = (name + "\x00").encode("utf-16-le")
        raw[0 : len(encoded)] = encoded
        struct.pack_into("<HBB", raw, 64, len(encoded), kind, 1)
        struct.pack_into("<III", raw, 68, free, right, child)
        struct.pack_into("<IQ", raw, 116, start, size)
        return bytes(raw)

    directory = (
        entry("Root Entry", 5, end_of_chain, 0, child=1)
        + entry("EncryptionInfo", 2, 2, len(info), right=2)
        + entry("EncryptedPackage", 2, 10, len(package))
        + bytes(128)
    )
    body = struct.pack(f"<{sector // 4}I", *fat) + directory + info + package
    return bytes(header) + body


def truncated(content: bytes) -> bytes:
    """A workbook cut short, as a failed download leaves it."""
    return content[: len(content) * 2 // 3]


PNG = bytes.fromhex("89504E470D0A1A0A0000000D4948445200000001000000010806000000") + b"\x00" * 64
CSV = "Mã học sinh;Họ và tên;Ngày sinh;Lớp\n7978500301;Phan Văn Tú;01/02/2013;3A1\n".encode()
