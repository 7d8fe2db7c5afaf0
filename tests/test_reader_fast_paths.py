"""The reader's fast paths (issue 17, item 5) answer exactly as the full reading does, on arbitrary
sheet XML fed in arbitrary pieces:

- the extent scan of an `.xlsx` sheet: the C-level pass over windows whose cells all carry an explicit
  `r` gives the same extent, position and refusal (code and figures) as reading tag by tag;
- the data validations read around `<sheetData>` (its cells never parsed) equal those of a full parse,
  or the fast path declines (comments, CDATA, processing instructions, malformed XML).
No timing here: `bench/import_bench.py` measures."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.texts import t
from exports import reader
from exports.labels import Labels
from exports.templates import build_template
from storage.errors import DomainError
from storage.schemas.imports import ImportKind, ReadLimits, TemplateContext
from tests import excel_files as files

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=1, max_columns=30)  # a sheet may span 1,034 rows

rows = st.integers(0, 1_200)
columns = st.integers(1, 40)
letters = columns.map(files.column_letters)


def _tag(kind: str, row: int, column: str) -> str:
    return {
        "cell": f'<c r="{column}{max(row, 1)}" t="s"><v>1</v></c>',
        "cell_self_closing": f'<c r="{column}{max(row, 1)}"/>',
        "cell_no_r": "<c><v>2</v></c>",
        "cell_dollar": f'<c r="${column}${max(row, 1)}"/>',
        "cell_lower": f'<c r="{column.lower()}{max(row, 1)}"/>',
        "cell_row_only": f'<c r="{row}"/>',
        "cell_letters_only": f'<c r="{column}"/>',
        "cell_zero_row": f'<c r="{column}0"/>',
        "cell_prefixed": f'<x:c r="{column}{max(row, 1)}"/>',
        "cell_ref_later": f'<c s="1" r="{column}{max(row, 1)}"/>',
        "row": f'<row r="{row}" spans="1:3">',
        "row_no_r": "<row>",
        "row_end": "</row>",
        "dimension": f'<dimension ref="A1:{column}{max(row, 1)}"/>',
        "comment": f'<!-- <c r="{column}{max(row, 1)}"> -->',
        "nested": f'<c r="A1" <c r="{column}{max(row, 1)}">',
        "text": "<is><t>Nguyễn &lt;c r=&quot;ZZ9&quot;&gt;</t></is>",
        "cols": f'<cols><col min="1" max="{row}"/></cols>',
    }[kind]


tags = st.lists(
    st.tuples(
        st.sampled_from(
            ["cell"] * 8
            + ["row"] * 3
            + [
                "cell_self_closing",
                "cell_no_r",
                "cell_dollar",
                "cell_lower",
                "cell_row_only",
                "cell_letters_only",
                "cell_zero_row",
                "cell_prefixed",
                "cell_ref_later",
                "row_no_r",
                "row_end",
                "dimension",
                "comment",
                "nested",
                "text",
                "cols",
            ]
        ),
        rows,
        letters,
    ),
    max_size=60,
)


def _pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, position = [], 0
    for size in sizes:
        pieces.append(data[position : position + size])
        position += size
    pieces.append(data[position:])
    return [piece for piece in pieces if piece]


def _scan(data: bytes, sizes: list[int], *, fast: bool) -> Any:
    scanner = reader._XlsxSheetExtent(LIMITS)
    if not fast:
        scanner._explicit = lambda window: False  # type: ignore[method-assign]
    try:
        for piece in _pieces(data, sizes):
            scanner.feed(piece)
        scanner.close()
    except DomainError as error:
        return ("refused", error.code, error.params)
    return (scanner.rows, scanner.columns, scanner.row, scanner.column)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(tags, st.lists(st.integers(1, 200), max_size=8), st.booleans())
@example([("cell", 5, "B"), ("cell", 3, "C")], [], False)
@example([("row", 1035, "A"), ("cell", 1035, "A")], [], False)
@example([("cell", 2, "AE"), ("cell", 1100, "A")], [7], False)
@example([("row", 4, "A"), ("cell_no_r", 0, "A"), ("cell", 6, "C"), ("cell_no_r", 0, "A")], [], True)
def test_the_extent_scan_fast_path_equals_reading_tag_by_tag(
    found: list[tuple[str, int, str]], sizes: list[int], huge: bool
) -> None:
    body = "".join(_tag(*item) for item in found)
    if huge:  # windows of 64 KB and tags split between them
        body = body * 40 + '<c r="B7"/>' * 6000
    data = f'<worksheet xmlns="x"><sheetData>{body}</sheetData></worksheet>'.encode()
    assert _scan(data, sizes, fast=True) == _scan(data, sizes, fast=False)


class _ShortReads(io.BytesIO):
    """A stream answering each read with at most `size` bytes (tags split between chunks)."""

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data)
        self.size = size

    def read(self, n: int | None = -1) -> bytes:
        return super().read(self.size if n is None or n < 0 else min(n, self.size))


def _validations(data: bytes, size: int) -> tuple[Any, Any]:
    fast = reader._validations_around_cells(_ShortReads(data, size))
    try:
        full: Any = reader._validations_in(io.BytesIO(data))
    except Exception as error:
        full = type(error)
    return fast, full


MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
X14 = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XM = "http://schemas.microsoft.com/office/excel/2006/main"
VALIDATION = (
    '<dataValidations count="1"><dataValidation type="list" allowBlank="1" sqref="{sqref}">'
    '<formula1>"Nam,Nữ"</formula1></dataValidation></dataValidations>'
)
EXTENDED = (
    f'<extLst><ext uri="{{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}}" xmlns:x14="{X14}">'
    '<x14:dataValidations count="1" xmlns:xm="' + XM + '"><x14:dataValidation type="list">'
    "<x14:formula1><xm:f>'Danh mục'!$A$1:$A$3</xm:f></x14:formula1><xm:sqref>{sqref}</xm:sqref>"
    "</x14:dataValidation></x14:dataValidations></ext></extLst>"
)
INSIDE = [
    '<row r="1"><c r="A1" t="inlineStr"><is><t>Họ tên</t></is></c></row>',
    '<row r="2"><c r="A2"><v>1</v></c></row>',
    "<!-- </sheetData> -->",
    "<![CDATA[</sheetData>]]>",
    "<?pi </sheetData>?>",
    '<dataValidations><dataValidation sqref="Z1" type="list"/></dataValidations>',
]


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["", "x:"]),
    st.lists(st.sampled_from(INSIDE), max_size=6),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["", "<!-- a comment -->", '<dimension ref="A1:B2"/>', "<?pi x?>"]),
    st.integers(1, 120),
    st.sampled_from(["C4:C100", "D4:D9 F4", ""]),
)
def test_validations_read_around_the_cells_equal_a_full_parse(
    prefix: str, inside: list[str], self_closing: bool, extended: bool, before: str, size: int, sqref: str
) -> None:
    data_element = (
        f"<{prefix}sheetData/>"
        if self_closing and not inside
        else (f"<{prefix}sheetData>{''.join(inside)}</{prefix}sheetData>")
    )
    after = (VALIDATION + (EXTENDED if extended else "")).replace("{sqref}", sqref)
    xmlns = f'xmlns:x="{MAIN}"' if prefix else f'xmlns="{MAIN}"'
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><{prefix}worksheet {xmlns}>{before}'
        f"{data_element}{after}</{prefix}worksheet>"
    )
    if prefix:
        sheet = sheet.replace("<dataValidation", "<x:dataValidation").replace(
            "</dataValidation", "</x:dataValidation"
        )
    fast, full = _validations(sheet.encode(), size)
    assert fast is None or fast == full
    if not any(mark in sheet[40:] for mark in ("<!", "<?")) and "dataValidation" not in "".join(inside):
        assert fast is not None  # plain sheets take the fast path


def test_templates_and_checked_copies_keep_their_validations_through_the_fast_path() -> None:
    for kind in ImportKind:
        context = TemplateContext(
            kind=kind, with_school_column=kind is ImportKind.BATCHES, products=["Vero Cell"]
        )
        content = build_template(context, Labels(t, "vi"))
        sheet = t(f"excel.sheet.{kind.value}", "vi")
        rules, _ = reader.xlsx_validations(content, sheet)
        assert rules  # every template has drop-downs
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                    data = archive.read(name)
                    fast, full = _validations(data, 4096)
                    assert fast == full, name
