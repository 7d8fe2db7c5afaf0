"""/my: the person's latest records — device batches, handovers, vaccine doses and needs — to view,
correct or delete.

list (buttons, newest first; 🔒 marks a record of a submitted or approved round) -> details with
Edit / Delete -> Edit: which answer -> the new value (typed, or buttons), checked by the record's
update schema -> before → after, Save -> saved through the owning service (audited, before/after).
Delete asks to confirm; the services refuse what may not go (a locked round: their text says who can
reopen it; a batch that has handovers: the reason).

Looking is not entering: the list and the details are plain messages whose buttons start the flow,
so a person who only looked has nothing open (other flows are not blocked). A draft exists only
while an edit or a deletion is under way.
"""

from __future__ import annotations

import enum
import html
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler

from bot.context import BotContext
from bot.errors import render_error, render_error_html
from bot.keyboards import date_choices, rows
from conversations.common import END, Flow, Turn, option_rows
from conversations.donation import device_name
from storage.errors import DomainError, NotFound
from storage.models import HandoverKind
from storage.schemas.devices import BatchOut, BatchUpdate, HandoverOut, HandoverUpdate
from storage.schemas.entries import RecentEntry, merge_recent
from storage.schemas.needs import NEED_GROUPS, NeedChange, NeedOut
from storage.schemas.parsing import parse_event_date
from storage.schemas.students import show_date
from storage.schemas.vaccines import MAX_DOSE_NUMBER, DoseChange, DoseOut, Finding
from storage.services.vaccines import WarningsNotConfirmed

Handlers = dict[int, list[BaseHandler[Update, BotContext, Any]]]
Record = BatchOut | HandoverOut | DoseOut | NeedOut
LIMIT = 10
_NUMBER = re.compile(r"\D*?(\d{1,3})\D*")


@dataclass(frozen=True)
class EditableField:
    name: str  # the attribute of the record's DTO and of its update schema
    kind: str  # "date", "quantity", "text", "handover_kind", "number", "category"
    clearable: bool = False  # an optional text: "Leave empty" offered


# What /my can change: the main answers the services' update_* accept.
FIELDS: dict[str, tuple[EditableField, ...]] = {
    "batch": (
        EditableField("received_on", "date"),
        EditableField("quantity", "quantity"),
        EditableField("make_model", "text"),
        EditableField("specs", "text", clearable=True),
        EditableField("note", "text", clearable=True),
    ),
    "handover": (
        EditableField("handed_on", "date"),
        EditableField("kind", "handover_kind"),
        EditableField("note", "text", clearable=True),
    ),
    "dose": (EditableField("given_on", "date"), EditableField("dose_number", "number")),
    "need": (EditableField("category", "category"), EditableField("note", "text", clearable=True)),
}
HINTS = {
    "date": "date",
    "quantity": "quantity",
    "number": "number",
    "handover_kind": "choice",
    "category": "choice",
}


def field_of(kind: str, name: str) -> EditableField:
    found = next((f for f in FIELDS.get(kind, ()) if f.name == name), None)
    if found is None:
        raise NotFound("record")
    return found


class Step(enum.IntEnum):
    FIELD = 3
    VALUE = 4
    CHANGE = 5
    DELETE = 6


class MyEntriesFlow(Flow):
    name = "my"
    command = "my"
    title_key = "my.title"

    # --- questions ------------------------------------------------------------------------------

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        # The buttons of the list and of a record's details: usable whenever, nothing held open.
        return [
            self.entry_button("list$", self.begin),
            self.entry_button(r"open:\w+\.\d+$", self.on_open),
            self.entry_button(r"edit:\w+\.\d+$", self.on_edit),
            self.entry_button(r"delete:\w+\.\d+$", self.on_delete),
        ]

    async def begin(self, turn: Turn) -> int:
        entries = await self._entries(turn)
        if not entries:
            return await turn.finish(turn.text("my.empty"))
        options = [[(self._entry_label(turn, e), self.cb("open", f"{e.kind}.{e.id}"))] for e in entries]
        await turn.reply(turn.text("my.list_header"), rows(*options))
        return await self._close(turn)

    async def _close(self, turn: Turn) -> int:
        """Nothing under way: no draft left behind (a stale one, e.g. from «start again», goes too)."""
        await turn.context.services.drafts.discard(turn.user_id, self.name)
        return END

    async def prompt(self, turn: Turn, state: int) -> None:
        if state == Step.FIELD:
            kind = turn.draft["kind"]
            options = [(turn.text(f"my.field.{f.name}"), self.cb("field", f.name)) for f in FIELDS[kind]]
            back = (turn.text("my.back"), self.cb("back"))
            await turn.reply(turn.text("my.field_question"), rows(*option_rows(options), [back]))
        elif state == Step.VALUE:
            await self._ask_value(turn)
        elif state == Step.CHANGE:
            await self._show_change(turn)
        elif state == Step.DELETE:
            details = await self._details_text(turn, await self._record(turn))
            markup = rows(
                [(turn.text("my.delete_confirm"), self.cb("delete_yes"))],
                [(turn.text("my.back"), self.cb("back"))],
            )
            await turn.reply(turn.text("my.delete_question", details=details), markup)

    def _entry_label(self, turn: Turn, entry: RecentEntry) -> str:
        details, language = entry.details, turn.language
        event_on = show_date(entry.event_on) if entry.event_on else ""
        values: dict[str, object] = {"id": entry.id, "subject": entry.subject, "event_on": event_on}
        if entry.kind == "batch":
            values |= {
                "quantity": details.get("quantity"),
                "device_type": device_name(str(details["device_type"]), language),
            }
        elif entry.kind == "handover":
            values |= {
                "class_name": details.get("class_name"),
                "kind": turn.text(f"devices.kind_name.{details['kind']}"),
            }
        elif entry.kind == "dose":
            values |= {"dose_number": details.get("dose_number")}
        elif entry.kind == "need":
            entered_on = entry.entered_at.astimezone(turn.context.services.clock.tz).date()
            values |= {
                "entered_on": show_date(entered_on),
                "category": turn.text(f"my.need_group.{details['category']}"),
            }
        label = turn.text(f"my.entry.{entry.kind}", **values)
        return (turn.text("my.locked_mark") + label) if not entry.editable else label

    async def _show_detail(self, turn: Turn) -> int:
        """The record with Edit / Delete / back to the list; the flow holds nothing meanwhile."""
        record = await self._record(turn)
        lines = [await self._details_text(turn, record)]
        if getattr(record, "entered_late", False):
            lines.append(turn.text("my.late"))
        if turn.draft.get("_locked_round") is not None:
            lines.append(turn.text("my.locked", round=html.escape(turn.draft["_locked_round"])))
        key = f"{turn.draft['kind']}.{turn.draft['_id']}"
        markup = rows(
            [(turn.text("my.edit"), self.cb("edit", key)), (turn.text("my.delete"), self.cb("delete", key))],
            [(turn.text("my.back_to_list"), self.cb("list"))],
        )
        await turn.reply("\n\n".join(lines), markup)
        return await self._close(turn)

    async def _details_text(self, turn: Turn, record: Record) -> str:
        none, language = turn.text("devices.none"), turn.language

        def text(value: str) -> str:
            return html.escape(value) if value else none

        if isinstance(record, BatchOut):
            return turn.text(
                "my.detail.batch",
                id=record.id,
                source=turn.text(f"devices.source_name.{record.source.value}"),
                donor=text(record.donor_name or ""),
                received_on=show_date(record.received_on),
                quantity=record.quantity,
                device_type=device_name(record.device_type, language),
                make_model=text(record.make_model),
                condition=turn.text(f"devices.condition_name.{record.condition.value}"),
                specs=text(record.specs),
                note=text(record.note),
                handed=record.handed_over,
                gifts=record.gifts,
                open_loans=record.open_loans,
                returned_loans=record.returned_loans,
                left=record.left,
            )
        if isinstance(record, HandoverOut):
            returned = (
                turn.text("my.detail.returned", returned_on=show_date(record.returned_on))
                if record.returned_on
                else ""
            )
            return turn.text(
                "my.detail.handover",
                id=record.id,
                student=html.escape(record.student_name),
                class_name=html.escape(record.class_name),
                batch_id=record.batch_id,
                device_type=device_name(record.batch_device_type, language),
                make_model=html.escape(record.batch_make_model),
                kind=turn.text(f"devices.kind_name.{record.kind.value}"),
                handed_on=show_date(record.handed_on),
                returned=returned,
                note=text(record.note),
            )
        if isinstance(record, DoseOut):
            return turn.text(
                "my.detail.dose",
                dose_number=record.dose_number,
                student=html.escape(record.student_name),
                class_name=html.escape(record.class_name),
                given_on=show_date(record.given_on),
                product=html.escape(record.product_label),
            )
        needs = (
            "both"
            if record.needs_device and record.needs_connectivity
            else ("device" if record.needs_device else "connectivity")
        )
        return turn.text(
            "my.detail.need",
            student=html.escape(record.student_name),
            class_name=html.escape(record.class_name),
            category=turn.text(f"my.need_group.{record.category.value}"),
            needs=turn.text(f"my.needs.{needs}"),
            note=text(record.note),
        )

    async def _ask_value(self, turn: Turn) -> None:
        kind, field = turn.draft["kind"], field_of(turn.draft["kind"], turn.draft["field"])
        record = await self._record(turn)
        hint = "text_clearable" if field.clearable else HINTS.get(field.kind, "text")
        text = turn.text(
            "my.value_question",
            field=turn.text(f"my.field.{field.name}"),
            current=self._shown(turn, field, getattr(record, field.name)),
            hint=turn.text(f"my.hint.{hint}"),
        )
        await turn.reply(text, self._value_keyboard(turn, kind, field))

    def _value_keyboard(self, turn: Turn, kind: str, field: EditableField) -> InlineKeyboardMarkup:
        back = [(turn.text("my.back"), self.cb("back"))]
        if field.kind == "date":
            days = date_choices(self.cb("date"), turn.language).inline_keyboard[0]
            return rows([(b.text, str(b.callback_data)) for b in days], back)
        if field.kind == "handover_kind":
            options = [
                (turn.text(f"devices.kind.{k.value}"), self.cb("value", k.value)) for k in HandoverKind
            ]
            return rows(options, back)
        if field.kind == "category":
            options = [
                (turn.text(f"my.need_group.{g.value}"), self.cb("value", g.value)) for g in NEED_GROUPS
            ]
            return rows(*option_rows(options), back)
        if field.clearable:
            return rows([(turn.text("my.clear"), self.cb("clear"))], back)
        return rows(back)

    async def _show_change(self, turn: Turn) -> None:
        draft = turn.draft
        field = field_of(draft["kind"], draft["field"])
        record = await self._record(turn)
        text = turn.text(
            "my.change_summary",
            field=turn.text(f"my.field.{field.name}"),
            before=self._shown(turn, field, getattr(record, field.name)),
            after=self._shown(turn, field, draft["change"][field.name]),
        )
        if draft.get("_warnings"):
            text += "\n\n" + turn.text("my.warnings", warnings=html.escape(draft["_warnings"]))
            first = [(turn.text("my.save_anyway"), self.cb("force"))]
        else:
            first = [(turn.text("my.save"), self.cb("save"))]
        await turn.reply(text, rows(first, [(turn.text("my.back"), self.cb("back"))]))

    def _shown(self, turn: Turn, field: EditableField, value: Any) -> str:
        if value is None or value == "":
            return turn.text("devices.none")
        if field.kind == "date":
            return show_date(date.fromisoformat(value) if isinstance(value, str) else value)
        if field.kind == "handover_kind":
            return turn.text(f"devices.kind_name.{getattr(value, 'value', value)}")
        if field.kind == "category":
            return turn.text(f"my.need_group.{getattr(value, 'value', value)}")
        return html.escape(str(value))

    # --- steps ----------------------------------------------------------------------------------

    def steps(self) -> Handlers:
        press = self.on_text(self.press_button)
        back = self.on_button("back$", self.on_back)
        return {
            Step.FIELD: [self.on_button(r"field:\w+$", self.on_field), back, press],
            Step.VALUE: [
                self.on_button("date:", self.on_value),
                self.on_button(r"value:\w+$", self.on_value),
                self.on_button("clear$", self.on_clear),
                back,
                self.on_text(self.on_value),
            ],
            Step.CHANGE: [
                self.on_button("save$", self.on_save),
                self.on_button("force$", self.on_force),
                back,
                press,
            ],
            Step.DELETE: [self.on_button("delete_yes$", self.on_delete_confirmed), back, press],
        }

    async def press_button(self, turn: Turn) -> int | None:
        return await turn.retry(turn.text("my.press_button"))

    async def _choose(self, turn: Turn) -> None:
        """The record the tapped button names (`kind.id`), only one of this person's recent records."""
        kind, _, number = turn.answer.partition(".")
        entry = next((e for e in await self._entries(turn) if e.kind == kind and str(e.id) == number), None)
        if entry is None:
            raise NotFound("record")
        turn.remember(
            kind=entry.kind,
            _id=entry.id,
            _label=self._entry_label(turn, entry).removeprefix(turn.text("my.locked_mark")),
            _locked_round=entry.locked_round,
            _refusal=entry.refusal.model_dump(mode="json") if entry.refusal else None,
        )

    async def on_open(self, turn: Turn) -> int:
        await self._choose(turn)
        return await self._show_detail(turn)

    async def on_back(self, turn: Turn) -> int:
        """Back one step: value -> which field; change, delete and fields -> the record (flow ends)."""
        turn.draft.pop("_warnings", None)
        if turn.step == Step.VALUE:
            return await turn.ask(Step.FIELD)
        return await self._show_detail(turn)

    async def on_edit(self, turn: Turn) -> int:
        await self._choose(turn)
        self._refuse_if_locked(turn)
        return await turn.ask(Step.FIELD)

    async def on_delete(self, turn: Turn) -> int:
        await self._choose(turn)
        self._refuse_if_locked(turn)
        return await turn.ask(Step.DELETE)

    async def on_field(self, turn: Turn) -> int | None:
        field = field_of(turn.draft["kind"], turn.answer)
        turn.draft["field"] = field.name
        return await turn.ask(Step.VALUE)

    async def on_value(self, turn: Turn) -> int | None:
        return await self._stage(turn, turn.answer)

    async def on_clear(self, turn: Turn) -> int | None:
        return await self._stage(turn, "")

    async def _stage(self, turn: Turn, raw: str) -> int | None:
        """Check the new value with the record's update schema; keep it for the Save button."""
        draft = turn.draft
        field = field_of(draft["kind"], draft["field"])
        if field.kind == "number" and _dose_number(raw) is None:
            text = turn.text("my.number_invalid", value=html.escape(raw), maximum=MAX_DOSE_NUMBER)
            return await turn.retry(text)
        try:
            change = self._change(turn, draft["kind"], field, raw)
        except ValidationError as exc:
            return await turn.retry(exc)
        draft["change"] = change.model_dump(mode="json", exclude_unset=True)
        draft["_edit_key"] = uuid.uuid4().hex  # one key per change: a double Save saves it once
        draft.pop("_warnings", None)
        return await turn.ask(Step.CHANGE)

    def _change(self, turn: Turn, kind: str, field: EditableField, raw: Any) -> BaseModel:
        today = turn.context.services.clock.today()
        context = {"today": today}
        if kind == "batch":
            return BatchUpdate.model_validate({field.name: raw}, context=context)
        if kind == "handover":
            return HandoverUpdate.model_validate({field.name: raw}, context=context)
        if kind == "dose":
            if field.kind == "date":
                value: Any = raw if isinstance(raw, date) else parse_event_date(str(raw), today)
                return DoseChange.model_validate({"given_on": value})
            return DoseChange.model_validate(
                {"dose_number": raw if isinstance(raw, int) else _dose_number(raw)}
            )
        return NeedChange.model_validate({field.name: raw})

    async def on_save(self, turn: Turn) -> int | None:
        return await self._save(turn, force=False)

    async def on_force(self, turn: Turn) -> int | None:
        return await self._save(turn, force=True)

    async def _save(self, turn: Turn, *, force: bool) -> int | None:
        draft = turn.draft
        services, school_id, actor_id = turn.context.services, turn.staff.school_id or 0, turn.staff.id
        field = field_of(draft["kind"], draft["field"])
        before = await self._record(turn)
        try:
            change = self._change(turn, draft["kind"], field, draft["change"][field.name])
        except ValidationError as exc:
            return await turn.retry(exc)
        record_id, key = draft["_id"], draft["_edit_key"]
        after: Record
        try:
            if isinstance(change, BatchUpdate):
                after = await services.donations.update_batch(
                    record_id, change, school_id=school_id, actor_id=actor_id
                )
            elif isinstance(change, HandoverUpdate):
                after = await services.handovers.update_handover(
                    record_id, change, school_id=school_id, actor_id=actor_id
                )
            elif isinstance(change, DoseChange):
                after = await services.vaccines.update_dose(
                    school_id, record_id, change, actor_id=actor_id, request_key=key, confirm_warnings=force
                )
            else:
                assert isinstance(change, NeedChange)
                after = await services.needs.update_need(
                    school_id, record_id, change, actor_id=actor_id, request_key=key
                )
        except WarningsNotConfirmed as exc:
            draft["_warnings"] = "\n".join(render_error(w.as_error(), turn.language) for w in exc.warnings)
            return await turn.ask(Step.CHANGE)
        text = turn.text(
            "my.saved",
            field=turn.text(f"my.field.{field.name}"),
            before=self._shown(turn, field, getattr(before, field.name)),
            after=self._shown(turn, field, getattr(after, field.name)),
        )
        return await turn.finish_saved(text, late=getattr(after, "entered_late", False))

    async def on_delete_confirmed(self, turn: Turn) -> int | None:
        draft = turn.draft
        services, school_id, actor_id = turn.context.services, turn.staff.school_id or 0, turn.staff.id
        kind, record_id = draft["kind"], draft["_id"]
        try:
            if kind == "batch":
                await services.donations.delete_batch(record_id, school_id=school_id, actor_id=actor_id)
            elif kind == "handover":
                await services.handovers.delete_handover(record_id, school_id=school_id, actor_id=actor_id)
            elif kind == "dose":
                await services.vaccines.delete_dose(school_id, record_id, actor_id=actor_id)
            else:
                await services.needs.delete_need(school_id, record_id, actor_id=actor_id)
        except DomainError as exc:  # refused (a batch with handovers, a locked round): say why, back to it
            await turn.reply(render_error_html(exc, turn.language))
            return await self._show_detail(turn)
        return await turn.finish(turn.text("my.deleted", entry=html.escape(draft["_label"])))

    # --- data -----------------------------------------------------------------------------------

    async def _entries(self, turn: Turn) -> list[RecentEntry]:
        services, staff_id = turn.context.services, turn.staff.id
        return merge_recent(
            await services.handovers.recent_entries(staff_id, LIMIT),  # batches and handovers
            await services.vaccines.recent_entries(staff_id, LIMIT),
            await services.needs.recent_entries(staff_id, LIMIT),
            limit=LIMIT,
        )

    async def _record(self, turn: Turn) -> Record:
        services, school_id = turn.context.services, turn.staff.school_id or 0
        kind, record_id = turn.draft["kind"], int(turn.draft["_id"])
        if kind == "batch":
            return await services.donations.get_batch(record_id, school_id=school_id)
        if kind == "handover":
            return await services.handovers.get_handover(record_id, school_id=school_id)
        if kind == "dose":
            return await services.vaccines.get_dose(school_id, record_id)
        return await services.needs.get_need(school_id, record_id)

    def _refuse_if_locked(self, turn: Turn) -> None:
        """The owning service's own refusal text: which period, who can reopen it, what to do instead."""
        refusal = turn.draft.get("_refusal")
        if refusal is None:
            return
        raise Finding.model_validate(refusal).as_error()


def _dose_number(text: object) -> int | None:
    """`2`, `mui 2`: the number; anything else (no number, two numbers): None."""
    match = _NUMBER.fullmatch(str(text).strip())
    return int(match.group(1)) if match else None


def build_my_conversation() -> MyEntriesFlow:
    return MyEntriesFlow()
