"""Running the bot: long polling (default) or a webhook, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from telegram import Update

from bot.app import build_application
from bot.settings import Settings, SettingsError
from bot.texts import t
from storage.services import Services

log = logging.getLogger(__name__)


def check_webhook_settings(settings: Settings) -> None:
    """Webhook mode needs WEBHOOK_URL and WEBHOOK_SECRET_TOKEN: say so in one line, before anything starts."""
    missing = [
        name
        for name, value in (
            ("WEBHOOK_URL", settings.webhook_url),
            ("WEBHOOK_SECRET_TOKEN", settings.webhook_secret_token),
        )
        if value is None
    ]
    if missing:
        raise SettingsError(t("cli.webhook_missing", missing=", ".join(missing)))


async def run_bot(settings: Settings, services: Services, *, webhook: bool = False) -> None:
    if webhook:
        check_webhook_settings(settings)
    application = build_application(settings, services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(sig, stop.set)
    async with application:
        if application.post_init is not None:
            await application.post_init(application)
        await application.start()
        server = None
        if webhook:
            from bot.webhook import start_server, webhook_path

            assert settings.webhook_url is not None and settings.webhook_secret_token is not None
            secret = settings.webhook_secret_token.get_secret_value()
            # The path Telegram posts to is WEBHOOK_URL's (a proxy in front may only change host and port).
            server = await start_server(
                application,
                secret,
                settings.webhook_listen,
                settings.webhook_port,
                webhook_url=settings.webhook_url,
            )
            await application.bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
            )
            log.info(
                "Webhook mode: listening on %s:%s%s",
                settings.webhook_listen,
                settings.webhook_port,
                webhook_path(settings.webhook_url),
            )
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, drop_pending_updates=False
            )
            log.info("Polling Telegram for updates")
        await stop.wait()
        log.info("Stopping")
        if server is not None:
            server.stop()
        elif application.updater is not None:
            await application.updater.stop()
        await application.stop()
