"""/csdl in the chat (the school's technical person, the principal) and `schoolbot csdl` on the
command line: the file of what is not yet in the CSDL, «Đã tải lên CSDL», and only changes after."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from bot.cli import main
from storage.clock import Clock
from storage.db import create_engine
from storage.enums import Role
from storage.models import Staff, VaccineDose
from storage.services import Services, build_services
from tests.chat import Harness, label
from tests.conftest import TZ
from tests.csdl_world import make_csdl_world

TECH_ID = 3001


async def add_tech_support(services: Services, school_id: int | None) -> None:
    async with services.sessionmaker.begin() as session:
        session.add(
            Staff(
                telegram_user_id=TECH_ID,
                full_name="Trần Kim Ngân",
                role=Role.TECH_SUPPORT,
                school_id=school_id,
                district_id=None,
            )
        )


async def test_tech_support_gets_the_file_marks_it_and_then_only_changes_come_back(
    services: Services, harness: Harness
) -> None:
    made = await make_csdl_world(services)
    await add_tech_support(services, made.world.primary_school_id)
    tech = harness.person(str(TECH_ID))
    await tech.send("/help")
    assert "/csdl" in tech.last_text() and "/handover" not in tech.last_text()
    await tech.send("/csdl")
    status = tech.last_text()
    assert "🗂 Tệp tải lên CSDL toàn ngành — Trường TH Lê Văn Lương (79785001)" in status
    assert "• 4.9.1 Mũi tiêm vắc xin: 3 mới, 0 đã thay đổi, 0 đã có trên CSDL." in status
    assert "⚠️ 10 bản ghi đã nhập vào bot quá 1 ngày mà chưa có trên CSDL" in status
    assert tech.buttons() == [
        "4.8.1 Nhu cầu hỗ trợ (3)",
        "4.8.3.1 Bàn giao máy Chương trình (2)",
        "4.8.3.2 Tài trợ nguồn khác (2)",
        "4.9.1 Mũi tiêm vắc xin (3)",
    ]

    await tech.tap("4.9.1 Mũi tiêm vắc xin (3)")
    name, content = tech.last_document()
    assert name.startswith("csdl-4.9.1-79785001-") and name.endswith(".xlsx")
    rows = list(load_workbook(io.BytesIO(content)).worksheets[0].iter_rows(min_row=5, values_only=True))
    assert [row[1] for row in rows] == ["HS0001", "HS0001", "HS0002"]
    assert "→ 4.9. Quản lý tiêm vắc-xin của học sinh → 4.9.1. Nhập hồ sơ tiêm vắc-xin" in tech.last_text()
    assert tech.buttons() == [label("csdl.button_mark")]
    await tech.tap(label("csdl.button_mark"))
    assert tech.last_text().startswith("✅ Đã đánh dấu 3 bản ghi (4.9.1 Mũi tiêm vắc xin) là đã có trên CSDL")
    assert "Trần Kim Ngân" in tech.last_text()

    # Nothing left: the bot says so and offers the whole file.
    await tech.send("/csdl")
    await tech.tap("4.9.1 Mũi tiêm vắc xin (0)")
    assert tech.last_text().startswith("4.9.1 Mũi tiêm vắc xin: không có bản ghi nào cần tải lên")
    assert tech.buttons() == ["📄 Xuất tất cả 3 bản ghi"]

    # A dose corrected in the bot comes back alone, saying what changed.
    async with services.sessionmaker.begin() as session:
        dose = await session.get(VaccineDose, made.doses[("HS0002", 1)])
        assert dose is not None
        dose.place, dose.updated_at = "school", services.clock.now()
    await tech.send("/csdl")
    await tech.tap("4.9.1 Mũi tiêm vắc xin (1)")
    _, content = tech.last_document()
    rows = list(load_workbook(io.BytesIO(content)).worksheets[0].iter_rows(min_row=5, values_only=True))
    assert [(row[1], row[9]) for row in rows] == [("HS0002", "Tại trường")]
    assert "• mũi tiêm · Trần Thị Bình (HS0002): nơi tiêm" in tech.last_text()


async def test_principal_may_use_csdl_and_a_teacher_may_not(services: Services, harness: Harness) -> None:
    await make_csdl_world(services)
    principal = harness.person("principal")
    await principal.send("/csdl")
    assert "4.8.1 Nhu cầu hỗ trợ (3)" in principal.buttons()
    teacher = harness.person("teacher")
    await teacher.send("/csdl")
    assert teacher.last_text().startswith("Vai trò của bạn không được làm việc này")


async def test_district_tech_support_names_the_school(services: Services, harness: Harness) -> None:
    await make_csdl_world(services)
    await add_tech_support(services, None)
    tech = harness.person(str(TECH_ID))
    await tech.send("/csdl")
    assert tech.last_text().startswith("Bạn phụ trách nhiều trường")
    await tech.send("/csdl 79785101")
    assert "Trường THCS Nguyễn Bỉnh Khiêm" in tech.last_text()
    assert "4.8.1 Nhu cầu hỗ trợ (1)" in tech.buttons()


@pytest.fixture
def sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("the command line runs on its own SQLite file")


async def test_command_line_export_and_mark_uploaded(
    sqlite_only: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    database = tmp_path / "csdl.sqlite3"
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.chdir(tmp_path)

    def cli(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert main(list(argv)) == code, capsys.readouterr()
        out, err = capsys.readouterr()
        return out + err

    import asyncio

    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 0
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    services = build_services(engine, Clock(tz=TZ))
    await make_csdl_world(services)
    await engine.dispose()

    out = tmp_path / "nhu-cau.xlsx"
    result = await asyncio.to_thread(
        cli, "csdl", "export", "needs", "--school", "79785001", "--out", str(out), "--json"
    )
    data = json.loads(result)
    assert (data["count"], data["new"], data["changed"]) == (3, 3, 0)
    assert load_workbook(out).worksheets[0]["B5"].value == "HS0001"
    marked = json.loads(await asyncio.to_thread(cli, "csdl", "mark-uploaded", str(out), "--json"))
    assert (marked["marked"], marked["already"]) == (3, False)
    again = await asyncio.to_thread(cli, "csdl", "mark-uploaded", str(out))
    assert "đã được đánh dấu" in again
    status = json.loads(await asyncio.to_thread(cli, "csdl", "status", "--school", "79785001", "--json"))
    assert status["menus"]["needs"] == {"new": 0, "changed": 0, "uploaded": 3, "overdue": 0}
    # A file that is not one of the bot's: one line, exit 1.
    other = tmp_path / "khac.xlsx"
    other.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    line = await asyncio.to_thread(cli, "csdl", "mark-uploaded", str(other), code=1)
    assert line.strip().count("\n") == 0
    # Layouts: show, replace with a YAML file, reset.
    shown = await asyncio.to_thread(cli, "csdl", "layout", "show", "doses")
    assert "menu: doses" in shown and "Mũi tiêm số" in shown
    layout = tmp_path / "doses.yaml"
    layout.write_text(shown.replace("Mũi tiêm số", "Mũi thứ"), encoding="utf-8")
    assert "Đã thay mẫu doses" in await asyncio.to_thread(cli, "csdl", "layout", "import", str(layout))
    out = tmp_path / "mui.xlsx"
    await asyncio.to_thread(cli, "csdl", "export", "doses", "--school", "79785001", "--out", str(out))
    assert load_workbook(out).worksheets[0]["F4"].value == "Mũi thứ"
    assert "mẫu kèm theo" in await asyncio.to_thread(cli, "csdl", "layout", "reset", "doses")
    _ = date
