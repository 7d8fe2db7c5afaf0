"""`schoolbot district add`, `school add | import FILE`, `invite create`, `staff list | deactivate`."""

from __future__ import annotations

import argparse
import csv
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.texts import t
from storage.enums import Role, SchoolLevel
from storage.rules.dates import show_local_day_time
from storage.schemas.organisation import DistrictIn, InviteIn, SchoolIn

if TYPE_CHECKING:
    from bot.cli import CliContext

SCHOOL_COLUMNS = {
    "district_code": ("maquanhuyen", "maphong", "districtcode", "mapgd", "district"),
    "code": ("matruong", "schoolcode", "code", "ma"),
    "name": ("tentruong", "schoolname", "name", "ten"),
    "level": ("caphoc", "level", "cap"),
    "address": ("diachi", "address"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    district = subparsers.add_parser("district", help=t("cli.district_help")).add_subparsers(
        dest="district_command", required=True
    )
    add = district.add_parser("add", help=t("cli.district_add_help"))
    add.add_argument("--code", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--province", default="")
    add.set_defaults(handler=_district_add)
    json_flag(add)

    school = subparsers.add_parser("school", help=t("cli.school_help")).add_subparsers(
        dest="school_command", required=True
    )
    school_add = school.add_parser("add", help=t("cli.school_add_help"))
    school_add.add_argument("--district", required=True, dest="district_code")
    school_add.add_argument("--code", required=True)
    school_add.add_argument("--name", required=True)
    school_add.add_argument("--level", required=True, help="TH | THCS | TH&THCS")
    school_add.add_argument("--address", default="")
    school_add.set_defaults(handler=_school_add)
    json_flag(school_add)
    school_import = school.add_parser("import", help=t("cli.school_import_help"))
    school_import.add_argument("file", type=Path)
    school_import.add_argument("--district", dest="district_code", default=None)
    school_import.set_defaults(handler=_school_import)
    json_flag(school_import)
    school_list = school.add_parser("list", help=t("cli.school_list_help"))
    school_list.set_defaults(handler=_school_list)
    json_flag(school_list)

    invite = subparsers.add_parser("invite", help=t("cli.invite_help")).add_subparsers(
        dest="invite_command", required=True
    )
    create = invite.add_parser("create", help=t("cli.invite_create_help"))
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--school", dest="school_code", default=None)
    create.add_argument("--district", dest="district_code", default=None)
    create.add_argument("--name", dest="full_name", default="")
    create.add_argument("--days", dest="valid_days", type=int, default=7)
    create.add_argument("--bot-username", default=None, help=t("cli.invite_bot_username_help"))
    create.set_defaults(handler=_invite_create)
    json_flag(create)

    staff = subparsers.add_parser("staff", help=t("cli.staff_help")).add_subparsers(
        dest="staff_command", required=True
    )
    staff_list = staff.add_parser("list", help=t("cli.staff_list_help"))
    staff_list.add_argument("--school", dest="school_code", default=None)
    staff_list.set_defaults(handler=_staff_list)
    json_flag(staff_list)
    for name, active in (("deactivate", False), ("activate", True)):
        toggle = staff.add_parser(name, help=t(f"cli.staff_{name}_help"))
        toggle.add_argument("staff_id", type=int)
        toggle.set_defaults(handler=_staff_set_active, active=active)
        json_flag(toggle)


async def _district_add(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    data = DistrictIn(code=args.code, name=args.name, province=args.province)
    district_id = await services.organisation.add_district(data)
    ctx.emit(t("cli.district_added", code=data.code, name=data.name), {"id": district_id, "code": data.code})
    return 0


async def _school_add(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    data = SchoolIn(
        district_code=args.district_code,
        code=args.code,
        name=args.name,
        level=args.level,
        address=args.address,
    )
    school = await services.organisation.add_school(data)
    ctx.emit(t("cli.school_added", code=school.code, name=school.name), school.model_dump(mode="json"))
    return 0


REQUIRED_SCHOOL_COLUMNS = ("district_code", "code", "name", "level")


def _cell(value: object) -> str:
    """A spreadsheet cell as text; a whole number typed as 79785001 stays "79785001", not "79785001.0"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_table(path: Path) -> list[list[str]]:
    from storage.errors import DomainError

    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            from openpyxl import load_workbook

            workbook = load_workbook(path, read_only=True, data_only=True)
            try:
                sheet = workbook.active
                assert sheet is not None  # a workbook openpyxl could read has an active sheet
                return [[_cell(c) for c in row] for row in sheet.iter_rows(values_only=True)]
            finally:
                workbook.close()
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("school.import_encoding", path=str(path)) from exc
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # missing, unreadable, not a workbook
        raise DomainError("school.import_unreadable", path=str(path)) from exc
    lines = text.splitlines()
    header = lines[0] if lines else ""
    # The delimiter the header uses most (Excel writes ";" where "," is the decimal sign).
    delimiter = max(";,\t", key=header.count)
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def read_school_table(path: Path, default_district: str | None) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV or XLSX list of schools, with columns matched by header text."""
    from storage.errors import DomainError
    from storage.text import fold_key

    table = _read_table(path)
    if not table:
        return []
    header = [fold_key(cell) for cell in table[0]]
    positions: dict[str, int] = {}
    for field, aliases in SCHOOL_COLUMNS.items():
        for index, name in enumerate(header):
            if name in aliases:
                positions[field] = index
                break
    missing = [
        field
        for field in REQUIRED_SCHOOL_COLUMNS
        if field not in positions and not (field == "district_code" and default_district)
    ]
    if missing:
        columns = ", ".join(t(f"cli.school_column_{field}") for field in missing)
        raise DomainError("school.import_columns", path=str(path), columns=columns)
    rows = []
    for number, raw in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in raw):
            continue
        row = {field: (raw[i].strip() if i < len(raw) else "") for field, i in positions.items()}
        if not row.get("district_code") and default_district:
            row["district_code"] = default_district
        rows.append((number, row))
    return rows


async def _school_import(ctx: CliContext, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bot.errors import render_error
    from storage.errors import DomainError

    services = await ctx.services()
    schools: list[SchoolIn] = []
    problems: list[str] = []
    for number, row in read_school_table(args.file, args.district_code):
        try:
            schools.append(SchoolIn.model_validate({"address": "", **row}))
        except (ValidationError, DomainError) as exc:
            message = render_error(exc).replace("\n", "; ")
            problems.append(t("cli.school_import_row", row=number, message=message))
    if problems:
        # All or nothing: a list with a wrong row changes no school.
        raise DomainError("school.import_rows", count=len(problems), rows="\n".join(problems))
    created, updated, unchanged = await services.organisation.upsert_schools(schools)
    data = {"created": created, "updated": updated, "unchanged": unchanged}
    ctx.emit(t("cli.school_imported", **data), data)
    return 0


async def _school_list(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    schools = await services.organisation.list_schools()
    lines = [f"{s.code}\t{SchoolLevel(s.level).value}\t{s.name}" for s in schools]
    ctx.emit("\n".join(lines) or t("cli.none"), [s.model_dump(mode="json") for s in schools])
    return 0


async def _invite_create(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    data = InviteIn(
        role=Role(args.role),
        school_code=args.school_code,
        district_code=args.district_code,
        full_name=args.full_name,
        valid_days=args.valid_days,
    )
    invite = await services.staff.create_invite(data)
    username = args.bot_username or await _bot_username(ctx)
    link = f"https://t.me/{username}?start={invite.code}" if username else None
    payload = {**invite.model_dump(mode="json"), "link": link}
    expires = show_local_day_time(invite.expires_at, ctx.settings.tz)
    human = t("cli.invite_created", code=invite.code, role=invite.role.value, expires=expires)
    human += "\n" + (t("cli.invite_link", link=link) if link else t("cli.invite_no_link", code=invite.code))
    ctx.emit(human, payload)
    return 0


async def _bot_username(ctx: CliContext) -> str | None:
    """Ask Telegram for the bot's @username when a token is configured; offline is fine too."""
    if ctx.settings.telegram_bot_token is None:
        return None
    try:
        from telegram import Bot
        from telegram.error import TelegramError

        bot = Bot(
            ctx.settings.telegram_bot_token.get_secret_value(),
            base_url=ctx.settings.bot_api_base_url,
            base_file_url=ctx.settings.bot_file_base_url,
        )
        async with bot:
            return bot.username
    except (TelegramError, OSError):
        return None


async def _staff_list(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    school_id = None
    if args.school_code:
        school = await services.organisation.school_by_code(args.school_code)
        if school is None:
            from storage.errors import NotFound

            raise NotFound("school", code=args.school_code)
        school_id = school.id
    staff = await services.staff.list_staff(school_id=school_id)
    lines = [
        f"{s.id}\t{s.role.value}\t{s.full_name}\t{s.school_code or '-'}\t"
        f"{'' if s.active else t('cli.inactive')}".rstrip()
        for s in staff
    ]
    ctx.emit("\n".join(lines) or t("cli.none"), [s.model_dump(mode="json") for s in staff])
    return 0


async def _staff_set_active(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    staff = await services.staff.set_active(args.staff_id, args.active)
    key = "cli.staff_activated" if staff.active else "cli.staff_deactivated"
    ctx.emit(t(key, name=staff.full_name), staff.model_dump(mode="json"))
    return 0
