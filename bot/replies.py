"""Sending replies the same way everywhere: answer a button tap, then send the new message."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import BadRequest

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


async def reply(update: Update, text: str, markup: ReplyMarkup = None) -> Message | None:
    """Reply in the chat of the update; a tapped button is answered first and loses its keyboard,
    so old buttons cannot be pressed again."""
    query = update.callback_query
    if query is not None:
        await query.answer()
        await close_buttons(update)
    chat = update.effective_chat
    if chat is None:
        return None
    return await chat.send_message(text, reply_markup=markup)


async def close_buttons(update: Update, note: str | None = None) -> None:
    """Remove the inline keyboard of the tapped message, optionally adding what was chosen."""
    query = update.callback_query
    if query is None or query.message is None or not isinstance(query.message, Message):
        return
    try:
        if note:
            base = query.message.text_html or ""
            await query.message.edit_text(f"{base}\n<i>{note}</i>", reply_markup=None)
        else:
            await query.message.edit_reply_markup(reply_markup=None)
    except BadRequest:
        pass  # already edited (a double tap): nothing to remove


async def answer_alert(update: Update, text: str) -> None:
    """A short pop-up on a button (e.g. a stale button)."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
