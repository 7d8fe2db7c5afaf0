"""`/csdl`: the files for the sector database's «Cập nhật từ Excel», for the school's technical person
and the principal.

- `/csdl` (district technical support: `/csdl SCHOOL_CODE`): per menu, records new / changed / already
  in the CSDL and how many are past the 1-day rule; one button per menu.
- A menu's button: the workbook of the records to upload (only those; «Xuất tất cả» when there are
  none), what changed since the last upload, how to upload it, and «Đã tải lên CSDL».
- «Đã tải lên CSDL»: the file's records are marked (when, by whom, their fields as in the file). The
  export's id travels in the button, the export itself is in the database: it works after a restart.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.access import requires
from bot.context import BotContext
from bot.csdl_texts import (
    caption_text,
    changed_lines,
    export_filename,
    export_workbook,
    menu_label,
    status_text,
)
from bot.errors import render_error_html
from bot.keyboards import choices, rows
from bot.replies import answer_alert, reply
from bot.texts import t
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules.dates import show_local
from storage.schemas.csdl import CsdlMenu
from storage.schemas.organisation import StaffOut
from storage.services.csdl import CsdlService

PREFIX = "csdl"


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def _parts(update: Update) -> list[str]:
    query = update.callback_query
    return (query.data or "").split(":") if query is not None else []


@requires(Action.CSDL)
async def csdl_command(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    csdl = CsdlService.of(context.services)
    code = context.args[0] if context.args else None
    if code is None and staff.school_id is None:
        await reply(update, t("csdl.ask_school", language))
        return
    try:
        school = await csdl.school_for(staff, code)
        status = await csdl.status(school)
    except DomainError as exc:
        await reply(update, render_error_html(exc, language))
        return
    options = [
        (
            t("csdl.button_menu", language, menu=menu_label(entry.menu, language), count=entry.to_upload),
            f"{PREFIX}:x:{entry.menu.value}:{school.code}",
        )
        for entry in status.menus
    ]
    text = esc(status_text(status, language, context.settings.tz)) + "\n\n" + esc(t("csdl.choose", language))
    await reply(update, text, choices(options, columns=1))


@requires(Action.CSDL)
async def on_export(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    parts = _parts(update)
    try:
        everything = parts[1] == "a"
        menu = CsdlMenu(parts[2])
        code = parts[3]
    except (IndexError, ValueError):
        await answer_alert(update, t("core.stale_button", language))
        return
    csdl = CsdlService.of(context.services)
    try:
        school = await csdl.school_for(staff, code)
        export = await csdl.export(school, menu, everything=everything, actor_id=staff.id)
    except DomainError as exc:
        await reply(update, render_error_html(exc, language))
        return
    label = menu_label(menu, language)
    if not export.count:
        status = next(m for m in (await csdl.status(school)).menus if m.menu is menu)
        if status.uploaded:
            markup = rows(
                [
                    (
                        t("csdl.button_everything", language, count=status.uploaded),
                        f"{PREFIX}:a:{menu.value}:{school.code}",
                    )
                ]
            )
            await reply(
                update, esc(t("csdl.nothing", language, menu=label, uploaded=status.uploaded)), markup
            )
        else:
            await reply(update, esc(t("csdl.empty", language, menu=label)))
        return
    layout = await csdl.layout(menu)
    content = await asyncio.to_thread(export_workbook, export, layout, language, context.settings.tz)
    if update.callback_query is not None:
        await update.callback_query.answer()
    chat = update.effective_chat
    if chat is None:
        return
    await chat.send_document(
        document=content, filename=export_filename(export, language), caption=caption_text(export, language)
    )
    lines = changed_lines(export, language)
    lines.append(t("csdl.how_to", language, path=t(f"csdl.path.{menu.value}", language)))
    await chat.send_message(
        esc("\n".join(lines)),
        reply_markup=rows([(t("csdl.button_mark", language), f"{PREFIX}:m:{export.id}")]),
    )


@requires(Action.CSDL)
async def on_mark(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    try:
        export_id = int(_parts(update)[2])
    except (IndexError, ValueError):
        await answer_alert(update, t("core.stale_button", language))
        return
    csdl = CsdlService.of(context.services)
    try:
        result = await csdl.mark_uploaded(export_id=export_id, actor=staff)
    except DomainError as exc:
        await reply(update, render_error_html(exc, language))
        return
    when = show_local(result.marked_at, context.settings.tz)
    who = result.marked_by or t("csdl.nobody", language)
    if result.already:
        text = t("csdl.already_marked", language, time=when, who=who)
    else:
        text = t(
            "csdl.marked",
            language,
            count=result.marked,
            menu=menu_label(result.menu, language),
            time=when,
            who=who,
        )
    await reply(update, esc(text))


def extra_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    return [
        CommandHandler("csdl", csdl_command),
        CallbackQueryHandler(on_export, pattern=rf"^{PREFIX}:[xa]:\w+:[\w.-]+$"),
        CallbackQueryHandler(on_mark, pattern=rf"^{PREFIX}:m:\d+$"),
    ]
