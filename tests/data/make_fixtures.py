"""How the committed sample files were made (run once; the tests only read the results).

    pip install --target /tmp/xlwt_lib xlwt          # not a dependency of the project
    PYTHONPATH=/tmp/xlwt_lib .venv/bin/python tests/data/make_fixtures.py

`hoc_sinh_bo.xls`: a student list laid out like the ministry's own .xls exports — two title rows, the
header on row 3, a row of column numbers under it, an extra column the bot does not use, dates as
date cells and one as text, codes as text.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import xlwt  # type: ignore[import-not-found]

HERE = Path(__file__).parent
HEADERS = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Giới tính", "Lớp", "Dân tộc"]
STUDENTS = [
    ("7978500201", "Trương Ngọc Hân", date(2013, 2, 17), "Nữ", "3A2", "Kinh"),
    ("7978500202", "Huỳnh Gia Bảo", "05/06/2014", "Nam", "2A1", "Kinh"),
    ("7978500203", "Lâm Thị Kim Ngân", date(2015, 10, 1), "Nữ", "1A3", "Hoa"),
]


def make_xls(path: Path) -> None:
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("DS hoc sinh")
    bold = xlwt.easyxf("font: bold on")
    dates = xlwt.easyxf(num_format_str="DD/MM/YYYY")
    sheet.write(0, 0, "UBND HUYỆN NHÀ BÈ", bold)
    sheet.write(1, 0, "DANH SÁCH HỌC SINH - TRƯỜNG TH LÊ VĂN LƯƠNG", bold)
    for column, header in enumerate(HEADERS):
        sheet.write(2, column, header, bold)
        sheet.write(3, column, f"({column + 1})")
    for index, (code, name, born, gender, class_name, ethnic) in enumerate(STUDENTS):
        row = 4 + index
        sheet.write(row, 0, index + 1)
        sheet.write(row, 1, code)
        sheet.write(row, 2, name)
        if isinstance(born, date):
            sheet.write(row, 3, born, dates)
        else:
            sheet.write(row, 3, born)
        sheet.write(row, 4, gender)
        sheet.write(row, 5, class_name)
        sheet.write(row, 6, ethnic)
    book.save(str(path))


if __name__ == "__main__":
    make_xls(HERE / "hoc_sinh_bo.xls")
