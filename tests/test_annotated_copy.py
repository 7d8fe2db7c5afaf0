"""The checked copy of an upload keeps the whole workbook (issue 16, item 9): the instructions sheet,
the hidden lists and the drop-downs of the template stay, with the verdict column added, so the person
can fix the copy and send it back with the help still in it. Also kept: formula-looking text as text
with Excel's quote prefix (tests/test_upload_limits.py checks it on a plain sheet)."""

from __future__ import annotations

import io
import zipfile
from datetime import date

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from bot.import_texts import annotated_copy
from exports.templates import FIRST_DATA_ROW, HEADER_ROW
from storage.schemas.imports import ReadLimits
from storage.services import Services
from tests.chat import Harness
from tests.factories import make_world

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)


def _fill_students(template: bytes, rows: list[list[object]]) -> bytes:
    """The template as a teacher fills it in Excel: rows typed under the example, the rest untouched."""
    workbook = load_workbook(io.BytesIO(template))
    sheet = workbook.worksheets[0]
    headers = [str(cell.value or "") for cell in sheet[HEADER_ROW]]
    columns = {
        "code": next(i for i, h in enumerate(headers) if h.startswith("Mã học sinh")),
        "name": next(i for i, h in enumerate(headers) if h.startswith("Họ và tên")),
        "born": next(i for i, h in enumerate(headers) if h.startswith("Ngày sinh")),
        "class": next(i for i, h in enumerate(headers) if h.startswith("Lớp")),
    }
    for offset, values in enumerate(rows):
        row = FIRST_DATA_ROW + offset
        for field, value in zip(("code", "name", "born", "class"), values, strict=True):
            cell = sheet.cell(row, columns[field] + 1, value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # typed as text (a quote first in Excel), not a formula
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _validation_ranges(sheet: Worksheet) -> dict[str, str]:
    """Each data validation's cells and what it checks (the list's source, or its type)."""
    return {
        str(dv.sqref): (dv.formula1 or "") if dv.type == "list" else str(dv.type)
        for dv in sheet.data_validations.dataValidation
    }


async def _template(harness: Harness) -> bytes:
    teacher = harness.person("teacher")
    await teacher.send("/template")
    await teacher.tap("👩‍🎓 Học sinh")
    name, content = teacher.last_document()
    assert name.endswith(".xlsx")
    return content


async def test_the_checked_copy_keeps_the_instructions_the_lists_and_the_drop_downs(
    services: Services, harness: Harness
) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    template = await _template(harness)
    original = load_workbook(io.BytesIO(template))
    original_rules = _validation_ranges(original.worksheets[0])
    assert original_rules, "the template has drop-downs"

    risky = '=HYPERLINK("http://x","y")'
    filled = _fill_students(
        template,
        [
            ["HS9101", "Nguyễn Thị Hồng", date(2013, 4, 4), "3A1"],
            ["HS9102", "Lê Văn Phát", "30/02/2013", "3A1"],  # no such day: refused
            ["HS9103", risky, date(2013, 5, 6), "3A1"],  # not a name: refused, kept as text
        ],
    )
    teacher.new_texts()
    await teacher.upload("hoc-sinh.xlsx", filled)
    assert "• Bị từ chối: 2" in teacher.new_texts()[0]
    name, copy = teacher.last_document()
    assert name == "hoc-sinh (kiểm tra).xlsx"

    workbook = load_workbook(io.BytesIO(copy))
    # Every sheet, in the template's order and visibility.
    assert workbook.sheetnames == original.sheetnames == ["Học sinh", "Hướng dẫn", "Danh mục"]
    assert [s.sheet_state for s in workbook.worksheets] == ["visible", "visible", "hidden"]
    assert workbook.active is not None and workbook.active.title == "Học sinh"
    # The instructions and the lists, value for value.
    for title in ("Hướng dẫn", "Danh mục"):
        expected = [list(r) for r in original[title].iter_rows(values_only=True)]
        assert [list(r) for r in workbook[title].iter_rows(values_only=True)] == expected, title
    # The drop-downs and ranges of the data sheet, unchanged.
    data = workbook["Học sinh"]
    assert _validation_ranges(data) == original_rules
    # The verdict column, right of the template's columns.
    width = original.worksheets[0].max_column
    assert data.cell(HEADER_ROW, width + 1).value == "Kết quả kiểm tra"
    verdicts = [data.cell(FIRST_DATA_ROW + i, width + 1).value for i in range(3)]
    assert verdicts[0] == "Hợp lệ: thêm mới"
    assert all(str(v).startswith("Bị từ chối (1 lỗi)") for v in verdicts[1:])
    # Formula-looking text stays text, with Excel's quote prefix.
    cell = next(c for c in data[FIRST_DATA_ROW + 2] if c.value == risky)
    assert cell.data_type == "s" and cell.quotePrefix

    # Fixed in the copy and sent back: read as before, the verdict column ignored.
    born = next(c for c in data[FIRST_DATA_ROW + 1] if c.value == "30/02/2013")
    born.value = date(2013, 2, 28)
    data.delete_rows(FIRST_DATA_ROW + 2)
    buffer = io.BytesIO()
    workbook.save(buffer)
    teacher.new_texts()
    await teacher.upload("hoc-sinh (kiểm tra).xlsx", buffer.getvalue())
    verdict = teacher.new_texts()[0]
    assert "• Thêm mới: 2" in verdict and "• Bị từ chối: 0" in verdict
    assert "Kết quả kiểm tra" not in verdict  # not listed among the unknown columns


def _with_x14_list(content: bytes) -> bytes:
    """The workbook as Excel 2010+ saves it: a list drawn from another sheet moved into the sheet's
    extension list (x14:dataValidation), which openpyxl itself does not read."""
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                start, end = text.index("<dataValidations"), text.index("</dataValidations>")
                text = text[:start] + text[end + len("</dataValidations>") :]
                ext = (
                    '<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
                    'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
                    '<x14:dataValidations count="1" '
                    'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
                    '<x14:dataValidation type="list" allowBlank="1" showErrorMessage="1">'
                    "<x14:formula1><xm:f>'Danh mục'!$A$2:$A$3</xm:f></x14:formula1>"
                    "<xm:sqref>E4:E100</xm:sqref></x14:dataValidation></x14:dataValidations></ext></extLst>"
                )
                text = text.replace("</worksheet>", ext + "</worksheet>")
                data = text.encode()
            target.writestr(info, data)
    return out.getvalue()


async def test_a_list_excel_saved_in_its_extension_list_is_kept(services: Services, harness: Harness) -> None:
    await make_world(services)
    template = await _template(harness)
    filled = _with_x14_list(_fill_students(template, [["HS9201", "Trần Bảo Châu", "31/02/2014", "2A3"]]))
    scope = await services.imports.scope_for_school("79785001")
    check = await services.imports.check(scope, "hoc-sinh.xlsx", filled, LIMITS)
    assert check.needs_annotated_copy
    workbook = load_workbook(io.BytesIO(annotated_copy(check, "vi")))
    rules = _validation_ranges(workbook["Học sinh"])
    assert rules == {"E4:E100": "'Danh mục'!$A$2:$A$3"}
    assert workbook["Danh mục"].sheet_state == "hidden"
