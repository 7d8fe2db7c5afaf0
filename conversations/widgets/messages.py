"""Messages beyond a turn's one reply: a long answer split to fit Telegram's limit, one more message."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from telegram import InlineKeyboardMarkup, Update

from bot.replies import ReplyMarkup, reply
from conversations.common import Turn

TEXT_LIMIT = 3500  # a Telegram message holds 4096 characters; keep room for the markup


def pack_lines(lines: Iterable[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Lines joined into as few messages as fit Telegram's limit."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if current and len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    return [*chunks, current] if current else chunks


async def send_lines(
    update: Update, lines: Sequence[str], markup: InlineKeyboardMarkup | None = None
) -> None:
    """A long answer as several messages; the buttons go on the last one. A tapped button is
    answered and closed first (by `reply`), once."""
    chunks = pack_lines(lines) or [""]
    await reply(update, chunks[0], markup if len(chunks) == 1 else None)
    chat = update.effective_chat
    if chat is None:
        return
    for index, chunk in enumerate(chunks[1:], start=2):
        await chat.send_message(chunk, reply_markup=markup if index == len(chunks) else None)


async def send(turn: Turn, text: str, markup: ReplyMarkup = None) -> None:
    """One more message after the turn's reply (a tapped button is already answered)."""
    chat = turn.update.effective_chat
    if chat is not None:
        await chat.send_message(text, reply_markup=markup)
