"""/history: a school's changes and submission steps, newest first (issue 16, item 6).

A principal sees their own school at once. An officer without a code gets a picker of the schools
they are responsible for (`RoundService.history_schools`: specialists their level, officers the
district), 8 a page; typing a code or part of a name (diacritics optional) picks or filters, here or
after the command (`/history le van luong`). The service checks every school again
(`access.other_school`), so a forged button or another school's code is refused.

Each line says what the record is and what changed, under the chat's own labels: the rule of what an
audit row shows is `storage.schemas.history.describe_audit`; this module only puts its typed values
into the catalogue's words (`rounds_chat.history`).
"""

from __future__ import annotations

import enum
import html
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from telegram import Update

from bot.context import BotContext
from bot.errors import render_error_html
from bot.keyboards import rows
from bot.replies import reply
from bot.texts import load, t
from conversations.common import END, Answers, Flow, Turn, Window, Windows
from conversations.widgets.messages import send_lines
from storage.enums import SubmissionTrack
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules.dates import show_date, show_local
from storage.schemas.history import FieldChange, HistoryValue, ValueKind
from storage.schemas.organisation import SchoolOut, StaffOut
from storage.schemas.rounds import HistoryEntry
from storage.text import fold

HISTORY_LIMIT = 40
SCHOOLS_PER_PAGE = 8


class Step(enum.IntEnum):
    SCHOOL = 1


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


# --- the lines ------------------------------------------------------------------------------------


def value_text(value: HistoryValue, language: str, tz: Any) -> str:
    """A value as the chat shows it elsewhere (HTML-safe): dates dd/mm/yyyy, choices by label."""
    raw = value.value
    kind = value.kind
    if kind is ValueKind.EMPTY:
        return t("rounds_chat.history.value.empty", language)
    if kind is ValueKind.GONE:
        return t("rounds_chat.history.value.gone", language)
    if kind is ValueKind.PHOTO:
        return t("rounds_chat.history.value.photo", language)
    if kind is ValueKind.YES_NO:
        return t(f"rounds_chat.history.value.{'yes' if raw else 'no'}", language)
    if kind is ValueKind.BATCH:
        return t("rounds_chat.history.value.batch", language, number=raw)
    if kind is ValueKind.DATE:
        return show_date(date.fromisoformat(str(raw)))
    if kind is ValueKind.TIME:
        return show_local(datetime.fromisoformat(str(raw)), tz)
    if kind is ValueKind.CHOICE:
        key = f"{value.labels}.{raw}"
        return t(key, language) if key in load("vi") else esc(raw)
    return esc(raw)


def change_text(entity: str, change: FieldChange, language: str, tz: Any) -> str:
    return t(
        "rounds_chat.history.change",
        language,
        field=t(f"rounds_chat.history.field.{entity}.{change.field}", language),
        old=value_text(change.old, language, tz),
        new=value_text(change.new, language, tz),
    )


def history_line(entry: HistoryEntry, language: str, tz: Any) -> str:
    at = show_local(entry.at, tz)
    actor = esc(entry.actor_name) if entry.actor_name else t("rounds_chat.history.system", language)
    if entry.kind == "submission":
        return t(
            "rounds_chat.history.submission_line",
            language,
            at=at,
            actor=actor,
            track=t(
                f"rounds.track.{SubmissionTrack(entry.track or SubmissionTrack.PROGRAM).value}", language
            ),
            round=esc(entry.round_name),
            from_status=t(f"rounds.status.{entry.from_status.value}", language) if entry.from_status else "–",
            to_status=t(f"rounds.status.{entry.to_status.value}", language) if entry.to_status else "–",
            late=t("rounds_chat.history.late", language) if entry.late else "",
            reason=t("rounds_chat.history.reason", language, reason=esc(entry.reason))
            if entry.reason
            else "",
        )
    subject = t(
        f"rounds_chat.history.subject.{entry.subject_key or 'other'}",
        language,
        **{name: value_text(value, language, tz) for name, value in entry.subject.items()},
    )
    changes = (
        t(
            "rounds_chat.history.changes",
            language,
            changes="; ".join(change_text(entry.entity, c, language, tz) for c in entry.changes),
        )
        if entry.changes
        else ""
    )
    action = entry.action.value if entry.action else "update"
    return t(
        "rounds_chat.history.audit_line",
        language,
        at=at,
        actor=actor,
        action=t(f"rounds_chat.history.action.{action}", language),
        subject=subject,
        changes=changes,
    )


# --- finding the school ---------------------------------------------------------------------------


def matching(schools: Sequence[SchoolOut], query: str) -> list[SchoolOut]:
    """The schools whose code is what was typed, else those whose name or code contains it
    (without diacritics)."""
    wanted = fold(query)
    if not wanted:
        return []
    exact = [s for s in schools if fold(s.code) == wanted]
    return exact or [s for s in schools if wanted in fold(s.name) or wanted in fold(s.code)]


def example_of(schools: Sequence[SchoolOut]) -> str:
    """A part of a real school's name, as someone would type it (no diacritics): the picker's hint."""
    if not schools:
        return ""
    words = fold(schools[0].name).split()
    return " ".join(words[-2:])


class HistoryAnswers(Answers):
    """The school picker's position: the filter typed and the page shown (nothing the person
    answers: a cancel drops no answers)."""

    query: str = ""
    page: int = 1
    derived = Answers.derived | {"query", "page"}


Ask = Turn[HistoryAnswers]


class HistoryFlow(Flow[HistoryAnswers]):
    name = "history"
    command = "history"
    title_key = "rounds_chat.history.title"
    action = Action.HISTORY
    answers_model = HistoryAnswers

    def windows(self) -> Windows[HistoryAnswers]:
        return {
            Step.SCHOOL: Window(
                self.ask_school,
                [
                    self.on_button(r"school:\d+$", self.on_school),
                    self.on_button(r"page:\d+$", self.on_page),
                    self.on_text(self.on_typed),
                ],
            )
        }

    async def _enter(self, update: Update, context: BotContext, staff: StaffOut) -> int:
        # The picker holds no answers: a new /history starts over instead of offering the old one.
        if update.effective_user is not None:
            await context.services.drafts.discard(update.effective_user.id, self.name)
            known = getattr(context, "drafts", None)  # the entry guard's read, now outdated
            if known is not None:
                known[self.name] = None
        return await super()._enter(update, context, staff)

    async def _schools(self, turn: Ask) -> list[SchoolOut]:
        return await turn.context.services.rounds.history_schools(turn.staff.id)

    async def begin(self, turn: Ask) -> int:
        typed = " ".join(turn.context.args or []).strip()
        schools = await self._schools(turn)
        if typed:
            return await self._typed(turn, typed, schools, starting=True) or END
        if turn.staff.role.is_school_scoped or len(schools) == 1:
            if not schools:
                return await turn.finish(turn.text("rounds_chat.history.no_schools"))
            shown = await self._show(turn, schools[0].id, schools[0])
            return END if shown is None else shown
        if not schools:
            return await turn.finish(turn.text("rounds_chat.history.no_schools"))
        turn.answers.page, turn.answers.query = 1, ""
        return await turn.ask(Step.SCHOOL)

    async def ask_school(self, turn: Ask) -> None:
        schools = await self._schools(turn)
        query = turn.answers.query
        shown = matching(schools, query) if query else schools
        pages = max(1, math.ceil(len(shown) / SCHOOLS_PER_PAGE))
        page = min(max(1, turn.answers.page), pages)
        first = (page - 1) * SCHOOLS_PER_PAGE
        buttons: list[Sequence[tuple[str, str]]] = [
            [
                (
                    turn.text("rounds_chat.history.school_button", code=s.code, name=s.name),
                    self.cb("school", s.id),
                )
            ]
            for s in shown[first : first + SCHOOLS_PER_PAGE]
        ]
        paging = []
        if page > 1:
            paging.append((turn.text("rounds_chat.history.page_previous"), self.cb("page", page - 1)))
        if page < pages:
            paging.append((turn.text("rounds_chat.history.page_next"), self.cb("page", page + 1)))
        buttons.append(paging)
        if query:
            buttons.append([(turn.text("rounds_chat.history.all_schools"), self.cb("page", 1))])
            text = turn.text(
                "rounds_chat.history.found", query=esc(query), count=len(shown), page=page, pages=pages
            )
        else:
            text = turn.text(
                "rounds_chat.history.choose",
                count=len(schools),
                page=page,
                pages=pages,
                example=esc(example_of(schools)),
            )
        await turn.reply(text, rows(*buttons))

    async def on_school(self, turn: Ask) -> int | None:
        school_id = int(turn.answer)
        school = next((s for s in await self._schools(turn) if s.id == school_id), None)
        return await self._show(turn, school_id, school)

    async def on_page(self, turn: Ask) -> int:
        page = int(turn.answer)
        if page == 1:
            turn.answers.query = ""
        turn.answers.page = page
        return await turn.ask(Step.SCHOOL)

    async def on_typed(self, turn: Ask) -> int | None:
        return await self._typed(turn, turn.answer.strip(), await self._schools(turn), starting=False)

    async def _typed(
        self, turn: Ask, typed: str, schools: Sequence[SchoolOut], *, starting: bool
    ) -> int | None:
        found = matching(schools, typed)
        if len(found) == 1:
            return await self._show(turn, found[0].id, found[0])
        if found:
            turn.answers.query, turn.answers.page = typed, 1
            return await turn.ask(Step.SCHOOL)
        # Not one of theirs: another school's exact code gets the service's refusal, which says why.
        other = await turn.context.services.organisation.school_by_code(typed)
        if other is not None:
            return await self._show(turn, other.id, other)
        text = turn.text("rounds_chat.history.not_found", query=esc(typed))
        if starting:
            if len(schools) > 1:
                await turn.reply(text)
                turn.answers.page, turn.answers.query = 1, ""
                return await turn.ask(Step.SCHOOL)
            return await turn.finish(text)
        return await turn.retry(text)

    async def _show(self, turn: Ask, school_id: int, school: SchoolOut | None) -> int | None:
        """The school's history, after the service's access check (a school not offered — a forged
        button, another school's code — is refused there with the reason)."""
        services = turn.context.services
        language = turn.language
        try:
            entries = await services.rounds.history(school_id, viewer_id=turn.staff.id, limit=HISTORY_LIMIT)
        except DomainError as exc:
            if turn.step == Step.SCHOOL:
                return await turn.retry(exc)
            await services.drafts.discard(turn.user_id, self.name)
            await reply(turn.update, render_error_html(exc, language))
            return END
        name, code = (school.name, school.code) if school else ("", "")
        tz = services.clock.tz
        lines = [t("rounds_chat.history.header", language, school=esc(name), code=esc(code))]
        lines += [history_line(entry, language, tz) for entry in entries] or [
            t("rounds_chat.history.empty", language)
        ]
        await services.drafts.discard(turn.user_id, self.name)
        await send_lines(turn.update, lines)
        return END


def build_history_conversation() -> HistoryFlow:
    return HistoryFlow()
