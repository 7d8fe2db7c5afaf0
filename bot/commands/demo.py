"""`schoolbot demo-data --schools N --students M [--seed S]`: a realistic demo district."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.texts import t
from storage.schemas.demo import DemoDataIn

if TYPE_CHECKING:
    from bot.cli import CliContext

DEFAULTS = DemoDataIn.model_fields


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    demo = subparsers.add_parser("demo-data", help=t("demo.help"), description=t("demo.description"))
    demo.add_argument("--schools", type=int, required=True, help=t("demo.schools_help"))
    demo.add_argument("--students", type=int, required=True, help=t("demo.students_help"))
    demo.add_argument("--seed", type=int, default=DEFAULTS["seed"].default, help=t("demo.seed_help"))
    demo.add_argument(
        "--district-code", default=DEFAULTS["district_code"].default, help=t("demo.district_code_help")
    )
    demo.add_argument(
        "--district-name", default=DEFAULTS["district_name"].default, help=t("demo.district_name_help")
    )
    demo.add_argument("--province", default=DEFAULTS["province"].default, help=t("demo.province_help"))
    demo.set_defaults(handler=_demo_data)
    json_flag(demo)


async def _demo_data(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.demo import DemoDataService

    data = DemoDataIn(
        schools=args.schools,
        students=args.students,
        seed=args.seed,
        district_code=args.district_code,
        district_name=args.district_name,
        province=args.province,
    )
    services = await ctx.services()
    result = await DemoDataService(services.sessionmaker, services.clock).generate(data)
    lines = [t("demo.done", name=result.district_name, code=result.district_code, seed=result.seed)]
    lines += [
        t("demo.count_line", table=t(f"demo.tables.{table}"), count=count)
        for table, count in result.counts.items()
    ]
    lines.append(t("demo.accounts"))
    lines += [
        t(
            "demo.account_line",
            telegram_user_id=account.telegram_user_id,
            role=account.role.value,
            name=account.full_name,
            school=account.school_code or "-",
        )
        for account in result.accounts
    ]
    ctx.emit("\n".join(lines), result.model_dump(mode="json"))
    return 0
