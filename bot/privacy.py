"""Student data stays in private chats: in a group, a channel or a supergroup the bot runs no flow,
sends no entry, list or report, and answers at most one line pointing to the private chat.

Registered in handler group -1, before every other handler; `ApplicationHandlerStop` ends the
update there. Reminders and notifications are sent to a person's own id (their private chat).
"""

from __future__ import annotations

import contextlib

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext


async def private_chats_only(update: Update, context: BotContext) -> None:
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return
    link = f"https://t.me/{context.bot.username}" if context.bot.username else ""
    text = context.text(update, "core.private_only", link=link)
    query = update.callback_query
    message = update.effective_message
    with contextlib.suppress(TelegramError):  # a group that muted the bot: nothing more to say
        if query is not None:
            await query.answer(text[:200], show_alert=True)
        elif message is not None and _addressed_to_bot(update, context):
            await message.reply_text(text, do_quote=False)
    # Members joining, other people's chatter, channel posts: silence.
    raise ApplicationHandlerStop


def _addressed_to_bot(update: Update, context: BotContext) -> bool:
    """A command, a reply to the bot, or a message naming it (what privacy mode lets through)."""
    message = update.effective_message
    if message is None:
        return False
    text = message.text or message.caption or ""
    if text.startswith("/"):
        return True
    if message.reply_to_message is not None and message.reply_to_message.from_user is not None:
        return message.reply_to_message.from_user.id == context.bot.id
    return bool(context.bot.username) and f"@{context.bot.username}".lower() in text.lower()
