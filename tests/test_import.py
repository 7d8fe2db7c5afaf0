"""Bulk import by Excel: reading every format, the same rules as the chat, the verdict before writing,
the annotated copy, idempotent upserts, scope, and every file that must be refused."""

from __future__ import annotations

import io
import time
import tracemalloc
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.cli import main as cli_main
from bot.import_texts import annotated_copy, message
from exports.reader import read_table
from storage.enums import AuditAction, DeviceType, DonationSource, Gender, PriorityGroup
from storage.errors import AccessDenied, DomainError
from storage.models import (
    AuditLog,
    DonationBatch,
    Donor,
    Handover,
    NeedRecord,
    PendingUpload,
    Student,
    VaccineDose,
)
from storage.schemas.devices import BatchIn
from storage.schemas.imports import ImportCheck, ImportKind, ReadLimits
from storage.schemas.organisation import StaffOut
from storage.services import Services
from tests import excel_files as files
from tests.factories import TELEGRAM_IDS, make_world
from tests.helpers import count

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
STUDENT_HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp", "Giới tính"]


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


async def person(services: Services, key: str) -> StaffOut:
    staff = await services.staff.by_telegram_id(TELEGRAM_IDS[key])
    assert staff is not None
    return staff


async def check_as(
    services: Services, key: str, content: bytes, filename: str = "danh-sach.xlsx", *, stage: bool = True
) -> ImportCheck:
    staff = await person(services, key)
    scope = await services.imports.scope_for(staff)
    return await services.imports.check(
        scope, filename, content, LIMITS, stage_for=staff.id if stage else None
    )


async def confirm_as(services: Services, key: str, check: ImportCheck) -> ImportCheck:
    assert check.pending_id is not None
    return await services.imports.confirm(check.pending_id, await person(services, key), LIMITS)


def outcomes(check: ImportCheck) -> dict[int, str]:
    return {row.row: row.outcome.value for row in check.rows}


def issues(check: ImportCheck) -> dict[int, list[tuple[str | None, str]]]:
    return {row.row: [(i.field, i.code) for i in row.issues] for row in check.rows if row.issues}


async def students_by_code(services: Services) -> dict[str, Student]:
    async with services.sessionmaker() as session:
        return {s.code: s for s in await session.scalars(select(Student))}


# --- reading any file -----------------------------------------------------------------------------


async def test_shuffled_columns_diacritic_free_headers_and_nfd_text_import(services: Services) -> None:
    await make_world(services)
    content = files.xlsx(
        [
            ["  LOP ", "HO VA TEN", "Ngay\nsinh", "ma   hoc  sinh", nfd("Giới tính")],
            ["3A1", nfd("Lê Thị Mai"), date(2013, 5, 6), "hs2001", nfd("Nữ")],
            [nfd("Lớp 2A2"), nfd("PHAN VĂN TÚ"), nfd("07/08/2014"), "HS2002", "nam"],
        ]
    )
    check = await check_as(services, "teacher", content)
    assert check.kind is ImportKind.STUDENTS and check.header_row == 1
    assert outcomes(check) == {2: "created", 3: "created"}
    await confirm_as(services, "teacher", check)
    students = await students_by_code(services)
    mai, tu = students["HS2001"], students["HS2002"]
    assert mai.full_name == "Lê Thị Mai" == unicodedata.normalize("NFC", mai.full_name)
    assert (mai.class_name, mai.gender, mai.search_name) == ("3A1", Gender.FEMALE, "le thi mai")
    assert (tu.full_name, tu.class_name, tu.date_of_birth) == ("Phan Văn Tú", "2A2", date(2014, 8, 7))


async def test_ministry_xls_with_its_header_on_row_3_imports(services: Services) -> None:
    await make_world(services)
    content = files.XLS_WITH_TITLE_ROWS.read_bytes()
    check = await check_as(services, "teacher", content, "hoc_sinh_bo.xls")
    assert check.table.format == "xls"
    assert check.header_row == 3
    assert check.ignored_headers == ["Dân tộc"]
    assert outcomes(check) == {5: "created", 6: "created", 7: "created"}  # row 4 numbers the columns
    await confirm_as(services, "teacher", check)
    students = await students_by_code(services)
    assert students["7978500202"].date_of_birth == date(2014, 6, 5)  # typed as text in the file
    assert students["7978500203"].class_name == "1A3"


async def test_ods_imports(services: Services) -> None:
    await make_world(services)
    content = files.ods(
        [["Danh sách"], STUDENT_HEADER, [1, "HS2101", "Đinh Quang Huy", date(2013, 9, 1), "3A1", "Nam"]]
    )
    check = await check_as(services, "teacher", content, "danh-sach.ods")
    assert (check.table.format, check.header_row, outcomes(check)) == ("ods", 2, {3: "created"})


async def test_formula_cells_are_read_as_their_cached_values(services: Services) -> None:
    await make_world(services)
    content = files.xlsx_with_formulas(
        [
            STUDENT_HEADER,
            [
                1,
                "HS2201",
                ('=PROPER("lê văn tám")', "Lê Văn Tám"),
                date(2013, 2, 2),
                ('="3A"&"1"', "3A1"),
                "Nam",
            ],
        ]
    )
    check = await check_as(services, "teacher", content)
    await confirm_as(services, "teacher", check)
    student = (await students_by_code(services))["HS2201"]
    assert (student.full_name, student.class_name) == ("Lê Văn Tám", "3A1")


# --- the verdict and the annotated copy -----------------------------------------------------------

ERRORS_FILE = [
    STUDENT_HEADER,
    [1, "HS3001", "Đặng Thu Thảo", date(2013, 4, 2), "3A1", "Nữ"],
    [2, "HS3002", "Ng0 Văn B", "31/02/2013", "3A1", "Nam"],
    [3, None, "Võ Thị Cúc", date(2013, 1, 1), "3A1", None],
    [4, "HS3001", "Đặng Thu Thảo", date(2013, 4, 2), "3A1", "Nữ"],
    [5, "HS0005", "Phạm Thị Dung", date(2008, 9, 9), "8A3", "Nữ"],
    [6, "HS3003", "Trần Văn Lợi", date(2012, 6, 1), "10A1", "Nam"],
    [7, "HS3004", "Lý Bảo Ngọc", date(2003, 1, 1), "3A1", "Nữ"],
    [8, "HS3005", "Mạc Thị Yến", date(2013, 3, 3), "3A1", "x"],
    [9, "HS0001", "Nguyễn Văn An", date(2012, 3, 14), "4A2", "Nam"],
]


async def test_errors_give_the_exact_annotated_cells(services: Services) -> None:
    await make_world(services)
    check = await check_as(services, "teacher", files.xlsx(ERRORS_FILE))
    assert outcomes(check) == {
        2: "created",
        3: "rejected",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "rejected",
        8: "rejected",
        9: "rejected",
        10: "updated",
    }
    assert issues(check) == {
        3: [("full_name", "name.invalid_characters"), ("date_of_birth", "date.impossible")],
        4: [("student_code", "excel.cell.required")],
        5: [("student_code", "excel.row.duplicate")],
        6: [("student_code", "students.code_in_other_school")],
        7: [("class_name", "students.grade_invalid")],
        8: [("date_of_birth", "students.age_grade_mismatch")],
        9: [("gender", "students.gender_invalid")],
    }
    counts = check.counts
    assert (counts.created, counts.updated, counts.unchanged, counts.rejected) == (1, 1, 0, 7)

    sheet = load_workbook(io.BytesIO(annotated_copy(check, "vi"))).active
    assert sheet is not None
    filled = {
        cell.coordinate: cell.fill.fgColor.rgb[-6:]
        for row in sheet.iter_rows()
        for cell in row
        if cell.fill is not None and cell.fill.fill_type == "solid"
    }
    red, green = "FFC7CE", "C6EFCE"
    marked = {c: rgb for c, rgb in filled.items() if not c.startswith("G")}
    assert marked == dict.fromkeys(["C3", "D3", "B4", "B5", "B6", "E7", "D8", "F9"], red)
    assert {c: rgb for c, rgb in filled.items() if c.startswith("G")} == {
        "G2": green,
        **{f"G{r}": red for r in range(3, 10)},
        "G10": green,
    }
    comments = {
        cell.coordinate: cell.comment.text for row in sheet.iter_rows() for cell in row if cell.comment
    }
    assert set(comments) == set(marked)
    assert (
        comments["D3"]
        == "Ngày «31/02/2013» không có trên lịch. Kiểm tra lại ngày và tháng (ví dụ 30/02 không tồn tại)."
    )
    assert comments["B4"].startswith(
        "Ô này đang trống nhưng cột «Mã học sinh» là bắt buộc. Mã học sinh trên CSDL"
    )
    assert comments["B5"] == (
        "Dòng này trùng với dòng 2 (cùng «Mã học sinh»). "
        "Mỗi bản ghi chỉ ghi một dòng: xoá hoặc sửa một trong hai dòng."
    )
    assert comments["B6"] == message("students.code_in_other_school", {"code": "HS0005"}, "vi")
    assert comments["D8"].startswith("Ngày sinh 01/01/2003 không hợp với khối 3")
    assert comments["F9"] == "Giới tính «x» không hợp lệ. Ghi «Nam» hoặc «Nữ», hoặc để trống."
    assert sheet["G1"].value == "Kết quả kiểm tra"
    assert sheet["G3"].value == "Bị từ chối (2 lỗi): xem ghi chú ở các ô tô đỏ"
    assert sheet["G10"].value == "Hợp lệ: cập nhật"
    assert sheet["D2"].number_format == "DD/MM/YYYY" and sheet["D3"].value == "31/02/2013"


async def test_the_checked_copy_sent_back_after_fixing_imports(services: Services) -> None:
    await make_world(services)
    check = await check_as(services, "teacher", files.xlsx(ERRORS_FILE[:3]))
    copy = load_workbook(io.BytesIO(annotated_copy(check, "vi")))
    sheet = copy.active
    assert sheet is not None
    sheet["C3"], sheet["D3"] = "Ngô Văn Bình", "28/02/2013"
    buffer = io.BytesIO()
    copy.save(buffer)
    fixed = await check_as(services, "teacher", buffer.getvalue(), "danh-sach (kiểm tra).xlsx")
    assert outcomes(fixed) == {2: "created", 3: "created"}
    assert fixed.ignored_headers == []  # the verdict column is the bot's own


async def test_confirm_writes_only_valid_rows_and_the_same_file_again_changes_nothing(
    services: Services,
) -> None:
    world = await make_world(services)
    content = files.xlsx(ERRORS_FILE)
    check = await check_as(services, "teacher", content)
    assert await count(services, Student) == 6  # nothing written before the confirmation
    assert await count(services, PendingUpload) == 1
    done = await confirm_as(services, "teacher", check)
    assert done.written and (done.counts.created, done.counts.updated) == (1, 1)
    students = await students_by_code(services)
    assert set(students) == {f"HS000{i}" for i in range(1, 7)} | {"HS3001"}
    assert students["HS0001"].class_name == "4A2"
    teacher = world.staff_ids["teacher"]
    async with services.sessionmaker() as session:
        entries = list(await session.scalars(select(AuditLog).where(AuditLog.actor_id == teacher)))
    assert sorted((e.action, e.entity, e.after["code"]) for e in entries) == [
        (AuditAction.CREATE, "student", "HS3001"),
        (AuditAction.UPDATE, "student", "HS0001"),
    ]
    assert await count(services, PendingUpload) == 0

    again = await check_as(services, "teacher", content)
    assert (again.counts.to_write, again.counts.unchanged, again.pending_id) == (0, 2, None)
    assert await count(services, PendingUpload) == 0
    assert await count(services, AuditLog, AuditLog.actor_id == teacher) == 2


async def test_a_corrected_file_updates_only_what_changed(services: Services) -> None:
    await make_world(services)
    rows = [STUDENT_HEADER] + [
        [i, f"HS40{i:02d}", name, date(2013, i, 1), "3A1", "Nam"]
        for i, name in enumerate(["Lê Minh Khang", "Tô Gia Huy", "Vũ Đức Long"], start=1)
    ]
    await confirm_as(services, "teacher", await check_as(services, "teacher", files.xlsx(rows)))
    rows[2][2] = "Tô Gia Hưng"
    corrected = await check_as(services, "teacher", files.xlsx(rows))
    assert outcomes(corrected) == {2: "unchanged", 3: "updated", 4: "unchanged"}
    await confirm_as(services, "teacher", corrected)
    async with services.sessionmaker() as session:
        updates = list(await session.scalars(select(AuditLog).where(AuditLog.action == AuditAction.UPDATE)))
    assert [(u.before["full_name"], u.after["full_name"]) for u in updates] == [("Tô Gia Huy", "Tô Gia Hưng")]


async def test_large_files_are_written_in_slices_in_one_transaction(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storage.services.imports.plans import students as students_plan

    monkeypatch.setattr(students_plan, "WRITE_SLICE", 2)
    await make_world(services)
    rows = [STUDENT_HEADER] + [
        [i, f"HS41{i:02d}", name, date(2013, i, 1), "3A1", "Nữ"]
        for i, name in enumerate(["Lê Thu", "Tô Mai", "Vũ Lan", "Hà Vy", "Lò Na"], start=1)
    ]
    await confirm_as(services, "teacher", await check_as(services, "teacher", files.xlsx(rows)))
    for row in rows[1:]:
        row[4] = "3A2"
    rows[5][4] = "3A1"
    check = await check_as(services, "teacher", files.xlsx(rows))
    assert list(outcomes(check).values()) == ["updated"] * 4 + ["unchanged"]
    await confirm_as(services, "teacher", check)
    students = await students_by_code(services)
    assert [students[f"HS41{i:02d}"].class_name for i in range(1, 6)] == ["3A2"] * 4 + ["3A1"]
    assert await count(services, AuditLog, AuditLog.action == AuditAction.UPDATE) == 4


async def test_a_second_confirm_writes_nothing_and_cancel_drops_the_upload(services: Services) -> None:
    await make_world(services)
    content = files.xlsx([STUDENT_HEADER, [1, "HS5001", "Hà Văn Nam", date(2013, 1, 2), "3A1", "Nam"]])
    check = await check_as(services, "teacher", content)
    await confirm_as(services, "teacher", check)
    with pytest.raises(DomainError) as gone:
        await confirm_as(services, "teacher", check)
    assert gone.value.code == "excel.pending.gone"
    other = await check_as(
        services,
        "teacher",
        files.xlsx([STUDENT_HEADER, [1, "HS5002", "Hà Thu", date(2013, 1, 2), "3A1", ""]]),
    )
    with pytest.raises(DomainError):  # somebody else's upload is not theirs to confirm
        await confirm_as(services, "principal", other)
    assert other.pending_id is not None
    assert (
        await services.imports.discard(other.pending_id, await person(services, "teacher"))
        == "danh-sach.xlsx"
    )
    assert "HS5002" not in await students_by_code(services)


# --- scope -----------------------------------------------------------------------------------------

SCHOOL_ROWS = [
    ["Mã trường", *STUDENT_HEADER],
    ["79785001", 1, "HS6001", "Lê Thị Na", date(2013, 1, 5), "3A1", "Nữ"],
    ["79785101", 2, "HS6002", "Trịnh Văn Khôi", date(2009, 1, 5), "7A2", "Nam"],
    [None, 3, "HS6003", "Kha Thị Lụa", date(2013, 2, 5), "3A1", "Nữ"],
    ["79799999", 4, "HS6004", "Âu Văn Tín", date(2013, 2, 5), "3A1", "Nam"],
]


async def test_a_teacher_cannot_import_rows_of_another_school(services: Services) -> None:
    await make_world(services)
    check = await check_as(services, "teacher", files.xlsx(SCHOOL_ROWS))
    assert outcomes(check) == {2: "created", 3: "rejected", 4: "created", 5: "rejected"}
    assert issues(check)[3] == [("school_code", "excel.row.other_school")]
    assert message("excel.row.other_school", check.rows[1].issues[0].params, "vi").startswith(
        "Dòng này thuộc trường 79785101, không phải trường của bạn (79785001)."
    )


async def test_district_officers_name_the_school_on_every_row(services: Services) -> None:
    await make_world(services)
    with pytest.raises(DomainError) as refused:
        await check_as(
            services,
            "deputy_head",
            files.xlsx([STUDENT_HEADER, [1, "HS6001", "Lê Na", date(2013, 1, 5), "3A1", "Nữ"]]),
        )
    assert refused.value.code == "excel.table.school_column_required"
    check = await check_as(services, "deputy_head", files.xlsx(SCHOOL_ROWS))
    assert outcomes(check) == {2: "created", 3: "created", 4: "rejected", 5: "rejected"}
    assert issues(check)[4] == [("school_code", "excel.cell.required")]
    assert issues(check)[5] == [("school_code", "excel.row.school_unknown")]
    await confirm_as(services, "deputy_head", check)
    students = await students_by_code(services)
    assert students["HS6002"].school_id != students["HS6001"].school_id
    # A primary specialist looks after primary schools only.
    specialist = await check_as(services, "primary_specialist", files.xlsx(SCHOOL_ROWS))
    assert issues(specialist)[3] == [("school_code", "excel.row.school_out_of_scope")]


async def test_roles_without_schools_cannot_import(services: Services) -> None:
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
    staff = await services.staff.by_telegram_id(3001)
    assert staff is not None
    with pytest.raises(AccessDenied):
        await services.imports.scope_for(staff)


# --- the other kinds -------------------------------------------------------------------------------


async def test_needs_import_sets_the_priority_group_and_is_idempotent(services: Services) -> None:
    await make_world(services)
    content = files.xlsx(
        [
            [
                "Mã HS",
                "Họ tên học sinh",
                "Lớp",
                "Nhóm ưu tiên",
                "Cần máy tính",
                "Cần kết nối Internet",
                "Ghi chú",
            ],
            ["HS0001", "nguyen van an", "4A1", "Hộ nghèo", "Có", "Không", ""],
            ["HS0003", "Nguyễn Văn An", "3A2", "cha/me tu vong do covid-19", "x", "x", "Mẹ mất tháng 8"],
            ["HS0002", "Lê Văn Sai", "4A1", "Hộ cận nghèo", "Có", "", ""],
            ["HS0004", "Lê Hoàng Cường", "5A1", "Khó khăn khác", "Không", "Không", ""],
            ["HS9999", "", "", "Hộ nghèo", "Có", "", ""],
            ["HS0005", "Phạm Thị Dung", "8A3", "Giàu", "Có", "", ""],
            [None, "Ai Đó", "4A1", None, "Có", "", ""],
        ]
    )
    check = await check_as(services, "teacher", content)
    assert check.kind is ImportKind.NEEDS
    assert outcomes(check) == {
        2: "created",
        3: "created",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "rejected",
        8: "rejected",
    }
    assert issues(check)[4] == [("full_name", "excel.student.name_mismatch")]
    assert issues(check)[5] == [("needs_device", "needs.nothing_needed")]
    assert issues(check)[6] == [("student_code", "excel.student.unknown")]
    assert issues(check)[7] == [
        ("student_code", "excel.student.other_school"),
        ("category", "excel.cell.priority_invalid"),
    ]
    assert issues(check)[8] == [("student_code", "excel.cell.required"), ("category", "excel.cell.required")]
    await confirm_as(services, "teacher", check)
    students = await students_by_code(services)
    assert students["HS0003"].priority_group is PriorityGroup.COVID_ORPHAN
    async with services.sessionmaker() as session:
        need = await session.scalar(select(NeedRecord).where(NeedRecord.student_id == students["HS0003"].id))
    assert (
        need is not None and need.needs_device and need.needs_connectivity and need.note == "Mẹ mất tháng 8"
    )
    again = await check_as(services, "teacher", content)
    assert (again.counts.unchanged, again.counts.to_write) == (2, 0)


async def test_doses_follow_the_dose_rules(services: Services) -> None:
    await make_world(services)
    header = [
        "Mã học sinh",
        "Họ và tên",
        "Mũi thứ",
        "Ngày tiêm",
        "Loại vắc xin",
        "Tên vắc xin khác",
        "Nơi tiêm",
    ]
    content = files.xlsx(
        [
            header,
            [
                "HS0001",
                "Nguyễn Văn An",
                1,
                date(2021, 10, 1),
                "Comirnaty (Pfizer-BioNTech)",
                None,
                "Tại trường",
            ],
            ["HS0001", "Nguyễn Văn An", 2, "11/10/2021", "comirnaty", None, "tai truong"],
            ["HS0002", None, 1, date(2021, 11, 1), "VAXZEVRIA", None, "Tại địa phương"],
            ["HS0003", None, 1, "20/11/2021", "Vero Cell (Sinopharm)", None, "Nơi khác"],
            ["HS0004", None, 1, date(2021, 11, 2), "Khác / Other", None, "Tại trường"],
            ["HS0004", None, 2, date(2021, 11, 12), "Khác", "Corbevax", "Tại trường"],
            ["HS0002", None, 1, date(2021, 11, 3), "Vero Cell (Sinopharm)", None, "Trên trời"],
        ]
    )
    check = await check_as(services, "teacher", content)
    assert check.kind is ImportKind.DOSES
    assert outcomes(check) == {
        2: "created",
        3: "created",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "created",
        8: "rejected",
    }
    found = issues(check)
    assert found[3] == [("given_on", "vaccines.short_interval")]  # 10 days < 21: a note, still imported
    assert check.rows[1].warned
    assert found[4] == [("given_on", "vaccines.too_young")]
    assert found[5] == [("given_on", "vaccines.future")]
    assert found[6] == [("product_other_name", "vaccines.other_needs_name")]
    assert found[7] == [("dose_number", "vaccines.missing_earlier")]
    assert found[8] == [("place", "excel.cell.place_invalid")]
    sheet = load_workbook(io.BytesIO(annotated_copy(check, "vi"))).active
    assert sheet is not None
    assert sheet["D3"].fill.fgColor.rgb[-6:] == "FFEB9C"  # yellow: a note, not a refusal
    assert sheet["D3"].comment.text.startswith("Lưu ý: Mũi 2 cách mũi 1")
    await confirm_as(services, "teacher", check)
    async with services.sessionmaker() as session:
        doses = list(await session.scalars(select(VaccineDose).order_by(VaccineDose.id)))
    assert [(d.dose_number, d.given_on, d.entered_late) for d in doses] == [
        (1, date(2021, 10, 1), True),
        (2, date(2021, 10, 11), True),
        (2, date(2021, 11, 12), True),
    ]
    assert doses[2].product_other_name == "Corbevax"
    again = await check_as(services, "teacher", content)
    assert (again.counts.unchanged, again.counts.to_write) == (3, 0)


async def test_batches_by_donor_date_and_type_add_new_donors(services: Services) -> None:
    await make_world(services)
    header = [
        "Nguồn",
        "Nhà tài trợ",
        "Loại nhà tài trợ",
        "Ngày nhận",
        "Loại thiết bị",
        "Số lượng",
        "Hãng, model",
    ]
    rows = [
        header,
        [
            "Nguồn khác (4.8.3.2)",
            "Công ty ABC",
            "Doanh nghiệp",
            date(2021, 11, 12),
            "Máy tính xách tay",
            10,
            "Dell",
        ],
        ["Chương trình", None, None, "10/11/2021", "may tinh bang", "5", None],
        ["nguon khac", "Bà Năm Hoa", None, date(2021, 11, 12), "Điện thoại thông minh", 3, None],
        ["Nguồn khác", None, None, date(2021, 11, 12), "Máy tính xách tay", 0, None],
    ]
    check = await check_as(services, "teacher", files.xlsx(rows))
    assert check.kind is ImportKind.BATCHES
    assert outcomes(check) == {2: "created", 3: "created", 4: "rejected", 5: "rejected"}
    assert issues(check)[4] == [("donor_kind", "excel.donor.kind_required")]
    assert issues(check)[5] == [("quantity", "quantity.not_positive")]
    await confirm_as(services, "teacher", check)
    async with services.sessionmaker() as session:
        donors = [d.name for d in await session.scalars(select(Donor))]
        batches = list(await session.scalars(select(DonationBatch).order_by(DonationBatch.id)))
    assert donors == ["Công ty ABC"]
    assert [(b.source, b.quantity, b.device_type) for b in batches] == [
        (DonationSource.OTHER, 10, DeviceType.LAPTOP),
        (DonationSource.PROGRAM, 5, DeviceType.TABLET),
    ]
    rows[1][1] = "CONG TY abc"  # the same donor, typed differently
    rows[2][5] = 6
    again = await check_as(services, "teacher", files.xlsx(rows))
    assert (outcomes(again)[2], outcomes(again)[3]) == ("unchanged", "updated")


async def test_two_imports_of_the_same_batches_at_once_write_them_once(services: Services) -> None:
    import asyncio

    world = await make_world(services)
    rows = [
        ["Nguồn", "Nhà tài trợ", "Loại nhà tài trợ", "Ngày nhận", "Loại thiết bị", "Số lượng"],
        ["Nguồn khác", "Hội Khuyến học", "Tổ chức", date(2021, 11, 12), "Máy tính bảng", 4],
        ["Chương trình", None, None, date(2021, 11, 10), "Máy tính xách tay", 7],
    ]
    content = files.xlsx(rows)
    scope = await services.imports.scope_for_school("79785001")
    assert scope.school_id == world.primary_school_id

    async def run() -> ImportCheck:
        return await services.imports.import_file(scope, "lo.xlsx", content, LIMITS, actor_id=None)

    first, second = await asyncio.gather(run(), run())
    assert sorted([first.counts.created, second.counts.created]) == [0, 2]
    assert sorted([first.counts.unchanged, second.counts.unchanged]) == [0, 2]
    assert await count(services, DonationBatch) == 2
    assert await count(services, Donor) == 1


async def test_handovers_reference_the_batch_and_never_overdraw_it(services: Services) -> None:
    world = await make_world(services)
    batch = await services.donations.create_batch(
        BatchIn(
            source=DonationSource.PROGRAM,
            received_on=date(2021, 11, 10),
            quantity=2,
            device_type=DeviceType.LAPTOP,
        ),
        school_id=world.primary_school_id,
        actor_id=None,
    )
    header = ["Lô thiết bị", "Mã học sinh", "Họ và tên", "Hình thức", "Ngày bàn giao"]
    content = files.xlsx(
        [
            header,
            [
                f"Lô #{batch.number} · 10/11/2021 · Máy tính xách tay",
                "HS0001",
                "Nguyễn Văn An",
                "Tặng",
                date(2021, 11, 12),
            ],
            [batch.id, "HS0002", None, "Cho mượn tạm", "13/11/2021"],
            [batch.id, "HS0003", None, "Tặng", "13/11/2021"],
            ["Lô 999", "HS0004", None, "Tặng", "13/11/2021"],
            [batch.id, "HS0004", None, "Tặng", "09/11/2021"],
        ]
    )
    check = await check_as(services, "teacher", content)
    assert check.kind is ImportKind.HANDOVERS
    assert outcomes(check) == {2: "created", 3: "created", 4: "rejected", 5: "rejected", 6: "rejected"}
    assert issues(check)[4] == [("batch", "devices.batch_exhausted")]
    assert issues(check)[5] == [("batch", "excel.batch.unknown")]
    assert issues(check)[6] == [("handed_on", "devices.handed_before_received")]
    await confirm_as(services, "teacher", check)
    async with services.sessionmaker() as session:
        stored = await session.get(DonationBatch, batch.id)
        assert stored is not None and stored.allocated == 2
    assert await count(services, Handover) == 2
    again = await check_as(services, "teacher", content)
    assert (again.counts.unchanged, again.counts.to_write) == (2, 0)


# --- files that must be refused --------------------------------------------------------------------

GOOD = [STUDENT_HEADER, [1, "HS7001", "Lê Văn Bảy", date(2013, 1, 1), "3A1", "Nam"]]


@pytest.mark.parametrize(
    ("filename", "content", "code"),
    [
        ("danh-sach.csv", files.CSV, "excel.file.csv"),
        ("danh-sach.xlsm", files.xlsm(GOOD), "excel.file.macro"),
        ("danh-sach.xlsx", files.encrypted_workbook(), "excel.file.encrypted"),
        ("danh-sach.xlsx", files.truncated(files.xlsx(GOOD)), "excel.file.corrupted"),
        ("anh-chup.xlsx", files.PNG, "excel.file.not_spreadsheet"),
        (
            "xuat-tu-web.xls",
            b"<html><body><table><tr><td>1</td></tr></table></body></html>",
            "excel.file.html",
        ),
        ("rong.xlsx", b"", "excel.file.empty"),
        ("khong-co-bang.xlsx", files.xlsx([["Ghi chú"], ["Không có gì"]]), "excel.table.not_found"),
        ("thieu-cot.xlsx", files.xlsx([["Mã học sinh", "Họ và tên", "Lớp"]]), "excel.table.missing_columns"),
    ],
)
def test_bad_files_get_their_reply(filename: str, content: bytes, code: str) -> None:
    with pytest.raises(DomainError) as refused:
        read_table(content, filename, LIMITS)
    assert refused.value.code == code
    text = message(refused.value.code, refused.value.params, "vi")
    assert text and "{" not in text and not text.startswith("Không thực hiện được")


def test_missing_columns_are_named_in_the_persons_language() -> None:
    with pytest.raises(DomainError) as refused:
        read_table(files.xlsx([["Mã học sinh", "Họ và tên", "Lớp"]]), "x.xlsx", LIMITS)
    assert message(refused.value.code, refused.value.params, "vi").startswith(
        "Tệp giống mẫu «Danh sách học sinh» nhưng thiếu cột bắt buộc: «Ngày sinh»."
    )
    assert "«Date of birth»" in message(refused.value.code, refused.value.params, "en")


def test_too_big_and_too_many_rows() -> None:
    content = files.xlsx(
        GOOD + [[i, f"HS8{i:03d}", "Lê Văn Tám", date(2013, 1, 1), "3A1", ""] for i in range(5)]
    )
    with pytest.raises(DomainError) as big:
        read_table(content, "x.xlsx", ReadLimits(max_bytes=1024, max_rows=50_000))
    assert big.value.code == "excel.file.too_big" and big.value.params["max_mb"] == "0"
    with pytest.raises(DomainError) as many:
        read_table(content, "x.xlsx", ReadLimits(max_bytes=10 * 2**20, max_rows=5))
    assert many.value.code == "excel.file.too_many_rows"
    assert many.value.params == {"rows": 6, "maximum": 5}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (files.zip_bomb(), "excel.file.zip_bomb"),
        (files.lying_zip(files.xlsx(GOOD)), "excel.file.zip_bomb"),
        (files.lying_zip(files.zip_bomb(), declared=4096), "excel.file.corrupted"),
        (files.billion_laughs(GOOD), "excel.file.unsafe_xml"),
    ],
    ids=["deflate-bomb", "declared-3-GB", "declared-small", "billion-laughs"],
)
def test_bombs_are_refused_without_exhausting_memory(content: bytes, code: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DomainError) as refused:
            read_table(content, "bom.xlsx", LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.code == code
    assert peak < 16 * 2**20, peak  # the file itself plus a few chunks, never the expansion
    assert time.perf_counter() - started < 5


def test_openpyxl_refuses_entities_too() -> None:
    """Templates and checked copies are written with openpyxl; were it ever to read an upload, the
    defusedxml parser it uses refuses the entity declarations."""
    from defusedxml import EntitiesForbidden

    with pytest.raises(ValueError) as refused:  # openpyxl wraps the parser's refusal
        load_workbook(io.BytesIO(files.billion_laughs(GOOD)))
    assert isinstance(refused.value.__cause__, EntitiesForbidden)


# --- the command line ------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    database = tmp_path / "schoolbot.sqlite3"
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert cli_main(list(argv)) == code
        return capsys.readouterr().out

    run("db", "upgrade")
    run("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè")
    run(
        "school",
        "add",
        "--district",
        "NB",
        "--code",
        "79785001",
        "--name",
        "Trường TH Lê Văn Lương",
        "--level",
        "TH",
    )
    return run


def test_cli_template_then_import_with_dry_run_and_annotated_copy(cli: Any, tmp_path: Path) -> None:
    import json

    out = cli("template", "students", "--out", str(tmp_path / "mau.xlsx"), "--school", "79785001")
    assert "mau.xlsx" in out
    workbook = load_workbook(tmp_path / "mau.xlsx")
    data = workbook.worksheets[0]
    data.append([1, "HS9001", "Lê Văn Chín", date(2013, 1, 1), None, "3A1"])
    data.append([2, "HS9002", "Lê Văn Mười", "31/02/2013", None, "3A1"])
    data.append([3, "HS9003", "Lê Thị Mười Một", "01/01/2013", "Nữ", "3A1"])
    workbook.save(tmp_path / "hs.xlsx")

    verdict = json.loads(
        cli("import", str(tmp_path / "hs.xlsx"), "--school", "79785001", "--dry-run", "--json")
    )
    assert verdict["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "rejected": 1, "warned": 0}
    assert verdict["written"] is False
    assert verdict["rows"] == [
        {
            "row": 6,
            "outcome": "rejected",
            "issues": [
                {
                    "column": "date_of_birth",
                    "code": "date.impossible",
                    "warning": False,
                    "message": (
                        "Ngày «31/02/2013» không có trên lịch. "
                        "Kiểm tra lại ngày và tháng (ví dụ 30/02 không tồn tại)."
                    ),
                }
            ],
        }
    ]
    annotated = tmp_path / "hs (kiểm tra).xlsx"
    assert verdict["annotated"] == str(annotated) and annotated.exists()

    out = cli("import", str(tmp_path / "hs.xlsx"), "--school", "79785001")
    assert "Thêm mới: 2" in out and "Dòng 6, cột «Ngày sinh»" in out and "Đã nhập" in out
    out = cli("import", str(tmp_path / "hs.xlsx"), "--school", "79785001")
    assert "Không đổi: 2" in out
    refused = cli("import", str(tmp_path / "missing.xlsx"), code=1)
    assert "Không đọc được tệp" in refused
    without_school = cli("import", str(tmp_path / "hs.xlsx"), code=1)
    assert "Mã trường" in without_school
