"""The words of the CSDL upload files, shared by the chat (/csdl) and the command line
(`schoolbot csdl`): the status, the changed records, the file itself."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.texts import t
from storage.rules.dates import show_local
from storage.schemas.csdl import (
    MENU_CODES,
    CsdlExportOut,
    CsdlLayoutSpec,
    CsdlMenu,
    CsdlState,
    CsdlStatus,
)

# Changed records listed in a chat reply; the rest are counted (all are in the file's comments).
MAX_CHANGED_SHOWN = 10


def menu_label(menu: CsdlMenu, language: str | None = None) -> str:
    return t(f"csdl.menu.{menu.value}", language)


def fields_text(fields: list[str], language: str | None = None) -> str:
    return ", ".join(t(f"csdl.field.{name}", language) for name in fields)


def status_text(status: CsdlStatus, language: str | None, tz: ZoneInfo) -> str:
    lines = [t("csdl.title", language, school=f"{status.school_name} ({status.school_code})")]
    for entry in status.menus:
        lines.append(
            t(
                "csdl.status_line",
                language,
                menu=menu_label(entry.menu, language),
                new=entry.new,
                changed=entry.changed,
                uploaded=entry.uploaded,
            )
        )
    lines.append(
        t("csdl.overdue", language, count=status.overdue)
        if status.overdue
        else t("csdl.no_overdue", language)
    )
    if status.last_marked_at is not None:
        lines.append(t("csdl.last_marked", language, time=show_local(status.last_marked_at, tz)))
    return "\n".join(lines)


def export_counts(export: CsdlExportOut) -> dict[str, int]:
    return {
        "count": export.count,
        "new": export.count_of(CsdlState.NEW),
        "changed": export.count_of(CsdlState.CHANGED),
        "uploaded": export.count_of(CsdlState.UPLOADED),
    }


def caption_text(export: CsdlExportOut, language: str | None) -> str:
    return t(
        "csdl.caption",
        language,
        menu=menu_label(export.menu, language),
        school=export.school_name,
        **export_counts(export),
    )


def changed_lines(
    export: CsdlExportOut, language: str | None, limit: int | None = MAX_CHANGED_SHOWN
) -> list[str]:
    changed = [r for r in export.records if r.state is CsdlState.CHANGED]
    if not changed:
        return []
    lines = [t("csdl.changed_header", language)]
    for record in changed[:limit]:
        what = f"{t(f'csdl.record.{record.kind.value}', language)} · {record.who}"
        lines.append(t("csdl.changed_line", language, who=what, fields=fields_text(record.changed, language)))
    if limit is not None and len(changed) > limit:
        lines.append(t("csdl.changed_more", language, count=len(changed) - limit))
    return lines


def export_filename(export: CsdlExportOut, language: str | None) -> str:
    return t(
        "csdl.filename",
        language,
        code=MENU_CODES[export.menu],
        school=export.school_code,
        day=export.created_at.strftime("%Y%m%d-%H%M"),
    )


def export_workbook(
    export: CsdlExportOut, layout: CsdlLayoutSpec, language: str | None, tz: ZoneInfo
) -> bytes:
    """The upload file; a changed record's first cell says what changed (a comment: the CSDL reads
    values only)."""
    from exports.csdl import build_csdl_workbook

    notes = {
        (r.kind.value, r.id): t("csdl.note_changed", language, fields=fields_text(r.changed, language))
        for r in export.records
        if r.state is CsdlState.CHANGED
    }
    return build_csdl_workbook(
        layout,
        export.sheets,
        token=export.token,
        tz=tz,
        row_notes=notes,
        title=f"{layout.title} — {export.school_name}",
    )
