"""The words of rounds shared by the chat and the command line (`schoolbot round`): progress as text,
the chart's labels, figures and inconsistencies in a language."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.texts import load, t
from storage.rules import round_label
from storage.rules.dates import show_local
from storage.schemas.rounds import (
    Inconsistency,
    Progress,
    TrackState,
)

if TYPE_CHECKING:
    from exports.charts import ChartLabels


def status_label(status: Any, language: str | None = None) -> str:
    return t(f"rounds.status.{getattr(status, 'value', status)}", language)


def figure_label(key: str, language: str | None = None) -> str:
    """The name of a figure (`SchoolFigures.numbers` key); the key itself if the catalogue has none."""
    texts = load(language or "vi")
    return texts.get(f"rounds.figure.{key}") or load("vi").get(f"rounds.figure.{key}") or key


_GROUP_PARAMS = ("category", "group")


def issue_text(issue: Inconsistency, language: str | None = None) -> str:
    """An inconsistency in words, priority groups named in the language."""
    params: dict[str, Any] = {**issue.params, "subject": issue.subject}
    for name in _GROUP_PARAMS:
        if name in params and f"rounds.group.{params[name]}" in load("vi"):
            params[name] = t(f"rounds.group.{params[name]}", language)
    key = f"rounds.issue.{issue.code}"
    if key not in load("vi"):
        return t("rounds.issue.unknown", language, code=issue.code, subject=issue.subject)
    try:
        return t(key, language, **params)
    except (KeyError, IndexError):
        return t("rounds.issue.unknown", language, code=issue.code, subject=issue.subject)


def progress_text(
    progress: Progress, language: str | None, tz: ZoneInfo, not_in_csdl: Mapping[int, int] | None = None
) -> str:
    """The progress board as a short text: deadlines, totals per track, then one line per school.
    `not_in_csdl`: per school id, records in the bot for over a day and not in the CSDL (issue 19)."""
    rnd = progress.round
    totals = progress.totals
    lines = [
        t(
            "rounds.progress.header",
            language,
            round=round_label(rnd.name),
            id=rnd.id,
            status=t(f"rounds.round_status.{rnd.status.value}", language),
        ),
        t(
            "rounds.progress.deadlines",
            language,
            submit=show_local(rnd.submit_deadline, tz),
            approve=show_local(rnd.approve_deadline, tz),
            compile=show_local(rnd.compile_deadline, tz),
        ),
    ]
    for track, counts in (("program", totals.program), ("vaccine", totals.vaccine)):
        lines.append(
            t(
                "rounds.progress.track_line",
                language,
                track=t(f"rounds.track.{track}", language),
                schools=totals.schools,
                **{status: counts.get(status, 0) for status in ("approved", "submitted", "returned")},
                not_submitted=counts.get("not_submitted", 0),
            )
        )
    lines.append(t("rounds.progress.late_line", language, late=totals.program_late, records=totals.records))
    if not_in_csdl is not None:
        lines.append(t("csdl.progress.total", language, count=sum(not_in_csdl.values())))
    if not progress.schools:
        lines.append(t("rounds.progress.no_schools", language))
    for school in progress.schools:
        line = t(
            "rounds.progress.school_line",
            language,
            code=school.school_code,
            name=school.school_name,
            records=school.records,
            program=status_label(school.program, language),
            vaccine=status_label(school.vaccine, language),
        )
        if school.program_late or school.vaccine_late:
            line += t("rounds.progress.late_mark", language)
        if not_in_csdl and not_in_csdl.get(school.school_id):
            line += t("csdl.progress.school", language, count=not_in_csdl[school.school_id])
        lines.append(line)
        for track, state in (("program", school.program_state), ("vaccine", school.vaccine_state)):
            details = part_details(state, language, tz)
            if details:
                track_name = t(f"rounds.track.{track}", language)
                lines.append(t("rounds.progress.part_line", language, track=track_name, details=details))
    return "\n".join(lines)


def part_details(state: TrackState, language: str | None, tz: ZoneInfo) -> str:
    """One part's history on the board: submitted at (late?), approved at and by whom, how often it
    was sent back (the last reason) or reopened. Empty when nothing happened yet."""
    pieces = []
    if state.submitted_at is not None:
        pieces.append(t("rounds.progress.detail_submitted", language, at=show_local(state.submitted_at, tz)))
    if state.late:
        pieces.append(t("rounds.progress.detail_late", language))
    if state.approved_at is not None:
        by = t("rounds.progress.detail_by", language, name=state.approved_by) if state.approved_by else ""
        pieces.append(
            t("rounds.progress.detail_approved", language, at=show_local(state.approved_at, tz), by=by)
        )
    if state.sent_back:
        pieces.append(t("rounds.progress.detail_sent_back", language, count=state.sent_back))
    if state.reopened:
        pieces.append(t("rounds.progress.detail_reopened", language, count=state.reopened))
    if state.last_reason and (state.sent_back or state.reopened):
        pieces.append(t("rounds.progress.detail_reason", language, reason=shorten(state.last_reason, 120)))
    return " · ".join(pieces)


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart_labels(progress: Progress, language: str | None, tz: ZoneInfo, *, hidden: int = 0) -> ChartLabels:
    from exports.charts import SEGMENTS, TRACKS, ChartLabels

    return ChartLabels(
        title=t("rounds.chart.title", language, round=round_label(progress.round.name, limit=None)),
        subtitle=t(
            "rounds.chart.subtitle", language, deadline=show_local(progress.round.submit_deadline, tz)
        ),
        schools_title=t("rounds.chart.schools_title", language),
        records_axis=t("rounds.chart.records_axis", language),
        count_axis=t("rounds.chart.count_axis", language),
        tracks={track: t(f"rounds.track.{track}", language) for track in TRACKS},
        segments={segment: t(f"rounds.chart.{segment}", language) for segment in SEGMENTS},
        more_schools=t("rounds.chart.more_schools", language, count=hidden) if hidden else "",
    )


def progress_png(progress: Progress, language: str | None, tz: ZoneInfo) -> bytes:
    """The progress chart in `language`."""
    from exports.charts import progress_chart_series, render_progress_png

    series = progress_chart_series(progress)
    return render_progress_png(series, chart_labels(progress, language, tz, hidden=series.hidden_schools))
