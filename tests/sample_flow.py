"""A small three-step flow used to test what every flow inherits (drafts, restart, cancel, timeout).

Its texts are test data, not user-facing strings; they live here rather than in the catalogue.
"""

from __future__ import annotations

import enum
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler

from bot.context import BotContext
from bot.keyboards import confirm_choices, date_choices
from conversations.common import Flow, Turn
from storage.schemas.parsing import clean_name, parse_date, parse_quantity


class Step(enum.IntEnum):
    NAME = 1
    DATE = 2
    QUANTITY = 3
    SUMMARY = 4


class SampleFlow(Flow):
    name = "sample"
    command = "sample"
    title_key = "menu.help.button"  # any existing text will do for a title
    summary_state = Step.SUMMARY
    saved: list[dict[str, Any]] = []

    async def begin(self, turn: Turn) -> int:
        return await turn.ask(Step.NAME)

    async def prompt(self, turn: Turn, state: int) -> None:
        if state == Step.NAME:
            await turn.reply("Step 1: name?")
        elif state == Step.DATE:
            await turn.reply("Step 2: date?", date_choices(self.cb("date"), turn.language))
        elif state == Step.QUANTITY:
            await turn.reply("Step 3: quantity?")
        else:
            d = turn.draft
            await turn.reply(
                f"Summary: {d['name']} / {d['date']} / {d['quantity']}",
                confirm_choices(self.cb(), turn.language),
            )

    def steps(self) -> dict[int, list[BaseHandler[Update, BotContext, Any]]]:
        return {
            Step.NAME: [self.on_text(self.on_name)],
            Step.DATE: [self.on_text(self.on_date), self.on_button("date:", self.on_date)],
            Step.QUANTITY: [self.on_text(self.on_quantity)],
            Step.SUMMARY: [self.on_button("confirm$", self.on_confirm)],
        }

    async def on_name(self, turn: Turn) -> int | None:
        turn.draft["name"] = clean_name(turn.answer)
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Turn) -> int | None:
        when = parse_date(turn.answer, turn.context.services.clock.today())
        turn.draft["date"] = when.isoformat()
        return await turn.advance(Step.QUANTITY)

    async def on_quantity(self, turn: Turn) -> int | None:
        turn.draft["quantity"] = parse_quantity(turn.answer)
        return await turn.advance(Step.SUMMARY)

    async def on_confirm(self, turn: Turn) -> int:
        self.saved.append(dict(turn.draft))
        return await turn.finish("Saved.")


class PickStep(enum.IntEnum):
    SEARCH = 1
    NEW_NAME = 2
    NEW_BIRTH = 3
    NEW_CLASS = 4
    NEW_CODE = 5
    DATE = 6


class PickerFlow(Flow):
    """Pick a student (or add one), then a date."""

    name = "pickdemo"
    command = "pickdemo"
    title_key = "menu.help.button"
    picked: list[tuple[int, str]] = []

    def __init__(self) -> None:
        from conversations.widgets.student_picker import PickerStates, StudentPicker

        states = PickerStates(
            PickStep.SEARCH, PickStep.NEW_NAME, PickStep.NEW_BIRTH, PickStep.NEW_CLASS, PickStep.NEW_CODE
        )
        self.picker = StudentPicker(self, states, self.on_student, prompt_key="menu.handover.help")

    async def begin(self, turn: Turn) -> int:
        return await self.picker.ask(turn)

    async def prompt(self, turn: Turn, state: int) -> None:
        if self.picker.owns(state):
            await self.picker.prompt(turn, state)
        else:
            await turn.reply("Date?", date_choices(self.cb("date"), turn.language))

    def steps(self) -> dict[int, list[BaseHandler[Update, BotContext, Any]]]:
        return {
            **self.picker.handlers(),
            PickStep.DATE: [self.on_button("date:", self.on_date), self.on_text(self.on_date)],
        }

    async def on_student(self, turn: Turn, student: Any) -> int:
        from conversations.widgets.student_picker import remember_student

        remember_student(turn.draft, student)
        return await turn.ask(PickStep.DATE)

    async def on_date(self, turn: Turn) -> int:
        from conversations.widgets.date_picker import parse_picked_date

        when = parse_picked_date(turn)
        student = turn.draft.get("student_id") or turn.draft["new_student"]
        PickerFlow.picked.append((student, when.isoformat()))
        return await turn.finish("Picked.")
