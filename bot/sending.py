"""Every text the bot sends fits Telegram's limits, whoever wrote it and whatever it echoes.

`SchoolBot` is PTB's `ExtBot` with its sending methods checked: a message over 4,096 characters is
split into several (at line breaks where it can, HTML tags closed and reopened across the cut, the
keyboard on the last part); an edited text or a caption over its limit is shortened with «…»; a
button alert over 200 characters likewise. Telegram would otherwise answer 400, and the person would
get "an error occurred" for a reply that was only too long.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import ExtBot
from telegram.warnings import PTBUserWarning

MESSAGE_LIMIT = 4096  # characters of a message text (Telegram counts UTF-16 code units)
CAPTION_LIMIT = 1024
ALERT_LIMIT = 200
ELLIPSIS = "…"

# Tags, entities, line breaks, blanks, runs of text (bounded) and any other single character: the
# pieces a cut may fall between.
_ATOM = re.compile(r"<[^<>]*>|&#?\w{1,10};|\n|[ \t]+|[^\s<&]{1,100}|.", re.S)
_OPEN_TAG = re.compile(r"^<([a-zA-Z][a-zA-Z0-9-]*)\b[^>]*>$")
_CLOSE_TAG = re.compile(r"^</([a-zA-Z][a-zA-Z0-9-]*)\s*>$")
_VOID_TAGS = {"br"}


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MESSAGE_LIMIT, *, html: bool = True) -> list[str]:
    """`text` in parts of at most `limit`: cut after a line break when one is in the second half of
    the part, else between words; with `html`, tags open at a cut are closed and reopened."""
    if telegram_length(text) <= limit:
        return [text]
    atoms: list[str] = []
    for atom in _ATOM.findall(text):
        # A run of text too long for a small limit goes character by character.
        atoms.extend(atom if telegram_length(atom) > limit // 4 and not atom.startswith("<") else [atom])
    parts: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags: (name, the opening tag as written)
    current: list[str] = []
    size = 0
    last_break = -1  # index in `current` just after the latest line break
    break_stack: list[tuple[str, str]] = []

    def closing(tags: list[tuple[str, str]]) -> str:
        return "".join(f"</{name}>" for name, _ in reversed(tags))

    def cut(at: int, tags_at_cut: list[tuple[str, str]]) -> None:
        nonlocal current, size, last_break
        head, rest = current[:at], current[at:]
        body = "".join(head).rstrip("\n") + closing(tags_at_cut)
        if _visible(body).strip():
            parts.append(body)
        current = [opening for _, opening in tags_at_cut] + rest
        size = sum(telegram_length(piece) for piece in current)
        last_break = -1

    for atom in atoms:
        tags_after = _after(stack, atom) if html else stack
        need = telegram_length(atom) + telegram_length(closing(tags_after))
        if size + need > limit and current:
            if last_break > len(current) // 2:
                cut(last_break, break_stack)
            else:
                cut(len(current), stack)
            if atom in (" ", "\n"):
                continue  # no blank at the start of a part
        current.append(atom)
        size += telegram_length(atom)
        stack = tags_after
        if atom == "\n":
            last_break, break_stack = len(current), list(stack)
    if current:
        body = "".join(current)
        if _visible(body).strip():
            parts.append(body + closing(stack))
    return parts or [text[:limit]]


def shorten_text(text: str, limit: int, *, html: bool = True) -> str:
    """`text` cut to `limit` with «…» at the end (for edits, captions and alerts, which cannot split)."""
    if telegram_length(text) <= limit:
        return text
    return split_text(text, limit - 1, html=html)[0] + ELLIPSIS


def _after(stack: list[tuple[str, str]], atom: str) -> list[tuple[str, str]]:
    if not atom.startswith("<"):
        return stack
    opened = _OPEN_TAG.match(atom)
    if opened and opened.group(1).lower() not in _VOID_TAGS and not atom.endswith("/>"):
        return [*stack, (opened.group(1), atom)]
    closed = _CLOSE_TAG.match(atom)
    if closed:
        for index in range(len(stack) - 1, -1, -1):
            if stack[index][0] == closed.group(1):
                return stack[:index]
    return stack


def _visible(body: str) -> str:
    return re.sub(r"<[^<>]*>", "", body)


def _is_html(kwargs: dict[str, Any], defaults: Any) -> bool:
    mode = kwargs.get("parse_mode", getattr(defaults, "parse_mode", None))
    return mode == ParseMode.HTML


class SchoolBot(ExtBot[None]):
    """`ExtBot` whose texts always fit Telegram's limits (see the module's docstring).

    It also knows the latest message of each chat it has seen (`latest`), so a tapped question can be
    edited in place only when nothing came after it (bot/replies.py `replace`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._latest: dict[int, int] = {}  # chat id -> the highest message id seen in it
        # `edit_unread` calls do_api_request for an endpoint PTB has a method for, on purpose (the
        # method would parse the answer); PTB warns about that on every such call.
        warnings.filterwarnings("ignore", message=r"Please use 'Bot\.edit", category=PTBUserWarning)
        warnings.filterwarnings("ignore", message=r"Please use 'Bot\.getUpdates", category=PTBUserWarning)

    def note_message(self, chat_id: int, message_id: int) -> None:
        if message_id > self._latest.get(chat_id, 0):
            self._latest[chat_id] = message_id

    def is_latest(self, message: Message) -> bool:
        """Whether `message` is the newest message of its chat this process has seen (unknown: no)."""
        return self._latest.get(message.chat_id) == message.message_id

    async def _send_message(self, *args: Any, **kwargs: Any) -> Any:
        result = await super()._send_message(*args, **kwargs)
        if isinstance(result, Message):
            self.note_message(result.chat_id, result.message_id)
        return result

    async def send_message(self, chat_id: Any, text: str, *args: Any, **kwargs: Any) -> Message:
        html = _is_html(kwargs, self.defaults)
        parts = split_text(text, MESSAGE_LIMIT, html=html)
        if len(parts) == 1:
            return await super().send_message(chat_id, parts[0], *args, **kwargs)
        # Earlier parts: plain messages; the keyboard and the reply settings go with the last part.
        plain = {k: v for k, v in kwargs.items() if k not in ("reply_markup", "reply_parameters")}
        for part in parts[:-1]:
            await super().send_message(chat_id, part, **plain)
        return await super().send_message(chat_id, parts[-1], *args, **kwargs)

    async def edit_message_text(self, text: str, *args: Any, **kwargs: Any) -> Any:
        html = _is_html(kwargs, self.defaults)
        return await super().edit_message_text(shorten_text(text, MESSAGE_LIMIT, html=html), *args, **kwargs)

    async def edit_unread(
        self, chat_id: int, message_id: int, text: str | None, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """An edit whose answer nobody reads — the next question put in place of the tapped one
        (`text`), or a tapped message's buttons taken away (`text` None): Telegram's answer is not
        built into a `Message` (PTB's parsing of answers was a fifth of the event loop's work under
        load). `do_api_request` applies no `Defaults`, so the parse mode is given here; the request
        goes through the same rate limiter and error mapping as every other."""
        api_kwargs: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id}
        if markup is not None:
            api_kwargs["reply_markup"] = markup
        if text is None:
            await self.do_api_request("editMessageReplyMarkup", api_kwargs=api_kwargs)
            return
        mode = self.defaults.parse_mode if self.defaults is not None else None
        api_kwargs["text"] = shorten_text(text, MESSAGE_LIMIT, html=mode == ParseMode.HTML)
        if mode is not None:
            api_kwargs["parse_mode"] = mode
        await self.do_api_request("editMessageText", api_kwargs=api_kwargs)

    async def get_update_payloads(
        self, *, offset: int | None, limit: int, timeout: int, read_timeout: float
    ) -> list[dict[str, Any]]:
        """getUpdates' result as Telegram sent it, every type of update asked for: the inbox stores
        each payload as it came (`Update.to_dict()` of each parsed update was the inbox's largest
        cost) and parses it once. `read_timeout` is on top of the long poll's `timeout`, as in
        `get_updates`."""
        result = await self.do_api_request(
            "getUpdates",
            api_kwargs={
                "offset": offset,
                "limit": limit,
                "timeout": timeout,
                "allowed_updates": list(Update.ALL_TYPES),
            },
            read_timeout=read_timeout + timeout,
        )
        return result if isinstance(result, list) else []

    async def send_document(self, *args: Any, **kwargs: Any) -> Message:
        self._fit_caption(kwargs)
        return await super().send_document(*args, **kwargs)

    async def send_photo(self, *args: Any, **kwargs: Any) -> Message:
        self._fit_caption(kwargs)
        return await super().send_photo(*args, **kwargs)

    async def answer_callback_query(
        self, callback_query_id: str, text: str | None = None, *args: Any, **kwargs: Any
    ) -> bool:
        if text:
            text = shorten_text(text, ALERT_LIMIT, html=False)
        return await super().answer_callback_query(callback_query_id, text, *args, **kwargs)

    def _fit_caption(self, kwargs: dict[str, Any]) -> None:
        caption = kwargs.get("caption")
        if isinstance(caption, str):
            kwargs["caption"] = shorten_text(caption, CAPTION_LIMIT, html=_is_html(kwargs, self.defaults))
