"""Reporting rounds in the chat (section 5 of the directive), part one.

- `/round` (deputy head, admin): a flow that opens a round: name → period from → period to → the three
  deadlines as local date and time (`15/11/2021 15:30`) → summary (edit any answer) → confirm.
- `/progress [round number]` (deputy head and officers): the board as a short text per school, then
  the PNG chart.

/history is in conversations/history.py, /submit in conversations/submit.py, /review and
/review_vaccine in conversations/review.py, /compile in conversations/compile_round.py, the reminder
job in conversations/reminders.py. What the round chats share is in conversations/widgets/round_helpers.py.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, MessageHandler, filters

from bot.access import requires
from bot.context import BotContext
from bot.keyboards import confirm_choices
from bot.menus import BY_NAME
from bot.replies import reply
from bot.round_texts import progress_png, progress_text
from bot.texts import LANGUAGES, t
from conversations.common import Answers, EditableFlow, Question, Turn, Window, Windows, menu_for
from conversations.widgets.messages import send_lines
from conversations.widgets.round_helpers import district_of, error_text, esc
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label
from storage.rules.dates import show_date, show_local, show_time_day
from storage.schemas.organisation import StaffOut
from storage.schemas.parsing import clean_text, parse_date
from storage.schemas.rounds import (
    MAX_ROUND_NAME,
    Progress,
    RoundIn,
    RoundOut,
    TrackState,
    parse_local_datetime,
)
from storage.services.csdl import CsdlService

# --- what the /round steps share -----------------------------------------------------------------


async def retry(turn: Turn[Any], exc: Exception) -> int | None:
    """Stay at the step with the refusal, escaped (it may quote what was typed)."""
    return await turn.retry(error_text(exc, turn.language))


# --- /round ---------------------------------------------------------------------------------------


class Step(enum.IntEnum):
    NAME = 1
    PERIOD_START = 2
    PERIOD_END = 3
    SUBMIT = 4
    APPROVE = 5
    COMPILE = 6
    SUMMARY = 7
    EDIT = 8


class RoundAnswers(Answers):
    name: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    # The three deadlines, local date and time as typed (the service puts them in the district's zone).
    submit: datetime | None = None
    approve: datetime | None = None
    compile: datetime | None = None
    district_id: int | None = None  # the deputy head's district, read at the start
    derived = frozenset({"district_id"})


Ask = Turn[RoundAnswers]

QUESTIONS = {
    Step.NAME: "rounds_chat.round.name_question",
    Step.PERIOD_START: "rounds_chat.round.period_start_question",
    Step.PERIOD_END: "rounds_chat.round.period_end_question",
    Step.SUBMIT: "rounds_chat.round.submit_question",
    Step.APPROVE: "rounds_chat.round.approve_question",
    Step.COMPILE: "rounds_chat.round.compile_question",
}
# Summary «Edit»: field -> the step that asks it again.
EDITABLE = {
    "name": Step.NAME,
    "period_start": Step.PERIOD_START,
    "period_end": Step.PERIOD_END,
    "submit": Step.SUBMIT,
    "approve": Step.APPROVE,
    "compile": Step.COMPILE,
}
# Each date or deadline step: the answer it sets and the step that follows.
DAY_STEPS = {
    Step.PERIOD_START: ("period_start", Step.PERIOD_END),
    Step.PERIOD_END: ("period_end", Step.SUBMIT),
}
DEADLINE_STEPS = {
    Step.SUBMIT: ("submit", Step.APPROVE),
    Step.APPROVE: ("approve", Step.COMPILE),
    Step.COMPILE: ("compile", Step.SUMMARY),
}


def round_in(answers: RoundAnswers) -> RoundIn:
    assert answers.name is not None and answers.period_start is not None and answers.period_end is not None
    assert answers.submit is not None and answers.approve is not None and answers.compile is not None
    return RoundIn(
        name=answers.name,
        period_start=answers.period_start,
        period_end=answers.period_end,
        submit_deadline=answers.submit,
        approve_deadline=answers.approve,
        compile_deadline=answers.compile,
    )


class RoundFlow(EditableFlow[RoundAnswers]):
    name = "round"
    command = "round"
    title_key = "rounds_chat.round.title"
    action = Action.MANAGE_ROUNDS
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "rounds_chat.round.field"
    edit_texts = "rounds_chat.round"
    answers_model = RoundAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[RoundAnswers]:
        day, deadline = self.on_text(self.on_day), self.on_text(self.on_deadline)
        return {
            Step.NAME: Window(self.typed_question(Step.NAME), [self.on_text(self.on_name)]),
            Step.PERIOD_START: Window(self.typed_question(Step.PERIOD_START), [day]),
            Step.PERIOD_END: Window(self.typed_question(Step.PERIOD_END), [day]),
            Step.SUBMIT: Window(self.typed_question(Step.SUBMIT), [deadline]),
            Step.APPROVE: Window(self.typed_question(Step.APPROVE), [deadline]),
            Step.COMPILE: Window(self.typed_question(Step.COMPILE), [deadline]),
            **self.summary_windows(self.show_summary),
        }

    def typed_question(self, step: Step) -> Question[RoundAnswers]:
        """The question of `step`, answered by typing: its text alone."""

        async def question(turn: Ask) -> None:
            await turn.reply(turn.text(QUESTIONS[step]))

        return question

    async def begin(self, turn: Ask) -> int:
        try:
            turn.answers.district_id = await district_of(turn.context, turn.staff)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        return await turn.ask(Step.NAME)

    async def show_summary(self, turn: Ask) -> None:
        answers = turn.answers
        shown = round_in(answers)
        text = turn.text(
            "rounds_chat.round.summary",
            name=esc(shown.name),
            period_start=show_date(shown.period_start),
            period_end=show_date(shown.period_end),
            submit=show_time_day(shown.submit_deadline),
            approve=show_time_day(shown.approve_deadline),
            compile=show_time_day(shown.compile_deadline),
        )
        await turn.reply(text, confirm_choices(self.name, turn.language))

    # --- answers --------------------------------------------------------------------------------

    async def on_name(self, turn: Ask) -> int | None:
        try:
            turn.answers.name = clean_text(turn.answer, max_length=MAX_ROUND_NAME, required=True)
        except DomainError as exc:
            return await retry(turn, exc)
        return await turn.advance(Step.PERIOD_START)

    async def on_day(self, turn: Ask) -> int | None:
        assert turn.step is not None
        field, following = DAY_STEPS[Step(turn.step)]
        try:
            value = parse_date(turn.answer, turn.context.services.clock.today(), allow_future=True)
        except DomainError as exc:
            return await retry(turn, exc)
        setattr(turn.answers, field, value)
        return await turn.advance(following)

    async def on_deadline(self, turn: Ask) -> int | None:
        assert turn.step is not None
        field, following = DEADLINE_STEPS[Step(turn.step)]
        try:
            value = parse_local_datetime(turn.answer)
        except DomainError as exc:
            return await retry(turn, exc)
        setattr(turn.answers, field, value)
        return await turn.advance(following)

    async def on_confirm(self, turn: Ask) -> int:
        services = turn.context.services
        assert turn.answers.district_id is not None  # read by `begin`
        try:
            created = await services.rounds.create_round(
                round_in(turn.answers), district_id=turn.answers.district_id, actor_id=turn.staff.id
            )
        except DomainError as exc:
            await turn.reply(
                turn.text("rounds_chat.round.not_created", reason=error_text(exc, turn.language))
            )
            return await turn.ask(Step.EDIT)
        return await turn.finish(created_text(created, turn.language, services.clock.tz))


def created_text(created: RoundOut, language: str, tz: Any) -> str:
    return t(
        "rounds_chat.round.created",
        language,
        id=created.id,
        name=esc(created.name),
        schools=created.schools,
        period_start=show_date(created.period_start),
        period_end=show_date(created.period_end),
        submit=show_local(created.submit_deadline, tz),
        approve=show_local(created.approve_deadline, tz),
        compile=show_local(created.compile_deadline, tz),
    )


def build_round_conversation() -> RoundFlow:
    return RoundFlow()


# --- /progress ------------------------------------------------------------------------------------


def escaped_progress(progress: Progress) -> Progress:
    """The board with every name and reason made safe for an HTML message (the chart gets the raw one)."""
    schools = [
        school.model_copy(
            update={
                "school_code": esc(school.school_code),
                "school_name": esc(school.school_name),
                "program_reason": esc(school.program_reason),
                "vaccine_reason": esc(school.vaccine_reason),
                "program_state": _escaped_state(school.program_state),
                "vaccine_state": _escaped_state(school.vaccine_state),
            }
        )
        for school in progress.schools
    ]
    shown_round = progress.round.model_copy(update={"name": esc(round_label(progress.round.name))})
    return progress.model_copy(update={"round": shown_round, "schools": schools})


def _escaped_state(state: TrackState) -> TrackState:
    return state.model_copy(
        update={"last_reason": esc(state.last_reason), "approved_by": esc(state.approved_by)}
    )


async def _round_to_show(context: BotContext, staff: StaffOut, args: Sequence[str]) -> RoundOut | None:
    """`/progress 3`: round 3 (of the person's district); `/progress`: the open round due first, else
    the latest round."""
    rounds = context.services.rounds
    district_id = await district_of(context, staff)
    if args:
        shown = await rounds.get_round(int(args[0]))
        if staff.district_id is not None and shown.district_id != staff.district_id:
            raise DomainError("rounds.other_district")
        return shown
    current = await rounds.current_round(district_id)
    if current is not None:
        return current
    every = await rounds.list_rounds(district_id)
    return every[0] if every else None


@requires(Action.PROGRESS)
async def progress_command(update: Update, context: BotContext, staff: StaffOut) -> None:
    language = staff.language
    args = list(context.args or [])
    if args and not args[0].isdigit():
        await reply(update, t("rounds_chat.progress.usage", language))
        return
    try:
        shown = await _round_to_show(context, staff, args)
        if shown is None:
            await reply(update, t("rounds_chat.no_rounds", language), menu_for(context, staff))
            return
        progress = await context.services.rounds.progress(shown.id)
    except DomainError as exc:
        await reply(update, error_text(exc, language))
        return
    tz = context.services.clock.tz
    overdue = await CsdlService.of(context.services).not_in_csdl([s.school_id for s in progress.schools])
    not_in_csdl = {school_id: entry.count for school_id, entry in overdue.items()}
    text = progress_text(escaped_progress(progress), language, tz, not_in_csdl)
    await send_lines(update, text.split("\n"))
    png = await asyncio.to_thread(progress_png, progress, language, tz)
    chat = update.effective_chat
    if chat is not None:
        caption = t("rounds_chat.progress.caption", language, round=esc(round_label(progress.round.name)))
        await chat.send_photo(photo=png, caption=caption, reply_markup=menu_for(context, staff))


def menu_button(
    command: str, callback: Callable[[Update, BotContext], Coroutine[Any, Any, Any]]
) -> MessageHandler[BotContext, Any]:
    """The reply-keyboard button of a command that is not a flow (its label in every language)."""
    labels = [t(BY_NAME[command].button_key, language) for language in LANGUAGES]
    return MessageHandler(filters.Text(labels), callback)


def extra_handlers() -> list[BaseHandler[Update, BotContext, Any]]:
    return [
        CommandHandler("progress", progress_command),
        menu_button("progress", progress_command),
    ]
