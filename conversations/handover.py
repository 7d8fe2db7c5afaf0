"""/handover: one device of a batch to one student (menu 4.8.3), as a gift or a temporary loan.

batch with devices left (received / handed over / left) -> student (picker) -> gift or loan (a loan
until online learning ends does not count as having a device) -> date -> photo of the signed receipt
(optional) -> summary -> confirm. After saving, «Bàn giao tiếp từ lô này» starts a new handover with
the same batch, straight at the student. A student who already holds a programme device gets the
service's warning on the summary and a separate button to go ahead anyway. The loser of a race for a
batch's last device is told so (`devices.batch_exhausted`) and stays at the summary: nothing changed.
"""

from __future__ import annotations

import enum
import html
from datetime import date
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler

from bot.context import BotContext
from bot.errors import render_error
from bot.keyboards import confirm_choices, date_choices, rows
from bot.texts import t
from conversations.common import EditableFlow, Turn, Window, Windows
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
from conversations.widgets.messages import send
from conversations.widgets.photo_step import PhotoAnswers, photo_handlers, skip_keyboard
from conversations.widgets.student_picker import (
    Picked,
    PickerStates,
    StudentAnswers,
    StudentPicker,
    remember_student,
    student_of,
)
from storage.enums import DeviceType, DonationSource, HandoverKind
from storage.errors import DomainError
from storage.rules.dates import show_date
from storage.rules.findings import HandoverWarnings
from storage.schemas.devices import HANDOVER_KIND_WORDS, BatchOut, HandoverIn, HandoverOut, parse_coded


class Step(enum.IntEnum):
    BATCH = 1
    SEARCH = 2
    NEW_NAME = 3
    NEW_BIRTH = 4
    NEW_CLASS = 5
    NEW_CODE = 6
    KIND = 7
    DATE = 8
    PHOTO = 9
    SUMMARY = 10
    EDIT = 11


class HandoverAnswers(StudentAnswers, PhotoAnswers):
    batch_id: int | None = None
    kind: HandoverKind | None = None
    handed_on: date | None = None
    # The batch as the questions and the summary show it, read when it is chosen.
    batch_number: int | None = None
    source: DonationSource | None = None
    device_type: DeviceType | None = None
    make_model: str | None = None
    received_on: date | None = None
    # The service's warnings said at a Confirm (a second programme device, …): confirm them apart.
    second_warning: list[str] | None = None
    derived = StudentAnswers.derived | {
        "batch_number",
        "source",
        "device_type",
        "make_model",
        "received_on",
        "second_warning",
    }


Ask = Turn[HandoverAnswers]

# Summary "Edit": answer -> the step that asks it again.
EDITABLE = {
    "batch": Step.BATCH,
    "student": Step.SEARCH,
    "kind": Step.KIND,
    "handed_on": Step.DATE,
    "photo": Step.PHOTO,
}


def batch_button_label(batch: BatchOut, language: str) -> str:
    return t(
        "devices.handover.batch_button",
        language,
        batch=batch.number,
        device_type=device_name(batch.device_type, language),
        received_on=show_date(batch.received_on),
        quantity=batch.quantity,
        handed=batch.handed_over,
        left=batch.left,
    )


class HandoverFlow(EditableFlow[HandoverAnswers]):
    name = "handover"
    command = "handover"
    title_key = "devices.handover.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "devices.handover.field"
    edit_texts = "devices"
    answers_model = HandoverAnswers

    def __init__(self) -> None:
        states = PickerStates(Step.SEARCH, Step.NEW_NAME, Step.NEW_BIRTH, Step.NEW_CLASS, Step.NEW_CODE)
        self.picker = StudentPicker(
            self, states, self.on_student, prompt_key="devices.handover.student_question"
        )

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        # «Bàn giao tiếp từ lô này» under a saved handover (or a saved batch): the same batch again.
        return [self.entry_button(r"again:\d+$", self.on_again)]

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[HandoverAnswers]:
        press = self.on_text(self.press_button)
        return {
            Step.BATCH: Window(self.ask_batch, [self.on_button(r"batch:\d+$", self.on_batch), press]),
            **self.picker.windows(),
            Step.KIND: Window(
                self.ask_kind, [self.on_button(r"kind:\w+$", self.on_kind), self.on_text(self.on_kind)]
            ),
            Step.DATE: Window(
                self.ask_date, [self.on_button("date:", self.on_date), self.on_text(self.on_date)]
            ),
            Step.PHOTO: Window(self.ask_photo, photo_handlers(self, Step.SUMMARY)),
            **self.summary_windows(
                self.show_summary, self.on_button("confirm_second$", self.on_confirm_second), typed=press
            ),
        }

    async def begin(self, turn: Ask) -> int:
        batches = await self._batches(turn)
        if not batches:
            return await turn.finish(turn.text("devices.handover.no_batches"))
        return await turn.ask(Step.BATCH)

    async def on_again(self, turn: Ask) -> int:
        batch = await self._batch_with_stock(turn, int(turn.answer))
        self._remember_batch(turn, batch)
        return await self.picker.ask(turn)

    async def ask_batch(self, turn: Ask) -> None:
        batches = await self._batches(turn)
        if not batches:
            await turn.reply(turn.text("devices.handover.no_batches"))
            return
        options = [[(batch_button_label(b, turn.language), self.cb("batch", b.id))] for b in batches]
        await turn.reply(turn.text("devices.handover.batch_question"), rows(*options))

    async def ask_kind(self, turn: Ask) -> None:
        kinds = [(turn.text(f"devices.kind.{k.value}"), self.cb("kind", k.value)) for k in HandoverKind]
        text = turn.text(
            "devices.handover.kind_question", student=html.escape(turn.answers.student_label or "")
        )
        await turn.reply(text, rows(kinds))

    async def ask_date(self, turn: Ask) -> None:
        assert turn.answers.received_on is not None  # the batch is chosen first
        text = turn.text("devices.handover.date_question", received_on=shown_date(turn.answers.received_on))
        await turn.reply(text, date_choices(self.cb("date"), turn.language))

    async def ask_photo(self, turn: Ask) -> None:
        await turn.reply(
            turn.text("devices.handover.photo_question"), skip_keyboard(self, turn.language, "photo")
        )

    async def show_summary(self, turn: Ask) -> None:
        answers, none = turn.answers, turn.text("devices.none")
        assert answers.kind is not None and answers.handed_on is not None and answers.received_on is not None
        assert answers.device_type is not None
        lines = [
            turn.text(
                "devices.handover.summary",
                batch=answers.batch_number if answers.batch_number is not None else answers.batch_id,
                device_type=device_name(answers.device_type, turn.language),
                make_model=html.escape(answers.make_model or ""),
                received_on=shown_date(answers.received_on),
                student=html.escape(answers.student_label or ""),
                kind=turn.text(f"devices.kind_name.{answers.kind.value}"),
                handed_on=shown_date(answers.handed_on),
                photo=turn.text("devices.photo_attached") if answers.photo else none,
            )
        ]
        if answers.kind is HandoverKind.LOAN:
            lines.append(turn.text("devices.handover.loan_note"))
        if turn.context.services.handovers.entered_late(answers.handed_on):
            lines.append(turn.text("devices.late_preview"))
        warnings = await self._warnings(turn)
        for warning in warnings:
            lines.append(turn.text("devices.handover.second_warning", warning=html.escape(warning)))
        await turn.reply("\n\n".join(lines), self._summary_keyboard(turn, warned=bool(warnings)))

    def _summary_keyboard(self, turn: Ask, *, warned: bool) -> InlineKeyboardMarkup:
        if not warned:
            return confirm_choices(self.cb(), turn.language)
        return rows(
            [(turn.text("devices.handover.second_button"), self.cb("confirm_second"))],
            [(turn.text("core.edit"), self.cb("edit")), (turn.text("core.cancel"), self.cb("cancel"))],
        )

    async def _warnings(self, turn: Ask) -> list[str]:
        """The service's warnings for this handover (`HandoverService.check_handover`): a second
        programme device, a programme device to a student with no recorded need and no group."""
        if turn.answers.second_warning:  # said by the service on a Confirm
            return turn.answers.second_warning
        findings = await turn.context.services.handovers.check_handover(
            self._data(turn), school_id=turn.school_id, source=turn.answers.source
        )
        return [render_error(finding.as_error(), turn.language) for finding in findings]

    def _data(self, turn: Ask) -> HandoverIn:
        answers = turn.answers
        assert answers.batch_id is not None and answers.kind is not None and answers.handed_on is not None
        return HandoverIn(
            batch_id=answers.batch_id,
            **student_of(answers),
            kind=answers.kind,
            handed_on=answers.handed_on,
            receipt_photo_file_id=answers.photo,
        )

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_batch(self, turn: Ask) -> int | None:
        batch = await self._batch_with_stock(turn, int(turn.answer))
        answers = turn.answers
        if answers.student_id is not None:  # changing the batch at the summary: the student too
            await self._check_not_holding(turn, batch.id, answers.student_id, answers.student_name or "")
        self._remember_batch(turn, batch)
        if answers.handed_on is not None and not self._fits(turn, answers.handed_on, batch):
            answers.handed_on = None
            return await turn.ask(Step.DATE)  # the date no longer fits: ask it, then back to the summary
        if turn.editing:
            return await turn.advance(Step.SEARCH)
        return await self.picker.ask(turn)

    async def on_student(self, turn: Turn[StudentAnswers], student: Picked) -> int:
        answers = turn.answers
        assert isinstance(answers, HandoverAnswers)  # the picker hands back this flow's turn
        if student.id is not None:  # a new student, added at the confirm, holds nothing yet
            assert answers.batch_id is not None
            await self._check_not_holding(turn, answers.batch_id, student.id, student.full_name)
        remember_student(answers, student)
        answers.second_warning = None
        return await turn.advance(Step.KIND)

    async def on_kind(self, turn: Ask) -> int | None:
        kind = parse_coded(turn.answer, HandoverKind, HANDOVER_KIND_WORDS, "devices.handover_kind_invalid")
        turn.answers.kind = kind
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Ask) -> int | None:
        handed_on = parse_picked_date(turn)
        assert turn.answers.received_on is not None  # the batch is chosen first
        turn.context.services.handovers.check_handed_on(handed_on, turn.answers.received_on)
        # Known once dated: a handover of a locked period is refused here, before the other questions.
        await turn.context.services.rounds.check_entry_day(turn.school_id, "devices", handed_on)
        turn.answers.handed_on = handed_on
        return await turn.advance(Step.PHOTO)

    async def ask_again(self, turn: Ask, state: int) -> int:
        if state == Step.SEARCH:
            return await self.picker.ask(turn)
        return await turn.ask(state)

    async def on_confirm(self, turn: Ask) -> int | None:
        return await self._save(turn, confirm_second=False)

    async def on_confirm_second(self, turn: Ask) -> int | None:
        return await self._save(turn, confirm_second=True)

    async def _save(self, turn: Ask, *, confirm_second: bool) -> int | None:
        school_id = turn.school_id
        data = self._data(turn)
        try:
            handover = await turn.context.services.handovers.create_handover(
                data,
                school_id=school_id,
                actor_id=turn.staff.id,
                request_key=turn.request_key,
                confirm_second_program_device=confirm_second,
                finish_draft=turn.finish_draft,
            )
        except HandoverWarnings as exc:
            if confirm_second:
                raise
            turn.answers.second_warning = [render_error(w.as_error(), turn.language) for w in exc.warnings]
            return await turn.ask(Step.SUMMARY)  # the summary again, with the warnings to confirm
        return await self._saved(turn, handover)

    async def _saved(self, turn: Ask, handover: HandoverOut) -> int:
        language = turn.language
        text = turn.text(
            "devices.handover.saved",
            kind=turn.text(f"devices.kind_name.{handover.kind.value}"),
            device_type=device_name(handover.batch_device_type, language),
            batch=handover.batch_number,
            student=html.escape(turn.answers.student_label or ""),
            handed_on=show_date(handover.handed_on),
        )
        if handover.kind is HandoverKind.LOAN:
            text += "\n" + turn.text("devices.handover.loan_note")
        end = await turn.finish_saved(text, late=handover.entered_late, draft_gone=True)
        if handover.batch_left > 0:
            left = turn.text("devices.handover.left", batch=handover.batch_number, left=handover.batch_left)
            again = (turn.text("devices.handover.again"), self.cb("again", handover.batch_id))
            await send(turn, left, rows([again]))
        else:
            batch = await turn.context.services.donations.get_batch(
                handover.batch_id, school_id=handover.school_id
            )
            await send(
                turn, turn.text("devices.handover.batch_done", batch=batch.number, quantity=batch.quantity)
            )
        return end

    # --- data -----------------------------------------------------------------------------------

    async def _batches(self, turn: Ask) -> list[BatchOut]:
        donations, school_id = turn.context.services.donations, turn.school_id
        found: list[BatchOut] = await turn.once(
            "batches", lambda: donations.batches_with_stock(school_id, with_stock_only=True)
        )
        return found

    async def _batch_with_stock(self, turn: Ask, batch_id: int) -> BatchOut:
        """The school's batch (another school's is not found), with a device left."""
        return await turn.context.services.donations.batch_to_hand_over(batch_id, school_id=turn.school_id)

    def _fits(self, turn: Ask, handed_on: date, batch: BatchOut) -> bool:
        """The day already answered still fits `batch` (not before it was received)."""
        try:
            turn.context.services.handovers.check_handed_on(handed_on, batch.received_on)
        except DomainError:
            return False
        return True

    def _remember_batch(self, turn: Ask, batch: BatchOut) -> None:
        answers = turn.answers
        answers.batch_id, answers.batch_number = batch.id, batch.number
        answers.source, answers.device_type = batch.source, batch.device_type
        answers.make_model, answers.received_on = batch.make_model, batch.received_on
        answers.second_warning = None

    async def _check_not_holding(
        self, turn: Turn[StudentAnswers], batch_id: int, student_id: int, name: str
    ) -> None:
        """Said at the student step: the student already holds a device of this batch."""
        await turn.context.services.handovers.check_not_holding(
            batch_id, student_id, student=name, school_id=turn.school_id
        )


def build_handover_conversation() -> HandoverFlow:
    return HandoverFlow()
