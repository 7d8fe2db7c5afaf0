"""The fake Bot API as the sandbox serves it over HTTP, with what a chat client shows.

The bot polls it like it polls Telegram (bot/sandbox/http.py routes `/bot<token>/<method>` to it).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from bot.fakeapi import JSON, BotApiError, FakeBotApi, StoredFile
from bot.sandbox.entities import HtmlParseError, parse_html, utf16_len

MAX_TEXT = 4096  # Telegram's limits, in UTF-16 code units
MAX_CAPTION = 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
KEEP_CALLS = 1000  # recorded Bot API calls kept (a sandbox runs for hours)
KEEP_NOTICES = 20


@dataclass
class SandboxBotApi(FakeBotApi):
    """FakeBotApi as Telegram is over HTTP, plus what a chat client shows.

    Texts sent with parse_mode HTML are parsed the way Telegram does: the message keeps the plain text
    and its entities (so the bot's `message.text_html` is right), and bad markup is refused with
    Telegram's "can't parse entities" error. The client side: each chat's reply keyboard (also once it
    is removed) and the pop-ups of answered button presses.
    """

    keyboards: dict[int, JSON] = field(default_factory=dict)
    notices: dict[int, list[JSON]] = field(default_factory=dict)
    query_chats: dict[str, int] = field(default_factory=dict)  # callback query id -> chat id

    def __post_init__(self) -> None:
        super().__post_init__()
        self._notice_ids = itertools.count(1)
        self.pushed = 0  # updates queued so far

    def push_update(self, update: JSON) -> None:
        self.pushed += 1
        super().push_update(update)

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot's next getUpdates."""
        return len(self._updates)

    @staticmethod
    def _formatted(params: JSON, key: str) -> tuple[str | None, list[JSON] | None]:
        """The text (or caption) of a call and its entities, as Telegram stores them."""
        raw = params.get(key)
        if raw is None:
            return None, None
        text = str(raw)
        if str(params.get("parse_mode") or "").lower() == "html":
            try:
                text, entities = parse_html(text)
            except HtmlParseError as exc:
                raise BotApiError(400, str(exc)) from exc
            return text, entities or None
        explicit = params.get("entities" if key == "text" else "caption_entities")
        return text, explicit if isinstance(explicit, list) and explicit else None

    async def _m_sendmessage(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        text, entities = self._formatted(params, "text")
        if not (text or "").strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if utf16_len(text or "") > MAX_TEXT:
            raise BotApiError(400, "Bad Request: message is too long")
        return self._bot_message(params, text=text, entities=entities)

    def _caption(self, params: JSON) -> tuple[str | None, list[JSON] | None]:
        caption, entities = self._formatted(params, "caption")
        if caption and utf16_len(caption) > MAX_CAPTION:
            raise BotApiError(400, "Bad Request: message caption is too long")
        return caption or None, entities

    async def _m_senddocument(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        stored = self._file_param(params, files, "document")
        caption, entities = self._caption(params)
        return self._bot_message(
            params, document=self.document_of(stored), caption=caption, caption_entities=entities
        )

    async def _m_sendphoto(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        stored = self._file_param(params, files, "photo")
        caption, entities = self._caption(params)
        return self._bot_message(
            params, photo=self.photo_of(stored), caption=caption, caption_entities=entities
        )

    async def _m_editmessagetext(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        message = self._find(params)
        if "text" not in message:
            raise BotApiError(400, "Bad Request: there is no text in the message to edit")
        text, entities = self._formatted(params, "text")
        if not (text or "").strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        markup = params.get("reply_markup")
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if (
            message.get("text") == text
            and message.get("entities") == entities
            and message.get("reply_markup") == inline
        ):
            raise BotApiError(400, NOT_MODIFIED)
        message["text"] = text
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        message["edit_date"] = int(time.time())
        self._set_markup(message, markup)
        self._changed(message["chat"]["id"])
        return {k: v for k, v in message.items() if not k.startswith("_")}

    async def call(self, method: str, params: JSON, files: dict[str, StoredFile] | None = None) -> Any:
        try:
            return await super().call(method, params, files)
        finally:
            if len(self.calls) > 2 * KEEP_CALLS:
                del self.calls[:-KEEP_CALLS]
            if len(self.callback_answers) > 2 * KEEP_CALLS:
                del self.callback_answers[:-KEEP_CALLS]

    def _bot_message(self, params: JSON, **content: Any) -> JSON:
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and int(params["chat_id"]) > 0:
            if "keyboard" in markup:
                self.keyboards[int(params["chat_id"])] = markup
            elif markup.get("remove_keyboard"):
                self.keyboards.pop(int(params["chat_id"]), None)
        return super()._bot_message(params, **content)

    async def _m_answercallbackquery(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        result = await super()._m_answercallbackquery(params, files)
        chat_id = self.query_chats.pop(str(params.get("callback_query_id")), None)
        text = params.get("text")
        if chat_id is not None and text:
            notices = self.notices.setdefault(chat_id, [])
            alert = params.get("show_alert") in (True, "true", "True", "1")
            notices.append({"id": next(self._notice_ids), "text": str(text), "alert": alert})
            del notices[:-KEEP_NOTICES]
            self._changed(chat_id)
        return result

    def wake_pollers(self) -> None:
        """End a waiting getUpdates now (when stopping)."""
        self._new_update.set()
