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
from conversations.common import Flow, Handlers, Turn
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
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


class ReturnFlow(Flow):
    name = "return"
    command = "return"
    title_key = "devices.loan_return.title"
    summary_state = Step.SUMMARY

    async def begin(self, turn: Turn) -> int:
        if not await self._loans(turn):
            return await turn.finish(turn.text("devices.loan_return.no_loans"))
        return await turn.ask(Step.LOAN)

    async def prompt(self, turn: Turn, state: int) -> None:
        draft, language = turn.draft, turn.language
        if state == Step.LOAN:
            await self._ask_loan(turn)
        elif state == Step.DATE:
            text = turn.text(
                "devices.loan_return.date_question",
                student=html.escape(draft["_student"]),
                device_type=device_name(draft["_device_type"], language),
                batch=draft.get("_batch_number", draft["_batch_id"]),
                handed_on=shown_date(draft["_handed_on"]),
            )
            await turn.reply(text, date_choices(self.cb("date"), language))
        elif state == Step.SUMMARY:
            text = turn.text(
                "devices.loan_return.summary",
                student=html.escape(draft["_student"]),
                device_type=device_name(draft["_device_type"], language),
                batch=draft.get("_batch_number", draft["_batch_id"]),
                handed_on=shown_date(draft["_handed_on"]),
                returned_on=shown_date(draft["returned_on"]),
            )
            await turn.reply(text, confirm_choices(self.cb(), language, edit=False))

    async def _ask_loan(self, turn: Turn) -> None:
        loans = await self._loans(turn)
        query = turn.draft.get("_query")
        if query:
            loans = matching_loans(loans, query)
        pages = max(1, math.ceil(len(loans) / PAGE_SIZE))
        page = min(max(1, int(turn.draft.get("_page", 1))), pages)
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

    @staticmethod
    def _loan_label(turn: Turn, loan: HandoverOut) -> str:
        return turn.text(
            "devices.loan_return.loan_button",
            student=loan.student_name,
            class_name=loan.class_name,
            batch=loan.batch_number,
            handed_on=show_date(loan.handed_on),
        )

    # --- steps ----------------------------------------------------------------------------------

    def steps(self) -> Handlers:
        return {
            Step.LOAN: [
                self.on_button(r"loan:\d+$", self.on_loan),
                self.on_button(r"page:\d+$", self.on_page),
                self.on_text(self.on_typed),
            ],
            Step.DATE: [self.on_button("date:", self.on_date), self.on_text(self.on_date)],
            Step.SUMMARY: [self.on_button("confirm$", self.on_confirm), self.on_text(self.press_button)],
        }

    async def press_button(self, turn: Turn) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_page(self, turn: Turn) -> int | None:
        turn.draft["_page"] = int(turn.answer)
        return await turn.ask(Step.LOAN)

    async def on_typed(self, turn: Turn) -> int | None:
        query = clean_text(turn.answer, max_length=MAX_QUERY, required=True)
        found = matching_loans(await self._loans(turn), query)
        if len(found) == 1:
            return await self._chosen(turn, found[0])
        if not found:
            return await turn.retry(turn.text("devices.loan_return.loan_no_match", query=html.escape(query)))
        turn.remember(_query=query, _page=1)
        return await turn.ask(Step.LOAN)

    async def on_loan(self, turn: Turn) -> int | None:
        loan = await turn.context.services.handovers.get_handover(
            int(turn.answer), school_id=turn.staff.school_id or 0
        )
        return await self._chosen(turn, loan)

    async def _chosen(self, turn: Turn, loan: HandoverOut) -> int | None:
        turn.context.services.handovers.check_open_loan(loan)
        turn.remember(
            handover_id=loan.id,
            _student=f"{loan.student_name} · {loan.class_name}",
            _device_type=loan.batch_device_type.value,
            _batch_id=loan.batch_id,
            _batch_number=loan.batch_number,
            _handed_on=loan.handed_on.isoformat(),
        )
        return await turn.ask(Step.DATE)

    async def on_date(self, turn: Turn) -> int | None:
        returned_on = parse_picked_date(turn)
        handed_on = date.fromisoformat(turn.draft["_handed_on"])
        turn.context.services.handovers.check_returned_on(returned_on, handed_on)
        await turn.context.services.rounds.check_entry_day(turn.staff.school_id or 0, "devices", returned_on)
        turn.draft["returned_on"] = returned_on.isoformat()
        return await turn.ask(Step.SUMMARY)

    async def on_confirm(self, turn: Turn) -> int | None:
        draft = turn.draft
        loan = await turn.context.services.handovers.return_loan(
            draft["handover_id"],
            date.fromisoformat(draft["returned_on"]),
            school_id=turn.staff.school_id or 0,
            actor_id=turn.staff.id,
        )
        text = turn.text(
            "devices.loan_return.saved",
            student=html.escape(draft["_student"]),
            device_type=device_name(loan.batch_device_type, turn.language),
            returned_on=show_date(loan.returned_on or date.fromisoformat(draft["returned_on"])),
            batch=loan.batch_number,
            left=loan.batch_left,
        )
        return await turn.finish(text)

    async def _loans(self, turn: Turn) -> list[HandoverOut]:
        return await turn.context.services.handovers.open_loans(turn.staff.school_id or 0)


def build_return_conversation() -> ReturnFlow:
    return ReturnFlow()
