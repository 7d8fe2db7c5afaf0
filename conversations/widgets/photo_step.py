"""Optional steps: the «skip» button, and the photo step (a photo, an image sent as a file, or skip)."""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler

from bot.context import BotContext
from bot.keyboards import rows
from bot.texts import t
from conversations.common import Answers, Flow, Turn


class PhotoAnswers(Answers):
    """Answers of a flow with a photo step (`photo_handlers`)."""

    photo: str | None = None  # the photo's Telegram file id; None when skipped


def photo_file_id(turn: Turn[Any]) -> str | None:
    """The file id of a photo sent (or an image sent as a file); None for anything else."""
    message = turn.message
    if message is None:
        return None
    if message.photo:
        return message.photo[-1].file_id
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return document.file_id
    return None


def photo_handlers(flow: Flow[Any], following: int) -> list[BaseHandler[Update, BotContext, Any]]:
    """An optional photo step (kept as `photo` in the answers, `PhotoAnswers`): a photo, an image sent
    as a file, or «skip» (`<flow>:photo:skip`); then `following`, or back to the summary when editing."""

    async def sent(turn: Turn[PhotoAnswers]) -> int | None:
        file_id = photo_file_id(turn)
        if file_id is None:
            return await turn.retry(turn.text("devices.photo_hint"))
        turn.answers.photo = file_id
        return await turn.advance(following)

    async def skipped(turn: Turn[PhotoAnswers]) -> int | None:
        turn.answers.photo = None
        return await turn.advance(following)

    return [
        flow.on_photo(sent),
        flow.on_document(sent),
        flow.on_button("photo:skip$", skipped),
        flow.on_text(sent),
    ]


def skip_keyboard(flow: Flow[Any], language: str, field: str) -> InlineKeyboardMarkup:
    return rows([(t("core.skip", language), flow.cb(field, "skip"))])
