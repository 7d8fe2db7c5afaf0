"""`schoolbot …` (also `python -m bot …`): the admin command line.

Every command that prints a result also takes `--json` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from pydantic import ValidationError

from bot.commands import COMMAND_MODULES
from bot.errors import render_error
from bot.settings import Settings, SettingsError, load_settings
from bot.texts import t
from storage.errors import DomainError

Handler = Callable[["CliContext", argparse.Namespace], Awaitable[int]]


@dataclass
class CliContext:
    settings: Settings
    as_json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _services: Any = None

    async def services(self) -> Any:
        """Engine and services, built on first use (some commands need no database)."""
        if self._services is None:
            from storage.clock import Clock
            from storage.db import create_engine
            from storage.services import build_services

            engine = create_engine(self.settings.database_url)
            self._services = build_services(engine, Clock(tz=self.settings.tz))
        return self._services

    async def close(self) -> None:
        if self._services is not None:
            await self._services.engine.dispose()

    def emit(self, human: str, data: Any = None) -> None:
        """Print a human line, or `data` as JSON with --json."""
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False, default=str, indent=2), file=self.out)
        else:
            print(human, file=self.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="schoolbot", description=t("cli.description"))
    parser.add_argument("--json", action="store_true", help=t("cli.json_help"))
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


async def _dispatch(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        return await args.handler(ctx, args)
    finally:
        await ctx.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx = CliContext(settings=settings, as_json=getattr(args, "json", False))
    try:
        return asyncio.run(_dispatch(ctx, args))
    except (DomainError, ValidationError) as exc:
        message = render_error(exc)
        if ctx.as_json:
            print(json.dumps({"error": message}, ensure_ascii=False), file=sys.stdout)
        else:
            print(message, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def json_flag(parser: argparse.ArgumentParser) -> None:
    """Let `--json` stand after the subcommand too (`schoolbot staff list --json`)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=t("cli.json_help"))
