"""One sandbox run: the database, the fake Bot API, the real bot polling it, the web chat's server.

`Sandbox.start()` then `Sandbox.stop()` (tests run it in-process); between them the page's requests
(bot/sandbox/http.py) act through it: who may talk, a chat's state, sending, pressing, attaching.
`ChangeFeed` wakes the page's long polls when a chat changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr
from telegram import Update
from telegram.request import HTTPXRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bot.context import SchoolBotApplication
from bot.fakeapi import JSON
from bot.sandbox import DEFAULT_SCHOOLS, DEFAULT_STUDENTS
from bot.sandbox.api import SandboxBotApi
from bot.sandbox.database import (
    Persona,
    SandboxError,
    load_personas,
    open_database,
    reset_database,
    sandbox_path,
)
from bot.sandbox.http import make_web_app
from bot.sandbox.render import keyboard_labels, page_message
from bot.settings import Settings
from bot.texts import t
from storage.services import Services

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# A fixed fake token: the sandbox's bot never talks to Telegram.
SANDBOX_BOT_ID = 7000000001
SANDBOX_TOKEN = f"{SANDBOX_BOT_ID}:SANDBOX-not-a-real-token"
SANDBOX_BOT_USERNAME = "phong_gddt_sandbox_bot"
POLL_TIMEOUT = 10  # seconds the bot's getUpdates waits (as with Telegram)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}  # what a bot may download from Telegram


class ChangeFeed:
    """Versions of the chats, and a way to wait for a chat to change (the page's long polling)."""

    def __init__(self) -> None:
        self.versions: dict[int, int] = {}
        self._counter = 0
        self._event = asyncio.Event()
        self.closed = False
        self.waiting = 0  # page requests waiting now

    def changed(self, chat_id: int) -> None:
        self._counter += 1
        self.versions[chat_id] = self._counter
        event, self._event = self._event, asyncio.Event()
        event.set()

    def version(self, chat_id: int) -> int:
        return self.versions.get(chat_id, 0)

    async def wait(self, chat_id: int, after: int, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting += 1
        try:
            while self.version(chat_id) <= after and not self.closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._event.wait(), remaining)
        finally:
            self.waiting -= 1
        return self.version(chat_id)

    def close(self) -> None:
        self.closed = True
        self._event.set()


# --- the sandbox ------------------------------------------------------------------------------------


class Sandbox:
    """Everything of one sandbox run; `start()` then `stop()` (tests run it in-process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        reset: bool = False,
        schools: int = DEFAULT_SCHOOLS,
        students: int = DEFAULT_STUDENTS,
        out: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.requested_port = settings.sandbox_port if port is None else port
        self.reset = reset
        self.schools = schools
        self.students = students
        self.out = out
        self.port = 0
        self.path: Path | None = None
        self.services: Services | None = None
        self.feed: ChangeFeed | None = None
        self.api: SandboxBotApi | None = None
        self.application: SchoolBotApplication | None = None
        self.http: HTTPServer | None = None
        self.personas: dict[int, Persona] = {}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def say(self, line: str) -> None:
        log.debug("%s", line)
        if self.out is not None:
            print(line, file=self.out, flush=True)

    async def start(self) -> None:
        self.path = sandbox_path(self.settings)
        if self.reset:
            existed = reset_database(self.path)
            self.say(t("sandbox.reset_done" if existed else "sandbox.reset_nothing", path=self.path))
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        from bot.app import build_application

        self.services, _created = await open_database(
            self.settings, schools=self.schools, students=self.students, say=self.say
        )
        await self.refresh_personas()
        if not self.personas:
            raise SandboxError("no_accounts")
        self.feed = ChangeFeed()
        self.api = SandboxBotApi(
            token=SANDBOX_TOKEN,
            bot_id=SANDBOX_BOT_ID,
            bot_username=SANDBOX_BOT_USERNAME,
            on_change=self.feed.changed,
        )
        try:
            sockets = bind_sockets(self.requested_port, HOST)
        except OSError as exc:
            raise SandboxError("port_in_use", port=self.requested_port, reason=exc.strerror or exc) from exc
        self.port = sockets[0].getsockname()[1]
        self.http = HTTPServer(make_web_app(self), max_body_size=MAX_UPLOAD_BYTES + 64 * 1024)
        self.http.add_sockets(sockets)
        bot_settings = self.settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(SANDBOX_TOKEN),
                "telegram_api_base_url": self.url,
                "database_url": self.settings.sandbox_database_url,
                "webhook_url": None,
            }
        )
        # Plain HTTP to 127.0.0.1: no proxy from the environment may stand in between.
        self.application = build_application(
            bot_settings,
            self.services,
            request=HTTPXRequest(connection_pool_size=32, httpx_kwargs={"trust_env": False}),
            get_updates_request=HTTPXRequest(connection_pool_size=2, httpx_kwargs={"trust_env": False}),
        )
        await self.application.initialize()
        if self.application.post_init is not None:
            await self.application.post_init(self.application)
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            poll_interval=0,
            timeout=POLL_TIMEOUT,
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=False,
        )

    async def stop(self) -> None:
        """Stop polling, the bot, the server and the database, in that order; safe to call twice."""
        application, self.application = self.application, None
        if application is not None:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()
            await application.shutdown()
        if self.feed is not None:
            self.feed.close()
        if self.api is not None:
            self.api.wake_pollers()
        http, self.http = self.http, None
        if http is not None:
            http.stop()
            # Let the pages' waiting requests answer before their connections close (bounded).
            for _ in range(100):
                if self.feed is None or not self.feed.waiting:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            await http.close_all_connections()
        services, self.services = self.services, None
        if services is not None:
            await services.engine.dispose()

    # --- what the page does -------------------------------------------------------------------------

    async def refresh_personas(self) -> list[Persona]:
        assert self.services is not None
        personas = await load_personas(self.services)
        self.personas = {p.user_id: p for p in personas}
        return personas

    def chat_state(self, user_id: int) -> JSON:
        assert self.api is not None and self.feed is not None
        return {
            "version": self.feed.version(user_id),
            "messages": [page_message(m) for m in self.api.chats.get(user_id, [])],
            "keyboard": keyboard_labels(self.api.keyboards.get(user_id)),
            "notices": list(self.api.notices.get(user_id, [])),
        }

    def send_text(self, persona: Persona, text: str) -> int:
        assert self.api is not None
        update = self.api.incoming_message(persona.user(), text=text)
        self.api.push_update(update)
        return int(update["message"]["message_id"])

    def press(self, persona: Persona, message_id: int, data: str) -> bool:
        """A tap on an inline button of a message of the chat; False when there is no such button."""
        assert self.api is not None
        for message in self.api.chats.get(persona.user_id, []):
            if message["message_id"] != message_id:
                continue
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            if not any(b.get("callback_data") == data for row in rows for b in row):
                return False
            public = {k: v for k, v in message.items() if not k.startswith("_")}
            update = self.api.callback_query(persona.user(), json.loads(json.dumps(public)), data)
            self.api.query_chats[update["callback_query"]["id"]] = persona.user_id
            self.api.push_update(update)
            return True
        return False

    def send_document(
        self, persona: Persona, content: bytes, file_name: str, mime_type: str | None, caption: str
    ) -> int:
        """An attached file; a JPEG, PNG or WebP picture goes as a photo, as Telegram's apps send it."""
        assert self.api is not None
        stored = self.api.upload(content, file_name, mime_type or None)
        if (mime_type or "").lower() in PHOTO_TYPES:
            extra: JSON = {"photo": self.api.photo_of(stored)}
        else:
            extra = {"document": self.api.document_of(stored)}
        if caption:
            extra["caption"] = caption
        update = self.api.incoming_message(persona.user(), **extra)
        self.api.push_update(update)
        return int(update["message"]["message_id"])
