"""The sandbox process: database, fake Bot API over HTTP, the real bot polling it, and the web chat.

One tornado server on 127.0.0.1 answers three kinds of request:

- `/bot<token>/<method>` and `/file/bot<token>/<path>`: the Bot API, by FakeBotApi.handle_http. The bot
  is built by bot.app.build_application with TELEGRAM_API_BASE_URL pointed here and a fixed fake token;
  it polls getUpdates like it polls Telegram.
- `/`, `/static/…`: the page (bot/sandbox/static), whose texts come from bot/texts/*/sandbox.toml.
- `/api/…`: what the page does: the demo staff to talk as, a chat's messages (long polling, woken by
  FakeBotApi.on_change), sending a message, pressing a button, attaching a document, downloading files.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import tornado.web
from pydantic import SecretStr
from telegram import Update
from telegram.request import HTTPXRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bot.context import SchoolBotApplication
from bot.fakeapi import JSON, BotApiError, FakeBotApi, StoredFile
from bot.sandbox import DEFAULT_SCHOOLS, DEFAULT_STUDENTS
from bot.sandbox.entities import HtmlParseError, parse_html, utf16_len
from bot.sandbox.render import keyboard_labels, page_message
from bot.settings import Settings
from bot.texts import LANGUAGES, load, t
from storage.services import Services

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
HOST = "127.0.0.1"
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
# A fixed fake token: the sandbox's bot never talks to Telegram.
SANDBOX_BOT_ID = 7000000001
SANDBOX_TOKEN = f"{SANDBOX_BOT_ID}:SANDBOX-not-a-real-token"
SANDBOX_BOT_USERNAME = "phong_gddt_sandbox_bot"
POLL_TIMEOUT = 10  # seconds the bot's getUpdates waits (as with Telegram)
PAGE_WAIT_MAX = 30.0  # seconds a page's long poll may wait
MAX_TEXT = 4096  # Telegram's limits, in UTF-16 code units
MAX_CAPTION = 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}  # what a bot may download from Telegram
KEEP_CALLS = 1000  # recorded Bot API calls kept (a sandbox runs for hours)
KEEP_NOTICES = 20
SQLITE_PREFIX = "sqlite+aiosqlite:///"


class SandboxError(Exception):
    """The sandbox cannot start; `key` names a text of bot/texts/*/sandbox.toml."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values

    def text(self, language: str | None = None) -> str:
        return t(f"sandbox.{self.key}", language, **self.values)


# --- the database -----------------------------------------------------------------------------------


def sandbox_path(settings: Settings) -> Path:
    """The sandbox's SQLite file; refused when it is not a file or is the production database."""
    url = settings.sandbox_database_url
    rest = url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else ""
    if not rest or rest == ":memory:":
        raise SandboxError("not_sqlite")
    path = Path(rest)
    production = settings.sqlite_path()
    if url == settings.database_url or (production is not None and production.resolve() == path.resolve()):
        raise SandboxError("same_database")
    return path


def reset_database(path: Path) -> bool:
    """Delete the SQLite file and its journal files; whether there was one."""
    existed = path.exists()
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
    return existed


def is_demo_account(telegram_user_id: int | None) -> bool:
    from storage.services.demo import FAKE_TELEGRAM_BASE, FAKE_TELEGRAM_CEILING

    return telegram_user_id is not None and FAKE_TELEGRAM_BASE < telegram_user_id <= FAKE_TELEGRAM_CEILING


async def open_database(
    settings: Settings, *, schools: int, students: int, say: Any = None
) -> tuple[Services, bool]:
    """Migrate the sandbox database and, on first start, fill it with a demo district."""
    from storage.clock import Clock
    from storage.db import create_engine
    from storage.migrate import upgrade
    from storage.schemas.demo import DemoDataIn
    from storage.services import build_services
    from storage.services.demo import DemoDataService

    engine = create_engine(settings.sandbox_database_url)
    services = build_services(engine, Clock(tz=settings.tz))
    # The district report's cover from the same settings as `schoolbot report` and `schoolbot run`.
    services.reports.cover = settings.report_cover()
    try:
        await upgrade(engine)
        staff = await services.staff.list_staff()
        created = False
        if not any(is_demo_account(s.telegram_user_id) for s in staff):
            if say is not None:
                say(t("sandbox.creating_demo", schools=schools, students=students))
            result = await DemoDataService(services.sessionmaker, services.clock).generate(
                DemoDataIn(schools=schools, students=students)
            )
            created = True
            if say is not None:
                say(t("sandbox.demo_created", name=result.district_name, code=result.district_code))
    except BaseException:
        await engine.dispose()
        raise
    return services, created


@dataclass(frozen=True)
class Persona:
    """A demo staff account the visitor can talk as."""

    user_id: int
    staff_id: int
    name: str
    role: str
    school: str | None
    level: str | None  # the school's level (TH, THCS, TH_THCS); None for district staff
    language: str

    def user(self) -> JSON:
        return {"id": self.user_id, "is_bot": False, "first_name": self.name, "language_code": self.language}

    def page(self, language: str) -> JSON:
        return {
            "id": self.user_id,
            "name": self.name,
            "role": self.role,
            "role_label": t(f"roles.{self.role}", language),
            "school": self.school,
            "level": self.level,
        }


async def load_personas(services: Services) -> list[Persona]:
    """The demo accounts (fake Telegram ids 900000001…), read from the database."""
    staff = await services.staff.list_staff()
    return sorted(
        (
            Persona(
                user_id=int(s.telegram_user_id or 0),
                staff_id=s.id,
                name=s.full_name,
                role=s.role.value,
                school=s.school_name,
                level=s.school_level.value if s.school_level else None,
                language=s.language,
            )
            for s in staff
            if s.active and is_demo_account(s.telegram_user_id)
        ),
        key=lambda p: p.user_id,
    )


# --- the fake Bot API, with what the page needs to know -------------------------------------------


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


# --- HTTP -------------------------------------------------------------------------------------------


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Only failures: the page and the bot poll all the time."""
    status = handler.get_status()
    if status >= 500:
        log.warning("%s %s -> %s", handler.request.method, handler.request.path, status)


class BotApiHandler(tornado.web.RequestHandler):
    """`/bot<token>/<method>` and `/file/bot<token>/<path>`, answered by FakeBotApi.handle_http."""

    def initialize(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def get(self, path: str) -> None:
        await self._answer(path, "application/x-www-form-urlencoded", self.request.query.encode())

    async def post(self, path: str) -> None:
        body = self.request.body
        content_type = self.request.headers.get("Content-Type", "")
        if not body and self.request.query:  # Telegram also takes parameters in the query string
            body, content_type = self.request.query.encode(), "application/x-www-form-urlencoded"
        await self._answer(path, content_type, body)

    async def _answer(self, path: str, content_type: str, body: bytes) -> None:
        assert self.sandbox.api is not None
        status, payload = await self.sandbox.api.handle_http(path, content_type, body)
        self.set_status(status)
        if isinstance(payload, bytes):
            self.set_header("Content-Type", "application/octet-stream")
            self.finish(payload)
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(payload, ensure_ascii=False))


class PageApiHandler(tornado.web.RequestHandler):
    def initialize(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def prepare(self) -> None:
        # Only this machine's own names (no DNS rebinding), and another web site open in the same
        # browser may not post to the sandbox.
        if self.request.host_name not in LOCAL_NAMES:
            raise tornado.web.HTTPError(403)
        origin = self.request.headers.get("Origin")
        if (
            self.request.method != "GET"
            and origin
            and urllib.parse.urlsplit(origin).netloc != self.request.host
        ):
            raise tornado.web.HTTPError(403)

    @property
    def language(self) -> str:
        language = self.get_query_argument("lang", "") or ""
        return language if language in LANGUAGES else LANGUAGES[0]

    def reply(self, data: JSON, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, ensure_ascii=False))

    def fail(self, status: int, key: str) -> None:
        self.reply({"error": t(f"sandbox.page.errors.{key}", self.language), "code": key}, status)

    def persona(self, user_id: str) -> Persona | None:
        return self.sandbox.personas.get(int(user_id))

    def json_body(self) -> JSON:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400) from exc
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400)
        return data


class ConfigHandler(PageApiHandler):
    """Texts of the page in the asked language, the demo staff, the bot."""

    async def get(self) -> None:
        language = self.language
        personas = await self.sandbox.refresh_personas()
        prefix = "sandbox.page."
        texts = {k[len(prefix) :]: v for k, v in load(language).items() if k.startswith(prefix)}
        application = self.sandbox.application
        bot = application.bot if application is not None else None
        self.reply(
            {
                "language": language,
                "languages": list(LANGUAGES),
                "texts": texts,
                "personas": [p.page(language) for p in personas],
                # As the bot's getMe says (Telegram shows this name above the chat).
                "bot": {"name": bot.first_name if bot else "", "username": bot.username if bot else ""},
                "database": str(self.sandbox.path),
            }
        )


class ChatHandler(PageApiHandler):
    """A person's chat; with `after` and `wait`, answers once it is newer than `after` (long polling)."""

    async def get(self, user_id: str) -> None:
        persona = self.persona(user_id)
        if persona is None:
            self.fail(404, "unknown_person")
            return
        assert self.sandbox.feed is not None
        try:
            after = int(self.get_query_argument("after", "-1") or -1)
            wait = min(float(self.get_query_argument("wait", "0") or 0), PAGE_WAIT_MAX)
        except ValueError as exc:
            raise tornado.web.HTTPError(400) from exc
        if wait > 0:
            await self.sandbox.feed.wait(persona.user_id, after, wait)
        self.reply(self.sandbox.chat_state(persona.user_id))


class SendHandler(PageApiHandler):
    async def post(self, user_id: str) -> None:
        persona = self.persona(user_id)
        if persona is None:
            self.fail(404, "unknown_person")
            return
        text = str(self.json_body().get("text") or "")
        if not text.strip():
            self.fail(400, "empty_text")
            return
        self.reply({"message_id": self.sandbox.send_text(persona, text)})


class PressHandler(PageApiHandler):
    async def post(self, user_id: str) -> None:
        persona = self.persona(user_id)
        if persona is None:
            self.fail(404, "unknown_person")
            return
        body = self.json_body()
        try:
            message_id = int(body.get("message_id") or 0)
        except (TypeError, ValueError) as exc:
            raise tornado.web.HTTPError(400) from exc
        if not self.sandbox.press(persona, message_id, str(body.get("data") or "")):
            self.fail(409, "unknown_button")
            return
        self.reply({"ok": True})


class UploadHandler(PageApiHandler):
    async def post(self, user_id: str) -> None:
        persona = self.persona(user_id)
        if persona is None:
            self.fail(404, "unknown_person")
            return
        uploads = self.request.files.get("file") or []
        if not uploads:
            self.fail(400, "no_file")
            return
        upload = uploads[0]
        caption = self.get_body_argument("caption", "") or ""
        message_id = self.sandbox.send_document(
            persona, upload["body"], upload["filename"] or "file", upload.get("content_type"), caption
        )
        self.reply({"message_id": message_id})


IMAGE_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}


class FileHandler(PageApiHandler):
    """A file of a chat, to download (`?download=1`) or to show (photos)."""

    async def get(self, file_id: str) -> None:
        assert self.sandbox.api is not None
        stored = self.sandbox.api.files.get(file_id)
        if stored is None:
            self.fail(404, "not_found")
            return
        mime = stored.mime_type or "application/octet-stream"
        sniffed = next((m for magic, m in IMAGE_MAGIC.items() if stored.content.startswith(magic)), None)
        if sniffed and not mime.startswith("image/"):
            mime = sniffed
        download = self.get_query_argument("download", "") == "1" or not mime.startswith("image/")
        self.set_header("Content-Type", mime)
        self.set_header("X-Content-Type-Options", "nosniff")
        if download:
            name = stored.file_name or f"{stored.file_id}"
            ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
            self.set_header(
                "Content-Disposition",
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name)}",
            )
        self.finish(stored.content)


CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class IndexHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Security-Policy", CSP)
        self.finish((STATIC / "index.html").read_bytes())


class StaticHandler(tornado.web.StaticFileHandler):
    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class NotFoundHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}))


def make_web_app(sandbox: Sandbox) -> tornado.web.Application:
    page = {"sandbox": sandbox}
    return tornado.web.Application(
        [
            (r"/", IndexHandler),
            (r"/static/(.*)", StaticHandler, {"path": str(STATIC)}),
            (r"/api/config", ConfigHandler, page),
            (r"/api/chats/(\d+)", ChatHandler, page),
            (r"/api/chats/(\d+)/messages", SendHandler, page),
            (r"/api/chats/(\d+)/callbacks", PressHandler, page),
            (r"/api/chats/(\d+)/documents", UploadHandler, page),
            (r"/api/files/([^/]+)", FileHandler, page),
            (r"/(file/bot[^/]*/.*)", BotApiHandler, page),
            (r"/(bot[^/]*/.*)", BotApiHandler, page),
        ],
        default_handler_class=NotFoundHandler,
        log_function=_log_request,
    )


# --- the command ------------------------------------------------------------------------------------


async def run_sandbox(
    settings: Settings,
    *,
    port: int | None = None,
    reset: bool = False,
    schools: int = DEFAULT_SCHOOLS,
    students: int = DEFAULT_STUDENTS,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until Ctrl-C or SIGTERM (or `stop`); a second Ctrl-C interrupts at once."""
    out = out or sys.stdout
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        stop.set()
        # From now on Ctrl-C interrupts at once, should stopping hang.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    sandbox = Sandbox(settings, port=port, reset=reset, schools=schools, students=students, out=out)
    try:
        try:
            await sandbox.start()
        except SandboxError as exc:
            print(exc.text(), file=sys.stderr)
            return 2
        sandbox.say(t("sandbox.database_line", path=sandbox.path))
        sandbox.say(t("sandbox.ready", url=sandbox.url))
        await stop.wait()
        sandbox.say(t("sandbox.stopping"))
        await sandbox.stop()
        sandbox.say(t("sandbox.stopped"))
        return 0
    finally:
        await sandbox.stop()
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
