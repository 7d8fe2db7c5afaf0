"""CSDL upload files (issue 19): each menu's export read back cell for cell, the round trip through the
project's own import, a replaced layout, marks and changes, the 1-day rule's count."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from openpyxl import Workbook as OpenpyxlWorkbook
from openpyxl import load_workbook
from sqlalchemy import delete, select

from bot.csdl_texts import export_workbook
from bot.round_texts import progress_text
from exports.csdl import build_csdl_workbook, export_token, layout_from_template
from exports.reader import header_keys
from exports.reports import timeliness_columns
from storage.enums import CsdlRecordKind
from storage.errors import DomainError
from storage.models import DonationBatch, Handover, NeedRecord, VaccineDose
from storage.schemas.csdl import (
    FIELDS,
    CsdlExportOut,
    CsdlMenu,
    CsdlState,
    parse_layout,
    shipped_layout,
    shipped_layout_text,
)
from storage.schemas.imports import ImportKind, ImportScope, Outcome, ReadLimits, header_key
from storage.schemas.reports import ReportScope
from storage.services import Services
from storage.services.csdl import CsdlService
from tests.conftest import TZ
from tests.csdl_world import CsdlWorld, at, make_csdl_world
from tests.reports_world import read_table, words

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
IMPORT_KINDS = {
    CsdlRecordKind.NEED: ImportKind.NEEDS,
    CsdlRecordKind.BATCH: ImportKind.BATCHES,
    CsdlRecordKind.HANDOVER: ImportKind.HANDOVERS,
    CsdlRecordKind.DOSE: ImportKind.DOSES,
}
# Fields of the layouts that the import has no column for (informative in the CSDL's file).
NOT_IMPORTED = {"date_of_birth", "received_on", "device_type", "returned_on", "donor_name", "batch_id"}


def rows_of(content: bytes, sheet: str | None = None) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(content))
    worksheet = book[sheet] if sheet else book.worksheets[0]
    return [tuple(row) for row in worksheet.iter_rows(values_only=True)]


async def export_file(
    services: Services, menu: CsdlMenu, *, everything: bool = False
) -> tuple[CsdlExportOut, bytes]:
    csdl = CsdlService.of(services)
    school = await csdl.school_by_code("79785001")
    export = await csdl.export(school, menu, everything=everything)
    return export, export_workbook(export, await csdl.layout(menu), "vi", TZ)


@pytest.fixture
async def cw(services: Services) -> CsdlWorld:
    return await make_csdl_world(services)


# --- layouts --------------------------------------------------------------------------------------


def test_shipped_layouts_are_valid_and_their_headers_known_to_the_import() -> None:
    for menu in CsdlMenu:
        layout = shipped_layout(menu)
        for sheet in layout.sheets:
            keys = header_keys()[IMPORT_KINDS[sheet.records]]
            for column in sheet.columns:
                assert column.field in FIELDS[sheet.records]
                if column.field in NOT_IMPORTED and sheet.records is not CsdlRecordKind.BATCH:
                    continue
                if sheet.records is CsdlRecordKind.BATCH and column.field in ("batch_id",):
                    continue
                wanted = "batch" if column.field == "batch_id" else column.field
                assert keys.get(header_key(column.header)) == wanted, (menu, column.header)


def test_a_layout_is_checked_at_load() -> None:
    text = shipped_layout_text(CsdlMenu.DOSES)
    with pytest.raises(DomainError) as bad_field:
        parse_layout(text.replace("field: place", "field: where"))
    assert bad_field.value.code == "csdl.layout_invalid" and "where" in bad_field.value.params["problem"]
    with pytest.raises(DomainError) as missing_word:
        parse_layout(text.replace('    elsewhere: "Nơi khác"\n', ""))
    assert "elsewhere" in missing_word.value.params["problem"]
    with pytest.raises(DomainError) as other_menu:
        parse_layout(text, CsdlMenu.NEEDS)
    assert other_menu.value.code == "csdl.layout_other_menu"
    with pytest.raises(DomainError):
        parse_layout(text.replace("date_format: dd/mm/yyyy", "date_format: '%d/%m'"))


# --- each menu, cell for cell ---------------------------------------------------------------------


async def test_needs_export_cell_for_cell(services: Services, cw: CsdlWorld) -> None:
    export, content = await export_file(services, CsdlMenu.NEEDS)
    assert export_token(content) == export.token
    rows = rows_of(content, "Nhu cầu hỗ trợ")
    assert rows[0][0] == "DANH SÁCH HỌC SINH CÓ NHU CẦU HỖ TRỢ MÁY TÍNH HỌC TRỰC TUYẾN"
    assert rows[3] == (
        "STT",
        "Mã học sinh",
        "Họ và tên",
        "Ngày sinh",
        "Lớp",
        "Đối tượng",
        "Nhu cầu máy tính",
        "Nhu cầu kết nối Internet",
        "Ghi chú",
    )
    # Sorted by class and name; the other school's need (HS0005) is not in this school's file.
    assert rows[4:] == [
        (1, "HS0001", "Nguyễn Văn An", "14/03/2012", "4A1", "Hộ nghèo", "Có", "Không", None),
        (
            2,
            "HS0002",
            "Trần Thị Bình",
            "02/07/2012",
            "4A1",
            "Hộ cận nghèo",
            "Có",
            "Có",
            "Nhà chưa có Internet",
        ),
        (
            3,
            "HS0004",
            "Lê Hoàng Cường",
            "05/11/2011",
            "5A1",
            "Cha, mẹ tử vong do COVID-19",
            "Không",
            "Có",
            "=cha mất 8/2021",
        ),
    ]
    sheet = load_workbook(io.BytesIO(content))["Nhu cầu hỗ trợ"]
    note = sheet["I7"]
    assert note.data_type == "s" and note.quotePrefix  # person-typed text starting with "=": never a formula


async def test_program_handovers_export_cell_for_cell(services: Services, cw: CsdlWorld) -> None:
    _, content = await export_file(services, CsdlMenu.PROGRAM_HANDOVERS)
    rows = rows_of(content)
    assert rows[3][:4] == ("STT", "Mã đợt tiếp nhận", "Ngày tiếp nhận", "Loại thiết bị")
    batch = cw.program_batch
    # Only the programme's batch (4.8.3.1); a gift and a loan, each spelt as the layout says.
    assert rows[4:] == [
        (
            1,
            batch,
            "01/11/2021",
            "Máy tính xách tay",
            "HS0001",
            "Nguyễn Văn An",
            "14/03/2012",
            "4A1",
            "Tặng",
            "02/11/2021",
            None,
            None,
        ),
        (
            2,
            batch,
            "01/11/2021",
            "Máy tính xách tay",
            "HS0002",
            "Trần Thị Bình",
            "02/07/2012",
            "4A1",
            "Cho mượn tạm",
            "03/11/2021",
            None,
            "Mượn đến hết học trực tuyến",
        ),
    ]


async def test_other_donations_export_cell_for_cell(services: Services, cw: CsdlWorld) -> None:
    _, content = await export_file(services, CsdlMenu.OTHER_DONATIONS)
    assert load_workbook(io.BytesIO(content)).sheetnames == ["Đợt tài trợ", "Bàn giao 4.8.3.2"]
    batches = rows_of(content, "Đợt tài trợ")
    batch = cw.other_batch
    assert batches[4:] == [
        (
            1,
            batch,
            "Nguồn khác (4.8.3.2)",
            "Công ty TNHH ABC",
            "Doanh nghiệp",
            "0909 123 456",
            "05/11/2021",
            "Máy tính bảng",
            3,
            "Samsung Tab A7",
            "Đã qua sử dụng",
            "3GB RAM, 32GB",
            None,
        ),
    ]
    handovers = rows_of(content, "Bàn giao 4.8.3.2")
    assert handovers[3] == (
        "STT",
        "Mã đợt tài trợ",
        "Tên nhà tài trợ",
        "Mã học sinh",
        "Họ và tên",
        "Ngày sinh",
        "Lớp",
        "Hình thức bàn giao",
        "Ngày bàn giao",
        "Ngày trả lại",
        "Ghi chú",
    )
    assert handovers[4:] == [
        (
            1,
            batch,
            "Công ty TNHH ABC",
            "HS0003",
            "Nguyễn Văn An",
            "20/01/2013",
            "3A2",
            "Tặng",
            "06/11/2021",
            None,
            None,
        ),
    ]


async def test_doses_export_cell_for_cell(services: Services, cw: CsdlWorld) -> None:
    _, content = await export_file(services, CsdlMenu.DOSES)
    rows = rows_of(content, "Tiêm vắc xin")
    assert rows[3] == (
        "STT",
        "Mã học sinh",
        "Họ và tên",
        "Ngày sinh",
        "Lớp",
        "Mũi tiêm số",
        "Ngày tiêm",
        "Loại vắc xin",
        "Tên vắc xin khác",
        "Nơi tiêm",
    )
    assert rows[4:] == [
        (
            1,
            "HS0001",
            "Nguyễn Văn An",
            "14/03/2012",
            "4A1",
            1,
            "01/10/2021",
            "Comirnaty (Pfizer-BioNTech)",
            None,
            "Tại cộng đồng",
        ),
        (
            2,
            "HS0001",
            "Nguyễn Văn An",
            "14/03/2012",
            "4A1",
            2,
            "22/10/2021",
            "Comirnaty (Pfizer-BioNTech)",
            None,
            "Tại trường",
        ),
        (
            3,
            "HS0002",
            "Trần Thị Bình",
            "02/07/2012",
            "4A1",
            1,
            "01/11/2021",
            "Khác",
            "Sinopharm lô 2",
            "Nơi khác",
        ),
    ]


# --- the round trip through the project's own import ----------------------------------------------


def only_sheet(content: bytes, keep: str) -> bytes:
    """The workbook with one sheet: the import reads one table per file."""
    book = load_workbook(io.BytesIO(content))
    for name in list(book.sheetnames):
        if name != keep:
            del book[name]
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def reimport(services: Services, cw: CsdlWorld, content: bytes, *, dry_run: bool = True) -> Any:
    scope = ImportScope(school_id=cw.world.primary_school_id, school_code="79785001")
    return await services.imports.import_file(
        scope, "csdl.xlsx", content, LIMITS, actor_id=None, dry_run=dry_run
    )


async def test_round_trip_every_menu_reads_back_as_the_same_records(
    services: Services, cw: CsdlWorld
) -> None:
    cases = [
        (CsdlMenu.NEEDS, None, ImportKind.NEEDS, 3),
        (CsdlMenu.PROGRAM_HANDOVERS, None, ImportKind.HANDOVERS, 2),
        (CsdlMenu.OTHER_DONATIONS, "Đợt tài trợ", ImportKind.BATCHES, 1),
        (CsdlMenu.OTHER_DONATIONS, "Bàn giao 4.8.3.2", ImportKind.HANDOVERS, 1),
        (CsdlMenu.DOSES, None, ImportKind.DOSES, 3),
    ]
    for menu, sheet, kind, count in cases:
        _, content = await export_file(services, menu, everything=True)
        if sheet is not None:
            content = only_sheet(content, sheet)
        check = await reimport(services, cw, content)
        assert check.kind is kind, menu
        # Every row is recognised as the record it came from, field for field: nothing to write.
        assert [(r.outcome, r.issues) for r in check.rows] == [(Outcome.UNCHANGED, [])] * count, (menu, sheet)


async def test_round_trip_recreates_deleted_needs_and_doses(services: Services, cw: CsdlWorld) -> None:
    def fields(rows: Any, names: tuple[str, ...]) -> set[tuple[Any, ...]]:
        return {tuple(getattr(row, n) for n in names) for row in rows}

    need_fields = ("student_id", "category", "needs_device", "needs_connectivity", "note")
    dose_fields = ("student_id", "dose_number", "given_on", "product_id", "product_other_name", "place")
    _, needs = await export_file(services, CsdlMenu.NEEDS)
    _, doses = await export_file(services, CsdlMenu.DOSES)
    school_students = [cw.world.student_ids[c] for c in ("HS0001", "HS0002", "HS0003", "HS0004")]
    async with services.sessionmaker.begin() as session:
        before_needs = fields(
            await session.scalars(select(NeedRecord).where(NeedRecord.student_id.in_(school_students))),
            need_fields,
        )
        before_doses = fields(
            await session.scalars(select(VaccineDose).where(VaccineDose.student_id.in_(school_students))),
            dose_fields,
        )
        await session.execute(delete(NeedRecord).where(NeedRecord.student_id.in_(school_students)))
        await session.execute(delete(VaccineDose).where(VaccineDose.student_id.in_(school_students)))
    for content in (needs, doses):
        check = await reimport(services, cw, content, dry_run=False)
        assert check.counts.created == len(check.rows) and not check.counts.rejected
    async with services.sessionmaker() as session:
        after_needs = fields(
            await session.scalars(select(NeedRecord).where(NeedRecord.student_id.in_(school_students))),
            need_fields,
        )
        after_doses = fields(
            await session.scalars(select(VaccineDose).where(VaccineDose.student_id.in_(school_students))),
            dose_fields,
        )
    assert after_needs == before_needs and after_doses == before_doses


# --- a replaced layout ----------------------------------------------------------------------------


async def test_a_replaced_layout_changes_the_export_without_a_code_change(
    services: Services, cw: CsdlWorld
) -> None:
    csdl = CsdlService.of(services)
    text = shipped_layout_text(CsdlMenu.DOSES)
    # Reorder: «Nơi tiêm» right after «Mã học sinh»; rename «Loại vắc xin»; spell a place differently.
    place = (
        '      - header: "Nơi tiêm"          # at school, in the community, elsewhere\n'
        "        field: place\n        width: 14\n"
    )
    assert place in text
    text = text.replace(place, "")
    text = text.replace(
        "        field: student_code\n",
        "        field: student_code\n" + place.replace("      - header", "      - header", 1),
        1,
    )
    text = text.replace('"Loại vắc xin"', '"Tên vắc xin"').replace('"Tại cộng đồng"', '"Tại địa phương"')
    await csdl.replace_layout(parse_layout(text, CsdlMenu.DOSES))
    assert await csdl.layout_source(CsdlMenu.DOSES) == "custom"
    _, content = await export_file(services, CsdlMenu.DOSES)
    rows = rows_of(content)
    assert rows[3][:3] == ("STT", "Mã học sinh", "Nơi tiêm")
    assert rows[3][8] == "Tên vắc xin"
    assert rows[4][:3] == (1, "HS0001", "Tại địa phương") and rows[4][8] == "Comirnaty (Pfizer-BioNTech)"
    # Back to the shipped one.
    assert await csdl.reset_layout(CsdlMenu.DOSES)
    _, content = await export_file(services, CsdlMenu.DOSES)
    assert rows_of(content)[3][2] == "Họ và tên"


async def test_a_layout_from_a_real_template_maps_its_header_row(services: Services, cw: CsdlWorld) -> None:
    template = OpenpyxlWorkbook()
    sheet = template.active
    assert sheet is not None
    sheet.title = "Mau nhap"
    sheet.append(["MẪU NHẬP HỒ SƠ TIÊM VẮC-XIN"])
    sheet.append([])
    sheet.append(
        [
            "STT",
            "Mã định danh",
            "Mã học sinh",
            "Họ tên học sinh",
            "Mũi thứ",
            "Ngày tiêm",
            "Vắc xin",
            "Nơi tiêm",
        ]
    )
    buffer = io.BytesIO()
    template.save(buffer)
    base = shipped_layout(CsdlMenu.DOSES)
    layout = layout_from_template(buffer.getvalue(), "mau-4.9.1.xlsx", base)
    columns = layout.sheets[0].columns
    assert layout.sheets[0].name == "Mau nhap" and layout.sheets[0].header_row == 3
    assert [(c.header, c.field) for c in columns] == [
        ("STT", "row_number"),
        ("Mã định danh", None),  # a column of the CSDL the bot has no value for: kept, left blank
        ("Mã học sinh", "student_code"),
        ("Họ tên học sinh", "full_name"),
        ("Mũi thứ", "dose_number"),
        ("Ngày tiêm", "given_on"),
        ("Vắc xin", "product"),
        ("Nơi tiêm", "place"),
    ]
    csdl = CsdlService.of(services)
    await csdl.replace_layout(layout)
    _, content = await export_file(services, CsdlMenu.DOSES)
    rows = rows_of(content, "Mau nhap")
    assert rows[0][0] == "MẪU NHẬP HỒ SƠ TIÊM VẮC-XIN"
    assert rows[3] == (
        1,
        None,
        "HS0001",
        "Nguyễn Văn An",
        1,
        "01/10/2021",
        "Comirnaty (Pfizer-BioNTech)",
        "Tại cộng đồng",
    )


# --- uploaded or not ------------------------------------------------------------------------------


async def test_mark_uploaded_then_a_change_brings_back_only_that_record(
    services: Services, cw: CsdlWorld
) -> None:
    csdl = CsdlService.of(services)
    school = await csdl.school_by_code("79785001")
    first = await csdl.export(school, CsdlMenu.DOSES)
    assert first.count == 3
    result = await csdl.mark_uploaded(export_id=first.id)
    assert (result.marked, result.already) == (3, False)
    again = await csdl.mark_uploaded(export_id=first.id)
    assert again.already and again.marked == 0
    assert (await csdl.export(school, CsdlMenu.DOSES)).count == 0  # nothing left to upload

    services.clock.advance(timedelta(hours=2))
    async with services.sessionmaker.begin() as session:
        dose = await session.get(VaccineDose, cw.doses[("HS0001", 2)])
        assert dose is not None
        dose.given_on, dose.updated_at = date(2021, 10, 23), services.clock.now()
        # A write that changes none of the uploaded fields does not bring a record back.
        other = await session.get(VaccineDose, cw.doses[("HS0001", 1)])
        assert other is not None
        other.updated_at = services.clock.now()
    second = await csdl.export(school, CsdlMenu.DOSES)
    assert [(r.id, r.state, r.changed) for r in second.records] == [
        (cw.doses[("HS0001", 2)], CsdlState.CHANGED, ["given_on"])
    ]
    content = export_workbook(second, await csdl.layout(CsdlMenu.DOSES), "vi", TZ)
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    assert sheet["G5"].value == "23/10/2021"
    assert sheet["A5"].comment is not None and "ngày tiêm" in sheet["A5"].comment.text
    # Everything, on request: all three, two of them already uploaded.
    everything = await csdl.export(school, CsdlMenu.DOSES, everything=True)
    assert sorted(r.state.value for r in everything.records) == ["changed", "uploaded", "uploaded"]
    # Marking the older file again cannot hide the change: it was marked already.
    await csdl.mark_uploaded(export_id=second.id)
    assert (await csdl.export(school, CsdlMenu.DOSES)).count == 0


async def test_not_in_csdl_after_one_day_per_school(services: Services, cw: CsdlWorld) -> None:
    csdl = CsdlService.of(services)
    world = cw.world
    ids = [world.primary_school_id, world.secondary_school_id]
    found = await csdl.not_in_csdl(ids, with_names=True)
    # Primary: 3 needs, 1 other batch, 3 handovers, 3 doses; programme batches are the Ministry's.
    assert found[world.primary_school_id].count == 10
    assert found[world.secondary_school_id].count == 2
    assert found[world.secondary_school_id].names == ["Phạm Thị Dung (HS0005)"]
    school = await csdl.school_by_code("79785001")
    await csdl.mark_uploaded(export_id=(await csdl.export(school, CsdlMenu.DOSES)).id)
    assert (await csdl.not_in_csdl(ids))[world.primary_school_id].count == 7
    # A record entered yesterday is not late yet; one entered the day before yesterday is.
    async with services.sessionmaker.begin() as session:
        await session.execute(delete(NeedRecord).where(NeedRecord.id == cw.needs["HS0004"]))
        for day, code in ((date(2021, 11, 14), "HS0003"), (date(2021, 11, 13), "HS0004")):
            session.add(
                NeedRecord(
                    student_id=world.student_ids[code],
                    category="other_hardship",
                    needs_device=True,
                    opened_on=day,
                    changed_on=day,
                    entered_at=at(day, 23),
                )
            )
    assert (await csdl.not_in_csdl(ids))[world.primary_school_id].count == 7  # -1 deleted, +1 late
    status = await csdl.status(school)
    needs = next(m for m in status.menus if m.menu is CsdlMenu.NEEDS)
    assert (needs.new, needs.overdue) == (4, 3)
    assert status.overdue == 7
    # The timeliness report counts them per school, per level and in all.
    report = await services.reports.build("timeliness", ReportScope.district(world.district_id))
    table = read_table(load_workbook(io.BytesIO(report.content)), "timeliness", timeliness_columns(words()))
    assert {row["school_code"]: row["not_in_csdl"] for row in table.rows} == {"79785001": 7, "79785101": 2}
    assert table.totals[-1]["not_in_csdl"] == 9


async def test_a_changed_marked_record_is_late_again_after_a_day(services: Services, cw: CsdlWorld) -> None:
    csdl = CsdlService.of(services)
    school = await csdl.school_by_code("79785001")
    await csdl.mark_uploaded(export_id=(await csdl.export(school, CsdlMenu.PROGRAM_HANDOVERS)).id)
    services.clock.advance(timedelta(minutes=5))
    async with services.sessionmaker.begin() as session:
        handover = await session.get(Handover, cw.handovers["HS0002"])
        assert handover is not None
        handover.returned_on, handover.updated_at = date(2021, 11, 15), services.clock.now()
    before = (await csdl.not_in_csdl([school.id]))[school.id].count
    services.clock.advance(timedelta(days=2))
    after = (await csdl.not_in_csdl([school.id], with_names=True))[school.id]
    assert after.count == before + 1 and "Trần Thị Bình (HS0002)" in after.names


async def test_the_progress_board_shows_records_not_in_csdl(services: Services, cw: CsdlWorld) -> None:
    from storage.schemas.rounds import RoundIn

    rnd = await services.rounds.create_round(
        RoundIn(
            name="Đợt 15/11",
            period_start=date(2021, 11, 1),
            period_end=date(2021, 11, 14),
            submit_deadline=datetime(2021, 11, 15, 15, 30, tzinfo=TZ),
            approve_deadline=datetime(2021, 11, 16, 12, 0, tzinfo=TZ),
            compile_deadline=datetime(2021, 11, 16, 17, 0, tzinfo=TZ),
        ),
        district_id=cw.world.district_id,
        actor_id=None,
    )
    progress = await services.rounds.progress(rnd.id)
    overdue = await CsdlService.of(services).not_in_csdl([s.school_id for s in progress.schools])
    text = progress_text(progress, "vi", TZ, {k: v.count for k, v in overdue.items()})
    assert "🗂 Chưa có trên CSDL sau 01 ngày: 12 bản ghi." in text
    line = next(line for line in text.split("\n") if "79785001" in line)
    assert line.endswith("🗂 10 chưa lên CSDL")


async def test_the_principal_reminder_names_records_not_in_csdl(services: Services, cw: CsdlWorld) -> None:
    from conversations.reminders import reminder_text
    from storage.schemas.rounds import RoundIn

    await services.rounds.create_round(
        RoundIn(
            name="Đợt 15/11",
            period_start=date(2021, 11, 1),
            period_end=date(2021, 11, 14),
            submit_deadline=datetime(2021, 11, 15, 15, 30, tzinfo=TZ),
            approve_deadline=datetime(2021, 11, 16, 12, 0, tzinfo=TZ),
            compile_deadline=datetime(2021, 11, 16, 17, 0, tzinfo=TZ),
        ),
        district_id=cw.world.district_id,
        actor_id=None,
    )
    due = await services.rounds.due_reminders(hours_before=(24, 2), quiet_start=21, quiet_end=7)
    principal = next(r for r in due if r.staff_id == cw.world.staff_ids["principal"])
    text = reminder_text(principal)
    assert "🗂 Còn 10 bản ghi đã nhập vào bot quá 1 ngày mà chưa có trên CSDL: " in text
    assert "Nguyễn Văn An (HS0001)" in text and "/csdl" in text


def test_the_workbook_writer_is_plain_rows_and_bytes() -> None:
    from storage.schemas.csdl import CsdlRecord

    layout = shipped_layout(CsdlMenu.NEEDS)
    record = CsdlRecord(
        CsdlRecordKind.NEED,
        7,
        {
            "student_code": "0123",
            "full_name": "@An",
            "category": "poor",
            "needs_device": True,
            "needs_connectivity": False,
            "note": "+84 909",
            "date_of_birth": date(2012, 1, 2),
            "class_name": "4A1",
        },
        {},
    )
    content = build_csdl_workbook(layout, [(CsdlRecordKind.NEED, [record])], token="abc", tz=TZ)
    assert export_token(content) == "abc"
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    assert [c.value for c in sheet[5]] == [
        1,
        "0123",
        "@An",
        "02/01/2012",
        "4A1",
        "Hộ nghèo",
        "Có",
        "Không",
        "+84 909",
    ]
    assert sheet["C5"].quotePrefix and sheet["I5"].quotePrefix and not sheet["B5"].quotePrefix
    _ = DonationBatch  # the batches' records are covered by the other donations' test
