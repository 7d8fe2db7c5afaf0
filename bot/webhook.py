"""Webhook mode: a small tornado server that takes Telegram's POSTs and serves a health endpoint.
Updates go to the application's queue like polled ones.

What a stranger can send costs little: the secret-token header is checked before a byte of the body is
read, the body is capped (`MAX_BODY_BYTES`, 413 beyond), and anything that is not an update object is
answered 400 — never 500, never a traceback."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import text
from telegram import Update
from tornado.httpserver import HTTPServer

from bot.context import SchoolBotApplication

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_PATH = "/telegram"
# Telegram's updates are a few KB; a document's content is never in the update (only its file_id).
MAX_BODY_BYTES = 1024 * 1024
# An update nests a few levels (message → reply_to_message → reply_markup → rows → buttons).
MAX_DEPTH = 32
# How long /healthz trusts its last getWebhookInfo: health probes must not hammer the Bot API.
WEBHOOK_CHECK_SECONDS = 60.0


class BadUpdate(ValueError):
    """The body is not an update object; the message says why (logged, never answered)."""


def webhook_path(url: str | None) -> str:
    """The path Telegram posts to: the path of WEBHOOK_URL (`/` when it has none)."""
    if not url:
        return DEFAULT_PATH
    return urlsplit(url).path or "/"


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_update(body: bytes) -> dict[str, Any]:
    """The body as an update object: a JSON object with an integer `update_id`, not nested too deep."""
    try:
        data = json.loads(body)
    except RecursionError as exc:  # `[[[[…` deeper than the parser's stack
        raise BadUpdate("nested too deep") from exc
    except ValueError as exc:  # invalid JSON or UTF-8 (UnicodeDecodeError is a ValueError)
        raise BadUpdate("not JSON") from exc
    if not isinstance(data, dict):
        raise BadUpdate(f"not a JSON object but {type(data).__name__}")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise BadUpdate("no integer update_id")
    if _depth(data) > MAX_DEPTH:
        raise BadUpdate("nested too deep")
    return data


@tornado.web.stream_request_body
class TelegramUpdateHandler(tornado.web.RequestHandler):
    """POST only. `prepare` runs once the headers are in and before the body is read (streamed body):
    the secret and the announced size are checked there, so a refused request costs no memory."""

    def initialize(self, bot_app: SchoolBotApplication, secret: str, max_body: int = MAX_BODY_BYTES) -> None:
        self.bot_app = bot_app
        self.secret = secret
        self.max_body = max_body
        self.chunks: list[bytes] = []

    def prepare(self) -> None:
        if self.request.method != "POST":
            raise tornado.web.HTTPError(405)
        # Also caps bodies sent without Content-Length (chunked): tornado closes the connection beyond.
        self.request.connection.set_max_body_size(self.max_body)  # type: ignore[union-attr]
        given = self.request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("Webhook request refused: missing or wrong secret token")
            raise tornado.web.HTTPError(403)
        length = self.request.headers.get("Content-Length")
        if length is not None and not length.isdigit():
            raise tornado.web.HTTPError(400)
        if length is not None and int(length) > self.max_body:
            log.warning("Webhook request refused: body of %s bytes (at most %s)", length, self.max_body)
            raise tornado.web.HTTPError(413)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def post(self) -> None:
        body = b"".join(self.chunks)
        self.chunks = []
        try:
            data = parse_update(body)
            update = Update.de_json(data, self.bot_app.bot)
        except Exception as exc:  # whatever the body holds, the answer is 400 (the bot never sees it)
            reason = str(exc) if isinstance(exc, BadUpdate) else type(exc).__name__
            log.warning("Webhook request refused: not an update (%s)", reason)
            raise tornado.web.HTTPError(400) from None
        await self.bot_app.update_queue.put(update)
        self.set_status(200)

    def check_xsrf_cookie(self) -> None:
        """Telegram sends no cookies; the secret token is the check."""


@dataclass
class WebhookCheck:
    """Does Telegram post to us? `getWebhookInfo`, remembered for `ttl` seconds (errors too)."""

    expected_url: str
    ttl: float = WEBHOOK_CHECK_SECONDS
    checked_at: float | None = None
    problem: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def current(self, bot: Any) -> str | None:
        """None when Telegram's webhook is ours, else what is wrong."""
        async with self.lock:  # concurrent probes wait for one call instead of each making one
            now = time.monotonic()
            if self.checked_at is None or now - self.checked_at >= self.ttl:
                self.problem = await self._ask(bot)
                self.checked_at = time.monotonic()
            return self.problem

    async def _ask(self, bot: Any) -> str | None:
        try:
            info = await bot.get_webhook_info()
        except Exception as exc:  # network, Bot API error: say so, and try again after the ttl
            return f"getWebhookInfo failed: {type(exc).__name__}"
        if info.url != self.expected_url:
            return f"Telegram's webhook is {info.url or '(none)'!r}, not WEBHOOK_URL"
        return None


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, bot_app: SchoolBotApplication, webhook_check: WebhookCheck | None = None) -> None:
        self.bot_app = bot_app
        self.webhook_check = webhook_check

    async def get(self) -> None:
        database = "ok"
        try:
            async with self.bot_app.services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            database = "error"
        problems = [] if database == "ok" else ["database unreachable"]
        report: dict[str, Any] = {"database": database, "running": self.bot_app.running}
        if self.webhook_check is not None:
            webhook_problem = await self.webhook_check.current(self.bot_app.bot)
            report["webhook"] = "ok" if webhook_problem is None else "error"
            if webhook_problem:
                problems.append(webhook_problem)
        self.set_status(200 if not problems else 503)
        self.write({"status": "ok" if not problems else "degraded", **report, "problems": problems})


def make_web_app(
    application: SchoolBotApplication,
    secret: str,
    path: str = DEFAULT_PATH,
    *,
    webhook_url: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    check_seconds: float = WEBHOOK_CHECK_SECONDS,
) -> tornado.web.Application:
    """`webhook_url`: the URL set with Telegram; /healthz then fails when Telegram has another one."""
    check = WebhookCheck(webhook_url, ttl=check_seconds) if webhook_url else None
    return tornado.web.Application(
        [
            (path, TelegramUpdateHandler, {"bot_app": application, "secret": secret, "max_body": max_body}),
            ("/healthz", HealthHandler, {"bot_app": application, "webhook_check": check}),
        ]
    )


async def start_server(
    application: SchoolBotApplication,
    secret: str,
    host: str,
    port: int,
    *,
    webhook_url: str | None = None,
    path: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    check_seconds: float = WEBHOOK_CHECK_SECONDS,
) -> HTTPServer:
    """Listen on host:port; the update path is WEBHOOK_URL's path (or `path`, or /telegram)."""
    app = make_web_app(
        application,
        secret,
        path or webhook_path(webhook_url),
        webhook_url=webhook_url,
        max_body=max_body,
        check_seconds=check_seconds,
    )
    # The server-wide cap is the handler's too: no other handler takes a body.
    server = HTTPServer(app, max_body_size=max_body)
    server.listen(port, address=host)
    return server


def webhook_kwargs(update_types: Any = None) -> dict[str, Any]:
    return {"allowed_updates": update_types or Update.ALL_TYPES}
