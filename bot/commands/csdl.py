"""`schoolbot csdl export | mark-uploaded | status | layout import|show|reset` (the words of the upload
files, shared with the chat, are in bot/csdl_texts.py).

    schoolbot csdl export doses --school 79785001 --out mui-tiem.xlsx [--all]
    schoolbot csdl mark-uploaded mui-tiem.xlsx
    schoolbot csdl status --school 79785001
    schoolbot csdl layout import mau-4.9.1.xlsx --menu doses     # or a .yaml layout
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.csdl_texts import changed_lines, export_counts, export_workbook, menu_label, status_text
from bot.texts import LANGUAGES, t
from storage.rules.dates import show_local
from storage.schemas.csdl import (
    CsdlMenu,
    CsdlState,
    layout_yaml,
    parse_layout,
)

if TYPE_CHECKING:
    from bot.cli import CliContext


# --- the command line -----------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    menus = [menu.value for menu in CsdlMenu]
    csdl = subparsers.add_parser("csdl", help=t("csdl.cli.help")).add_subparsers(
        dest="csdl_command", required=True
    )
    export = csdl.add_parser("export", help=t("csdl.cli.export_help"))
    export.add_argument("menu", choices=menus)
    export.add_argument("--school", dest="school_code", required=True, help=t("csdl.cli.school_help"))
    export.add_argument("--out", required=True, type=Path, help=t("csdl.cli.out_help"))
    export.add_argument("--all", dest="everything", action="store_true", help=t("csdl.cli.all_help"))
    export.add_argument("--lang", default="vi", choices=LANGUAGES, help=t("csdl.cli.lang_help"))
    export.set_defaults(handler=_export)
    json_flag(export)

    mark = csdl.add_parser("mark-uploaded", help=t("csdl.cli.mark_help"))
    mark.add_argument("file", type=Path, help=t("csdl.cli.file_help"))
    mark.add_argument("--lang", default="vi", choices=LANGUAGES, help=t("csdl.cli.lang_help"))
    mark.set_defaults(handler=_mark)
    json_flag(mark)

    status = csdl.add_parser("status", help=t("csdl.cli.status_help"))
    status.add_argument("--school", dest="school_code", required=True, help=t("csdl.cli.school_help"))
    status.add_argument("--lang", default="vi", choices=LANGUAGES, help=t("csdl.cli.lang_help"))
    status.set_defaults(handler=_status)
    json_flag(status)

    layout = csdl.add_parser("layout", help=t("csdl.cli.layout_help")).add_subparsers(
        dest="layout_command", required=True
    )
    replace = layout.add_parser("import", help=t("csdl.cli.layout_import_help"))
    replace.add_argument("file", type=Path, help=t("csdl.cli.file_help"))
    replace.add_argument("--menu", choices=menus, default=None, help=t("csdl.cli.menu_help"))
    replace.set_defaults(handler=_layout_import)
    json_flag(replace)
    show = layout.add_parser("show", help=t("csdl.cli.layout_show_help"))
    show.add_argument("menu", choices=menus)
    show.set_defaults(handler=_layout_show)
    json_flag(show)
    reset = layout.add_parser("reset", help=t("csdl.cli.layout_reset_help"))
    reset.add_argument("menu", choices=menus)
    reset.set_defaults(handler=_layout_reset)
    json_flag(reset)


def _service(services: Any) -> Any:
    from storage.services.csdl import CsdlService

    return CsdlService.of(services)


def _read(path: Path) -> bytes:
    from bot.cli import CliError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError("csdl.unreadable", path=path) from exc


async def _export(ctx: CliContext, args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import prepare_out, write_out

    prepare_out(args.out)
    csdl = _service(await ctx.services())
    menu = CsdlMenu(args.menu)
    school = await csdl.school_by_code(args.school_code)
    layout = await csdl.layout(menu)
    export = await csdl.export(school, menu, everything=args.everything)
    content = await asyncio.to_thread(export_workbook, export, layout, args.lang, ctx.settings.tz)
    write_out(args.out, content)
    counts = export_counts(export)
    human = [t("csdl.cli.written", args.lang, path=args.out, menu=menu_label(menu, args.lang), **counts)]
    human += changed_lines(export, args.lang, limit=None)
    ctx.emit(
        "\n".join(human),
        {
            "path": str(args.out),
            "menu": menu.value,
            "school": school.code,
            "export_id": export.id,
            **counts,
            "changed_records": [
                {"kind": r.kind.value, "id": r.id, "who": r.who, "fields": r.changed}
                for r in export.records
                if r.state is CsdlState.CHANGED
            ],
        },
    )
    return 0


async def _mark(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.cli import CliError
    from exports.csdl import export_token

    content = _read(args.file)
    token = export_token(content)
    if token is None:
        raise CliError("csdl.no_token", path=args.file)
    csdl = _service(await ctx.services())
    result = await csdl.mark_uploaded(token=token)
    menu = menu_label(result.menu, args.lang)
    if result.already:
        human = t("csdl.cli.already", args.lang, time=show_local(result.marked_at, ctx.settings.tz))
    else:
        human = t("csdl.cli.marked", args.lang, count=result.marked, menu=menu, school=result.school_code)
    ctx.emit(
        human,
        {
            "export_id": result.export_id,
            "menu": result.menu.value,
            "school": result.school_code,
            "marked": result.marked,
            "already": result.already,
            "marked_at": result.marked_at.isoformat(),
        },
    )
    return 0


async def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    csdl = _service(await ctx.services())
    school = await csdl.school_by_code(args.school_code)
    status = await csdl.status(school)
    ctx.emit(
        status_text(status, args.lang, ctx.settings.tz),
        {
            "school": status.school_code,
            "overdue": status.overdue,
            "menus": {
                m.menu.value: {
                    "new": m.new,
                    "changed": m.changed,
                    "uploaded": m.uploaded,
                    "overdue": m.overdue,
                }
                for m in status.menus
            },
        },
    )
    return 0


async def _layout_import(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.cli import CliError
    from exports.csdl import layout_from_template

    content = _read(args.file)
    csdl = _service(await ctx.services())
    menu = CsdlMenu(args.menu) if args.menu else None
    if content.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # a workbook: a real CSDL template
        if menu is None:
            raise CliError("csdl.menu_required")
        layout = layout_from_template(content, args.file.name, await csdl.layout(menu))
    else:
        layout = parse_layout(content, menu)
    await csdl.replace_layout(layout)
    columns = sum(len(sheet.columns) for sheet in layout.sheets)
    ctx.emit(
        t("csdl.cli.layout_replaced", menu=layout.menu.value, sheets=len(layout.sheets), columns=columns),
        {"menu": layout.menu.value, "sheets": len(layout.sheets), "columns": columns},
    )
    return 0


async def _layout_show(ctx: CliContext, args: argparse.Namespace) -> int:
    csdl = _service(await ctx.services())
    menu = CsdlMenu(args.menu)
    layout = await csdl.layout(menu)
    ctx.emit(
        layout_yaml(layout).rstrip(),
        {"menu": menu.value, "source": await csdl.layout_source(menu), **layout.model_dump(mode="json")},
    )
    return 0


async def _layout_reset(ctx: CliContext, args: argparse.Namespace) -> int:
    csdl = _service(await ctx.services())
    menu = CsdlMenu(args.menu)
    reset = await csdl.reset_layout(menu)
    key = "csdl.cli.layout_reset" if reset else "csdl.cli.layout_was_shipped"
    ctx.emit(t(key, menu=menu.value), {"menu": menu.value, "reset": reset})
    return 0
