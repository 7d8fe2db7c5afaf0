"""`schoolbot run [--webhook]`: start the bot; without a token, start the sandbox instead."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from bot.texts import t

if TYPE_CHECKING:
    from bot.cli import CliContext

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run", help=t("cli.run_help"))
    run.add_argument("--webhook", action="store_true", help=t("cli.run_webhook_help"))
    # `run` migrates the database itself, so it may create it.
    run.set_defaults(handler=_run, creates_database=True, needs_schema=False)


async def _run(ctx: CliContext, args: argparse.Namespace) -> int:
    if ctx.settings.telegram_bot_token is None:
        # A fresh machine has no token: say how to get one, and let people try the bot meanwhile.
        from bot.sandbox.server import run_sandbox

        log.warning("%s", t("cli.run_no_token"))
        log.warning("%s", t("sandbox.run_instead"))
        return await run_sandbox(ctx.settings, out=ctx.out)

    from bot.runner import check_webhook_settings, run_bot
    from storage.migrate import upgrade

    webhook = args.webhook or bool(ctx.settings.webhook_url)
    if webhook:
        check_webhook_settings(ctx.settings)  # one line before the database is touched, not a traceback
    services = await ctx.services()
    await upgrade(services.engine)
    await run_bot(ctx.settings, services, webhook=webhook)
    return 0
