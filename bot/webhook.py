"""Webhook mode: a small tornado server that takes Telegram's POSTs and serves a health endpoint.
Under `schoolbot run` each update is written to the leader's inbox before the 200 (bot/inbox.py) and
handled from there like polled ones; a standby answers 503, so Telegram retries.

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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import tornado.web
from sqlalchemy import text
from telegram import Update
from tornado.httpserver import HTTPServer

from bot.context import SchoolBotApplication

if TYPE_CHECKING:
    from bot.leader import Node

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

    def initialize(
        self,
        bot_app: SchoolBotApplication | None,
        secret: str,
        max_body: int = MAX_BODY_BYTES,
        node: Node | None = None,
    ) -> None:
        self.bot_app = bot_app
        self.secret = secret
        self.max_body = max_body
        self.node = node
        self.chunks: list[bytes] = []

    def prepare(self) -> None:
        if self.request.method != "POST":
            raise tornado.web.HTTPError(405)
        # Also caps bodies sent without Content-Length (chunked): tornado closes the connection beyond.
        # A request being prepared has its connection (None only in tornado's own tests).
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
        inbox = None
        if self.node is not None:
            # A standby (or a leader that is stopping) takes nothing: Telegram retries, the leader gets it.
            inbox = self.node.inbox if self.node.accepting else None
            if inbox is None:
                raise tornado.web.HTTPError(503)
            bot = inbox.application.bot
        else:
            assert self.bot_app is not None
            bot = self.bot_app.bot
        try:
            data = parse_update(body)
            update = Update.de_json(data, bot)
        except Exception as exc:  # whatever the body holds, the answer is 400 (the bot never sees it)
            reason = str(exc) if isinstance(exc, BadUpdate) else type(exc).__name__
            log.warning("Webhook request refused: not an update (%s)", reason)
            raise tornado.web.HTTPError(400) from None
        if inbox is None:
            assert self.bot_app is not None
            await self.bot_app.update_queue.put(update)
        else:
            # In the database before the 200: once Telegram has its 200 it never sends the update again.
            try:
                await inbox.receive_json(data)
            except Exception as exc:  # the database or the lease: not received, Telegram retries
                log.warning("Webhook update %s not stored: %s", data["update_id"], type(exc).__name__)
                raise tornado.web.HTTPError(503) from None
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
    """200 when this instance is healthy, leader or standby (`role` says which); 503 with the problems.
    `/healthz/leader` is 200 only on the leader (for a load balancer in front of two instances)."""

    def initialize(
        self,
        bot_app: SchoolBotApplication | None,
        webhook_check: WebhookCheck | None = None,
        node: Node | None = None,
        leader_only: bool = False,
    ) -> None:
        self.bot_app = bot_app
        self.webhook_check = webhook_check
        self.node = node
        self.leader_only = leader_only

    async def get(self) -> None:
        if self.node is not None:
            await self._node_health(self.node)
            return
        assert self.bot_app is not None
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

    async def _node_health(self, node: Node) -> None:
        _healthy, report = await node.health()
        problems: list[str] = report.pop("problems")
        application = node.application
        if self.webhook_check is not None and node.role == "leader" and application is not None:
            webhook_problem = await self.webhook_check.current(application.bot)
            report["webhook"] = "ok" if webhook_problem is None else "error"
            if webhook_problem:
                problems.append(webhook_problem)
        if self.leader_only and node.role != "leader":
            problems.append(f"not the leader ({node.role})")
        ok = not problems
        self.set_status(200 if ok else 503)
        self.write(
            {
                "status": ("ok" if node.role == "leader" else node.role) if ok else "degraded",
                **report,
                "problems": problems,
            }
        )


class MetricsHandler(tornado.web.RequestHandler):
    """Prometheus' text format; 404 without prometheus-client."""

    def initialize(self, node: Node) -> None:
        self.node = node

    def get(self) -> None:
        rendered = self.node.metrics.render()
        if rendered is None:
            raise tornado.web.HTTPError(404)
        content_type, body = rendered
        self.set_header("Content-Type", content_type)
        self.write(body)


def make_web_app(
    application: SchoolBotApplication | None,
    secret: str,
    path: str = DEFAULT_PATH,
    *,
    webhook_url: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    check_seconds: float = WEBHOOK_CHECK_SECONDS,
    node: Node | None = None,
) -> tornado.web.Application:
    """`webhook_url`: the URL set with Telegram; /healthz then fails when Telegram has another one.
    With `node` (`schoolbot run`), updates go to its leader's inbox and /healthz reports the node."""
    check = WebhookCheck(webhook_url, ttl=check_seconds) if webhook_url else None
    update_args = {"bot_app": application, "secret": secret, "max_body": max_body, "node": node}
    health_args = {"bot_app": application, "webhook_check": check, "node": node}
    return tornado.web.Application(
        [
            (path, TelegramUpdateHandler, update_args),
            *_health_routes(health_args, node),
        ],
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Only server errors: health probes and Telegram's posts come all the time (refusals log themselves)."""
    if handler.get_status() >= 500 and handler.get_status() != 503:
        log.warning("%s %s -> %s", handler.request.method, handler.request.path, handler.get_status())


def _health_routes(health_args: dict[str, Any], node: Node | None) -> list[Any]:
    routes: list[Any] = [("/healthz", HealthHandler, health_args)]
    if node is not None:
        routes.append(("/healthz/leader", HealthHandler, {**health_args, "leader_only": True}))
        routes.append(("/metrics", MetricsHandler, {"node": node}))
    return routes


async def start_health_server(node: Node, host: str, port: int) -> HTTPServer:
    """Polling mode: /healthz, /healthz/leader and /metrics only (no body is ever accepted)."""
    app = tornado.web.Application(
        _health_routes({"bot_app": None, "node": node}, node), log_function=_log_request
    )
    server = HTTPServer(app, max_body_size=1024)
    server.listen(port, address=host)
    return server


async def start_server(
    application: SchoolBotApplication | None,
    secret: str,
    host: str,
    port: int,
    *,
    webhook_url: str | None = None,
    path: str | None = None,
    max_body: int = MAX_BODY_BYTES,
    check_seconds: float = WEBHOOK_CHECK_SECONDS,
    node: Node | None = None,
) -> HTTPServer:
    """Listen on host:port; the update path is WEBHOOK_URL's path (or `path`, or /telegram)."""
    app = make_web_app(
        application,
        secret,
        path or webhook_path(webhook_url),
        webhook_url=webhook_url,
        max_body=max_body,
        check_seconds=check_seconds,
        node=node,
    )
    # The server-wide cap is the handler's too: no other handler takes a body.
    server = HTTPServer(app, max_body_size=max_body)
    server.listen(port, address=host)
    return server
