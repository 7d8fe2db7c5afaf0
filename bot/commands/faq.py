"""`schoolbot faq ask | unanswered | resolve | list | export | import | remove`, `contacts list | import`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.texts import LANGUAGES, t

if TYPE_CHECKING:
    from bot.cli import CliContext


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot.cli import json_flag

    faq = subparsers.add_parser("faq", help=t("faq.cli.help")).add_subparsers(
        dest="faq_command", required=True
    )

    ask = faq.add_parser("ask", help=t("faq.cli.ask_help"))
    ask.add_argument("question", help=t("faq.cli.ask_question_help"))
    ask.add_argument("--no-record", action="store_true", help=t("faq.cli.no_record_help"))
    ask.add_argument("--lang", choices=LANGUAGES, default="vi", help=t("faq.cli.lang_help"))
    ask.set_defaults(handler=_ask)
    json_flag(ask)

    unanswered = faq.add_parser("unanswered", help=t("faq.cli.unanswered_help"))
    unanswered.add_argument("--limit", type=int, default=50, help=t("faq.cli.limit_help"))
    unanswered.set_defaults(handler=_unanswered)
    json_flag(unanswered)

    resolve = faq.add_parser("resolve", help=t("faq.cli.resolve_help"))
    resolve.add_argument("question_id", type=int, help=t("faq.cli.resolve_id_help"))
    resolve.set_defaults(handler=_resolve)
    json_flag(resolve)

    listing = faq.add_parser("list", help=t("faq.cli.list_help"))
    listing.add_argument("--topic", default=None, help=t("faq.cli.topic_help"))
    listing.set_defaults(handler=_list)
    json_flag(listing)

    export = faq.add_parser("export", help=t("faq.cli.export_help"))
    export.add_argument("--out", type=Path, default=None, help=t("faq.cli.out_help"))
    export.set_defaults(handler=_export)
    json_flag(export)

    load = faq.add_parser("import", help=t("faq.cli.import_help"))
    load.add_argument("file", type=Path, help=t("faq.cli.file_help"))
    load.set_defaults(handler=_import)
    json_flag(load)

    remove = faq.add_parser("remove", help=t("faq.cli.remove_help"))
    remove.add_argument("key", help=t("faq.cli.key_help"))
    remove.set_defaults(handler=_remove)
    json_flag(remove)

    contacts = subparsers.add_parser("contacts", help=t("faq.cli.contacts_help")).add_subparsers(
        dest="contacts_command", required=True
    )
    contacts_list = contacts.add_parser("list", help=t("faq.cli.contacts_list_help"))
    contacts_list.set_defaults(handler=_contacts_list)
    json_flag(contacts_list)
    contacts_import = contacts.add_parser("import", help=t("faq.cli.contacts_import_help"))
    contacts_import.add_argument("file", type=Path, help=t("faq.cli.file_help"))
    contacts_import.set_defaults(handler=_contacts_import)
    json_flag(contacts_import)


async def _ask(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.faq_render import render_answer

    services = await ctx.services()
    answer = await services.faq.ask(args.question, None, record_unanswered=not args.no_record)
    text = render_answer(answer, args.lang)
    entry = answer.entry.key if answer.matched and answer.entry else None
    ctx.emit(text, {"answer": text, "entry": entry, "score": answer.score})
    return 0


async def _unanswered(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.faq_render import render_unanswered

    services = await ctx.services()
    questions = await services.faq.unanswered(limit=args.limit)
    ctx.emit(
        render_unanswered(questions, tz=ctx.settings.tz),
        [question.model_dump(mode="json") for question in questions],
    )
    return 0


async def _resolve(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    count = await services.faq.resolve_question(args.question_id)
    ctx.emit(t("faq.cli.resolved", count=count), {"resolved": count})
    return 0


async def _list(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    if args.topic:
        entries = await services.faq.entries_for_topic(args.topic)
    else:
        entries = await services.faq.entries()
    lines = [
        t(
            "faq.cli.entry_line",
            key=entry.key,
            topic=entry.topic,
            question=entry.question,
            custom=t("faq.cli.custom_mark") if entry.source == "custom" else "",
        )
        for entry in entries
    ]
    ctx.emit("\n".join(lines) or t("cli.none"), [entry.model_dump(mode="json") for entry in entries])
    return 0


async def _export(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.cli import prepare_out, write_out

    if args.out is not None:
        prepare_out(args.out)
    services = await ctx.services()
    content = await services.faq.export_entries()
    count = len(await services.faq.entries())
    if args.out is None:
        sys.stdout.flush()
        ctx.out.write(content.decode("utf-8"))
        return 0
    write_out(args.out, content)
    ctx.emit(t("faq.cli.exported", count=count, path=args.out), {"path": str(args.out), "entries": count})
    return 0


async def _import(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    result = await services.faq.import_entries(args.file.read_bytes())
    ctx.emit(t("faq.cli.imported", **result.model_dump()), result.model_dump())
    return 0


async def _remove(ctx: CliContext, args: argparse.Namespace) -> int:
    services = await ctx.services()
    shipped = await services.faq.remove_entry(args.key)
    key = args.key.strip().lower()
    message = t("faq.cli.reverted", key=key) if shipped else t("faq.cli.removed", key=key)
    ctx.emit(message, {"removed": key, "reverted_to_shipped": shipped is not None})
    return 0


async def _contacts_list(ctx: CliContext, args: argparse.Namespace) -> int:
    from bot.faq_render import contact_role

    services = await ctx.services()
    contacts = await services.faq.contacts()
    lines = [
        t(
            "faq.cli.contact_line",
            topic=contact.topic,
            role=contact_role(contact),
            name=contact.name or "–",
            phone=contact.phone or "–",
            username=f"@{contact.telegram_username}" if contact.telegram_username else "–",
        )
        for contact in contacts
    ]
    ctx.emit("\n".join(lines), [contact.model_dump() for contact in contacts])
    return 0


async def _contacts_import(ctx: CliContext, args: argparse.Namespace) -> int:
    from storage.schemas.faq import parse_contacts_file

    services = await ctx.services()
    contacts = parse_contacts_file(args.file.read_bytes(), args.file.name)
    result = await services.faq.import_contacts(contacts)
    ctx.emit(t("faq.cli.contacts_imported", **result.model_dump()), result.model_dump())
    return 0
