"""Sending replies the same way everywhere: answer a button tap, then send the new message (or, for
the next question of a flow, put it in place of the tapped one: `replace`)."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import BadRequest

from bot.sending import MESSAGE_LIMIT, telegram_length

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


async def replace(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> Message | None:
    """The next question in place of the tapped one: its text and keyboard in one edit (one message
    per step, and the answered question's buttons gone in the same call). Only when the tapped message
    is a text that is still the latest of the chat, and the new text fits one message; otherwise, or
    when Telegram refuses the edit, as `reply` (and then the new message is returned; an edit in place
    returns None: its answer is not read)."""
    query = update.callback_query
    message = query.message if query is not None else None
    is_latest = getattr(update.get_bot(), "is_latest", None) if message is not None else None
    if (
        query is None
        or not isinstance(message, Message)
        or message.text is None
        or is_latest is None
        or not is_latest(message)
        or telegram_length(text) > MESSAGE_LIMIT
    ):
        return await reply(update, text, markup)
    await query.answer()
    try:
        await _edit_unread(update, message, text, markup)
    except BadRequest:  # e.g. the same text and keyboard, or too old to edit: a new message
        await close_buttons(update)
        chat = update.effective_chat
        return await chat.send_message(text, reply_markup=markup) if chat is not None else None
    return None


async def _edit_unread(
    update: Update, message: Message, text: str | None, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Edit `message` (its text, or only its buttons when `text` is None) without reading Telegram's
    answer (`SchoolBot.edit_unread`); a bot without it edits as PTB does."""
    edit = getattr(update.get_bot(), "edit_unread", None)
    if edit is not None:
        await edit(message.chat_id, message.message_id, text, markup)
    elif text is None:
        await message.edit_reply_markup(reply_markup=markup)
    else:
        await message.edit_text(text, reply_markup=markup)


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
            await _edit_unread(update, query.message, None)
    except BadRequest:
        pass  # already edited (a double tap): nothing to remove


async def answer_alert(update: Update, text: str) -> None:
    """A short pop-up on a button (e.g. a stale button)."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
