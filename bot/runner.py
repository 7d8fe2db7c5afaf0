"""Running the bot: long polling (default) or a webhook, until SIGINT/SIGTERM.

Several instances may run against one database: one leads (polls or takes the webhook's posts, runs
the jobs), the others stand by (bot/leader.py). Every update is stored before Telegram is told it was
received (bot/inbox.py). /healthz and /metrics are served by the webhook's server, or in polling mode
on HEALTH_PORT when set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.leader import Node
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


async def run_bot(
    settings: Settings, services: Services, *, webhook: bool = False, stop: asyncio.Event | None = None
) -> None:
    if webhook:
        check_webhook_settings(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal() -> None:
        stop.set()
        # A second Ctrl-C interrupts at once, should stopping hang.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not on every platform
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    # The first upload after a start gets a reading process that has done its imports already, as every
    # later one does (exports/upload_worker.py); the import bench measures that path.
    from exports.upload_worker import prestart

    prestart()
    node = Node(settings, services, webhook=webhook)
    server = None
    try:
        if webhook:
            from bot.webhook import start_server, webhook_path

            assert settings.webhook_url is not None and settings.webhook_secret_token is not None
            # The path Telegram posts to is WEBHOOK_URL's (a proxy in front may only change host and port).
            server = await start_server(
                None,
                settings.webhook_secret_token.get_secret_value(),
                settings.webhook_listen,
                settings.webhook_port,
                webhook_url=settings.webhook_url,
                node=node,
            )
            log.info(
                "Webhook server on %s:%s%s",
                settings.webhook_listen,
                settings.webhook_port,
                webhook_path(settings.webhook_url),
            )
        elif settings.health_port is not None:
            from bot.webhook import start_health_server

            server = await start_health_server(node, settings.health_listen, settings.health_port)
            log.info("Health on %s:%s/healthz", settings.health_listen, settings.health_port)
        await node.run(stop)
    finally:
        if server is not None:
            server.stop()
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        log.info("Exited")
