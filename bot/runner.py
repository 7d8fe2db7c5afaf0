"""Running the bot: long polling (default) or a webhook, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from telegram import Update

from bot.app import build_application
from bot.settings import Settings, SettingsError
from storage.services import Services

log = logging.getLogger(__name__)


async def run_bot(settings: Settings, services: Services, *, webhook: bool = False) -> None:
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
            from bot.webhook import start_server

            if not settings.webhook_url or settings.webhook_secret_token is None:
                raise SettingsError(
                    "Cấu hình thiếu / missing setting WEBHOOK_URL and WEBHOOK_SECRET_TOKEN for webhook mode"
                )
            secret = settings.webhook_secret_token.get_secret_value()
            server = await start_server(application, secret, settings.webhook_listen, settings.webhook_port)
            await application.bot.set_webhook(
                settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
            )
            log.info("Webhook mode: listening on %s:%s", settings.webhook_listen, settings.webhook_port)
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
