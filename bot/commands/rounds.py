"""`schoolbot round create | list | progress` (the words of rounds, shared with the chat, are in
bot/round_texts.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.round_texts import progress_png, progress_text
from bot.texts import t
from storage.rules.dates import show_date, show_local
from storage.schemas.parsing import parse_date
from storage.schemas.rounds import (
    RoundIn,
    RoundOut,
    parse_local_datetime,
)

if TYPE_CHECKING:
    from bot.cli import CliContext


# --- the command line -----------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    rounds = subparsers.add_parser("round", help=t("rounds.cli.help")).add_subparsers(
        dest="round_command", required=True
    )
    create = rounds.add_parser("create", help=t("rounds.cli.create_help"))
    create.add_argument("--name", required=True, help=t("rounds.cli.name_help"))
    create.add_argument("--submit", required=True, help=t("rounds.cli.submit_help"))
    create.add_argument("--approve", required=True, help=t("rounds.cli.approve_help"))
    create.add_argument("--compile", required=True, help=t("rounds.cli.compile_help"))
    create.add_argument("--from", dest="date_from", required=True, help=t("rounds.cli.from_help"))
    create.add_argument("--to", dest="date_to", required=True, help=t("rounds.cli.to_help"))
    create.add_argument("--district", dest="district_code", default=None, help=t("rounds.cli.district_help"))
    create.set_defaults(handler=_create)
    json_flag(create)

    listing = rounds.add_parser("list", help=t("rounds.cli.list_help"))
    listing.add_argument("--district", dest="district_code", default=None, help=t("rounds.cli.district_help"))
    listing.set_defaults(handler=_list)
    json_flag(listing)

    progress = rounds.add_parser("progress", help=t("rounds.cli.progress_help"))
    progress.add_argument("round_id", type=int)
    progress.add_argument("--png", type=Path, default=None, help=t("rounds.cli.png_help"))
    progress.set_defaults(handler=_progress)
    json_flag(progress)


def _round_json(rnd: RoundOut) -> dict[str, Any]:
    return rnd.model_dump(mode="json")


async def _create(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    today = services.clock.today()
    data = RoundIn(
        name=args.name,
        period_start=parse_date(args.date_from, today, allow_future=True),
        period_end=parse_date(args.date_to, today, allow_future=True),
        submit_deadline=parse_local_datetime(args.submit),
        approve_deadline=parse_local_datetime(args.approve),
        compile_deadline=parse_local_datetime(args.compile),
    )
    district_id = await services.rounds.district_id_by_code(args.district_code)
    rnd = await services.rounds.create_round(data, district_id=district_id, actor_id=None)
    tz = ctx.settings.tz
    human = t(
        "rounds.cli.created",
        id=rnd.id,
        name=rnd.name,
        schools=rnd.schools,
        period_start=show_date(rnd.period_start),
        period_end=show_date(rnd.period_end),
        submit=show_local(rnd.submit_deadline, tz),
        approve=show_local(rnd.approve_deadline, tz),
        compile=show_local(rnd.compile_deadline, tz),
    )
    ctx.emit(human, _round_json(rnd))
    return 0


async def _list(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    district_id = (
        await services.rounds.district_id_by_code(args.district_code) if args.district_code else None
    )
    rounds = await services.rounds.list_rounds(district_id)
    tz = ctx.settings.tz
    lines = [
        t(
            "rounds.cli.list_line",
            id=r.id,
            status=t(f"rounds.round_status.{r.status.value}"),
            name=r.name,
            submit=show_local(r.submit_deadline, tz),
            schools=r.schools,
        )
        for r in rounds
    ]
    ctx.emit("\n".join(lines) or t("cli.none"), [_round_json(r) for r in rounds])
    return 0


async def _progress(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.cli import prepare_out, write_out

    if args.png is not None:
        prepare_out(args.png)
    services = await ctx.services()
    progress = await services.rounds.progress(args.round_id)
    tz = ctx.settings.tz
    from storage.services.csdl import CsdlService

    overdue = await CsdlService.of(services).not_in_csdl([s.school_id for s in progress.schools])
    not_in_csdl = {school_id: entry.count for school_id, entry in overdue.items()}
    human = progress_text(progress, None, tz, not_in_csdl)
    data: dict[str, Any] = progress.model_dump(mode="json")
    data["not_in_csdl"] = {str(school_id): count for school_id, count in not_in_csdl.items()}
    if args.png is not None:
        content = progress_png(progress, None, tz)
        write_out(args.png, content)
        human += "\n" + t("rounds.cli.png_written", path=args.png)
        data["png"] = str(args.png)
    ctx.emit(human, data)
    return 0
