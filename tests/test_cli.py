"""The admin command line, run as `schoolbot …` would run it, on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from openpyxl import Workbook

from bot.cli import main
from bot.texts import t
from storage.clock import Clock
from storage.db import create_engine
from storage.migrate import alembic_config
from storage.services import build_services

HEADER = "Mã quận/huyện;Mã trường;Tên trường;Cấp học;Địa chỉ"
# The newest migration: the revision a fresh `db upgrade` reaches (read, not hard-coded).
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head() or ""
SCHOOLS_CSV = [
    "NB;79785001;Trường TH Lê Văn Lương;TH;Ấp 3, xã Phước Kiển",
    "NB;79785101;Trường THCS Nguyễn Bỉnh Khiêm;THCS;12 Nguyễn Văn Tạo, xã Long Thới",
    "NB;79785201;Trường TH&THCS Hiệp Phước;Liên cấp;",
]


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], database: Path) -> None:
        self.capsys = capsys
        self.database = database

    def __call__(self, *argv: str, code: int = 0) -> str:
        self.capsys.readouterr()
        result = main(list(argv))
        out, err = self.capsys.readouterr()
        assert result == code, (argv, out, err)
        self.err = err
        return out

    def json(self, *argv: str, code: int = 0) -> Any:
        return json.loads(self(*argv, "--json", code=code))


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    database = tmp_path / "db" / "schoolbot.sqlite3"
    for name in ("TELEGRAM_BOT_TOKEN", "BOT_TIMEZONE", "LOG_LEVEL", "TELEGRAM_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)  # never ask Telegram for the bot's name
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.chdir(tmp_path)  # no developer .env
    return Cli(capsys, database)


@pytest.fixture
def district(cli: Cli) -> Cli:
    cli("db", "upgrade")
    cli("district", "add", "--code", "NB", "--name", "Huyện Nhà Bè", "--province", "TP. Hồ Chí Minh")
    return cli


def school_args(district: str, code: str, name: str, level: str) -> tuple[str, ...]:
    return ("school", "add", "--district", district, "--code", code, "--name", name, "--level", level)


def add_school(
    cli: Cli,
    district: str = "NB",
    code: str = "79785001",
    name: str = "Trường TH Lê Văn Lương",
    level: str = "TH",
    *extra: str,
) -> str:
    return cli(*school_args(district, code, name, level), *extra)


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode("utf-8-sig"))
    return path


def register(database: Path, code: str, telegram_user_id: int, name: str) -> int:
    async def run() -> int:
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            staff = await build_services(engine, Clock()).staff.register(
                telegram_user_id, code, full_name=name
            )
            return staff.id
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_db_upgrade_creates_the_database(cli: Cli) -> None:
    assert not cli.database.exists()
    out = cli("db", "upgrade")
    assert cli.database.exists()
    assert HEAD in out
    assert cli.json("db", "upgrade") == {"revision": HEAD}


def test_status(cli: Cli) -> None:
    # A command that only reads never creates the database (more in tests/test_cli_errors.py).
    cli("status", code=1)
    assert not cli.database.exists()
    cli("db", "upgrade")
    status = cli.json("status")
    assert status["revision"] == HEAD
    assert status["schools"] == 0 and status["districts"] == 0 and status["staff"] == 0
    assert status["token_configured"] is False
    assert status["database"].startswith("sqlite+aiosqlite:///")
    human = cli("status")
    assert HEAD in human
    # --json before the command works as well.
    assert json.loads(cli("--json", "status"))["revision"] == HEAD


def test_district_and_school_add(district: Cli) -> None:
    out = add_school(district, "nb")
    assert "79785001" in out and "Trường TH Lê Văn Lương" in out
    school = json.loads(
        add_school(district, "NB", "79785101", "Trường THCS Nguyễn Bỉnh Khiêm", "thcs", "--json")
    )
    assert school["code"] == "79785101" and school["level"] == "THCS"
    listed = district.json("school", "list")
    assert {s["code"] for s in listed} == {"79785001", "79785101"}
    status = district.json("status")
    assert status["districts"] == 1 and status["schools"] == 2


def test_duplicate_school_is_an_error_in_vietnamese(district: Cli) -> None:
    args = school_args("NB", "79785001", "Trường TH A", "TH")
    district(*args)
    out = district(*args, code=1)
    assert out == ""
    assert district.err.strip() == t("errors.school.exists", "vi", code="79785001")
    assert "Đã có trường" in district.err
    # With --json the error is JSON on stdout.
    assert district.json(*args, code=1) == {"error": t("errors.school.exists", "vi", code="79785001")}


def test_duplicate_district_and_unknown_district(district: Cli) -> None:
    district("district", "add", "--code", "NB", "--name", "Nhà Bè", code=1)
    assert "NB" in district.err and "Đã có quận/huyện" in district.err
    district(*school_args("XX", "1", "Trường", "TH"), code=1)
    assert "XX" in district.err and "Không tìm thấy" in district.err


def test_bad_input_is_rendered_in_vietnamese(district: Cli) -> None:
    district(*school_args("NB", "79785001", "T", "ĐH"), code=1)
    assert "ĐH" in district.err and "Cấp học" in district.err


def test_school_import_csv(district: Cli, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "truong.csv", SCHOOLS_CSV)
    out = district("school", "import", str(path))
    assert out.strip() == t("cli.school_imported", "vi", created=3, updated=0, unchanged=0)
    schools = {s["code"]: s for s in district.json("school", "list")}
    assert set(schools) == {"79785001", "79785101", "79785201"}
    assert schools["79785001"]["name"] == "Trường TH Lê Văn Lương"
    assert schools["79785101"]["level"] == "THCS"
    assert schools["79785201"]["level"] == "TH_THCS"
    # The same file again: nothing changes.
    assert district.json("school", "import", str(path)) == {"created": 0, "updated": 0, "unchanged": 3}
    # A renamed school is an update.
    renamed = [SCHOOLS_CSV[0].replace("Lê Văn Lương", "Lê Văn Lương (cơ sở 2)"), *SCHOOLS_CSV[1:]]
    write_csv(path, renamed)
    assert district.json("school", "import", str(path)) == {"created": 0, "updated": 1, "unchanged": 2}


def test_school_import_csv_with_commas_in_addresses(district: Cli, tmp_path: Path) -> None:
    lines = [
        "NB;79785001;Trường TH Lê Văn Lương;TH;Ấp 3, xã Phước Kiển, huyện Nhà Bè",
        "NB;79785101;Trường THCS Nguyễn Bỉnh Khiêm;THCS;Số 12, đường Nguyễn Văn Tạo, xã Long Thới",
    ]
    path = write_csv(tmp_path / "truong.csv", lines)
    assert district.json("school", "import", str(path)) == {"created": 2, "updated": 0, "unchanged": 0}


def test_school_import_xlsx(district: Cli, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER.split(";"))
    sheet.append(["NB", 79785001, "Trường TH Lê Văn Lương", "Tiểu học", "Ấp 3, xã Phước Kiển"])
    sheet.append(["NB", "79785101", "Trường THCS Nguyễn Bỉnh Khiêm", "Trung học cơ sở", None])
    sheet.append([None, None, None, None, None])  # blank rows are skipped
    path = tmp_path / "truong.xlsx"
    workbook.save(path)
    assert district.json("school", "import", str(path)) == {"created": 2, "updated": 0, "unchanged": 0}
    schools = {s["code"]: s for s in district.json("school", "list")}
    assert set(schools) == {"79785001", "79785101"}  # a number cell gives its digits, not "79785001.0"
    assert schools["79785001"]["level"] == "TH"
    assert district.json("school", "import", str(path)) == {"created": 0, "updated": 0, "unchanged": 2}


def test_school_import_with_a_bad_row_changes_nothing(district: Cli, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "truong.csv", [SCHOOLS_CSV[0], "NB;79785101;Trường THCS;Đại học;"])
    district("school", "import", str(path), code=1)
    assert "Đại học" in district.err
    assert district.json("school", "list") == []


def test_invite_create(district: Cli) -> None:
    add_school(district)
    out = district(
        "invite", "create", "--role", "teacher", "--school", "79785001", "--bot-username", "nb_school_bot"
    )
    code_line = next(line for line in out.splitlines() if line.startswith("Mã mời:"))
    code = code_line.split(":", 1)[1].strip()
    assert code
    assert f"https://t.me/nb_school_bot?start={code}" in out

    data = district.json(
        "invite", "create", "--role", "principal", "--school", "79785001", "--bot-username", "nb_school_bot"
    )
    assert data["code"] and data["code"] != code
    assert data["link"] == f"https://t.me/nb_school_bot?start={data['code']}"
    assert data["role"] == "principal"

    # Without a bot name (and no token) the code is still printed, with how to use it.
    offline = district.json("invite", "create", "--role", "statistics_officer")
    assert offline["code"] and offline["link"] is None
    assert "/start" in district("invite", "create", "--role", "deputy_head")

    # A school role needs a school.
    district("invite", "create", "--role", "teacher", code=1)
    assert "--school" in district.err


def test_staff_list_and_deactivate(district: Cli) -> None:
    add_school(district)
    assert district.json("staff", "list") == []
    invite = district.json(
        "invite", "create", "--role", "teacher", "--school", "79785001", "--name", "đỗ thị hoa"
    )
    staff_id = register(district.database, invite["code"], 1001, "Hoa")

    (listed,) = district.json("staff", "list")
    assert listed["id"] == staff_id
    assert listed["full_name"] == "Đỗ Thị Hoa"
    assert listed["role"] == "teacher"
    assert listed["school_code"] == "79785001"
    assert listed["active"] is True
    assert "Đỗ Thị Hoa" in district("staff", "list")
    assert district.json("staff", "list", "--school", "79785001")[0]["id"] == staff_id

    out = district("staff", "deactivate", str(staff_id))
    assert "Đỗ Thị Hoa" in out
    assert district.json("staff", "list")[0]["active"] is False
    assert t("cli.inactive") in district("staff", "list")
    assert district.json("staff", "activate", str(staff_id))["active"] is True

    district("staff", "deactivate", "999", code=1)
    assert "Không tìm thấy" in district.err


def test_db_backup(district: Cli, tmp_path: Path) -> None:
    add_school(district)
    target = tmp_path / "backups" / "copy.sqlite3"
    data = district.json("db", "backup", str(target))
    assert data["path"] == str(target) and data["bytes"] > 0
    assert target.exists()
    with closing(sqlite3.connect(target)) as copy:
        tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"school", "student", "vaccine_dose", "audit_log", "alembic_version"} <= tables
        assert copy.execute("SELECT code FROM school").fetchall() == [("79785001",)]
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The human form says where it went.
    assert "copy2.sqlite3" in district("db", "backup", str(tmp_path / "copy2.sqlite3"))


def test_db_backup_for_postgresql_runs_pg_dump(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # pg_dump itself is not run (no server here; tests/test_backup.py runs it against a real one).
    import storage.backup

    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(command: list[str], **kwargs: Any) -> Any:
        calls.append((command, kwargs["env"]))
        Path(command[2].removeprefix("--file=")).write_bytes(b"PGDMP")
        return subprocess.CompletedProcess(command, 0, b"", b"")

    monkeypatch.setattr(storage.backup.subprocess, "run", fake_run)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:secret@db.example:5433/schoolbot")
    data = cli.json("db", "backup", str(tmp_path / "dump"))
    assert data == {"path": str(tmp_path / "dump"), "bytes": 5, "kind": "postgresql"}
    ((command, env),) = calls
    assert command[0].endswith("pg_dump") and "--format=custom" in command
    assert "--dbname=postgresql://bot@db.example:5433/schoolbot" in command
    assert "secret" not in " ".join(command) and env["PGPASSWORD"] == "secret"


def test_a_bad_setting_stops_with_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    cli("status", code=2)
    assert "DATABASE_URL" in cli.err and cli.err.count("\n") == 1


def test_school_import_names_the_wrong_lines(district: Cli, tmp_path: Path) -> None:
    lines = [SCHOOLS_CSV[0], "NB;79785101;Trường THCS A;Đại học;", "", "NB;79785102;;THCS;"]
    path = write_csv(tmp_path / "truong.csv", lines)
    district("school", "import", str(path), code=1)
    assert "2 dòng chưa đúng" in district.err
    assert "Dòng 3:" in district.err and "Đại học" in district.err
    assert "Dòng 5:" in district.err  # the blank line 4 is skipped, but lines keep their numbers
    assert "Dòng 2:" not in district.err
    assert district.json("school", "list") == []


def test_school_import_missing_column(district: Cli, tmp_path: Path) -> None:
    path = tmp_path / "truong.csv"
    path.write_text("Mã quận/huyện;Mã trường;Tên trường\nNB;79785001;Trường TH A\n", encoding="utf-8")
    district("school", "import", str(path), code=1)
    assert "thiếu cột: Cấp học" in district.err


def test_school_import_district_from_the_command_line(district: Cli, tmp_path: Path) -> None:
    path = tmp_path / "truong.csv"
    path.write_text("Mã trường,Tên trường,Cấp học\n79785001,Trường TH A,TH\n", encoding="utf-8")
    district("school", "import", str(path), code=1)
    assert "Mã quận/huyện" in district.err
    assert district.json("school", "import", str(path), "--district", "NB")["created"] == 1


def test_school_import_unreadable_files(district: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "khong_co.csv"
    district("school", "import", str(missing), code=1)
    assert "khong_co.csv" in district.err and "Không đọc được" in district.err
    fake = tmp_path / "hong.xlsx"
    fake.write_bytes(b"not a workbook")
    district("school", "import", str(fake), code=1)
    assert "hong.xlsx" in district.err
    legacy = tmp_path / "unicode_text.csv"  # Excel's "Unicode Text" is UTF-16
    legacy.write_bytes((HEADER + "\nNB;1;Trường TH Lê Văn Lương;TH;\n").encode("utf-16"))
    district("school", "import", str(legacy), code=1)
    assert "CSV UTF-8" in district.err
