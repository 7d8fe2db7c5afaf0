"""`schoolbot report …` writes a workbook that loads, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main
from storage.clock import Clock
from storage.db import create_engine
from storage.models import Base
from storage.services import build_services
from tests.conftest import FROZEN_AT, KEEP_TABLES, TZ
from tests.reports_world import make_report_world, open_workbook, sheet


@pytest.fixture
def cli_database(backend: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    async def fill() -> None:
        engine = create_engine(db_url)
        if backend == "postgres":
            tables = [t.name for t in Base.metadata.sorted_tables if t.name not in KEEP_TABLES]
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        clock = Clock(tz=TZ)
        clock.freeze(FROZEN_AT)
        await make_report_world(build_services(engine, clock))
        await engine.dispose()

    asyncio.run(fill())
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def test_cli_writes_the_district_report(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "reports" / "district.xlsx"
    code = main(["report", "district", "--district", "NB", "--out", str(out), "--prepared-by", "Lý Thị Mai"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"Đã ghi {out}" in printed and "2 trường, 7 học sinh" in printed
    workbook = open_workbook(out.read_bytes())
    assert workbook.sheetnames[0] == "Bìa"
    values = [c.value for row in sheet(workbook, "cover").iter_rows() for c in row if c.value is not None]
    assert "Lý Thị Mai" in values


def test_cli_school_scope_dates_and_json(
    cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "needs.xlsx"
    code = main(
        [
            "report",
            "devices",
            "--scope",
            "school:79785001",
            "--from",
            "01/11/2021",
            "--to",
            "05/11/2021",
            "--out",
            str(out),
            "--executor",
            "thread",
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(out) and data["kind"] == "devices" and data["bytes"] == out.stat().st_size
    assert data["summary"].startswith("1 trường, 2 đợt tài trợ: nhận 5 thiết bị")
    assert data["rows"]["device_gifts"] == 2
    workbook = open_workbook(out.read_bytes())
    assert sheet(workbook, "devices")["A2"].value.endswith("từ 01/11/2021 đến 05/11/2021")


def test_cli_says_what_is_wrong(cli_database: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["report", "needs", "--out", str(out)]) == 1  # two districts in the database
    assert "--district" in capsys.readouterr().err
    assert main(["report", "needs", "--district", "NB", "--round", "999", "--out", str(out)]) == 1
    assert "Không tìm thấy đợt báo cáo số 999" in capsys.readouterr().err
    assert main(["report", "needs", "--scope", "town", "--district", "NB", "--out", str(out)]) == 1
    assert "Phạm vi «town» không hợp lệ" in capsys.readouterr().err
    assert not out.exists()
