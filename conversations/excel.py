"""Bulk entry by Excel in the chat.

- `/template`: a menu of kinds; a tap sends that kind's workbook (with the person's school, its batches
  and the vaccine products).
- A workbook sent as a document, no command needed: the kind is recognised from the headers. The bot
  replies with the counts (new / updated / unchanged / rejected), the first refusals and, when a row is
  rejected or has a note, the checked copy as a document; then the confirm / cancel buttons. Nothing is
  written before the tap. The upload waits in the database (`pending_upload`), so the buttons still
  work after a restart; the ids travel in the buttons' data.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.access import requires
from bot.context import BotContext
from bot.import_texts import annotated_copy, annotated_filename, imported_text, message, verdict_text
from bot.keyboards import choices, rows
from bot.replies import answer_alert, reply
from bot.texts import t
from conversations.common import menu_for
from storage.errors import DomainError
from storage.permissions import Action
from storage.schemas.imports import ImportCheck, ImportKind, ReadLimits
from storage.schemas.organisation import StaffOut

PREFIX = "excel"


def read_limits(context: BotContext) -> ReadLimits:
    settings = context.settings
    return ReadLimits(
        max_bytes=settings.import_max_bytes,
        max_rows=settings.import_max_rows,
        max_columns=settings.import_max_columns,
        worker_max_mb=settings.import_worker_max_mb,
    )


def _escaped_error(exc: DomainError, language: str) -> str:
    return html.escape(message(exc.code, exc.params, language), quote=False)


def _callback_value(update: Update) -> str:
    query = update.callback_query
    return (query.data or "").rsplit(":", 1)[-1] if query is not None else ""


# --- /template ------------------------------------------------------------------------------------


@requires(Action.ASK)
async def template_menu(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    try:
        await context.services.imports.scope_for(staff)
    except DomainError as exc:
        await reply(update, _escaped_error(exc, language))
        return
    options = [
        (t(f"excel.button.{kind.value}", language), f"{PREFIX}:tpl:{kind.value}") for kind in ImportKind
    ]
    await reply(update, t("excel.reply.template_choose", language), choices(options, columns=2))


@requires(Action.ASK)
async def template_chosen(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    try:
        kind = ImportKind(_callback_value(update))
    except ValueError:
        await answer_alert(update, t("core.stale_button", language))
        return
    imports = context.services.imports
    try:
        scope = await imports.scope_for(staff)
        template = await imports.template(kind, scope, language, read_limits(context))
    except DomainError as exc:
        await reply(update, _escaped_error(exc, language))
        return
    if update.callback_query is not None:
        await update.callback_query.answer()
    caption = t(
        "excel.reply.template_caption",
        language,
        kind=t(f"excel.kind.{kind.value}", language),
        guide=t("excel.sheet.guide", language),
        first_row=template.first_row,
    )
    if update.effective_chat is not None:
        await update.effective_chat.send_document(
            document=template.content, filename=t(f"excel.filename.{kind.value}", language), caption=caption
        )


# --- an uploaded workbook -------------------------------------------------------------------------


@requires(Action.ASK)
async def on_document(update: Update, context: BotContext, staff: StaffOut) -> None:
    message_ = update.effective_message
    chat = update.effective_chat
    if message_ is None or message_.document is None or chat is None:
        return
    document = message_.document
    language = staff.language
    limits = read_limits(context)
    imports = context.services.imports
    try:
        scope = await imports.scope_for(staff)
        imports.check_announced_size(document.file_size, limits)
        file = await document.get_file()
        content = bytes(await file.download_as_bytearray())
        check = await imports.check(scope, document.file_name or "", content, limits, stage_for=staff.id)
    except DomainError as exc:
        await reply(update, _escaped_error(exc, language))
        return
    await reply(update, html.escape(verdict_text(check, language), quote=False))
    if check.needs_annotated_copy:
        copy = await asyncio.to_thread(annotated_copy, check, language)
        caption = t(
            "excel.reply.annotated_caption", language, verdict=t("excel.annotate.verdict_header", language)
        )
        await chat.send_document(
            document=copy, filename=annotated_filename(check.filename, language), caption=caption
        )
    await _ask(update, check, language)


async def _ask(update: Update, check: ImportCheck, language: str) -> None:
    counts = check.counts
    if check.pending_id is None or not counts.to_write:
        if not check.rows:
            key = "excel.reply.no_rows"
        elif counts.unchanged:
            key = "excel.reply.nothing_new"
        else:
            key = "excel.reply.nothing_valid"
        await reply(update, t(key, language))
        return
    await reply(
        update,
        t("excel.reply.ask_confirm", language, count=counts.to_write),
        rows(
            [
                (
                    t("excel.reply.confirm_button", language, count=counts.to_write),
                    f"{PREFIX}:ok:{check.pending_id}",
                )
            ],
            [(t("excel.reply.cancel_button", language), f"{PREFIX}:no:{check.pending_id}")],
        ),
    )


@requires(Action.ASK)
async def on_confirm(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    try:
        check = await context.services.imports.confirm(
            int(_callback_value(update)), staff, read_limits(context)
        )
    except DomainError as exc:
        await reply(update, _escaped_error(exc, language), menu_for(context, staff))
        return
    await reply(update, html.escape(imported_text(check, language), quote=False), menu_for(context, staff))


@requires(Action.ASK)
async def on_cancel(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    try:
        filename = await context.services.imports.discard(int(_callback_value(update)), staff)
    except DomainError as exc:
        await reply(update, _escaped_error(exc, language), menu_for(context, staff))
        return
    text = t("excel.reply.cancelled", language, filename=filename)
    await reply(update, html.escape(text, quote=False), menu_for(context, staff))


def extra_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    return [
        CommandHandler("template", template_menu),
        CallbackQueryHandler(template_chosen, pattern=rf"^{PREFIX}:tpl:\w+$"),
        # .yaml/.yml documents are FAQ knowledge-base files (conversations/faq.py).
        MessageHandler(
            filters.Document.ALL
            & ~filters.ANIMATION  # a GIF arrives as a document too: it is no upload
            & ~(filters.Document.FileExtension("yaml") | filters.Document.FileExtension("yml")),
            on_document,
        ),
        CallbackQueryHandler(on_confirm, pattern=rf"^{PREFIX}:ok:\d+$"),
        CallbackQueryHandler(on_cancel, pattern=rf"^{PREFIX}:no:\d+$"),
    ]
