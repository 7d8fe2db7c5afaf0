"""Uploads that would cost the bot its memory: sheets spanning far more rows or columns than a real
list (one cell at XFD1048576 in a 2 KB file made calamine allocate 512 GiB and abort the process),
refused before any grid is built; and whatever the checks miss, read by a worker process with a
memory cap whose death is a clean refusal. Also: the checked copy keeps formula-looking text as text.

Every file that could hurt is read through `exports.upload_worker` (as the bot reads it), so a
regression fails a test instead of killing pytest."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.cli import main as cli_main
from bot.import_texts import annotated_copy
from exports.reader import read_table, sheet_row_limit
from exports.upload_worker import read_in_worker
from storage.errors import DomainError
from storage.models import Student
from storage.schemas.imports import ReadLimits
from storage.services import Services
from tests import excel_files as files
from tests.chat import Harness
from tests.factories import make_world

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
HEADER = ["STT", "Mã học sinh", "Họ và tên", "Ngày sinh", "Lớp"]
ROWS = [
    HEADER,
    [1, "HS8001", "Nguyễn Thị Hồng", "04/04/2013", "3A1"],
    [2, "HS8002", "Trần Bảo Châu", "08/07/2014", "2A3"],
    [3, "HS8003", "Đỗ Minh Khôi", "09/01/2012", "4A1"],
]
ROW_LIMIT = sheet_row_limit(LIMITS)


def huge_cell() -> bytes:
    """The tester's file: one valid row and a single cell at row 1,048,576, column 16,384."""
    return files.raw_xlsx(ROWS[:2], far_cells=[(1_048_576, 16_384, "x")], dimension="A1:XFD1048576")


def refused(content: bytes, limits: ReadLimits = LIMITS, filename: str = "x.xlsx") -> DomainError:
    outcome = asyncio.run(read_in_worker(content, filename, limits))
    print(f"{filename}: worker exit {outcome.returncode}, peak RSS {outcome.peak_rss_kb // 1024} MB")
    assert outcome.error is not None, "the file was read"
    return outcome.error


# --- each shape, refused before any grid is built -------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename", "rows", "columns"),
    [
        pytest.param(huge_cell(), "x.xlsx", 1_048_576, 16_384, id="xlsx-cell-at-XFD1048576"),
        pytest.param(
            files.raw_xlsx(ROWS[:2], far_cells=[(1_048_576, 16_384, "x")], dimension="A1:E2"),
            "x.xlsx",
            1_048_576,
            16_384,
            id="xlsx-far-cell-under-a-small-dimension",
        ),
        pytest.param(
            files.raw_xlsx(ROWS[:2], dimension="A1:XFD1048576"),
            "x.xlsx",
            1_048_576,
            16_384,
            id="xlsx-declared-dimension",
        ),
        pytest.param(
            files.raw_xlsx(ROWS, far_cells=[(50_000, 2_000, "x")]),
            "x.xlsx",
            50_000,
            2_000,
            id="xlsx-50000x2000",
        ),
        pytest.param(
            files.raw_xlsx(ROWS, far_cells=[(3_000, 16_384, "x")]),
            "x.xlsx",
            3_000,
            16_384,
            id="xlsx-3000x16384",
        ),
        pytest.param(
            files.raw_xlsx(
                [],
                sheet_data='<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c>'
                + "<c/>" * 300
                + "</row>",
            ),
            "x.xlsx",
            1,
            301,
            id="xlsx-cells-without-references",
        ),
        pytest.param(files.xls_with_cell(65_535, 255), "x.xls", 65_536, 256, id="xls-cell-at-65535-255"),
        pytest.param(
            files.ods(
                ROWS,
                extra_rows=(
                    '<table:table-row><table:table-cell table:number-columns-repeated="16000"/>'
                    '<table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell>'
                    "</table:table-row>"
                ),
            ),
            "x.ods",
            5,
            16_001,
            id="ods-repeated-columns",
        ),
        pytest.param(
            files.ods(
                ROWS,
                extra_rows=(
                    '<table:table-row table:number-rows-repeated="1000000">'
                    '<table:table-cell office:value-type="float" office:value="1"><text:p>1</text:p>'
                    "</table:table-cell></table:table-row>"
                ),
            ),
            "x.ods",
            1_000_004,
            5,
            id="ods-repeated-rows",
        ),
    ],
)
def test_a_sheet_spanning_too_much_is_refused_before_it_is_read(
    content: bytes, filename: str, rows: int, columns: int
) -> None:
    error = refused(content, filename=filename)
    assert error.code == "excel.file.sheet_too_large"
    # The first extent over a limit: the scan stops there.
    assert error.params["rows"] <= rows and error.params["columns"] <= columns
    assert error.params["rows"] > ROW_LIMIT or error.params["columns"] > LIMITS.max_columns
    assert error.params["max_rows"] == ROW_LIMIT and error.params["max_columns"] == 200


def test_the_refusal_says_the_size_and_the_limits_in_one_vietnamese_line() -> None:
    from bot.errors import render_error

    text = render_error(refused(huge_cell()), "vi")
    assert text.startswith("Bảng tính quá lớn: 1048576 hàng × 16384 cột; tối đa 51032 hàng × 200 cột.")
    assert "\n" not in text


def test_the_checks_never_run_the_parser_on_a_refused_sheet() -> None:
    """In this process (a regression here would abort pytest: the cell stays within 2 GB)."""
    content = files.raw_xlsx(ROWS, far_cells=[(2_000, 5_000, "x")])  # 10 M cells: 320 MB in calamine
    with pytest.raises(DomainError) as caught:
        read_table(content, "x.xlsx", LIMITS)
    assert caught.value.code == "excel.file.sheet_too_large"


def test_sheets_within_the_limits_still_read_in_every_format() -> None:
    """Empty repeats (LibreOffice ends every sheet with them), a far cell just within the limits, and
    the ministry's .xls with one more cell inside its sheet."""
    within = [
        ("a.xlsx", files.raw_xlsx(ROWS, far_cells=[(51_000, 200, "ghi chú")], dimension="A1:GR51000")),
        (
            "b.ods",
            files.ods(
                ROWS,
                extra_rows=(
                    '<table:table-row table:number-rows-repeated="1048570">'
                    '<table:table-cell table:number-columns-repeated="16000"/></table:table-row>'
                ),
            ),
        ),
        ("c.xls", files.xls_with_cell(40, 10)),
        ("d.xlsx", files.xlsx(ROWS)),
    ]
    for filename, content in within:
        outcome = asyncio.run(read_in_worker(content, filename, LIMITS))
        assert outcome.error is None, (filename, outcome.error)
        assert outcome.table is not None and len(outcome.table.data_rows) >= 1
        print(f"{filename}: peak RSS {outcome.peak_rss_kb // 1024} MB")


def test_columns_are_capped_by_the_limits() -> None:
    content = files.raw_xlsx(ROWS, far_cells=[(2, 30, "x")])
    assert (
        refused(content, ReadLimits(LIMITS.max_bytes, LIMITS.max_rows, max_columns=20)).params["columns"]
        == 30
    )
    outcome = asyncio.run(read_in_worker(content, "x.xlsx", LIMITS))
    assert outcome.table is not None


# --- the worker: a file can cost at most its cap, never the bot ------------------------------------


def test_a_worker_killed_by_its_memory_cap_is_a_clean_refusal() -> None:
    """Checks opened wide (16,384 columns allowed), so calamine builds the 50,000 × 2,000 grid (3.2 GB)
    and dies at the 300 MB cap: a refusal, and this process is untouched."""
    wide_open = ReadLimits(LIMITS.max_bytes, LIMITS.max_rows, max_columns=16_384, worker_max_mb=300)
    content = files.raw_xlsx(ROWS, far_cells=[(50_000, 2_000, "x")])
    outcome = asyncio.run(read_in_worker(content, "x.xlsx", wide_open))
    assert outcome.error is not None and outcome.error.code == "excel.file.too_complex"
    assert outcome.returncode != 0  # killed (SIGABRT from Rust's allocator) or MemoryError
    assert outcome.table is None


async def test_the_service_refuses_the_wide_file_and_imports_nothing(services: Services) -> None:
    await make_world(services)
    scope = await services.imports.scope_for_school("79785001")
    content = files.raw_xlsx(ROWS, far_cells=[(3_000, 16_384, "x")])  # the tester's: 3 valid rows
    with pytest.raises(DomainError) as caught:
        await services.imports.import_file(scope, "rong.xlsx", content, LIMITS, actor_id=None)
    assert caught.value.code == "excel.file.sheet_too_large"
    async with services.sessionmaker() as session:
        imported = await session.scalar(
            select(func.count()).select_from(Student).where(Student.code.like("HS800%"))
        )
    assert imported == 0
    wide_open = ReadLimits(LIMITS.max_bytes, LIMITS.max_rows, max_columns=16_384, worker_max_mb=300)
    with pytest.raises(DomainError) as caught:
        await services.imports.check(scope, "rong.xlsx", content, wide_open)
    assert caught.value.code == "excel.file.too_complex"


async def test_the_bot_refuses_the_file_and_keeps_answering_other_chats(
    services: Services, harness: Harness
) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.upload("hoc-sinh.xlsx", huge_cell())
    assert teacher.last_text().startswith("Bảng tính quá lớn: 1048576 hàng × 16384 cột")
    principal = harness.person("principal")
    await principal.send("/help")
    assert principal.texts(), "the bot answered another chat after the file"
    teacher.new_texts()
    await teacher.upload("hoc-sinh.xlsx", files.xlsx(ROWS))  # and the same chat still works
    assert any("• Thêm mới: 3" in text for text in teacher.new_texts())


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
    return run


def test_the_command_line_prints_one_line_and_fails_instead_of_aborting(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rong.xlsx"
    path.write_bytes(huge_cell())
    out = cli("import", str(path), "--dry-run", code=1)
    assert out.startswith("Bảng tính quá lớn: 1048576 hàng × 16384 cột") and out.count("\n") == 1
    # The checks opened wide by the settings: the worker dies at its cap, still one line.
    monkeypatch.setenv("IMPORT_MAX_COLUMNS", "16384")
    monkeypatch.setenv("IMPORT_WORKER_MAX_MB", "300")
    path.write_bytes(files.raw_xlsx(ROWS, far_cells=[(50_000, 2_000, "x")]))
    out = cli("import", str(path), "--dry-run", code=1)
    assert out.startswith("Tệp quá lớn hoặc quá phức tạp") and out.count("\n") == 1


# --- the checked copy keeps formula-looking text as text --------------------------------------------


async def test_the_checked_copy_quotes_text_that_looks_like_a_formula(services: Services) -> None:
    await make_world(services)
    scope = await services.imports.scope_for_school("79785001")
    risky = ['=HYPERLINK("http://x","y")', "+84 912", "-2+3", "@SUM(A1)", "\t=1+1"]
    rows = [HEADER] + [
        [index, f"HS81{index:02d}", name, "31/02/2013", "3A1"] for index, name in enumerate(risky, start=1)
    ]
    check = await services.imports.check(scope, "cong-thuc.xlsx", files.raw_xlsx(rows), LIMITS)
    assert check.needs_annotated_copy
    sheet = load_workbook(io.BytesIO(annotated_copy(check, "vi"))).active
    assert sheet is not None
    for offset, name in enumerate(risky):
        cell = sheet.cell(row=2 + offset, column=3)
        assert cell.value == name and cell.data_type == "s"
        assert cell.quotePrefix, name
    plain = sheet.cell(row=2, column=2)
    assert plain.value == "HS8101" and not plain.quotePrefix
