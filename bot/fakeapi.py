"""An in-process stand-in for the Telegram Bot API: the subset this bot uses, answered the way
Telegram answers (field names, types, dates in seconds, message ids, error descriptions).

It serves the tests (in-process, see `sender()` and `transport()`) and the local sandbox. It keeps
every chat's messages, records every call, hands out updates through getUpdates with offsets and long
polling, and stores uploaded and sent files for getFile and downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx

from bot.botapi_request import payload_bytes, payload_content_type

JSON = dict[str, Any]


class BotApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    content: bytes
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def file_path(self) -> str:
        return f"files/{self.file_unique_id}/{self.file_name or 'file'}"


@dataclass
class ApiCall:
    method: str
    params: JSON
    files: dict[str, StoredFile] = field(default_factory=dict)


@dataclass
class FakeBotApi:
    token: str = "123456:TEST-TOKEN"
    bot_id: int = 123456
    bot_username: str = "school_test_bot"
    calls: list[ApiCall] = field(default_factory=list)
    # chat id -> messages in that chat (from the bot and from the person), oldest first
    chats: dict[int, list[JSON]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    commands: dict[str, list[JSON]] = field(default_factory=dict)  # scope+language -> commands
    callback_answers: list[JSON] = field(default_factory=list)
    on_change: Callable[[int], None] | None = None  # the sandbox page listens to this
    latency: float = 0.0  # seconds each call takes, to measure concurrency

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._updates: list[JSON] = []
        self._new_update = asyncio.Event()

    # --- what the person does (tests, the sandbox page) ---------------------------------------

    def user(
        self, user_id: int, first_name: str, language_code: str = "vi", username: str | None = None
    ) -> JSON:
        user = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        if username:
            user["username"] = username
        return user

    def incoming_message(
        self, user: JSON, *, text: str | None = None, chat: JSON | None = None, **extra: Any
    ) -> JSON:
        """A message from the person: stored in the chat and returned as an update. By default in
        their private chat; `chat` (e.g. `group_chat(-100…)`) puts it in a group."""
        message: JSON = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": chat or {"id": user["id"], "type": "private", "first_name": user["first_name"]},
            "from": user,
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        message.update(extra)
        self._store(int(message["chat"]["id"]), message)
        return {"update_id": next(self._update_ids), "message": message}

    @staticmethod
    def group_chat(
        chat_id: int = -100_123_456, title: str = "Tổ giáo viên", kind: str = "supergroup"
    ) -> JSON:
        return {"id": chat_id, "type": kind, "title": title}

    def callback_query(self, user: JSON, message: JSON, data: str) -> JSON:
        query = {
            "id": str(next(self._ids)),
            "from": user,
            "chat_instance": str(user["id"]),
            "message": message,
            "data": data,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}

    def upload(
        self, content: bytes, file_name: str | None = None, mime_type: str | None = None
    ) -> StoredFile:
        number = next(self._file_ids)
        stored = StoredFile(f"FILE{number:06d}", f"U{number:06d}", content, file_name, mime_type)
        self.files[stored.file_id] = stored
        return stored

    def document_of(self, stored: StoredFile) -> JSON:
        document: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def photo_of(self, stored: StoredFile) -> list[JSON]:
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": 800,
                "height": 600,
                "file_size": len(stored.content),
            }
        ]

    def push_update(self, update: JSON) -> None:
        """Queue an update for getUpdates (polling)."""
        self._updates.append(update)
        self._new_update.set()

    # --- the Bot API ----------------------------------------------------------------------------

    async def call(self, method: str, params: JSON, files: dict[str, StoredFile] | None = None) -> Any:
        self.calls.append(ApiCall(method, params, files or {}))
        if self.latency:
            await asyncio.sleep(self.latency)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            raise BotApiError(404, "Not Found")
        self._check_limits(params)
        return await handler(params, files or {})

    async def _m_getme(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Bot Phòng GD&ĐT",
            "username": self.bot_username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getupdates(self, params: JSON, files: dict[str, StoredFile]) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        if offset:
            # Telegram forgets every update below the offset once it is asked with it.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if not self._updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return self._updates[:limit]

    async def _m_deletewebhook(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        return True

    async def _m_setwebhook(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        return True

    async def _m_setmycommands(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        scope = params.get("scope") or {"type": "default"}
        key = json.dumps(scope, sort_keys=True) + "|" + str(params.get("language_code") or "")
        self.commands[key] = list(params.get("commands") or [])
        return True

    async def _m_deletemycommands(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        return True

    async def _m_sendchataction(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        return True

    async def _m_sendmessage(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        text = str(params.get("text") or "")
        if not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise BotApiError(400, "Bad Request: message is too long")
        return self._bot_message(params, text=text)

    # Telegram's limits, so a reply that would be refused there is refused here too.
    @staticmethod
    def _check_limits(params: JSON) -> None:
        if len(str(params.get("caption") or "")) > 1024:
            raise BotApiError(400, "Bad Request: message caption is too long")
        markup = params.get("reply_markup") or {}
        for row in markup.get("inline_keyboard", []) if isinstance(markup, dict) else []:
            for button in row:
                if len(str(button.get("callback_data", "")).encode()) > 64:
                    raise BotApiError(400, "Bad Request: BUTTON_DATA_INVALID")

    async def _m_senddocument(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        stored = self._file_param(params, files, "document")
        return self._bot_message(params, document=self.document_of(stored), caption=params.get("caption"))

    async def _m_sendphoto(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        stored = self._file_param(params, files, "photo")
        return self._bot_message(params, photo=self.photo_of(stored), caption=params.get("caption"))

    async def _m_editmessagetext(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        message = self._find(params)
        text = str(params.get("text") or "")
        if len(text) > 4096:
            raise BotApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        markup = params.get("reply_markup")
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise BotApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message",
            )
        message["text"] = text
        message["edit_date"] = int(time.time())
        self._set_markup(message, markup)
        self._changed(message["chat"]["id"])
        return message

    async def _m_editmessagereplymarkup(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        message = self._find(params)
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup or (not markup and "reply_markup" not in message):
            raise BotApiError(400, "Bad Request: message is not modified")
        self._set_markup(message, markup)
        self._changed(message["chat"]["id"])
        return message

    async def _m_answercallbackquery(self, params: JSON, files: dict[str, StoredFile]) -> bool:
        if len(str(params.get("text") or "")) > 200:
            raise BotApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self.callback_answers.append(params)
        return True

    async def _m_getfile(self, params: JSON, files: dict[str, StoredFile]) -> JSON:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise BotApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    def download(self, file_path: str) -> bytes | None:
        for stored in self.files.values():
            if stored.file_path == file_path:
                return stored.content
        return None

    # --- helpers --------------------------------------------------------------------------------

    def _bot_message(self, params: JSON, **content: Any) -> JSON:
        chat_id = int(params["chat_id"])
        message: JSON = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Bot Phòng GD&ĐT",
                "username": self.bot_username,
            },
        }
        message.update({k: v for k, v in content.items() if v is not None})
        self._set_markup(message, params.get("reply_markup"))
        if "reply_markup" in params and "keyboard" in (params.get("reply_markup") or {}):
            message["_reply_keyboard"] = params["reply_markup"]  # what the client now shows
        self._store(chat_id, message)
        return {k: v for k, v in message.items() if not k.startswith("_")}

    @staticmethod
    def _set_markup(message: JSON, markup: Any) -> None:
        # Only inline keyboards belong to a message; reply keyboards belong to the chat's client.
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)

    def _store(self, chat_id: int, message: JSON) -> None:
        self.chats.setdefault(chat_id, []).append(message)
        self._changed(chat_id)

    def _changed(self, chat_id: int) -> None:
        if self.on_change is not None:
            self.on_change(chat_id)

    def _find(self, params: JSON) -> JSON:
        chat_id = int(params.get("chat_id") or 0)
        message_id = int(params.get("message_id") or 0)
        for message in self.chats.get(chat_id, []):
            if message["message_id"] == message_id:
                return message
        raise BotApiError(400, "Bad Request: message to edit not found")

    def _file_param(self, params: JSON, files: dict[str, StoredFile], name: str) -> StoredFile:
        if name in files:
            return files[name]
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
            return files[value[9:]]
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        raise BotApiError(400, f"Bad Request: invalid file_id or missing {name}")

    # --- HTTP ----------------------------------------------------------------------------------

    async def handle_http(
        self, method_or_path: str, content_type: str, body: bytes
    ) -> tuple[int, JSON | bytes]:
        """Answer one HTTP request to `<base>/bot<token>/<method>` or `<base>/file/bot<token>/<path>`."""
        file_prefix = f"file/bot{self.token}/"
        if method_or_path.startswith(file_prefix):
            content = self.download(method_or_path[len(file_prefix) :])
            return (
                (200, content)
                if content is not None
                else (404, {"ok": False, "error_code": 404, "description": "Not Found"})
            )
        prefix = f"bot{self.token}/"
        if not method_or_path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        method = method_or_path[len(prefix) :]
        params, files = self._parse(content_type, body)
        try:
            result = await self.call(method, params, files)
        except BotApiError as exc:
            return exc.code, {"ok": False, "error_code": exc.code, "description": exc.description}
        return 200, {"ok": True, "result": result}

    def _parse(self, content_type: str, body: bytes) -> tuple[JSON, dict[str, StoredFile]]:
        params: JSON = {}
        files: dict[str, StoredFile] = {}
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            for part in message.iter_parts():
                name = str(part.get_param("name", header="content-disposition"))
                filename = part.get_filename()
                payload = part.get_payload(decode=True) or b""
                assert isinstance(payload, bytes)  # a form field is a leaf part: decoded, it is bytes
                if filename is not None:
                    files[name] = self.upload(payload, filename, part.get_content_type())
                else:
                    params[name] = payload.decode()
        elif content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        else:
            params = {
                k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()
            }
        return {k: _maybe_json(v) for k, v in params.items()}, files

    def sender(self) -> FakeSender:
        """A `bot.botapi_request.Sender` answering in-process: the bot's production request class
        (encoding, PTB's status mapping and parsing) runs unchanged above it."""
        return FakeSender(self)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering PTB's requests in-process."""

        async def handler(request: httpx.Request) -> httpx.Response:
            await request.aread()
            path = request.url.path.lstrip("/")
            status, payload = await self.handle_http(
                path, request.headers.get("content-type", ""), request.content
            )
            if isinstance(payload, bytes):
                return httpx.Response(status, content=payload)
            return httpx.Response(status, json=payload)

        return httpx.MockTransport(handler)


class FakeSender:
    def __init__(self, api: FakeBotApi) -> None:
        self.api = api

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(
        self, method: str, url: str, body: Any, content_type: str | None, headers: Any, timeouts: Any
    ) -> tuple[int, bytes]:
        path = urllib.parse.urlsplit(url).path.lstrip("/")
        status, payload = await self.api.handle_http(
            urllib.parse.unquote(path), payload_content_type(body, content_type), await payload_bytes(body)
        )
        return status, payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def _maybe_json(value: Any) -> Any:
    """PTB sends objects (reply_markup, commands, scope) as JSON strings inside form fields."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
