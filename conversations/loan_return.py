"""/return: a device lent until online learning ends came back to the school.

open loan (buttons: student · batch · date lent; typing part of a name filters them) -> return date
-> summary -> confirm. The loan is closed and the device is back in its batch.
"""

from __future__ import annotations

import enum
import html
import math
from datetime import date

from bot.keyboards import confirm_choices, date_choices, rows
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
from storage.enums import DeviceType
from storage.rules.dates import show_date
from storage.schemas.devices import HandoverOut
from storage.schemas.parsing import clean_text
from storage.text import fold

PAGE_SIZE = 8
MAX_QUERY = 100


class Step(enum.IntEnum):
    LOAN = 1
    DATE = 2
    SUMMARY = 3


def matching_loans(loans: list[HandoverOut], query: str) -> list[HandoverOut]:
    """Loans whose student's name, code or class holds what was typed (any case, any diacritics)."""
    wanted = fold(query)
    return [
        loan
        for loan in loans
        if wanted and any(wanted in fold(v) for v in (loan.student_name, loan.student_code, loan.class_name))
    ]


class ReturnAnswers(Answers):
    handover_id: int | None = None
    returned_on: date | None = None
    # The loan as the questions and the summary show it, read when it is chosen.
    student: str | None = None  # name · class
    device_type: DeviceType | None = None
    batch_id: int | None = None
    batch_number: int | None = None
    handed_on: date | None = None
    # The loans list: the filter typed and the page shown.
    query: str | None = None
    page: int = 1
    derived = Answers.derived | {
        "student",
        "device_type",
        "batch_id",
        "batch_number",
        "handed_on",
        "query",
        "page",
    }


Ask = Turn[ReturnAnswers]


class ReturnFlow(Flow[ReturnAnswers]):
    name = "return"
    command = "return"
    title_key = "devices.loan_return.title"
    summary_state = Step.SUMMARY
    answers_model = ReturnAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[ReturnAnswers]:
        return {
            Step.LOAN: Window(
                self.ask_loan,
                [
                    self.on_button(r"loan:\d+$", self.on_loan),
                    self.on_button(r"page:\d+$", self.on_page),
                    self.on_text(self.on_typed),
                ],
            ),
            Step.DATE: Window(
                self.ask_date, [self.on_button("date:", self.on_date), self.on_text(self.on_date)]
            ),
            Step.SUMMARY: Window(
                self.show_summary,
                [self.on_button("confirm$", self.on_confirm), self.on_text(self.press_button)],
            ),
        }

    async def begin(self, turn: Ask) -> int:
        if not await self._loans(turn):
            return await turn.finish(turn.text("devices.loan_return.no_loans"))
        return await turn.ask(Step.LOAN)

    # --- questions ------------------------------------------------------------------------------

    async def ask_loan(self, turn: Ask) -> None:
        loans = await self._loans(turn)
        query = turn.answers.query
        if query:
            loans = matching_loans(loans, query)
        pages = max(1, math.ceil(len(loans) / PAGE_SIZE))
        page = min(max(1, turn.answers.page), pages)
        shown = loans[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if not loans:
            await turn.reply(turn.text("devices.loan_return.no_loans"))
            return
        if query:
            text = turn.text(
                "devices.loan_return.loan_filtered", query=html.escape(query), page=page, pages=pages
            )
        else:
            text = turn.text("devices.loan_return.loan_question", page=page, pages=pages)
        options = [[(self._loan_label(turn, loan), self.cb("loan", loan.id))] for loan in shown]
        paging = []
        if page > 1:
            paging.append((turn.text("core.back"), self.cb("page", page - 1)))
        if page < pages:
            paging.append((turn.text("core.more"), self.cb("page", page + 1)))
        await turn.reply(text, rows(*options, paging))

    async def ask_date(self, turn: Ask) -> None:
        text = turn.text("devices.loan_return.date_question", **self._loan_values(turn))
        await turn.reply(text, date_choices(self.cb("date"), turn.language))

    async def show_summary(self, turn: Ask) -> None:
        assert turn.answers.returned_on is not None  # the date is asked before the summary
        text = turn.text(
            "devices.loan_return.summary",
            **self._loan_values(turn),
            returned_on=shown_date(turn.answers.returned_on),
        )
        await turn.reply(text, confirm_choices(self.cb(), turn.language, edit=False))

    def _loan_values(self, turn: Ask) -> dict[str, object]:
        """The chosen loan as the date question and the summary name it."""
        answers = turn.answers
        assert answers.device_type is not None and answers.handed_on is not None  # the loan is chosen
        return {
            "student": html.escape(answers.student or ""),
            "device_type": device_name(answers.device_type, turn.language),
            "batch": answers.batch_number if answers.batch_number is not None else answers.batch_id,
            "handed_on": shown_date(answers.handed_on),
        }

    @staticmethod
    def _loan_label(turn: Ask, loan: HandoverOut) -> str:
        return turn.text(
            "devices.loan_return.loan_button",
            student=loan.student_name,
            class_name=loan.class_name,
            batch=loan.batch_number,
            handed_on=show_date(loan.handed_on),
        )

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_page(self, turn: Ask) -> int | None:
        turn.answers.page = int(turn.answer)
        return await turn.ask(Step.LOAN)

    async def on_typed(self, turn: Ask) -> int | None:
        query = clean_text(turn.answer, max_length=MAX_QUERY, required=True)
        found = matching_loans(await self._loans(turn), query)
        if len(found) == 1:
            return await self._chosen(turn, found[0])
        if not found:
            return await turn.retry(turn.text("devices.loan_return.loan_no_match", query=html.escape(query)))
        turn.answers.query, turn.answers.page = query, 1
        return await turn.ask(Step.LOAN)

    async def on_loan(self, turn: Ask) -> int | None:
        loan = await turn.context.services.handovers.get_handover(int(turn.answer), school_id=turn.school_id)
        return await self._chosen(turn, loan)

    async def _chosen(self, turn: Ask, loan: HandoverOut) -> int | None:
        turn.context.services.handovers.check_open_loan(loan)
        answers = turn.answers
        answers.handover_id = loan.id
        answers.student = f"{loan.student_name} · {loan.class_name}"
        answers.device_type, answers.handed_on = loan.batch_device_type, loan.handed_on
        answers.batch_id, answers.batch_number = loan.batch_id, loan.batch_number
        return await turn.ask(Step.DATE)

    async def on_date(self, turn: Ask) -> int | None:
        returned_on = parse_picked_date(turn)
        assert turn.answers.handed_on is not None  # the loan is chosen first
        turn.context.services.handovers.check_returned_on(returned_on, turn.answers.handed_on)
        await turn.context.services.rounds.check_entry_day(turn.school_id, "devices", returned_on)
        turn.answers.returned_on = returned_on
        return await turn.ask(Step.SUMMARY)

    async def on_confirm(self, turn: Ask) -> int | None:
        answers = turn.answers
        assert answers.handover_id is not None and answers.returned_on is not None
        loan = await turn.context.services.handovers.return_loan(
            answers.handover_id,
            answers.returned_on,
            school_id=turn.school_id,
            actor_id=turn.staff.id,
        )
        text = turn.text(
            "devices.loan_return.saved",
            student=html.escape(answers.student or ""),
            device_type=device_name(loan.batch_device_type, turn.language),
            returned_on=show_date(loan.returned_on or answers.returned_on),
            batch=loan.batch_number,
            left=loan.batch_left,
        )
        return await turn.finish(text)

    async def _loans(self, turn: Ask) -> list[HandoverOut]:
        return await turn.context.services.handovers.open_loans(turn.school_id)


def build_return_conversation() -> ReturnFlow:
    return ReturnFlow()
