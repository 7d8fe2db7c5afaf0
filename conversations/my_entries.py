"""/my: every record the person entered (a principal: every record of the school) — batches received,
handovers, returns, vaccine doses, needs — to find, view, correct or delete.

list (newest first, 8 a page; a filter by kind; a search by student name or code, typed after
«🔍» or as `/my <name>`; 🔒 marks a record inside a submitted or approved period) -> the record with
one button per answer its entry flow asked -> the new value (typed, tapped, or a photo), checked by the
record's update schema -> before → after, Save -> saved through the owning service (audited, rules and
period locks its own: a refusal is said at Save, which stays open). Delete asks to confirm first.

Looking is not entering: the list and the record are plain messages whose buttons carry their own
position (kind, page, search), so a person who only looked has nothing open and other flows start at
once. A draft exists only while a search is typed or an edit or a deletion is under way.
"""

from __future__ import annotations

import enum
import html
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler

from bot.context import BotContext
from bot.errors import render_error, render_error_html
from bot.keyboards import date_choices, rows
from conversations.common import END, Answers, Flow, Turn, Window, Windows, option_rows
from conversations.widgets.device_labels import device_name
from conversations.widgets.photo_step import photo_file_id
from conversations.widgets.vaccine_choices import place_button_label, place_label, product_button_label
from storage.enums import (
    NEED_GROUPS,
    DeviceCondition,
    DeviceType,
    DonationSource,
    DosePlace,
    HandoverKind,
    Role,
)
from storage.errors import DomainError, NotFound
from storage.rules.dates import show_date
from storage.rules.findings import WarningsNotConfirmed
from storage.schemas.devices import BatchOut, BatchUpdate, HandoverOut, HandoverUpdate
from storage.schemas.entries import KINDS, RecentEntry
from storage.schemas.needs import NeedChange, NeedOut
from storage.schemas.parsing import parse_event_date
from storage.schemas.vaccines import MAX_DOSE_NUMBER, DoseChange, DoseOut, Finding
from storage.text import fold

Record = BatchOut | HandoverOut | DoseOut | NeedOut
ALL = "all"
FILTERS = (ALL, *KINDS)
QUERY_LIMIT = 16  # a search travels in the buttons' data (64 bytes with the rest)
MIN_QUERY = 2
_NUMBER = re.compile(r"\D*?(\d{1,3})\D*")
NEEDS = {"device": (True, False), "connectivity": (False, True), "both": (True, True)}


@dataclass(frozen=True)
class EditableField:
    name: str  # the update schema's field (or, for `needs`, the pair it sets); my.field.<name>
    kind: str  # "date", "quantity", "text", "number", "choice", "photo", "product"
    clearable: bool = False  # optional: «Leave empty» offered


def _f(name: str, kind: str, clearable: bool = False) -> EditableField:
    return EditableField(name, kind, clearable)


# Every answer the entry flow asked, per kind of record.
FIELDS: dict[str, tuple[EditableField, ...]] = {
    "batch": (
        _f("source", "choice"),
        _f("donor_id", "choice"),
        _f("received_on", "date"),
        _f("quantity", "quantity"),
        _f("device_type", "choice"),
        _f("make_model", "text"),
        _f("condition", "choice"),
        _f("specs", "text", clearable=True),
        _f("receipt_photo_file_id", "photo", clearable=True),
        _f("note", "text", clearable=True),
    ),
    "handover": (
        _f("kind", "choice"),
        _f("handed_on", "date"),
        _f("receipt_photo_file_id", "photo", clearable=True),
        _f("note", "text", clearable=True),
    ),
    "return": (_f("returned_on", "date"),),
    "dose": (
        _f("given_on", "date"),
        _f("product_id", "product"),
        _f("dose_number", "number"),
        _f("place", "choice"),
    ),
    "need": (_f("category", "choice"), _f("needs", "choice"), _f("note", "text", clearable=True)),
}
HINTS = {"date": "date", "quantity": "quantity", "number": "number", "choice": "choice", "product": "choice"}


def field_of(kind: str, name: str) -> EditableField:
    found = next((f for f in FIELDS.get(kind, ()) if f.name == name), None)
    if found is None:
        raise NotFound("record")
    return found


def clean_query(text: str) -> str:
    """A search as the buttons carry it: folded, without the separator, bounded."""
    return fold(text).replace(":", " ").strip()[:QUERY_LIMIT].strip()


class Step(enum.IntEnum):
    VALUE = 4
    CHANGE = 5
    DELETE = 6
    SEARCH = 7
    PRODUCT_NAME = 8


class OtherProduct(BaseModel):
    """A vaccine product «other» chosen as the new value, with the name typed for it."""

    id: int
    name: str


class MyAnswers(Answers):
    """A change or a deletion under way (or a search being typed): the record, the field, the new
    value as given (checked again by the update schema at Save)."""

    kind: str | None = None  # the record's kind (KINDS)
    record_id: int | None = Field(None, validation_alias=AliasChoices("record_id", "id"))
    field: str | None = None  # the field being changed (FIELDS)
    raw: str | OtherProduct | None = None
    # The record as the list names it (the deletion's message), the owning service's refusal when
    # it is locked, the list's filter (a search returns to it), the «other» product whose name is
    # asked, the new value as shown, the change's own request key, the warnings said at a Save.
    label: str | None = None
    refusal: Finding | None = None
    list_filter: str = Field(ALL, validation_alias=AliasChoices("list_filter", "filter"))
    product: int | None = None
    after: str | None = None
    edit_key: str | None = None
    warnings: str | None = None
    derived = Answers.derived | {
        "record_id",  # bookkeeping: `kind` counts as the record chosen
        "label",
        "refusal",
        "list_filter",
        "product",
        "after",
        "edit_key",
        "warnings",
    }


Ask = Turn[MyAnswers]


class MyEntriesFlow(Flow[MyAnswers]):
    name = "my"
    command = "my"
    title_key = "my.title"
    answers_model = MyAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[MyAnswers]:
        press = self.on_text(self.press_button)
        back = self.on_button("back$", self.on_back)
        return {
            Step.SEARCH: Window(self.ask_search, [self.on_text(self.on_query), back]),
            Step.VALUE: Window(
                self.ask_value,
                [
                    self.on_button("date:", self.on_value),
                    self.on_button(r"value:[\w\-]+$", self.on_value),
                    self.on_button("clear$", self.on_clear),
                    back,
                    self.on_photo(self.on_photo_value),
                    self.on_document(self.on_photo_value),
                    self.on_text(self.on_value),
                ],
            ),
            Step.PRODUCT_NAME: Window(self.ask_product_name, [self.on_text(self.on_product_name), back]),
            Step.CHANGE: Window(
                self.show_change,
                [self.on_button("save$", self.on_save), self.on_button("force$", self.on_force), back, press],
            ),
            Step.DELETE: Window(
                self.ask_delete, [self.on_button("delete_yes$", self.on_delete_confirmed), back, press]
            ),
        }

    # --- the list -------------------------------------------------------------------------------

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        # The buttons of the list and of a record: usable whenever, nothing held open.
        return [
            self.entry_button(r"list:\w+:\d+:[^:]*$", self.on_list),
            self.entry_button(r"search:\w+$", self.on_search),
            self.entry_button(r"open:\w+\.\d+(:\w+:\d+:[^:]*)?$", self.on_open),
            self.entry_button(r"field:\w+\.\d+:\w+$", self.on_field),
            self.entry_button(r"delete:\w+\.\d+$", self.on_delete),
        ]

    async def begin(self, turn: Ask) -> int:
        typed = turn.message.text if turn.message is not None and turn.message.text else ""
        query = typed.split(maxsplit=1)[1] if typed.startswith("/") and " " in typed.strip() else ""
        if query:
            self._check_query(query)
        return await self._list(turn, ALL, 1, clean_query(query))

    async def _list(self, turn: Ask, kind: str, page: int, query: str) -> int:
        services = turn.context.services
        found = await services.entries.page(
            turn.staff, kind=None if kind == ALL else kind, query=query, page=page
        )
        if found.total == 0 and kind == ALL and not query:
            await turn.reply(turn.text("my.empty"))
            return await self._close(turn)
        scope = "school" if turn.staff.role is Role.PRINCIPAL else "mine"
        text = turn.text(
            "my.list_header",
            scope=turn.text(f"my.scope.{scope}"),
            filter=turn.text(f"my.filter_name.{kind}"),
            page=found.page,
            pages=found.pages,
            total=found.total,
        )
        if query:
            text += "\n" + turn.text("my.searching", query=html.escape(query))
        if not found.items:
            text += "\n" + turn.text("my.no_match")
        page = found.page
        options = [
            [(self._entry_label(turn, e), self.cb("open", f"{e.kind}.{e.id}", kind, page, query))]
            for e in found.items
        ]
        paging = []
        if page > 2:
            paging.append((turn.text("my.first"), self.cb("list", kind, 1, query)))
        if page > 1:
            paging.append((turn.text("my.previous"), self.cb("list", kind, page - 1, query)))
        if page < found.pages:
            paging.append((turn.text("my.next"), self.cb("list", kind, page + 1, query)))
        if page < found.pages - 1:
            paging.append((turn.text("my.last"), self.cb("list", kind, found.pages, query)))
        filters = [
            (
                (turn.text("my.current") if f == kind else "") + turn.text(f"my.filter.{f}"),
                self.cb("list", f, 1, query),
            )
            for f in FILTERS
        ]
        search = [(turn.text("my.search"), self.cb("search", kind))]
        if query:
            search.append((turn.text("my.clear_search"), self.cb("list", kind, 1, "")))
        await turn.reply(text, rows(*options, paging, *option_rows(filters, columns=3), search))
        return await self._close(turn)

    async def _close(self, turn: Ask) -> int:
        """Nothing under way: no draft left behind (a stale one, e.g. from «start again», goes too)."""
        await turn.context.services.drafts.discard(turn.user_id, self.name)
        return END

    def _args(self, turn: Ask) -> list[str]:
        """The parts of the tapped button's data after its action (`my~st:open:dose.5:all:1:an`)."""
        query = turn.update.callback_query
        return (query.data or "").split(":")[2:] if query is not None else []

    async def on_list(self, turn: Ask) -> int:
        kind, page, query = self._args(turn)[:3]
        return await self._list(turn, kind if kind in FILTERS else ALL, int(page), clean_query(query))

    async def on_search(self, turn: Ask) -> int:
        kind = self._args(turn)[0]
        turn.answers.list_filter = kind if kind in FILTERS else ALL
        return await turn.ask(Step.SEARCH)

    async def on_query(self, turn: Ask) -> int | None:
        self._check_query(turn.answer)
        return await self._list(turn, turn.answers.list_filter, 1, clean_query(turn.answer))

    @staticmethod
    def _check_query(text: str) -> None:
        if len(clean_query(text).replace(" ", "")) < MIN_QUERY:
            raise DomainError("students.query_too_short", minimum=MIN_QUERY)

    def _entry_label(self, turn: Ask, entry: RecentEntry) -> str:
        details, language = entry.details, turn.language
        event_on = show_date(entry.event_on) if entry.event_on else ""
        values: dict[str, object] = {"id": entry.id, "subject": entry.subject, "event_on": event_on}
        if entry.kind == "batch":
            values |= {
                "id": details.get("number", entry.id),  # the school's own number, «lô #3»
                "quantity": details.get("quantity"),
                "device_type": device_name(str(details["device_type"]), language),
            }
        elif entry.kind in ("handover", "return"):
            values |= {
                "class_name": details.get("class_name"),
                "kind": turn.text(f"devices.kind_name.{details['kind']}"),
                "batch_id": details.get("batch_number", details.get("batch_id")),
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

    # --- one record -----------------------------------------------------------------------------

    async def on_open(self, turn: Ask) -> int:
        args = self._args(turn)
        await self._choose(turn, args[0])
        position = args[1:4] if len(args) >= 4 else [ALL, "1", ""]
        return await self._show_detail(turn, position)

    async def _show_detail(self, turn: Ask, position: list[str] | None = None) -> int:
        """The record, one button per answer, Delete, back to the list; the flow holds nothing."""
        record = await self._record(turn)
        lines = [await self._details_text(turn, record)]
        answers = turn.answers
        if getattr(record, "entered_late", False) and answers.kind != "return":
            lines.append(turn.text("my.late"))
        if answers.refusal is not None:  # shown, not hidden: which period, who can reopen it
            reason = render_error(answers.refusal.as_error(), turn.language)
            lines.append(turn.text("my.locked_because", reason=html.escape(reason)))
        kind, key = answers.kind or "", f"{answers.kind}.{answers.record_id}"
        fields = [(turn.text(f"my.field.{f.name}"), self.cb("field", key, f.name)) for f in FIELDS[kind]]
        filter_, page, query = position or [ALL, "1", ""]
        markup = rows(
            *option_rows(fields),
            [(turn.text("my.delete"), self.cb("delete", key))] if kind != "return" else [],
            [(turn.text("my.back_to_list"), self.cb("list", filter_, page, query))],
        )
        await turn.reply("\n\n".join(lines), markup)
        return await self._close(turn)

    async def _details_text(self, turn: Ask, record: Record) -> str:
        none, language = turn.text("devices.none"), turn.language

        def text(value: str) -> str:
            return html.escape(value) if value else none

        def photo(file_id: str | None) -> str:
            return turn.text("devices.photo_attached") if file_id else none

        if isinstance(record, BatchOut):
            return turn.text(
                "my.detail.batch",
                id=record.number,
                source=turn.text(f"devices.source_name.{record.source.value}"),
                donor=text(record.donor_name or ""),
                received_on=show_date(record.received_on),
                quantity=record.quantity,
                device_type=device_name(record.device_type, language),
                make_model=text(record.make_model),
                condition=turn.text(f"devices.condition_name.{record.condition.value}"),
                specs=text(record.specs),
                photo=photo(record.receipt_photo_file_id),
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
                batch_id=record.batch_number,
                device_type=device_name(record.batch_device_type, language),
                make_model=html.escape(record.batch_make_model),
                kind=turn.text(f"devices.kind_name.{record.kind.value}"),
                handed_on=show_date(record.handed_on),
                returned=returned,
                photo=photo(record.receipt_photo_file_id),
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
                place=place_label(record.place, language),
            )
        return turn.text(
            "my.detail.need",
            student=html.escape(record.student_name),
            class_name=html.escape(record.class_name),
            category=turn.text(f"my.need_group.{record.category.value}"),
            needs=turn.text(f"my.needs.{_needs_of(record)}"),
            note=text(record.note),
        )

    # --- editing --------------------------------------------------------------------------------

    def _back(self, turn: Ask) -> list[tuple[str, str]]:
        return [(turn.text("my.back"), self.cb("back"))]

    async def ask_search(self, turn: Ask) -> None:
        await turn.reply(turn.text("my.search_question"), rows(self._back(turn)))

    async def ask_product_name(self, turn: Ask) -> None:
        await turn.reply(turn.text("vaccines.product_name_question"), rows(self._back(turn)))

    async def ask_delete(self, turn: Ask) -> None:
        details = await self._details_text(turn, await self._record(turn))
        markup = rows([(turn.text("my.delete_confirm"), self.cb("delete_yes"))], self._back(turn))
        await turn.reply(turn.text("my.delete_question", details=details), markup)

    async def ask_value(self, turn: Ask) -> None:
        field = self._field(turn)
        record = await self._record(turn)
        hint = HINTS.get(field.kind, "text")
        if field.kind == "photo":
            hint = "photo"
        elif field.clearable:
            hint = "text_clearable"
        text = turn.text(
            "my.value_question",
            field=turn.text(f"my.field.{field.name}"),
            current=await self._shown_record(turn, record, field),
            hint=turn.text(f"my.hint.{hint}"),
        )
        await turn.reply(text, await self._value_keyboard(turn, field))

    async def _options(self, turn: Ask, field: EditableField) -> list[tuple[str, str]]:
        """(value, label) of a field answered by a button."""
        language, name = turn.language, field.name
        if name == "source":
            return [(s.value, turn.text(f"devices.source.{s.value}")) for s in DonationSource]
        if name == "donor_id":
            donors = await turn.context.services.donations.donors(turn.school_id)
            return [(str(d.id), d.name) for d in donors]
        if name == "device_type":
            return [(d.value, turn.text(f"devices.device_type.{d.value}")) for d in DeviceType]
        if name == "condition":
            return [(c.value, turn.text(f"devices.condition.{c.value}")) for c in DeviceCondition]
        if name == "kind":
            return [(k.value, turn.text(f"devices.kind.{k.value}")) for k in HandoverKind]
        if name == "place":
            return [(p.value, place_button_label(p, language)) for p in DosePlace]
        if name == "category":
            return [(g.value, turn.text(f"my.need_group.{g.value}")) for g in NEED_GROUPS]
        if name == "needs":
            return [(k, turn.text(f"needs.kind.{k}")) for k in NEEDS]
        if name == "product_id":
            products = await turn.context.services.vaccines.products()
            return [(str(p.id), product_button_label(p, language)) for p in products]
        return []

    async def _value_keyboard(self, turn: Ask, field: EditableField) -> InlineKeyboardMarkup:
        back = self._back(turn)
        clear = [(turn.text("my.clear"), self.cb("clear"))] if field.clearable else []
        if field.kind == "date":
            days = date_choices(self.cb("date"), turn.language).inline_keyboard[0]
            return rows([(b.text, str(b.callback_data)) for b in days], back)
        options = [(label, self.cb("value", value)) for value, label in await self._options(turn, field)]
        return rows(*option_rows(options), clear, back)

    async def _shown_record(self, turn: Ask, record: Record, field: EditableField) -> str:
        """The field's current value as the person reads it."""
        if field.name == "needs":
            assert isinstance(record, NeedOut)  # only a need has this field
            return turn.text(f"my.needs.{_needs_of(record)}")
        if field.name == "product_id":
            return html.escape(getattr(record, "product_label", ""))
        if field.name == "donor_id":
            return html.escape(getattr(record, "donor_name", None) or "") or turn.text("devices.none")
        return await self._shown(turn, field, getattr(record, field.name))

    async def _shown(self, turn: Ask, field: EditableField, value: Any) -> str:
        """A value (of the record, or the new one) as the person reads it."""
        if field.kind == "photo":
            return turn.text("devices.photo_attached") if value else turn.text("devices.none")
        if value is None or value == "":
            return turn.text("devices.none")
        if field.kind == "date":
            return show_date(date.fromisoformat(value) if isinstance(value, str) else value)
        value = getattr(value, "value", value)
        if field.name == "source":
            return turn.text(f"devices.source_name.{value}")
        if field.name == "device_type":
            return device_name(str(value), turn.language)
        if field.name == "condition":
            return turn.text(f"devices.condition_name.{value}")
        if field.name == "kind":
            return turn.text(f"devices.kind_name.{value}")
        if field.name == "place":
            return place_label(str(value), turn.language)
        if field.name == "category":
            return turn.text(f"my.need_group.{value}")
        if field.name == "needs":
            return turn.text(f"my.needs.{value}")
        if field.kind in ("choice", "product"):
            labels = dict(await self._options(turn, field))
            return html.escape(labels.get(str(value), str(value)))
        return html.escape(str(value))

    async def show_change(self, turn: Ask) -> None:
        answers = turn.answers
        field = self._field(turn)
        text = turn.text(
            "my.change_summary",
            field=turn.text(f"my.field.{field.name}"),
            before=await self._shown_record(turn, await self._record(turn), field),
            after=answers.after,
        )
        if answers.warnings:
            text += "\n\n" + turn.text("my.warnings", warnings=html.escape(answers.warnings))
            first = [(turn.text("my.save_anyway"), self.cb("force"))]
        else:
            first = [(turn.text("my.save"), self.cb("save"))]
        await turn.reply(text, rows(first, self._back(turn)))

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("my.press_button"))

    async def _choose(self, turn: Ask, key: str) -> None:
        """The record the tapped button names (`kind.id`): only one of this person's list."""
        kind, _, number = key.partition(".")
        if not number.isdigit():
            raise NotFound("record")
        entry = await turn.context.services.entries.entry(turn.staff, kind, int(number))
        answers = turn.answers
        answers.kind, answers.record_id, answers.refusal = entry.kind, entry.id, entry.refusal
        answers.label = self._entry_label(turn, entry).removeprefix(turn.text("my.locked_mark"))

    async def on_back(self, turn: Ask) -> int:
        """Back one step: the change -> the value; the value, a deletion -> the record; a search ->
        the list (the flow ends)."""
        turn.answers.warnings = None
        if turn.step == Step.SEARCH:
            return await self._list(turn, turn.answers.list_filter, 1, "")
        if turn.step == Step.CHANGE:
            return await turn.ask(Step.VALUE)
        return await self._show_detail(turn)

    async def on_field(self, turn: Ask) -> int:
        key, name = self._args(turn)[:2]
        await self._choose(turn, key)
        field = field_of(turn.answers.kind or "", name)
        self._refuse_if_locked(turn)
        turn.answers.field = field.name
        return await turn.ask(Step.VALUE)

    async def on_delete(self, turn: Ask) -> int:
        await self._choose(turn, self._args(turn)[0])
        if turn.answers.kind == "return":
            raise NotFound("record")
        self._refuse_if_locked(turn)
        return await turn.ask(Step.DELETE)

    async def on_value(self, turn: Ask) -> int | None:
        field = self._field(turn)
        if field.kind == "photo":
            return await turn.retry(turn.text("devices.photo_hint"))
        if field.kind in ("choice", "product"):
            values = dict(await self._options(turn, field))
            typed = fold(turn.answer)
            if turn.update.callback_query is None:  # typed: the one option whose label holds it
                found = [v for v, label in values.items() if typed and typed in fold(label)]
                if len(found) != 1:
                    return await turn.retry(turn.text("my.press_button"))
                raw = found[0]
            else:
                raw = turn.answer
            if raw not in values:
                raise NotFound("record")
            if field.kind == "product":
                products = {str(p.id): p for p in await turn.context.services.vaccines.products()}
                if products[raw].needs_name:  # «other»: its name is typed next
                    turn.answers.product = int(raw)
                    return await turn.ask(Step.PRODUCT_NAME)
        else:
            raw = turn.answer
        return await self._stage(turn, raw)

    async def on_product_name(self, turn: Ask) -> int | None:
        product = turn.answers.product
        if product is None:  # the product is chosen first (a draft that lost it: choose it again)
            return await turn.ask(Step.VALUE)
        return await self._stage(turn, OtherProduct(id=product, name=turn.answer))

    async def on_photo_value(self, turn: Ask) -> int | None:
        field = self._field(turn)
        file_id = photo_file_id(turn)
        if field.kind != "photo" or file_id is None:
            return await self.press_button(turn)
        return await self._stage(turn, file_id)

    async def on_clear(self, turn: Ask) -> int | None:
        # «Leave empty»: the update schemas take an empty photo for none, like an empty text.
        return await self._stage(turn, "")

    async def _stage(self, turn: Ask, raw: str | OtherProduct) -> int | None:
        """Check the new value with the record's update schema; keep it for the Save button."""
        answers = turn.answers
        field = self._field(turn)
        if field.kind == "number" and _dose_number(raw) is None:
            text = turn.text("my.number_invalid", value=html.escape(str(raw)), maximum=MAX_DOSE_NUMBER)
            return await turn.retry(text)
        try:
            change = self._change(turn, field, raw)
        except ValidationError as exc:
            return await turn.retry(exc)
        answers.raw = raw
        after = change.model_dump(mode="json", exclude_unset=True)
        if field.kind == "product":
            product_label = dict(await self._options(turn, field)).get(str(after["product_id"]), "")
            answers.after = html.escape(after.get("product_other_name") or product_label)
        else:
            value = raw if field.name == "needs" else after.get(field.name)
            answers.after = await self._shown(turn, field, value)
        answers.edit_key = uuid.uuid4().hex  # one key per change: a double Save saves it once
        answers.warnings = None
        return await turn.ask(Step.CHANGE)

    def _change(self, turn: Ask, field: EditableField, raw: str | OtherProduct | None) -> BaseModel:
        """The new value as the record's update schema takes it (checked by it)."""
        today = turn.context.services.clock.today()
        context = {"today": today}
        kind, name = turn.answers.kind, field.name
        if kind == "batch":
            value = int(raw) if name == "donor_id" and isinstance(raw, str) else raw
            return BatchUpdate.model_validate({name: value}, context=context)
        if kind in ("handover", "return"):
            return HandoverUpdate.model_validate({name: raw}, context=context)
        if kind == "dose":
            if field.kind == "date":
                given_on = parse_event_date(str(raw), today)
                return DoseChange.model_validate({"given_on": given_on})
            if field.kind == "product":
                if isinstance(raw, OtherProduct):
                    return DoseChange.model_validate({"product_id": raw.id, "product_other_name": raw.name})
                return DoseChange.model_validate({"product_id": int(str(raw)), "product_other_name": ""})
            if field.kind == "number":
                return DoseChange.model_validate({"dose_number": _dose_number(raw)})
            return DoseChange.model_validate({name: raw})
        if name == "needs":
            device, connectivity = NEEDS[str(raw)]
            return NeedChange.model_validate({"needs_device": device, "needs_connectivity": connectivity})
        return NeedChange.model_validate({name: raw})

    async def on_save(self, turn: Ask) -> int | None:
        return await self._save(turn, force=False)

    async def on_force(self, turn: Ask) -> int | None:
        return await self._save(turn, force=True)

    async def _save(self, turn: Ask, *, force: bool) -> int | None:
        answers = turn.answers
        services, school_id, actor_id = turn.context.services, turn.school_id, turn.staff.id
        field = self._field(turn)
        before = await self._shown_record(turn, await self._record(turn), field)
        change = self._change(turn, field, answers.raw)
        record_id, key = self._record_id(turn), answers.edit_key
        saved: Record
        try:
            if isinstance(change, BatchUpdate):
                saved = await services.donations.update_batch(
                    record_id, change, school_id=school_id, actor_id=actor_id
                )
            elif isinstance(change, HandoverUpdate):
                saved = await services.handovers.update_handover(
                    record_id, change, school_id=school_id, actor_id=actor_id
                )
            elif isinstance(change, DoseChange):
                saved = await services.vaccines.update_dose(
                    record_id,
                    change,
                    school_id=school_id,
                    actor_id=actor_id,
                    request_key=key,
                    confirm_warnings=force,
                )
            else:
                assert isinstance(change, NeedChange)
                saved = await services.needs.update_need(
                    record_id, change, school_id=school_id, actor_id=actor_id, request_key=key
                )
        except WarningsNotConfirmed as exc:
            answers.warnings = "\n".join(render_error(w.as_error(), turn.language) for w in exc.warnings)
            return await turn.ask(Step.CHANGE)
        text = turn.text(
            "my.saved", field=turn.text(f"my.field.{field.name}"), before=before, after=answers.after
        )
        late = getattr(saved, "entered_late", False) and answers.kind != "return"
        return await turn.finish_saved(text, late=late)

    async def on_delete_confirmed(self, turn: Ask) -> int | None:
        services, school_id, actor_id = turn.context.services, turn.school_id, turn.staff.id
        kind, record_id = turn.answers.kind, self._record_id(turn)
        try:
            if kind == "batch":
                await services.donations.delete_batch(record_id, school_id=school_id, actor_id=actor_id)
            elif kind == "handover":
                await services.handovers.delete_handover(record_id, school_id=school_id, actor_id=actor_id)
            elif kind == "dose":
                await services.vaccines.delete_dose(record_id, school_id=school_id, actor_id=actor_id)
            else:
                await services.needs.delete_need(record_id, school_id=school_id, actor_id=actor_id)
        except DomainError as exc:  # refused (a batch with handovers, a locked round): say why, back to it
            await turn.reply(render_error_html(exc, turn.language))
            return await self._show_detail(turn)
        return await turn.finish(turn.text("my.deleted", entry=html.escape(turn.answers.label or "")))

    # --- data -----------------------------------------------------------------------------------

    def _record_id(self, turn: Ask) -> int:
        if turn.answers.record_id is None:  # a draft without its record: nothing to change
            raise NotFound("record")
        return turn.answers.record_id

    def _field(self, turn: Ask) -> EditableField:
        """The field being changed (of the chosen record's kind)."""
        return field_of(turn.answers.kind or "", turn.answers.field or "")

    async def _record(self, turn: Ask) -> Record:
        services, school_id = turn.context.services, turn.school_id
        kind, record_id = turn.answers.kind, self._record_id(turn)
        if kind == "batch":
            return await services.donations.get_batch(record_id, school_id=school_id)
        if kind in ("handover", "return"):
            return await services.handovers.get_handover(record_id, school_id=school_id)
        if kind == "dose":
            return await services.vaccines.get_dose(record_id, school_id=school_id)
        return await services.needs.get_need(record_id, school_id=school_id)

    def _refuse_if_locked(self, turn: Ask) -> None:
        """The owning service's own refusal text: which period, who can reopen it, what to do instead."""
        refusal = turn.answers.refusal
        if refusal is not None:
            raise refusal.as_error()


def _needs_of(record: NeedOut) -> str:
    if record.needs_device and record.needs_connectivity:
        return "both"
    return "device" if record.needs_device else "connectivity"


def _dose_number(text: object) -> int | None:
    """`2`, `mui 2`: the number; anything else (no number, two numbers): None."""
    match = _NUMBER.fullmatch(str(text).strip())
    return int(match.group(1)) if match else None


def build_my_conversation() -> MyEntriesFlow:
    return MyEntriesFlow()
