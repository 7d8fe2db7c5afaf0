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
