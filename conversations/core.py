"""Registration by invite, /me, /help, /lang, and what answers outside any flow
(/cancel and /resume with nothing open, unknown commands, stale buttons, strangers)."""

from __future__ import annotations

import contextlib
import html
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.access import requires
from bot.context import BotContext
from bot.errors import render_error_html
from bot.keyboards import rows
from bot.menus import commands_for
from bot.replies import answer_alert, reply
from bot.texts import LANGUAGES, t
from conversations.common import button_flow_and_stamp, menu_for, message_kind
from storage.errors import DomainError
from storage.permissions import Action
from storage.schemas.organisation import StaffOut


def describe(staff: StaffOut, language: str) -> str:
    role = t(f"roles.{staff.role.value}", language)
    scope = html.escape(staff.school_name) if staff.school_name else t("core.scope_district", language)
    return t("core.me", language, name=html.escape(staff.full_name), role=role, scope=scope)


async def publish_commands(context: BotContext, staff: StaffOut, chat_id: int) -> None:
    """The person's own command list in Telegram's menu (setMyCommands, scope: this chat)."""
    registered = context.application.registered_commands
    commands = [
        BotCommand(c.command, t(c.help_key, staff.language)[:256]) for c in commands_for(staff, registered)
    ]
    with contextlib.suppress(TelegramError):  # the command menu is a convenience; /help always works
        await context.bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))


async def start(update: Update, context: BotContext) -> None:
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    code = context.args[0] if context.args else ""
    staff = await context.staff_of(update)
    if staff is not None:
        if not staff.active:
            await reply(update, context.text(update, "errors.access.deactivated"))
            return
        key = "errors.invite.already_registered" if code else "core.welcome_back"
        await reply(
            update, t(key, staff.language, name=html.escape(staff.full_name)), menu_for(context, staff)
        )
        await publish_commands(context, staff, chat.id)
        return
    if not code:
        await reply(update, context.text(update, "core.stranger"))
        return
    language = context.language_of(update)
    try:
        staff = await context.services.staff.register(
            user.id, code, full_name=user.full_name, username=user.username or "", language=language
        )
    except DomainError as exc:
        await reply(update, render_error_html(exc, language))
        return
    context.forget_staff()
    text = t("core.registered", staff.language, details=describe(staff, staff.language))
    await reply(update, text, menu_for(context, staff))
    await publish_commands(context, staff, chat.id)


@requires(Action.ASK)
async def me(update: Update, context: BotContext, staff: StaffOut) -> None:
    await reply(update, describe(staff, staff.language), menu_for(context, staff))


@requires(Action.ASK)
async def help_command(update: Update, context: BotContext, staff: StaffOut) -> None:
    registered = context.application.registered_commands
    lines = [t("core.help_header", staff.language, role=t(f"roles.{staff.role.value}", staff.language))]
    lines += [f"/{c.command} — {t(c.help_key, staff.language)}" for c in commands_for(staff, registered)]
    lines.append(t("core.help_footer", staff.language))
    await reply(update, "\n".join(lines), menu_for(context, staff))


@requires(Action.ASK)
async def choose_language(update: Update, context: BotContext, staff: StaffOut) -> None:
    await reply(
        update,
        t("core.lang_choose", staff.language),
        rows([(t("core.lang_name", lang), f"lang:{lang}") for lang in LANGUAGES]),
    )


@requires(Action.ASK)
async def set_language(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = (update.callback_query.data or "").split(":", 1)[1] if update.callback_query else ""
    if language not in LANGUAGES:
        await answer_alert(update, context.text(update, "core.stale_button"))
        return
    staff = await context.services.staff.set_language(staff.id, language)
    context.forget_staff()
    await reply(update, t("core.lang_set", language), menu_for(context, staff))
    if update.effective_chat is not None:
        await publish_commands(context, staff, update.effective_chat.id)


@requires(Action.ASK)
async def cancel_outside(update: Update, context: BotContext, staff: StaffOut) -> None:
    """/cancel that no flow took: drop any draft left open (e.g. a flow ended by a lost access)."""
    user_id = update.effective_user.id  # type: ignore[union-attr]  # @requires found the person
    titles = context.application.flow_titles
    open_flows = [f for f in await context.services.drafts.active_flows(user_id) if f in titles]
    for flow in open_flows:
        await context.services.drafts.discard(user_id, flow)
    if open_flows:
        names = ", ".join(t(titles[f], staff.language) for f in open_flows)
        await reply(
            update, t("core.drafts_cancelled", staff.language, titles=names), menu_for(context, staff)
        )
        return
    await reply(update, t("core.nothing_to_cancel", staff.language), menu_for(context, staff))


@requires(Action.ASK)
async def resume(update: Update, context: BotContext, staff: StaffOut) -> None:
    draft = await context.services.drafts.latest(update.effective_user.id)  # type: ignore[union-attr]  # as above
    titles = context.application.flow_titles
    if draft is None or draft.flow not in titles:
        await reply(update, t("core.nothing_to_resume", staff.language), menu_for(context, staff))
        return
    title = t(titles[draft.flow], staff.language)
    await reply(
        update,
        t("core.resume_offer", staff.language, title=title),
        rows(
            [(t("core.draft_continue", staff.language), f"resume:{draft.flow}")],
            [(t("core.draft_discard", staff.language), f"discard:{draft.flow}")],
        ),
    )


@requires(Action.ASK)
async def discard(update: Update, context: BotContext, staff: StaffOut) -> None:
    flow = (update.callback_query.data or "").split(":", 1)[1] if update.callback_query else ""
    await context.services.drafts.discard(update.effective_user.id, flow)  # type: ignore[union-attr]  # as above
    await reply(update, t("core.draft_discarded", staff.language), menu_for(context, staff))


async def unknown_command(update: Update, context: BotContext) -> None:
    staff = await context.staff_of(update)
    key = "core.stranger" if staff is None else "core.unknown_command"
    await reply(update, context.text(update, key))


async def plain_text(update: Update, context: BotContext) -> None:
    """Text outside any flow, when no other handler (e.g. the FAQ) took it."""
    staff = await context.staff_of(update)
    key = "core.stranger" if staff is None else "core.use_menu"
    await reply(update, context.text(update, key), menu_for(context, staff) if staff else None)


async def stale_button(update: Update, context: BotContext) -> None:
    """A button nothing took. If it belongs to a flow whose draft is still open (e.g. a button sent
    before a restart), say so and offer to continue; only a finished task's button is "done"."""
    user, query = update.effective_user, update.callback_query
    flow, _ = button_flow_and_stamp(query.data if query else None)
    titles = context.application.flow_titles
    staff = await context.staff_of(update)
    if user is not None and staff is not None and staff.active and flow in titles:
        draft = await context.services.drafts.get(user.id, flow)
        if draft is not None:
            title = t(titles[flow], staff.language)
            await answer_alert(update, t("core.button_of_open_draft", staff.language, title=title))
            await reply(
                update,
                t("core.resume_offer", staff.language, title=title),
                rows(
                    [(t("core.draft_continue", staff.language), f"resume:{flow}")],
                    [(t("core.draft_discard", staff.language), f"discard:{flow}")],
                ),
            )
            return
    await answer_alert(update, context.text(update, "core.stale_button"))


def handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    """Commands that belong to no flow; registered after the flows."""
    return [
        CommandHandler("start", start),
        CommandHandler("me", me),
        CommandHandler("help", help_command),
        CommandHandler("lang", choose_language),
        CallbackQueryHandler(set_language, pattern="^lang:"),
        CommandHandler("cancel", cancel_outside),
        CommandHandler("resume", resume),
        CallbackQueryHandler(discard, pattern="^discard:"),
    ]


async def unsupported_message(update: Update, context: BotContext) -> None:
    """A photo, sticker, voice note, location, contact, video… outside any flow: say what the bot
    can do with it (nothing here) and show the menu, never silence."""
    staff = await context.staff_of(update)
    if staff is None:
        await reply(update, context.text(update, "core.stranger"))
        return
    kind = t(f"core.kind.{message_kind(update)}", staff.language)
    text = t("core.unsupported_outside_flow", staff.language, kind=kind)
    await reply(update, text, menu_for(context, staff))


def tail_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    """Registered last: whatever nothing else answered."""
    return [
        MessageHandler(filters.COMMAND, unknown_command),
        MessageHandler(filters.TEXT, plain_text),
        MessageHandler(~filters.StatusUpdate.ALL & ~filters.UpdateType.EDITED, unsupported_message),
        CallbackQueryHandler(stale_button),
    ]
