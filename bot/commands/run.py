"""`schoolbot run [--webhook]`: start the bot."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.texts import t

if TYPE_CHECKING:
    from bot.cli import CliContext


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help=t("cli.run_help"))
    run.add_argument("--webhook", action="store_true", help=t("cli.run_webhook_help"))
    run.set_defaults(handler=_run)


async def _run(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.runner import run_bot
    from storage.migrate import upgrade

    services = await ctx.services()
    await upgrade(services.engine)
    if ctx.settings.telegram_bot_token is None:
        # A fresh machine has no token: say how to get one instead of failing.
        print(t("cli.run_no_token"), file=ctx.out)
        return 0
    await run_bot(ctx.settings, services, webhook=args.webhook or bool(ctx.settings.webhook_url))
    return 0
