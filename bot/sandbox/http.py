"""The sandbox's HTTP routes, on one tornado server on 127.0.0.1.

- `/bot<token>/<method>` and `/file/bot<token>/<path>`: the Bot API, by FakeBotApi.handle_http. The bot
  is built by bot.app.build_application with TELEGRAM_API_BASE_URL pointed here and a fixed fake token;
  it polls getUpdates like it polls Telegram.
- `/`, `/static/…`: the page (bot/sandbox/static), whose texts come from bot/texts/*/sandbox.toml.
- `/api/…`: what the page does: the demo staff to talk as, a chat's messages (long polling, woken by
  FakeBotApi.on_change), sending a message, pressing a button, attaching a document, downloading files.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import tornado.web

from bot.fakeapi import JSON
from bot.sandbox.database import Persona
from bot.texts import LANGUAGES, load, t

if TYPE_CHECKING:
    from bot.sandbox.app import Sandbox

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LOCAL_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
PAGE_WAIT_MAX = 30.0  # seconds a page's long poll may wait


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
