"""What the round chats (/round, /progress, /submit, /review, /compile, /reopen, /report_upward) share:
HTML-safe words, a track's label, the person's district, a school's figures and issues as lines, and
telling people of a change."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence

from telegram.error import Forbidden, TelegramError

from bot.context import BotContext
from bot.errors import render_error_html
from bot.round_texts import figure_label, issue_text
from bot.texts import t
from storage.enums import SubmissionTrack
from storage.schemas.organisation import StaffOut
from storage.schemas.rounds import Inconsistency, Recipient, SchoolFigures

log = logging.getLogger(__name__)

# The command that reviews each track (told to the reviewers when a school submits).
REVIEW_COMMANDS = {SubmissionTrack.PROGRAM: "review", SubmissionTrack.VACCINE: "review_vaccine"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def error_text(exc: Exception, language: str) -> str:
    """A refusal in words, safe inside an HTML message (it may quote what was typed)."""
    return render_error_html(exc, language)


def track_label(track: SubmissionTrack | str, language: str) -> str:
    return t(f"rounds.track.{SubmissionTrack(track).value}", language)


async def district_of(context: BotContext, staff: StaffOut) -> int:
    """The person's district: their own, their school's, or the only district there is."""
    if staff.district_id is not None:
        return staff.district_id
    if staff.school_code:
        school = await context.services.organisation.school_by_code(staff.school_code)
        if school is not None:
            return int(school.district_id)
    return await context.services.rounds.district_id_by_code(None)


def figure_lines(figures: SchoolFigures, track: SubmissionTrack, language: str) -> list[str]:
    """The figures of a track that are not zero, then one line for the zeros."""
    lines = [
        t("rounds_chat.figure_line", language, label=esc(figure_label(key, language)), value=value)
        for key, value in figures.numbers(track).items()
        if value
    ]
    if len(lines) < len(figures.numbers(track)):
        lines.append(t("rounds_chat.zero_figures", language))
    return lines


def issue_lines(issues: Sequence[Inconsistency], more: int, language: str) -> list[str]:
    if not issues:
        return [t("rounds_chat.no_issues", language)]
    lines = [t("rounds_chat.issues_header", language, count=len(issues) + more)]
    lines += [t("rounds_chat.bullet", language, text=esc(issue_text(issue, language))) for issue in issues]
    if more:
        lines.append(t("rounds.issue.more", language, count=more))
    return lines


def names_of(people: Sequence[Recipient], language: str) -> str:
    return ", ".join(esc(p.full_name) for p in people) or t("rounds_chat.nobody", language)


async def notify(
    context: BotContext, recipients: Sequence[Recipient], text_for: Callable[[str], str]
) -> list[Recipient]:
    """Tell each recipient who uses the bot, in their language; the ones told. A person who blocked
    the bot (or any failed send) is logged and skipped: the change itself is already saved."""
    told: list[Recipient] = []
    seen: set[int] = set()
    for person in recipients:
        if person.telegram_user_id is None or person.staff_id in seen:
            continue
        seen.add(person.staff_id)
        try:
            await context.bot.send_message(person.telegram_user_id, text_for(person.language))
        except Forbidden:
            log.info("Staff %s has blocked the bot; not told", person.staff_id)
        except TelegramError as exc:
            log.warning("Could not tell staff %s: %s", person.staff_id, type(exc).__name__)
        else:
            told.append(person)
    return told
