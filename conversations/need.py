"""/need: a student's need for a computer under "Song va may tinh cho em" (menu 4.8.1), and
/need_summary: the school's summary by priority group (what 4.8.2 sends).

student (picker) -> [already recorded: say so, offer to update] -> priority group -> device /
connectivity / both -> note (or skip) -> summary -> confirm. The summary's "since" (today unless
changed there) is the day the need or the change counts from.

A need has no event day: a change dated today alters every period ending today or later. When today
is inside a locked period, /need refuses at once, before any question; a "since" typed in the summary
is checked as soon as it is given. The service checks again on confirm.
"""

from __future__ import annotations

import enum
import html
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CommandHandler

from bot.access import requires
from bot.context import BotContext
from bot.errors import render_error
from bot.keyboards import confirm_choices, date_choices, rows
from bot.replies import reply
from bot.texts import t
from conversations.common import EditableFlow, Turn, Window, Windows, menu_for, option_rows, reply_plain
from conversations.widgets.date_picker import parse_picked_date
from conversations.widgets.messages import pack_lines
from conversations.widgets.student_picker import (
    Picked,
    PickerStates,
    StudentAnswers,
    StudentPicker,
    remember_student,
    student_of,
)
from storage.enums import NEED_GROUPS, PriorityGroup
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules.dates import show_date
from storage.schemas.needs import NeedIn, NeedOut, clean_note, parse_category
from storage.schemas.organisation import StaffOut
from storage.schemas.parsing import parse_date
from storage.text import fold

# What the student needs -> (needs_device, needs_connectivity).
KINDS: dict[str, tuple[bool, bool]] = {
    "device": (True, False),
    "connectivity": (False, True),
    "both": (True, True),
}


class Step(enum.IntEnum):
    SEARCH = 1
    NEW_NAME = 2
    NEW_BIRTH = 3
    NEW_CLASS = 4
    NEW_CODE = 5
    EXISTING = 6
    GROUP = 7
    NEEDS = 8
    NOTE = 9
    SUMMARY = 10
    EDIT = 11
    SINCE = 12


class CurrentNeed(BaseModel):
    """The need already recorded, when the person chose to update it (shown beside each question)."""

    category: PriorityGroup
    kind: str
    note: str = ""


class NeedAnswers(StudentAnswers):
    category: PriorityGroup | None = None
    kind: str | None = None  # a key of KINDS
    note: str | None = None
    since: date | None = None  # None: today
    update: bool = False  # the student's need is recorded already: this changes it
    current: CurrentNeed | None = None
    derived = StudentAnswers.derived | {"update", "current"}


Ask = Turn[NeedAnswers]

# Summary "Edit": field -> the step that asks it again.
EDITABLE = {"group": Step.GROUP, "needs": Step.NEEDS, "note": Step.NOTE, "since": Step.SINCE}


def group_label(group: PriorityGroup | str, language: str) -> str:
    return t(f"needs.group.{PriorityGroup(group).value}", language)


def kind_of(need: NeedOut) -> str:
    return next(k for k, v in KINDS.items() if v == (need.needs_device, need.needs_connectivity))


def kind_label(kind: str, language: str) -> str:
    return t(f"needs.kind.{kind}", language)


def matching(typed: str, labels: dict[str, str]) -> str | None:
    """The one option whose label is what was typed (or, failing that, holds it), without diacritics."""
    folded = fold(typed)
    if not folded:
        return None
    exact = [key for key, label in labels.items() if fold(label).strip() == folded]
    if len(exact) == 1:
        return exact[0]
    partial = [key for key, label in labels.items() if folded in fold(label)]
    return partial[0] if len(partial) == 1 else None


class NeedFlow(EditableFlow[NeedAnswers]):
    name = "need"
    command = "need"
    title_key = "needs.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "needs.field"
    edit_texts = "needs"
    answers_model = NeedAnswers

    def __init__(self) -> None:
        states = PickerStates(Step.SEARCH, Step.NEW_NAME, Step.NEW_BIRTH, Step.NEW_CLASS, Step.NEW_CODE)
        self.picker = StudentPicker(self, states, self.on_student, prompt_key="needs.student_question")

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[NeedAnswers]:
        press = self.on_text(self.press_button)
        return {
            **self.picker.windows(),
            Step.EXISTING: Window(self.show_existing, [self.on_button("update$", self.on_update), press]),
            Step.GROUP: Window(
                self.ask_group, [self.on_button(r"group:\w+$", self.on_group), self.on_text(self.on_group)]
            ),
            Step.NEEDS: Window(
                self.ask_needs, [self.on_button(r"needs:\w+$", self.on_needs), self.on_text(self.on_needs)]
            ),
            Step.NOTE: Window(
                self.ask_note, [self.on_button(r"note:\w+$", self.on_note_button), self.on_text(self.on_note)]
            ),
            Step.SINCE: Window(
                self.ask_since, [self.on_button("since:", self.on_since), self.on_text(self.on_since)]
            ),
            **self.summary_windows(self.show_summary, typed=press),
        }

    async def begin(self, turn: Ask) -> int:
        refusal = await turn.context.services.needs.change_refusal(turn.school_id)
        if refusal is not None:
            # Today is inside a locked period: every change would alter it; say so before asking.
            return await turn.finish(render_error(refusal.as_error(), turn.language))
        return await self.picker.ask(turn)

    async def show_existing(self, turn: Ask) -> None:
        assert turn.answers.student_id is not None  # a new student has no need recorded
        need = await turn.context.services.needs.existing_need(
            turn.answers.student_id, school_id=turn.school_id
        )
        markup = rows(
            [(turn.text("needs.update_button"), self.cb("update"))],
            [(turn.text("core.cancel"), self.cb("cancel"))],
        )
        if need is None:  # deleted meanwhile: updating records it afresh
            await turn.reply(turn.text("needs.press_button"), markup)
            return
        entered_on = need.entered_at.astimezone(turn.context.services.clock.tz).date()
        note = turn.text("needs.existing_note", note=html.escape(need.note)) if need.note else ""
        text = turn.text(
            "needs.existing",
            student=html.escape(turn.answers.student_label or ""),
            entered_on=show_date(entered_on),
            group=group_label(need.category, turn.language),
            needs=kind_label(kind_of(need), turn.language),
            note=note,
        )
        await turn.reply(text, markup)

    async def ask_group(self, turn: Ask) -> None:
        language, current = turn.language, turn.answers.current
        text = turn.text("needs.group_question", student=html.escape(turn.answers.student_label or ""))
        if current is not None:
            text += "\n" + turn.text("needs.current", value=group_label(current.category, language))
        options = [(group_label(g, language), self.cb("group", g.value)) for g in NEED_GROUPS]
        await turn.reply(text, rows(*option_rows(options, columns=1)))

    async def ask_needs(self, turn: Ask) -> None:
        language, current = turn.language, turn.answers.current
        text = turn.text("needs.needs_question")
        if current is not None:
            text += "\n" + turn.text("needs.current", value=kind_label(current.kind, language))
        options = [(kind_label(k, language), self.cb("needs", k)) for k in KINDS]
        await turn.reply(text, rows(*option_rows(options, columns=1)))

    async def ask_note(self, turn: Ask) -> None:
        current_note = turn.answers.current.note if turn.answers.current is not None else ""
        text = turn.text("needs.note_question")
        if current_note:
            text += "\n" + turn.text("needs.note_current", note=html.escape(current_note))
            markup: InlineKeyboardMarkup = rows(
                [(turn.text("needs.keep_note"), self.cb("note", "keep"))],
                [(turn.text("needs.skip_note"), self.cb("note", "skip"))],
            )
        else:
            markup = rows([(turn.text("core.skip"), self.cb("note", "skip"))])
        await turn.reply(text, markup)

    async def ask_since(self, turn: Ask) -> None:
        await turn.reply(turn.text("needs.since_question"), date_choices(self.cb("since"), turn.language))

    async def show_summary(self, turn: Ask) -> None:
        answers, language = turn.answers, turn.language
        assert answers.category is not None and answers.kind is not None
        note = answers.note or ""
        text = turn.text(
            "needs.summary",
            student=html.escape(answers.student_label or ""),
            group=group_label(answers.category, language),
            needs=kind_label(answers.kind, language),
            note=html.escape(note) if note else turn.text("needs.no_note"),
        )
        since = answers.since
        text += "\n" + turn.text(
            "needs.summary_since",
            since=show_date(since) if since else turn.text("needs.since_today"),
        )
        if answers.update:
            text += "\n\n" + turn.text("needs.summary_update")
        await turn.reply(text, confirm_choices(self.cb(), language))

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("needs.press_button"))

    async def on_student(self, turn: Turn[StudentAnswers], student: Picked) -> int:
        remember_student(turn.answers, student)
        if student.id is None:  # a new student, added at the confirm: no need recorded yet
            return await turn.ask(Step.GROUP)
        existing = await turn.context.services.needs.existing_need(student.id, school_id=turn.school_id)
        if existing is not None:
            return await turn.ask(Step.EXISTING)
        return await turn.ask(Step.GROUP)

    async def on_update(self, turn: Ask) -> int:
        assert turn.answers.student_id is not None  # a new student has no need recorded
        need = await turn.context.services.needs.existing_need(
            turn.answers.student_id, school_id=turn.school_id
        )
        turn.answers.update = need is not None
        if need is not None:
            turn.answers.current = CurrentNeed(category=need.category, kind=kind_of(need), note=need.note)
        return await turn.ask(Step.GROUP)

    async def on_group(self, turn: Ask) -> int | None:
        if turn.update.callback_query is not None:
            group = parse_category(turn.answer)
        else:
            labels = {g.value: group_label(g, turn.language) for g in NEED_GROUPS}
            group = parse_category(matching(turn.answer, labels) or PriorityGroup.NONE)
        turn.answers.category = group
        return await turn.advance(Step.NEEDS)

    async def on_needs(self, turn: Ask) -> int | None:
        if turn.update.callback_query is not None:
            kind = turn.answer if turn.answer in KINDS else None
        else:
            kind = matching(turn.answer, {k: kind_label(k, turn.language) for k in KINDS})
        if kind is None:
            raise DomainError("needs.nothing_needed")
        turn.answers.kind = kind
        return await turn.advance(Step.NOTE)

    async def on_note(self, turn: Ask) -> int | None:
        turn.answers.note = clean_note(turn.answer)
        return await turn.advance(Step.SUMMARY)

    async def on_note_button(self, turn: Ask) -> int | None:
        current = turn.answers.current
        turn.answers.note = current.note if turn.answer == "keep" and current is not None else ""
        return await turn.advance(Step.SUMMARY)

    async def on_since(self, turn: Ask) -> int | None:
        since = parse_picked_date(turn)
        # Known once dated: a change the locked period would see is refused now, not at the confirm.
        await turn.context.services.rounds.check_entry_day(turn.school_id, "needs", since)
        turn.answers.since = since
        return await turn.advance(Step.SUMMARY)

    async def on_confirm(self, turn: Ask) -> int | None:
        answers = turn.answers
        assert answers.kind is not None and answers.category is not None
        needs_device, needs_connectivity = KINDS[answers.kind]
        try:
            data = NeedIn(
                **student_of(answers),
                category=answers.category,
                needs_device=needs_device,
                needs_connectivity=needs_connectivity,
                note=answers.note or "",
                since=answers.since,
            )
        except ValidationError as exc:
            return await turn.retry(exc)
        update = answers.update
        try:
            need = await turn.context.services.needs.record_need(
                data,
                school_id=turn.school_id,
                actor_id=turn.staff.id,
                request_key=turn.request_key,
                update=update,
            )
        except DomainError as exc:
            if exc.code != "needs.already_recorded":
                raise
            # Recorded by someone else since this flow began: show it and offer to update it.
            await reply_plain(turn.update, render_error(exc, turn.language))
            return await turn.ask(Step.EXISTING)
        text = turn.text(
            "needs.updated" if update else "needs.saved",
            student=html.escape(answers.student_label or ""),
            group=group_label(need.category, turn.language),
            needs=kind_label(kind_of(need), turn.language),
        )
        return await turn.finish(text)


def build_need_conversation() -> NeedFlow:
    return NeedFlow()


# --- /need_summary ---------------------------------------------------------------------------------


@requires(Action.ENTER_RECORDS)
async def need_summary(update: Update, context: BotContext, staff: StaffOut) -> None:
    """`/need_summary` (as of today) or `/need_summary 12/11/2021` (as of the end of that day)."""
    language = staff.language
    typed = " ".join(context.args or [])
    try:
        # A future day is the service's to refuse, in the summary's own words.
        today = context.services.clock.today()
        as_of = parse_date(typed, today, allow_future=True) if typed.strip() else None
        summary = await context.services.needs.need_summary(staff.own_school_id, as_of)
    except DomainError as exc:
        await reply(update, render_error(exc, language), menu_for(context, staff))
        return

    def text(key: str, **values: object) -> str:
        return t(f"needs.summary_report.{key}", language, **values)

    day = show_date(summary.as_of)
    lines = [
        text(
            "header",
            school=html.escape(staff.school_name or ""),
            students=summary.students_listed,
            day=day,
        ),
        "",
    ]
    for group in summary.groups:
        lines.append(
            text(
                "group",
                group=group_label(group.category, language),
                total=group.total,
                device=group.needs_device,
                connectivity=group.needs_connectivity,
                both=group.both,
                listed=group.listed,
                without_need=group.listed_without_need,
            )
        )
    totals = summary.totals
    lines.append(
        text(
            "totals",
            total=totals.total,
            device=totals.needs_device,
            connectivity=totals.needs_connectivity,
            both=totals.both,
        )
    )
    lines.append(text("met", met=summary.device_met, unmet=summary.device_unmet, day=day))
    lines.append(text("as_of", day=day))
    lines.append("")
    if summary.inconsistencies:
        lines.append(text("inconsistencies", count=len(summary.inconsistencies)))
        lines += [
            text("line", text=html.escape(render_error(f.as_error(), language), quote=False))
            for f in summary.inconsistencies
        ]
    else:
        lines.append(text("consistent"))
    first, *rest = pack_lines(lines)
    await reply(update, first, menu_for(context, staff))
    for chunk in rest:
        await reply_plain(update, chunk)


def extra_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    return [CommandHandler("need_summary", need_summary)]
