"""The round's compiled district workbook (/compile), a plain function over `CompiledRound`.

Every figure is a value of an approved snapshot (or, by the officer's choice, a school's live figures,
marked row by row "chưa duyệt"); the totals come with the data. Nothing here reads the clock or the
database, so the same snapshots give the same workbook, cell for cell.

Sheets: the cover (round, period, "approved X of Y schools", the schools left out or included not
approved, the preparer), the status sheet (both parts: submitted at and late, approved at and by whom,
sent back and the last reason, reopens), the programme figures and the vaccination figures per school.
Its words come from the catalogue through the `Labels` the caller passes in (exports/labels.py).
"""

from __future__ import annotations

import io
from typing import Any
from zoneinfo import ZoneInfo

from exports.labels import Labels
from exports.xlsx import BOOL, DATETIME, INT, LABEL, TEXT, Column, PrintSetup, Workbook
from storage.enums import SubmissionStatus
from storage.rules import round_label
from storage.rules.dates import show_date
from storage.schemas.rounds import TRACK_FIGURES, CompiledRound, CompiledSchool, TrackState
from storage.schemas.students import level_label

PARTS = ("program", "vaccine")


def _w(key: str, labels: Labels, **values: object) -> str:
    return labels(f"round_report.{key}", **values)


def _names(schools: list[Any]) -> str:
    return "; ".join(f"{s.school_code} {s.school_name}" for s in schools)


def filename(data: CompiledRound, labels: Labels, tz: ZoneInfo) -> str:
    day = data.generated_at.astimezone(tz).strftime("%Y%m%d")
    return _w("filename", labels, round_id=data.round.id, date=day)


def write_round_report(data: CompiledRound, labels: Labels, tz: ZoneInfo, prepared_by: str = "") -> bytes:
    target = io.BytesIO()
    book = Workbook(target, tz=tz)
    _cover(book, data, labels, tz, prepared_by)
    _status(book, data, labels)
    for part in PARTS:
        _figures(book, data, part, labels)
    book.close()
    return target.getvalue()


def _cover(book: Workbook, data: CompiledRound, labels: Labels, tz: ZoneInfo, prepared_by: str) -> None:
    sheet = book.add_sheet(_w("sheet.cover", labels))
    formats = book.formats
    sheet.set_column(0, 0, 110)
    rnd = data.round
    lines: list[tuple[str, Any]] = [
        (_w("cover.title", labels, round=round_label(rnd.name, limit=None)), formats.center_title),
        (
            _w(
                "cover.period",
                labels,
                start=show_date(rnd.period_start),
                end=show_date(rnd.period_end),
            ),
            formats.center,
        ),
        (_w("cover.approved", labels, approved=data.approved, total=data.total), formats.plain_bold),
        (_w("cover.source", labels), formats.plain_wrap),
    ]
    if data.left_out:
        text = _w("cover.left_out", labels, count=len(data.left_out), schools=_names(data.left_out))
        lines.append((text, formats.plain_wrap))
    if data.included_unapproved:
        schools = _names(data.included_unapproved)
        text = _w("cover.included", labels, count=len(data.included_unapproved), schools=schools)
        lines.append((text, formats.plain_wrap))
    if not data.left_out and not data.included_unapproved:
        lines.append((_w("cover.none_missing", labels), formats.plain_wrap))
    day = data.generated_at.astimezone(tz)
    place_date = _w("cover.place_date", labels, day=day.day, month=day.month, year=day.year)
    lines.append((place_date, formats.plain))
    if prepared_by:
        lines.append((_w("cover.prepared_by", labels, name=prepared_by), formats.plain))
    for row, (text, fmt) in enumerate(lines):
        book.write_text(sheet, row * 2, 0, text, fmt)
    sheet.set_row(0, 40)


def _state_columns(part: str, labels: Labels) -> list[Column]:
    prefix = _w(f"column.{part}", labels)
    late = {True: _w("words.yes", labels)}
    statuses = {s.value: labels(f"rounds.status.{s.value}") for s in SubmissionStatus}
    return [
        Column(f"{part}.status", prefix + _w("column.status", labels), LABEL, 12, statuses),
        Column(f"{part}.submitted_at", prefix + _w("column.submitted_at", labels), DATETIME, 16),
        Column(f"{part}.late", prefix + _w("column.late", labels), BOOL, 8, late),
        Column(f"{part}.approved_at", prefix + _w("column.approved_at", labels), DATETIME, 16),
        Column(f"{part}.approved_by", prefix + _w("column.approved_by", labels), TEXT, 22),
        Column(f"{part}.sent_back", prefix + _w("column.sent_back", labels), INT, 9),
        Column(f"{part}.last_reason", prefix + _w("column.last_reason", labels), TEXT, 30),
        Column(f"{part}.reopened", prefix + _w("column.reopened", labels), INT, 9),
    ]


def _school_columns(labels: Labels) -> list[Column]:
    return [
        Column("school_code", _w("column.school_code", labels), TEXT, 11),
        Column("school_name", _w("column.school_name", labels), TEXT, 30),
        Column("level", _w("column.level", labels), TEXT, 8),
    ]


def _school_record(school: CompiledSchool) -> dict[str, Any]:
    return {
        "school_code": school.school.school_code,
        "school_name": school.school.school_name,
        "level": level_label(school.school.level),
    }


def _state_record(part: str, state: TrackState) -> dict[str, Any]:
    return {
        f"{part}.status": state.status.value,
        f"{part}.submitted_at": state.submitted_at,
        f"{part}.late": state.late or None,
        f"{part}.approved_at": state.approved_at,
        f"{part}.approved_by": state.approved_by,
        f"{part}.sent_back": state.sent_back,
        f"{part}.last_reason": state.last_reason,
        f"{part}.reopened": state.reopened,
    }


def _status(book: Workbook, data: CompiledRound, labels: Labels) -> None:
    sources = {s: _w(f"source.{s}", labels) for s in ("approved", "live", "left_out")}
    columns = [
        *_school_columns(labels),
        Column("program_source", _w("column.source", labels), LABEL, 12, sources),
        *_state_columns("program", labels),
        *_state_columns("vaccine", labels),
    ]
    table = book.table(
        _w("sheet.status", labels),
        columns,
        title=_w("words.status_title", labels, round=round_label(data.round.name, limit=None)),
        subtitle=_w("cover.approved", labels, approved=data.approved, total=data.total),
        print_setup=PrintSetup(),
    )
    table.write_records(
        {
            **_school_record(school),
            "program_source": school.program_source,
            **_state_record("program", school.program),
            **_state_record("vaccine", school.vaccine),
        }
        for school in data.schools
    )
    table.finish()


def _figures(book: Workbook, data: CompiledRound, part: str, labels: Labels) -> None:
    track = next(track for track in TRACK_FIGURES if track.value == part)
    keys = TRACK_FIGURES[track]
    sources = {s: _w(f"source.{s}", labels) for s in ("approved", "live")}
    columns = [
        *_school_columns(labels),
        Column("source", _w("column.source", labels), LABEL, 12, sources),
        *[Column(key, labels(f"rounds.figure.{key}"), INT, 12) for key in keys],
    ]
    table = book.table(
        _w(f"sheet.{part}", labels),
        columns,
        title=_w(f"words.{part}_title", labels),
        subtitle=_w("cover.approved", labels, approved=data.approved, total=data.total),
        note=_w("words.note", labels),
    )
    included = [s for s in data.schools if getattr(s, f"{part}_source") != "left_out"]
    table.write_records(
        {
            **_school_record(s),
            "source": getattr(s, f"{part}_source"),
            **{k: s.values.get(k, 0) for k in keys},
        }
        for s in included
    )
    totals = data.totals if part == "program" else data.vaccine_totals
    table.write_totals([{"school_name": _w("words.total", labels), **totals}])
    table.finish()
