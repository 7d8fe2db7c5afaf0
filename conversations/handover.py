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
from conversations.common import EditableFlow, Handlers, Turn
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
from conversations.widgets.messages import send
from conversations.widgets.photo_step import photo_handlers, skip_keyboard
from conversations.widgets.student_picker import (
    Picked,
    PickerStates,
    StudentPicker,
    remember_student,
    student_of,
)
from storage.enums import DonationSource, HandoverKind
from storage.errors import DomainError
from storage.rules.dates import show_date
from storage.schemas.devices import HANDOVER_KIND_WORDS, BatchOut, HandoverIn, HandoverOut, parse_coded
from storage.services.handovers import HandoverWarnings


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


class HandoverFlow(EditableFlow):
    name = "handover"
    command = "handover"
    title_key = "devices.handover.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "devices.handover.field"
    edit_texts = "devices"

    def __init__(self) -> None:
        states = PickerStates(Step.SEARCH, Step.NEW_NAME, Step.NEW_BIRTH, Step.NEW_CLASS, Step.NEW_CODE)
        self.picker = StudentPicker(
            self, states, self.on_student, prompt_key="devices.handover.student_question"
        )

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        # «Bàn giao tiếp từ lô này» under a saved handover (or a saved batch): the same batch again.
        return [self.entry_button(r"again:\d+$", self.on_again)]

    # --- questions ------------------------------------------------------------------------------

    async def begin(self, turn: Turn) -> int:
        batches = await self._batches(turn)
        if not batches:
            return await turn.finish(turn.text("devices.handover.no_batches"))
        return await turn.ask(Step.BATCH)

    async def on_again(self, turn: Turn) -> int:
        batch = await self._batch_with_stock(turn, int(turn.answer))
        self._remember_batch(turn, batch)
        return await self.picker.ask(turn)

    async def prompt(self, turn: Turn, state: int) -> None:
        if self.picker.owns(state):
            await self.picker.prompt(turn, state)
            return
        draft, language = turn.draft, turn.language
        if state == Step.BATCH:
            batches = await self._batches(turn)
            if not batches:
                await turn.reply(turn.text("devices.handover.no_batches"))
                return
            options = [[(batch_button_label(b, language), self.cb("batch", b.id))] for b in batches]
            await turn.reply(turn.text("devices.handover.batch_question"), rows(*options))
        elif state == Step.KIND:
            kinds = [(turn.text(f"devices.kind.{k.value}"), self.cb("kind", k.value)) for k in HandoverKind]
            text = turn.text("devices.handover.kind_question", student=html.escape(draft["_student"]))
            await turn.reply(text, rows(kinds))
        elif state == Step.DATE:
            text = turn.text("devices.handover.date_question", received_on=shown_date(draft["_received_on"]))
            await turn.reply(text, date_choices(self.cb("date"), language))
        elif state == Step.PHOTO:
            text = turn.text("devices.handover.photo_question")
            await turn.reply(text, skip_keyboard(self, language, "photo"))
        elif state == Step.SUMMARY:
            await self._show_summary(turn)
        elif state == Step.EDIT:
            await self.ask_field_list(turn)

    async def _show_summary(self, turn: Turn) -> None:
        draft, none = turn.draft, turn.text("devices.none")
        lines = [
            turn.text(
                "devices.handover.summary",
                batch=draft.get("_batch_number", draft["batch_id"]),
                device_type=device_name(draft["_device_type"], turn.language),
                make_model=html.escape(draft.get("_make_model", "")),
                received_on=shown_date(draft["_received_on"]),
                student=html.escape(draft["_student"]),
                kind=turn.text(f"devices.kind_name.{draft['kind']}"),
                handed_on=shown_date(draft["handed_on"]),
                photo=turn.text("devices.photo_attached") if draft.get("photo") else none,
            )
        ]
        if draft["kind"] == HandoverKind.LOAN:
            lines.append(turn.text("devices.handover.loan_note"))
        if turn.context.services.handovers.entered_late(date.fromisoformat(draft["handed_on"])):
            lines.append(turn.text("devices.late_preview"))
        warnings = await self._warnings(turn)
        for warning in warnings:
            lines.append(turn.text("devices.handover.second_warning", warning=html.escape(warning)))
        await turn.reply("\n\n".join(lines), self._summary_keyboard(turn, warned=bool(warnings)))

    def _summary_keyboard(self, turn: Turn, *, warned: bool) -> InlineKeyboardMarkup:
        if not warned:
            return confirm_choices(self.cb(), turn.language)
        return rows(
            [(turn.text("devices.handover.second_button"), self.cb("confirm_second"))],
            [(turn.text("core.edit"), self.cb("edit")), (turn.text("core.cancel"), self.cb("cancel"))],
        )

    async def _warnings(self, turn: Turn) -> list[str]:
        """The service's warnings for this handover (`HandoverService.check_handover`): a second
        programme device, a programme device to a student with no recorded need and no group."""
        draft = turn.draft
        if draft.get("_second_warning"):  # said by the service on a Confirm
            said = draft["_second_warning"]
            return [str(w) for w in said] if isinstance(said, list) else [str(said)]
        source = draft.get("_source")
        findings = await turn.context.services.handovers.check_handover(
            turn.staff.school_id or 0, self._data(turn), source=DonationSource(source) if source else None
        )
        return [render_error(finding.as_error(), turn.language) for finding in findings]

    def _data(self, turn: Turn) -> HandoverIn:
        draft = turn.draft
        return HandoverIn(
            batch_id=draft["batch_id"],
            **student_of(draft),
            kind=draft["kind"],
            handed_on=date.fromisoformat(draft["handed_on"]),
            receipt_photo_file_id=draft.get("photo"),
        )

    # --- steps ----------------------------------------------------------------------------------

    def steps(self) -> Handlers:
        press = self.on_text(self.press_button)
        return {
            Step.BATCH: [self.on_button(r"batch:\d+$", self.on_batch), press],
            **self.picker.handlers(),
            Step.KIND: [self.on_button(r"kind:\w+$", self.on_kind), self.on_text(self.on_kind)],
            Step.DATE: [self.on_button("date:", self.on_date), self.on_text(self.on_date)],
            Step.PHOTO: photo_handlers(self, Step.SUMMARY),
            **self.summary_steps(self.on_button("confirm_second$", self.on_confirm_second), typed=press),
        }

    async def press_button(self, turn: Turn) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_batch(self, turn: Turn) -> int | None:
        batch = await self._batch_with_stock(turn, int(turn.answer))
        draft = turn.draft
        if draft.get("student_id") is not None:  # changing the batch at the summary: the student too
            await self._check_not_holding(turn, batch.id, draft["student_id"], draft["_student_name"])
        self._remember_batch(turn, batch)
        if "handed_on" in draft and not self._fits(turn, date.fromisoformat(draft["handed_on"]), batch):
            draft.pop("handed_on")
            return await turn.ask(Step.DATE)  # the date no longer fits: ask it, then back to the summary
        if draft.get("_editing"):
            return await turn.advance(Step.SEARCH)
        return await self.picker.ask(turn)

    async def on_student(self, turn: Turn, student: Picked) -> int:
        if student.id is not None:  # a new student, added at the confirm, holds nothing yet
            await self._check_not_holding(turn, turn.draft["batch_id"], student.id, student.full_name)
        remember_student(turn.draft, student)
        turn.remember(_student=student.label, _student_name=student.full_name)
        turn.draft.pop("_second_warning", None)
        return await turn.advance(Step.KIND)

    async def on_kind(self, turn: Turn) -> int | None:
        kind = parse_coded(turn.answer, HandoverKind, HANDOVER_KIND_WORDS, "devices.handover_kind_invalid")
        turn.draft["kind"] = kind.value
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Turn) -> int | None:
        handed_on = parse_picked_date(turn)
        received_on = date.fromisoformat(turn.draft["_received_on"])
        turn.context.services.handovers.check_handed_on(handed_on, received_on)
        # Known once dated: a handover of a locked period is refused here, before the other questions.
        await turn.context.services.rounds.check_entry_day(turn.staff.school_id or 0, "devices", handed_on)
        turn.draft["handed_on"] = handed_on.isoformat()
        return await turn.advance(Step.PHOTO)

    async def ask_again(self, turn: Turn, state: int) -> int:
        if state == Step.SEARCH:
            return await self.picker.ask(turn)
        return await turn.ask(state)

    async def on_confirm(self, turn: Turn) -> int | None:
        return await self._save(turn, confirm_second=False)

    async def on_confirm_second(self, turn: Turn) -> int | None:
        return await self._save(turn, confirm_second=True)

    async def _save(self, turn: Turn, *, confirm_second: bool) -> int | None:
        draft, school_id = turn.draft, turn.staff.school_id or 0
        data = self._data(turn)
        try:
            handover = await turn.context.services.handovers.create_handover(
                school_id,
                data,
                actor_id=turn.staff.id,
                request_key=draft["request_key"],
                confirm_second_program_device=confirm_second,
                finish_draft=turn.finish_draft,
            )
        except HandoverWarnings as exc:
            if confirm_second:
                raise
            draft["_second_warning"] = [render_error(w.as_error(), turn.language) for w in exc.warnings]
            return await turn.ask(Step.SUMMARY)  # the summary again, with the warnings to confirm
        return await self._saved(turn, handover)

    async def _saved(self, turn: Turn, handover: HandoverOut) -> int:
        language = turn.language
        text = turn.text(
            "devices.handover.saved",
            kind=turn.text(f"devices.kind_name.{handover.kind.value}"),
            device_type=device_name(handover.batch_device_type, language),
            batch=handover.batch_number,
            student=html.escape(turn.draft["_student"]),
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

    async def _batches(self, turn: Turn) -> list[BatchOut]:
        donations, school_id = turn.context.services.donations, turn.staff.school_id or 0
        found: list[BatchOut] = await turn.once(
            "batches", lambda: donations.batches_with_stock(school_id, with_stock_only=True)
        )
        return found

    async def _batch_with_stock(self, turn: Turn, batch_id: int) -> BatchOut:
        """The school's batch (another school's is not found), with a device left."""
        return await turn.context.services.donations.batch_to_hand_over(
            batch_id, school_id=turn.staff.school_id or 0
        )

    def _fits(self, turn: Turn, handed_on: date, batch: BatchOut) -> bool:
        """The day already answered still fits `batch` (not before it was received)."""
        try:
            turn.context.services.handovers.check_handed_on(handed_on, batch.received_on)
        except DomainError:
            return False
        return True

    def _remember_batch(self, turn: Turn, batch: BatchOut) -> None:
        turn.remember(
            batch_id=batch.id,
            _batch_number=batch.number,
            _source=batch.source.value,
            _device_type=batch.device_type.value,
            _make_model=batch.make_model,
            _received_on=batch.received_on.isoformat(),
        )
        turn.draft.pop("_second_warning", None)

    async def _check_not_holding(self, turn: Turn, batch_id: int, student_id: int, name: str) -> None:
        """Said at the student step: the student already holds a device of this batch."""
        await turn.context.services.handovers.check_not_holding(
            batch_id, student_id, student=name, school_id=turn.staff.school_id or 0
        )


def build_handover_conversation() -> HandoverFlow:
    return HandoverFlow()
