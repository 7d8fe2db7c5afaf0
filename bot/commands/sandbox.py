"""`schoolbot sandbox [--port N] [--reset]`: try the bot without Telegram (a local web chat)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.sandbox import DEFAULT_SCHOOLS, DEFAULT_STUDENTS
from bot.texts import t

if TYPE_CHECKING:
    from bot.cli import CliContext


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sandbox = subparsers.add_parser("sandbox", help=t("sandbox.help"), description=t("sandbox.description"))
    sandbox.add_argument("--port", type=int, default=None, help=t("sandbox.port_help"))
    sandbox.add_argument("--reset", action="store_true", help=t("sandbox.reset_help"))
    sandbox.add_argument("--schools", type=int, default=DEFAULT_SCHOOLS, help=t("sandbox.schools_help"))
    sandbox.add_argument("--students", type=int, default=DEFAULT_STUDENTS, help=t("sandbox.students_help"))
    sandbox.set_defaults(handler=_sandbox)


async def _sandbox(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.sandbox.server import run_sandbox

    # Never ctx.services(): that is the production database.
    return await run_sandbox(
        ctx.settings,
        port=args.port,
        reset=args.reset,
        schools=args.schools,
        students=args.students,
        out=ctx.out,
    )
