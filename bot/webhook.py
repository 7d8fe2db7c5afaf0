"""Webhook mode: a small tornado server that takes Telegram's POSTs (secret-token header checked)
and serves a health endpoint. Updates go to the application's queue like polled ones."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import tornado.web
from sqlalchemy import text
from telegram import Update
from tornado.httpserver import HTTPServer

from bot.context import SchoolBotApplication

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class TelegramUpdateHandler(tornado.web.RequestHandler):
    def initialize(self, bot_app: SchoolBotApplication, secret: str) -> None:
        self.bot_app = bot_app
        self.secret = secret

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("Webhook request refused: missing or wrong secret token")
            raise tornado.web.HTTPError(403)
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.bot_app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            raise tornado.web.HTTPError(400) from exc
        await self.bot_app.update_queue.put(update)
        self.set_status(200)

    def check_xsrf_cookie(self) -> None:
        """Telegram sends no cookies; the secret token is the check."""


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, bot_app: SchoolBotApplication) -> None:
        self.bot_app = bot_app

    async def get(self) -> None:
        database = "ok"
        try:
            async with self.bot_app.services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            database = "error"
        self.set_status(200 if database == "ok" else 503)
        self.write(
            {
                "status": "ok" if database == "ok" else "degraded",
                "database": database,
                "running": self.bot_app.running,
            }
        )


def make_web_app(
    application: SchoolBotApplication, secret: str, path: str = "/telegram"
) -> tornado.web.Application:
    return tornado.web.Application(
        [
            (path, TelegramUpdateHandler, {"bot_app": application, "secret": secret}),
            ("/healthz", HealthHandler, {"bot_app": application}),
        ]
    )


async def start_server(application: SchoolBotApplication, secret: str, host: str, port: int) -> HTTPServer:
    server = HTTPServer(make_web_app(application, secret))
    server.listen(port, address=host)
    return server


def webhook_kwargs(update_types: Any = None) -> dict[str, Any]:
    return {"allowed_updates": update_types or Update.ALL_TYPES}
