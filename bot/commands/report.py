"""`schoolbot report KIND [--scope …] [--round ID | --from D --to D] --out FILE`: the compiled reports."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.texts import LANGUAGES, t

if TYPE_CHECKING:
    from bot.cli import CliContext

KINDS = ("needs", "devices", "vaccination", "timeliness", "district")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    report = subparsers.add_parser("report", help=t("reports.cli.help"), description=t("reports.cli.help"))
    report.add_argument("kind", choices=KINDS, help=t("reports.cli.kind_help"))
    report.add_argument("--scope", default="district", help=t("reports.cli.scope_help"))
    report.add_argument("--district", dest="district_code", default=None, help=t("reports.cli.district_help"))
    period = report.add_mutually_exclusive_group()
    period.add_argument("--round", dest="round_id", type=int, default=None, help=t("reports.cli.round_help"))
    period.add_argument(
        "--from", dest="date_from", default=None, metavar="DD/MM/YYYY", help=t("reports.cli.from_help")
    )
    report.add_argument(
        "--to", dest="date_to", default=None, metavar="DD/MM/YYYY", help=t("reports.cli.to_help")
    )
    report.add_argument("--out", required=True, type=Path, help=t("reports.cli.out_help"))
    report.add_argument("--language", default="vi", choices=LANGUAGES, help=t("reports.cli.language_help"))
    report.add_argument("--prepared-by", default="", help=t("reports.cli.prepared_by_help"))
    report.add_argument("--number", default="", help=t("reports.cli.number_help"))
    report.add_argument(
        "--executor",
        dest="report_executor",  # read by main() into CliContext, which builds the services with it
        default="process",
        choices=("process", "thread"),
        help=t("reports.cli.executor_help"),
    )
    report.set_defaults(handler=_report)
    json_flag(report)


async def _report(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.schemas.parsing import parse_date
    from storage.schemas.reports import ReportPeriod

    if args.round_id is not None and args.date_to:
        from storage.errors import DomainError

        raise DomainError("reports.period_round_and_dates")
    from bot.cli import prepare_out, write_out

    prepare_out(args.out)  # a wrong --out is said before the report is built, not after
    services = await ctx.services()
    today = services.clock.today()
    period = ReportPeriod(
        round_id=args.round_id,
        date_from=parse_date(args.date_from, today, allow_future=True) if args.date_from else None,
        date_to=parse_date(args.date_to, today, allow_future=True) if args.date_to else None,
    )
    scope = await services.reports.resolve_scope(args.scope, district_code=args.district_code)
    report = await services.reports.build(
        args.kind, scope, period, args.language, prepared_by=args.prepared_by or None, number=args.number
    )
    write_out(args.out, report.content)
    data = {
        "path": str(args.out),
        "filename": report.filename,
        "bytes": len(report.content),
        "kind": report.kind.value,
        "scope": scope.token(),
        "summary": report.summary,
        "rows": report.rows,
    }
    ctx.emit(
        t(
            "reports.cli.written",
            args.language,
            path=args.out,
            size=len(report.content),
            summary=report.summary,
        ),
        data,
    )
    return 0
