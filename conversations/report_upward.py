"""/reported: the statistics officer records that the Office reported donation batches to the
Department ("đã báo cáo Sở"), the second half of the 5-day rule (issue 15).

The batches not yet reported, oldest first, as buttons (8 a page) with their due day (received + 5
days, ⏰ when past) and «all» -> confirm -> recorded as reported today: how many on time, how many
late. `/compile` records the batches of a compiled round the same way. The service
(`RoundService.mark_reported_upward`) checks who may (Action.COMPILE), owns the transaction and
writes one audit row per batch.
"""

from __future__ import annotations

import enum
from datetime import date

from bot.keyboards import rows
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.round_helpers import error_text, esc
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules.dates import show_date
from storage.schemas.rounds import UnreportedBatch

PAGE_SIZE = 8


class Step(enum.IntEnum):
    PICK = 1
    CONFIRM = 2


class UpwardAnswers(Answers):
    # The batches to record as reported: the one picked, or those listed when «all» was tapped.
    batch_ids: list[int] | None = None
    page: int = 0  # of the list (0-based)
    # The one batch picked, as the confirmation names it.
    number: int | None = None
    school: str | None = None
    received_on: date | None = None
    due_on: date | None = None
    derived = Answers.derived | {"page", "number", "school", "received_on", "due_on"}

    def forget_batch(self) -> None:
        self.number = self.school = self.received_on = self.due_on = None


Ask = Turn[UpwardAnswers]


class ReportUpwardFlow(Flow[UpwardAnswers]):
    name = "upward"
    command = "reported"
    title_key = "upward.title"
    action = Action.COMPILE
    answers_model = UpwardAnswers

    def windows(self) -> Windows[UpwardAnswers]:
        return {
            Step.PICK: Window(
                self.ask_pick,
                [
                    self.on_button(r"pick:\d+$", self.on_pick),
                    self.on_button(r"page:\d+$", self.on_page),
                    self.on_button(r"all$", self.on_all),
                ],
            ),
            Step.CONFIRM: Window(
                self.ask_confirm,
                [
                    self.on_button(r"confirm$", self.on_confirm),
                    self.on_button(r"back$", self.on_back),
                ],
            ),
        }

    async def _batches(self, turn: Ask) -> list[UnreportedBatch]:
        return await turn.context.services.rounds.unreported_batches(actor_id=turn.staff.id)

    async def begin(self, turn: Ask) -> int:
        try:
            batches = await self._batches(turn)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        if not batches:
            return await turn.finish(turn.text("upward.none"))
        turn.answers.page = 0
        return await turn.ask(Step.PICK)

    async def ask_pick(self, turn: Ask) -> None:
        today = turn.context.services.rounds.clock.today()
        batches = await self._batches(turn)
        if not batches:  # reported meanwhile (by /compile or a colleague)
            await turn.reply(turn.text("upward.none"))
            return
        pages = (len(batches) + PAGE_SIZE - 1) // PAGE_SIZE
        page = min(turn.answers.page, pages - 1)
        buttons = [
            [
                (
                    turn.text(
                        "upward.button",
                        code=b.school_code,
                        number=b.number,
                        received_on=show_date(b.received_on),
                        due_on=show_date(b.due_on),
                        overdue=turn.text("upward.overdue_mark") if today > b.due_on else "",
                    ),
                    self.cb("pick", b.id),
                )
            ]
            for b in batches[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        ]
        nav = []
        if page > 0:
            nav.append((turn.text("upward.previous"), self.cb("page", page - 1)))
        if page < pages - 1:
            nav.append((turn.text("upward.next"), self.cb("page", page + 1)))
        if nav:
            buttons.append(nav)
        buttons.append([(turn.text("upward.all", count=len(batches)), self.cb("all"))])
        buttons.append([(turn.text("core.cancel"), self.cb("cancel"))])
        text = turn.text("upward.list", count=len(batches), page=page + 1, pages=pages)
        await turn.reply(text, rows(*buttons))

    async def ask_confirm(self, turn: Ask) -> None:
        today = turn.context.services.rounds.clock.today()
        answers = turn.answers
        chosen = answers.batch_ids or []
        school, received_on, due_on = answers.school, answers.received_on, answers.due_on
        if len(chosen) == 1 and school is not None and received_on and due_on:
            text = turn.text(
                "upward.confirm_one",
                number=answers.number,
                school=esc(school),
                received_on=show_date(received_on),
                due_on=show_date(due_on),
                today=show_date(today),
            )
        else:
            text = turn.text("upward.confirm_all", count=len(chosen), today=show_date(today))
        await turn.reply(
            text,
            rows(
                [(turn.text("upward.confirm"), self.cb("confirm"))],
                [(turn.text("upward.back"), self.cb("back"))],
                [(turn.text("core.cancel"), self.cb("cancel"))],
            ),
        )

    async def on_page(self, turn: Ask) -> int | None:
        turn.answers.page = int(turn.answer)
        return await turn.ask(Step.PICK)

    async def on_pick(self, turn: Ask) -> int | None:
        chosen = int(turn.answer)
        found = next((b for b in await self._batches(turn) if b.id == chosen), None)
        if found is None:  # reported meanwhile: the list as it is now
            return await turn.ask(Step.PICK)
        answers = turn.answers
        answers.batch_ids, answers.number, answers.school = [found.id], found.number, found.school_name
        answers.received_on, answers.due_on = found.received_on, found.due_on
        return await turn.ask(Step.CONFIRM)

    async def on_all(self, turn: Ask) -> int | None:
        batches = await self._batches(turn)
        if not batches:
            return await turn.finish(turn.text("upward.none"))
        turn.answers.forget_batch()
        # The batches listed when «all» was tapped: one reported meanwhile is not reported twice.
        turn.answers.batch_ids = [b.id for b in batches]
        return await turn.ask(Step.CONFIRM)

    async def on_back(self, turn: Ask) -> int | None:
        return await turn.ask(Step.PICK)

    async def on_confirm(self, turn: Ask) -> int | None:
        assert turn.answers.batch_ids is not None  # chosen before the confirmation
        try:
            outcome = await turn.context.services.rounds.mark_reported_upward(
                turn.answers.batch_ids, actor_id=turn.staff.id
            )
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        text = turn.text(
            "upward.done",
            count=outcome.on_time + outcome.late,
            today=show_date(outcome.reported_on),
            on_time=outcome.on_time,
            late=outcome.late,
        )
        if outcome.already:
            text += "\n" + turn.text("upward.done_already", count=outcome.already)
        return await turn.finish(text)


def build_report_upward_conversation() -> ReportUpwardFlow:
    return ReportUpwardFlow()
