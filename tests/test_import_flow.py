"""The Excel import in the chat: /template, a workbook sent without a command, the verdict with the
checked copy, «Nhập N dòng hợp lệ» / «Huỷ», and the upload surviving a restart."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import func, select

from storage.models import PendingUpload, Student
from storage.services import Services
from tests import excel_files as files
from tests.chat import Harness
from tests.factories import make_world

HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp"]
ROWS = [
    HEADER,
    [1, "HS7001", "Nguyễn Thị Hồng", date(2013, 4, 4), "3A1"],
    [2, "HS7002", "Lê Văn Phát", "30/02/2013", "3A1"],
    [3, "HS7003", "Trần Bảo Châu", date(2014, 7, 8), "2A3"],
    [4, "HS7004", "Đỗ Minh Khôi", date(2012, 1, 9), "4A1"],
]


async def codes(services: Services) -> set[str]:
    async with services.sessionmaker() as session:
        return set(await session.scalars(select(Student.code)))


async def test_teacher_sends_a_workbook_checks_it_and_imports_the_valid_rows(
    services: Services, harness: Harness
) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.upload("hoc-sinh-lop-3.xlsx", files.xlsx(ROWS))
    texts = teacher.new_texts()
    verdict = texts[0]
    assert "📋 Tệp «hoc-sinh-lop-3.xlsx»: Danh sách học sinh" in verdict
    assert "• Thêm mới: 3" in verdict and "• Bị từ chối: 1" in verdict
    assert "Dòng 3, cột «Ngày sinh»: Ngày «30/02/2013» không có trên lịch." in verdict
    assert texts[-1].startswith("Chưa có gì được ghi.")
    name, content = teacher.last_document()
    assert name == "hoc-sinh-lop-3 (kiểm tra).xlsx"
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    assert sheet["D3"].comment is not None and "30/02/2013" in sheet["D3"].comment.text
    assert teacher.buttons() == ["Nhập 3 dòng hợp lệ", "Huỷ"]
    assert "HS7001" not in await codes(services)  # nothing written before the tap

    await teacher.tap("Nhập 3 dòng hợp lệ")
    assert teacher.last_text() == (
        "✅ Đã nhập «Danh sách học sinh»: 3 thêm mới, 0 cập nhật, 0 không đổi, 1 dòng bị từ chối (không ghi)."
    )
    assert {"HS7001", "HS7003", "HS7004"} <= await codes(services)
    assert "HS7002" not in await codes(services)

    # The same file again: nothing new, and the bot says so (no buttons).
    teacher.new_texts()
    await teacher.upload("hoc-sinh-lop-3.xlsx", files.xlsx(ROWS))
    again = teacher.new_texts()
    assert "• Không đổi: 3" in again[0] and "• Thêm mới: 0" in again[0]
    assert again[-1].startswith("Tệp này không có gì mới")
    assert teacher.buttons() == []


async def test_rows_of_another_school_are_rejected_in_the_chat(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    rows = [
        ["Mã trường", *HEADER],
        ["79785001", 1, "HS7101", "Bùi Thị Thu", date(2013, 4, 4), "3A1"],
        ["79785101", 2, "HS7102", "Cao Văn Sơn", date(2009, 4, 4), "7A1"],
    ]
    await teacher.upload("hai-truong.xlsx", files.xlsx(rows))
    verdict = teacher.new_texts()[0]
    assert "• Bị từ chối: 1" in verdict
    assert (
        "Dòng 3, cột «Mã trường»: Dòng này thuộc trường 79785101, không phải trường của bạn (79785001)"
        in verdict
    )
    await teacher.tap("Nhập 1 dòng hợp lệ")
    assert "HS7101" in await codes(services) and "HS7102" not in await codes(services)


async def test_the_upload_survives_a_restart_and_cancel_writes_nothing(
    services: Services, harness: Harness
) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.upload("lop-3.xlsx", files.xlsx(ROWS[:2]))
    await harness.restart()
    await teacher.tap("Nhập 1 dòng hợp lệ")
    assert "HS7001" in await codes(services)

    await teacher.upload("lop-2.xlsx", files.xlsx([HEADER, ROWS[3]]))
    await teacher.tap("Huỷ")
    assert teacher.last_text() == "Đã huỷ: không có gì trong tệp «lop-2.xlsx» được ghi."
    assert "HS7003" not in await codes(services)
    async with services.sessionmaker() as session:
        assert await session.scalar(select(func.count(PendingUpload.id))) == 0


async def test_bad_files_get_a_reply_saying_what_to_do(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.upload("danh-sach.csv", files.CSV, "text/csv")
    assert "Bot không nhận tệp CSV" in teacher.last_text()
    await teacher.upload("anh.xlsx", files.PNG)
    assert teacher.last_text().startswith("Tệp «anh.xlsx» không phải bảng tính Excel.")
    await teacher.upload("mat-khau.xlsx", files.encrypted_workbook())
    assert teacher.last_text().startswith("Tệp đang đặt mật khẩu")
    await teacher.upload("macro.xlsm", files.xlsm(ROWS))
    assert "có macro (VBA)" in teacher.last_text()
    harness.settings.import_max_bytes = 2048
    await teacher.upload("lon.xlsx", files.xlsx(ROWS))
    assert "quá giới hạn" in teacher.last_text()


async def test_template_menu_sends_the_workbook(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("/template")
    assert teacher.buttons() == [
        "👩‍🎓 Học sinh",
        "💻 Nhu cầu máy tính",
        "📦 Lô thiết bị",
        "🤝 Bàn giao",
        "💉 Tiêm vắc xin",
    ]
    await teacher.tap("💉 Tiêm vắc xin")
    name, content = teacher.last_document()
    assert name == "mau-nhap-tiem-vac-xin.xlsx"
    workbook = load_workbook(io.BytesIO(content))
    assert workbook.sheetnames[:2] == ["Tiêm vắc xin", "Hướng dẫn"]
    assert "Trường TH Lê Văn Lương (79785001)" in str(workbook["Tiêm vắc xin"]["A2"].value)
    # The filled template comes straight back as an upload of its kind.
    teacher.new_texts()
    await teacher.upload(name, content)
    verdict, answer = teacher.new_texts()
    assert "Mũi tiêm vắc xin COVID-19" in verdict and "• Thêm mới: 0" in verdict
    assert answer.startswith("Tệp không có dòng dữ liệu nào")


async def test_an_officer_role_without_schools_is_told_it_cannot_import(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    from storage.enums import Role
    from storage.models import Staff

    async with services.sessionmaker.begin() as session:
        session.add(
            Staff(
                telegram_user_id=3001,
                full_name="Kỹ Thuật",
                role=Role.TECH_SUPPORT,
                district_id=world.district_id,
            )
        )
    support = harness.person("3001")
    await support.upload("hs.xlsx", files.xlsx(ROWS))
    assert support.last_text().startswith("Vai trò của bạn không nhập dữ liệu từ Excel được")
