"""A small three-step flow used to test what every flow inherits (drafts, restart, cancel, timeout).

Its texts are test data, not user-facing strings; they live here rather than in the catalogue.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from bot.keyboards import confirm_choices, date_choices
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.date_picker import parse_picked_date
from conversations.widgets.student_picker import (
    Picked,
    PickerStates,
    StudentAnswers,
    StudentPicker,
    remember_student,
)
from storage.schemas.parsing import clean_name, parse_date, parse_quantity


class Step(enum.IntEnum):
    NAME = 1
    DATE = 2
    QUANTITY = 3
    SUMMARY = 4


class SampleAnswers(Answers):
    name: str | None = None
    day: date | None = None
    quantity: int | None = None


class SampleFlow(Flow[SampleAnswers]):
    name = "sample"
    command = "sample"
    title_key = "menu.help.button"  # any existing text will do for a title
    summary_state = Step.SUMMARY
    answers_model = SampleAnswers
    saved: list[dict[str, Any]] = []

    def windows(self) -> Windows[SampleAnswers]:
        return {
            Step.NAME: Window(self.ask_name, [self.on_text(self.on_name)]),
            Step.DATE: Window(
                self.ask_date, [self.on_text(self.on_date), self.on_button("date:", self.on_date)]
            ),
            Step.QUANTITY: Window(self.ask_quantity, [self.on_text(self.on_quantity)]),
            Step.SUMMARY: Window(self.show_summary, [self.on_button("confirm$", self.on_confirm)]),
        }

    async def begin(self, turn: Turn[SampleAnswers]) -> int:
        return await turn.ask(Step.NAME)

    async def ask_name(self, turn: Turn[SampleAnswers]) -> None:
        await turn.reply("Step 1: name?")

    async def ask_date(self, turn: Turn[SampleAnswers]) -> None:
        await turn.reply("Step 2: date?", date_choices(self.cb("date"), turn.language))

    async def ask_quantity(self, turn: Turn[SampleAnswers]) -> None:
        await turn.reply("Step 3: quantity?")

    async def show_summary(self, turn: Turn[SampleAnswers]) -> None:
        a = turn.answers
        assert a.day is not None
        await turn.reply(
            f"Summary: {a.name} / {a.day.isoformat()} / {a.quantity}",
            confirm_choices(self.cb(), turn.language),
        )

    async def on_name(self, turn: Turn[SampleAnswers]) -> int | None:
        turn.answers.name = clean_name(turn.answer)
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Turn[SampleAnswers]) -> int | None:
        turn.answers.day = parse_date(turn.answer, turn.context.services.clock.today())
        return await turn.advance(Step.QUANTITY)

    async def on_quantity(self, turn: Turn[SampleAnswers]) -> int | None:
        turn.answers.quantity = parse_quantity(turn.answer)
        return await turn.advance(Step.SUMMARY)

    async def on_confirm(self, turn: Turn[SampleAnswers]) -> int:
        self.saved.append(turn.stored())
        return await turn.finish("Saved.")


class PickStep(enum.IntEnum):
    SEARCH = 1
    NEW_NAME = 2
    NEW_BIRTH = 3
    NEW_CLASS = 4
    NEW_CODE = 5
    DATE = 6


class PickerFlow(Flow[StudentAnswers]):
    """Pick a student (or add one), then a date."""

    name = "pickdemo"
    command = "pickdemo"
    title_key = "menu.help.button"
    answers_model = StudentAnswers
    picked: list[tuple[Any, str]] = []

    def __init__(self) -> None:
        states = PickerStates(
            PickStep.SEARCH, PickStep.NEW_NAME, PickStep.NEW_BIRTH, PickStep.NEW_CLASS, PickStep.NEW_CODE
        )
        self.picker = StudentPicker(self, states, self.on_student, prompt_key="menu.handover.help")

    def windows(self) -> Windows[StudentAnswers]:
        return {
            **self.picker.windows(),
            PickStep.DATE: Window(
                self.ask_date, [self.on_button("date:", self.on_date), self.on_text(self.on_date)]
            ),
        }

    async def begin(self, turn: Turn[StudentAnswers]) -> int:
        return await self.picker.ask(turn)

    async def ask_date(self, turn: Turn[StudentAnswers]) -> None:
        await turn.reply("Date?", date_choices(self.cb("date"), turn.language))

    async def on_student(self, turn: Turn[StudentAnswers], student: Picked) -> int:
        remember_student(turn.answers, student)
        return await turn.ask(PickStep.DATE)

    async def on_date(self, turn: Turn[StudentAnswers]) -> int:
        when = parse_picked_date(turn)
        student = turn.answers.student_id or turn.answers.new_student
        PickerFlow.picked.append((student, when.isoformat()))
        return await turn.finish("Picked.")
