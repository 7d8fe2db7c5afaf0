"""`schoolbot template KIND --out FILE` and `schoolbot import FILE [--school CODE] [--dry-run] [--json]`.

`import` prints the same verdict as the chat (new / updated / unchanged / rejected and the first
refusals), writes the checked copy beside the file when a row is rejected or has a note, then — unless
`--dry-run` — writes the valid rows in one transaction (audited, without an actor).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.import_texts import (
    annotated_copy,
    annotated_filename,
    imported_text,
    issue_text,
    message,
    verdict_text,
)
from bot.texts import LANGUAGES, t
from storage.errors import DomainError
from storage.schemas.imports import ImportCheck, ImportKind, ReadLimits

if TYPE_CHECKING:
    from bot.cli import CliContext

MAX_PROBLEMS_PRINTED = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    template = subparsers.add_parser("template", help=t("excel.cli.template_help"))
    template.add_argument("kind", choices=[kind.value for kind in ImportKind])
    template.add_argument("--out", required=True, type=Path, help=t("excel.cli.template_out_help"))
    template.add_argument(
        "--school", dest="school_code", default=None, help=t("excel.cli.template_school_help")
    )
    template.add_argument("--lang", default="vi", choices=LANGUAGES, help=t("excel.cli.template_lang_help"))
    template.set_defaults(handler=_template)
    json_flag(template)

    upload = subparsers.add_parser("import", help=t("excel.cli.import_help"))
    upload.add_argument("file", type=Path)
    upload.add_argument("--school", dest="school_code", default=None, help=t("excel.cli.import_school_help"))
    upload.add_argument("--dry-run", action="store_true", help=t("excel.cli.import_dry_run_help"))
    upload.add_argument("--lang", default="vi", choices=LANGUAGES, help=t("excel.cli.template_lang_help"))
    upload.set_defaults(handler=_import)
    json_flag(upload)


def _limits(ctx: CliContext) -> ReadLimits:
    settings = ctx.settings
    return ReadLimits(
        max_bytes=settings.import_max_bytes,
        max_rows=settings.import_max_rows,
        max_columns=settings.import_max_columns,
        worker_max_mb=settings.import_worker_max_mb,
    )


def _refused(ctx: CliContext, exc: DomainError, language: str) -> int:
    text = message(exc.code, exc.params, language)
    if ctx.as_json:
        print(json.dumps({"error": text, "code": exc.code}, ensure_ascii=False), file=ctx.out)
    else:
        print(text, file=ctx.out)
    return 1


async def _template(ctx: CliContext, args: argparse.Namespace) -> int:
    from exports.labels import Labels
    from exports.templates import build_template

    services = await ctx.services()
    kind = ImportKind(args.kind)
    try:
        scope = await services.imports.scope_for_school(args.school_code)
        context = await services.imports.template_context(kind, scope)
    except DomainError as exc:
        return _refused(ctx, exc, args.lang)
    limits = _limits(ctx)
    content = build_template(
        context, Labels(t, args.lang), max_bytes=limits.max_bytes, max_rows=limits.max_rows
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(content)
    kind_label = t(f"excel.kind.{kind.value}", args.lang)
    ctx.emit(
        t("excel.cli.template_written", args.lang, kind=kind_label, path=args.out),
        {"kind": kind.value, "path": str(args.out), "bytes": len(content)},
    )
    return 0


async def _import(ctx: CliContext, args: argparse.Namespace) -> int:
    language = args.lang
    path: Path = args.file
    try:
        content = path.read_bytes()
    except OSError:
        return _refused(ctx, DomainError("excel.file.unreadable", path=str(path)), language)
    services = await ctx.services()
    try:
        scope = await services.imports.scope_for_school(args.school_code)
        check = await services.imports.import_file(
            scope, path.name, content, _limits(ctx), actor_id=None, dry_run=args.dry_run
        )
    except DomainError as exc:
        return _refused(ctx, exc, language)
    lines = [verdict_text(check, language, max_problems=MAX_PROBLEMS_PRINTED)]
    annotated: Path | None = None
    if check.needs_annotated_copy:
        annotated = path.with_name(annotated_filename(path.name, language))
        annotated.write_bytes(annotated_copy(check, language))
        lines.append(t("excel.cli.annotated_written", language, path=annotated))
    lines.append(imported_text(check, language) if check.written else t("excel.cli.dry_run", language))
    ctx.emit("\n".join(lines), _as_json(check, language, annotated))
    return 0


def _as_json(check: ImportCheck, language: str, annotated: Path | None) -> dict[str, Any]:
    data = check.as_dict()
    data["annotated"] = str(annotated) if annotated else None
    data["rows"] = [
        {
            "row": row.row,
            "outcome": row.outcome.value,
            "issues": [
                {
                    "column": issue.field,
                    "code": issue.code,
                    "warning": issue.warning,
                    "message": issue_text(issue, language),
                }
                for issue in row.issues
            ],
        }
        for row in check.rows
        if row.issues
    ]
    return data
