"""/donation: a batch of donated devices received by the school (menu 4.8.3).

source (programme 4.8.3.1 / other source 4.8.3.2) -> donor (other sources: one of the school's known
donors, or a new one: name -> kind -> contact) -> date received -> quantity -> device type -> make and
model -> new or used -> specs (optional) -> photo of the receipt (optional) -> summary with Edit /
Confirm / Cancel. Nothing is written before Confirm: a new donor is added together with the batch.
The confirmation says when the entry is late (more than one day after receipt) and by when the
district reports the batch's handovers (5 days after receipt).
"""

from __future__ import annotations

import enum
import html
from datetime import date

from pydantic import ValidationError

from bot.keyboards import confirm_choices, date_choices, rows
from conversations.common import EditableFlow, Handlers, Turn, option_rows
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
from conversations.widgets.messages import send
from conversations.widgets.photo_step import photo_handlers, skip_keyboard
from storage.enums import DeviceCondition, DeviceType, DonationSource, DonorKind
from storage.errors import DomainError
from storage.rules import names_the_programme
from storage.rules.dates import show_date
from storage.schemas.devices import (
    CONDITION_WORDS,
    DEVICE_TYPE_WORDS,
    DONOR_KIND_WORDS,
    MAX_DONOR_NAME,
    MAX_MAKE_MODEL,
    MAX_SPECS,
    SOURCE_WORDS,
    BatchIn,
    BatchOut,
    DonorIn,
    DonorOut,
    parse_coded,
)
from storage.schemas.parsing import clean_text, parse_quantity
from storage.text import fold

MAX_DONOR_BUTTONS = 12  # more known donors than this: type part of the name to find one
MAX_CONTACT = 300  # as DonorIn keeps it


# --- the flow -------------------------------------------------------------------------------------


class Step(enum.IntEnum):
    SOURCE = 1
    DONOR = 2
    DONOR_NAME = 3
    DONOR_KIND = 4
    DONOR_CONTACT = 5
    RECEIVED = 6
    QUANTITY = 7
    DEVICE_TYPE = 8
    MAKE_MODEL = 9
    CONDITION = 10
    SPECS = 11
    PHOTO = 12
    SUMMARY = 13
    EDIT = 14


# Summary "Edit": answer -> the step that asks it again.
EDITABLE = {
    "source": Step.SOURCE,
    "donor": Step.DONOR,
    "received_on": Step.RECEIVED,
    "quantity": Step.QUANTITY,
    "device_type": Step.DEVICE_TYPE,
    "make_model": Step.MAKE_MODEL,
    "condition": Step.CONDITION,
    "specs": Step.SPECS,
    "photo": Step.PHOTO,
}


class DonationFlow(EditableFlow):
    name = "donation"
    command = "donation"
    title_key = "devices.donation.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "devices.donation.field"
    edit_texts = "devices"

    # --- questions ------------------------------------------------------------------------------

    async def begin(self, turn: Turn) -> int:
        return await turn.ask(Step.SOURCE)

    async def prompt(self, turn: Turn, state: int) -> None:
        language = turn.language
        if state == Step.SOURCE:
            options = [
                (turn.text(f"devices.source.{s.value}"), self.cb("source", s.value)) for s in DonationSource
            ]
            await turn.reply(turn.text("devices.donation.source_question"), rows(*[[o] for o in options]))
        elif state == Step.DONOR:
            await self._ask_donor(turn)
        elif state == Step.DONOR_NAME:
            await turn.reply(turn.text("devices.donation.donor_name_question"))
        elif state == Step.DONOR_KIND:
            options = [
                (turn.text(f"devices.donor_kind.{k.value}"), self.cb("kind", k.value)) for k in DonorKind
            ]
            name = html.escape(turn.draft["new_donor"]["name"])
            await turn.reply(
                turn.text("devices.donation.donor_kind_question", name=name), rows(*option_rows(options))
            )
        elif state == Step.DONOR_CONTACT:
            text = turn.text("devices.donation.donor_contact_question")
            await turn.reply(text, skip_keyboard(self, language, "contact"))
        elif state == Step.RECEIVED:
            await turn.reply(
                turn.text("devices.donation.date_question"), date_choices(self.cb("date"), language)
            )
        elif state == Step.QUANTITY:
            await turn.reply(turn.text("devices.donation.quantity_question"))
        elif state == Step.DEVICE_TYPE:
            options = [
                (turn.text(f"devices.device_type.{d.value}"), self.cb("type", d.value)) for d in DeviceType
            ]
            await turn.reply(turn.text("devices.donation.type_question"), rows(*option_rows(options)))
        elif state == Step.MAKE_MODEL:
            await turn.reply(turn.text("devices.donation.make_model_question"))
        elif state == Step.CONDITION:
            options = [
                (turn.text(f"devices.condition.{c.value}"), self.cb("cond", c.value)) for c in DeviceCondition
            ]
            await turn.reply(turn.text("devices.donation.condition_question"), rows(options))
        elif state == Step.SPECS:
            await turn.reply(
                turn.text("devices.donation.specs_question"), skip_keyboard(self, language, "specs")
            )
        elif state == Step.PHOTO:
            await turn.reply(
                turn.text("devices.donation.photo_question"), skip_keyboard(self, language, "photo")
            )
        elif state == Step.SUMMARY:
            await turn.reply(self._summary_text(turn), confirm_choices(self.cb(), language))
        elif state == Step.EDIT:
            fields = [k for k in EDITABLE if k != "donor" or turn.draft.get("source") == DonationSource.OTHER]
            await self.ask_field_list(turn, fields)

    async def _ask_donor(self, turn: Turn) -> None:
        donors = await turn.context.services.donations.donors(turn.staff.school_id or 0)
        query = turn.draft.get("_donor_query")
        if query:
            donors = matching_donors(donors, query)
            text = turn.text("devices.donation.donor_filtered", query=html.escape(query))
        elif donors:
            text = turn.text("devices.donation.donor_question")
        else:
            text = turn.text("devices.donation.donor_question_empty")
        buttons = [[(d.name, self.cb("donor", d.id))] for d in donors[:MAX_DONOR_BUTTONS]]
        extra = [(turn.text("devices.donation.donor_add"), self.cb("donor", "new"))]
        if query:
            extra.append((turn.text("devices.donation.donor_all"), self.cb("donor", "all")))
        await turn.reply(text, rows(*buttons, extra))

    def _donor_text(self, turn: Turn) -> str:
        draft = turn.draft
        if draft.get("source") != DonationSource.OTHER:
            return turn.text("devices.donation.donor_program")
        new = draft.get("new_donor")
        if new and "donor_id" not in draft:
            kind = turn.text(f"devices.donor_kind.{new['kind']}")
            return turn.text("devices.donation.donor_new", name=html.escape(new["name"]), kind=kind)
        kind = turn.text(f"devices.donor_kind.{draft['_donor_kind']}")
        return turn.text("devices.donation.donor_line", name=html.escape(draft["_donor_name"]), kind=kind)

    def _summary_text(self, turn: Turn) -> str:
        draft, none = turn.draft, turn.text("devices.none")
        text = turn.text(
            "devices.donation.summary",
            source=turn.text(f"devices.source_name.{draft['source']}"),
            donor=self._donor_text(turn),
            received_on=shown_date(draft["received_on"]),
            quantity=draft["quantity"],
            device_type=device_name(draft["device_type"], turn.language),
            make_model=html.escape(draft["make_model"]),
            condition=turn.text(f"devices.condition_name.{draft['condition']}"),
            specs=html.escape(draft.get("specs") or "") or none,
            photo=turn.text("devices.photo_attached") if draft.get("photo") else none,
        )
        if turn.context.services.donations.entered_late(date.fromisoformat(draft["received_on"])):
            text += "\n\n" + turn.text("devices.late_preview")
        return text

    # --- steps ----------------------------------------------------------------------------------

    def steps(self) -> Handlers:
        press = self.on_text(self.press_button)
        return {
            Step.SOURCE: [self.on_button(r"source:\w+$", self.on_source), self.on_text(self.on_source)],
            Step.DONOR: [
                self.on_button(r"donor:\d+$", self.on_donor),
                self.on_button("donor:new$", self.on_donor_new),
                self.on_button("donor:all$", self.on_donor_all),
                self.on_text(self.on_donor_typed),
            ],
            Step.DONOR_NAME: [self.on_text(self.on_donor_name)],
            Step.DONOR_KIND: [
                self.on_button(r"kind:\w+$", self.on_donor_kind),
                self.on_text(self.on_donor_kind),
            ],
            Step.DONOR_CONTACT: [
                self.on_button("contact:skip$", self.on_donor_contact),
                self.on_text(self.on_donor_contact),
            ],
            Step.RECEIVED: [self.on_button("date:", self.on_received), self.on_text(self.on_received)],
            Step.QUANTITY: [self.on_text(self.on_quantity)],
            Step.DEVICE_TYPE: [
                self.on_button(r"type:\w+$", self.on_device_type),
                self.on_text(self.on_device_type),
            ],
            Step.MAKE_MODEL: [self.on_text(self.on_make_model)],
            Step.CONDITION: [
                self.on_button(r"cond:\w+$", self.on_condition),
                self.on_text(self.on_condition),
            ],
            Step.SPECS: [self.on_button("specs:skip$", self.on_specs), self.on_text(self.on_specs)],
            Step.PHOTO: photo_handlers(self, Step.SUMMARY),
            **self.summary_steps(typed=press),
        }

    async def press_button(self, turn: Turn) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_source(self, turn: Turn) -> int | None:
        source = parse_coded(turn.answer, DonationSource, SOURCE_WORDS, "devices.source_invalid")
        turn.draft["source"] = source.value
        if source is DonationSource.PROGRAM:
            for key in ("donor_id", "_donor_name", "_donor_kind", "new_donor", "_donor_query"):
                turn.draft.pop(key, None)
            return await turn.advance(Step.RECEIVED)
        if "donor_id" not in turn.draft and "new_donor" not in turn.draft:
            return await turn.ask(Step.DONOR)  # an edit of the source goes on to the donor first
        return await turn.advance(Step.RECEIVED)

    async def on_donor(self, turn: Turn) -> int | None:
        donors = await turn.context.services.donations.donors(turn.staff.school_id or 0)
        donor = next((d for d in donors if str(d.id) == turn.answer), None)
        if donor is None:
            raise DomainError("devices.donor_not_found")
        return await self._donor_chosen(turn, donor)

    async def _donor_chosen(self, turn: Turn, donor: DonorOut) -> int | None:
        turn.remember(donor_id=donor.id, _donor_name=donor.name, _donor_kind=donor.kind.value)
        turn.draft.pop("new_donor", None)
        turn.draft.pop("_donor_query", None)
        return await turn.advance(Step.RECEIVED)

    async def on_donor_typed(self, turn: Turn) -> int | None:
        query = clean_text(turn.answer, max_length=MAX_DONOR_NAME, required=True)
        if names_the_programme(query):
            return await self._program_chosen(turn, query)
        donors = await turn.context.services.donations.donors(turn.staff.school_id or 0)
        found = matching_donors(donors, query)
        if len(found) == 1:
            return await self._donor_chosen(turn, found[0])
        if not found:
            text = turn.text("devices.donation.donor_no_match", query=html.escape(query))
            return await turn.retry(text)
        turn.draft["_donor_query"] = query
        return await turn.ask(Step.DONOR)

    async def _program_chosen(self, turn: Turn, name: str) -> int | None:
        """The programme typed as a donor of another source: it is the source 4.8.3.1, taken as such."""
        await turn.reply(turn.text("devices.donation.program_not_donor", name=html.escape(name)))
        turn.draft["source"] = DonationSource.PROGRAM.value
        for key in ("donor_id", "_donor_name", "_donor_kind", "new_donor", "_donor_query"):
            turn.draft.pop(key, None)
        return await turn.advance(Step.RECEIVED)

    async def on_donor_all(self, turn: Turn) -> int | None:
        turn.draft.pop("_donor_query", None)
        return await turn.ask(Step.DONOR)

    async def on_donor_new(self, turn: Turn) -> int | None:
        turn.draft.pop("_donor_query", None)
        return await turn.ask(Step.DONOR_NAME)

    async def on_donor_name(self, turn: Turn) -> int | None:
        name = clean_text(turn.answer, max_length=MAX_DONOR_NAME, required=True)
        if names_the_programme(name):
            return await self._program_chosen(turn, name)
        known = await turn.context.services.donations.donor_by_name(turn.staff.school_id or 0, name)
        if known is not None:  # already in the list: take it rather than refuse
            await turn.reply(turn.text("devices.donation.donor_known", name=html.escape(known.name)))
            return await self._donor_chosen(turn, known)
        turn.draft["new_donor"] = {"name": name}
        return await turn.ask(Step.DONOR_KIND)

    async def on_donor_kind(self, turn: Turn) -> int | None:
        kind = parse_coded(turn.answer, DonorKind, DONOR_KIND_WORDS, "devices.donor_kind_invalid")
        turn.draft.setdefault("new_donor", {})["kind"] = kind.value
        return await turn.ask(Step.DONOR_CONTACT)

    async def on_donor_contact(self, turn: Turn) -> int | None:
        skipped = turn.update.callback_query is not None
        contact = "" if skipped else clean_text(turn.answer, max_length=MAX_CONTACT)
        new = turn.draft["new_donor"]
        new["contact"] = contact
        try:
            DonorIn.model_validate(new)  # the whole donor, by the schema the service takes
        except ValidationError as exc:
            return await turn.retry(exc)
        for key in ("donor_id", "_donor_name", "_donor_kind"):
            turn.draft.pop(key, None)
        return await turn.advance(Step.RECEIVED)

    async def on_received(self, turn: Turn) -> int | None:
        received_on = parse_picked_date(turn)
        # Known once dated: a batch of a locked period is refused here, before the other questions.
        await turn.context.services.rounds.check_entry_day(turn.staff.school_id or 0, "devices", received_on)
        turn.draft["received_on"] = received_on.isoformat()
        return await turn.advance(Step.QUANTITY)

    async def on_quantity(self, turn: Turn) -> int | None:
        turn.draft["quantity"] = parse_quantity(turn.answer)
        return await turn.advance(Step.DEVICE_TYPE)

    async def on_device_type(self, turn: Turn) -> int | None:
        device_type = parse_coded(turn.answer, DeviceType, DEVICE_TYPE_WORDS, "devices.device_type_invalid")
        turn.draft["device_type"] = device_type.value
        return await turn.advance(Step.MAKE_MODEL)

    async def on_make_model(self, turn: Turn) -> int | None:
        turn.draft["make_model"] = clean_text(turn.answer, max_length=MAX_MAKE_MODEL, required=True)
        return await turn.advance(Step.CONDITION)

    async def on_condition(self, turn: Turn) -> int | None:
        condition = parse_coded(turn.answer, DeviceCondition, CONDITION_WORDS, "devices.condition_invalid")
        turn.draft["condition"] = condition.value
        return await turn.advance(Step.SPECS)

    async def on_specs(self, turn: Turn) -> int | None:
        skipped = turn.update.callback_query is not None
        turn.draft["specs"] = "" if skipped else clean_text(turn.answer, max_length=MAX_SPECS, required=True)
        return await turn.advance(Step.PHOTO)

    async def on_confirm(self, turn: Turn) -> int | None:
        services, school_id, draft = turn.context.services, turn.staff.school_id or 0, turn.draft
        donor_id = draft.get("donor_id")
        if draft.get("source") == DonationSource.OTHER and donor_id is None:
            new = DonorIn.model_validate(draft["new_donor"])
            # A second Confirm after a failed save finds the donor the first one added.
            donor = await services.donations.donor_by_name(school_id, new.name)
            if donor is None:
                donor = await services.donations.add_donor(school_id, new, actor_id=turn.staff.id)
            donor_id = donor.id
        values = {
            "source": draft["source"],
            "donor_id": donor_id,
            "received_on": draft["received_on"],
            "quantity": draft["quantity"],
            "device_type": draft["device_type"],
            "make_model": draft["make_model"],
            "condition": draft["condition"],
            "specs": draft.get("specs", ""),
            "receipt_photo_file_id": draft.get("photo"),
        }
        try:
            data = BatchIn.model_validate(values, context={"today": services.clock.today()})
        except ValidationError as exc:
            return await turn.retry(exc)
        batch = await services.donations.create_batch(
            school_id, data, actor_id=turn.staff.id, request_key=draft["request_key"]
        )
        end = await turn.finish(self._saved_text(turn, batch))
        offer = turn.text("devices.donation.handover_offer", batch=batch.number)
        button = (turn.text("devices.donation.handover_button"), f"handover:again:{batch.id}")
        await send(turn, offer, rows([button]))
        return end

    def _saved_text(self, turn: Turn, batch: BatchOut) -> str:
        lines = [
            turn.text(
                "devices.donation.saved",
                batch=batch.number,
                quantity=batch.quantity,
                device_type=device_name(batch.device_type, turn.language),
                make_model=html.escape(batch.make_model),
                condition=turn.text(f"devices.condition_name.{batch.condition.value}"),
                received_on=show_date(batch.received_on),
                source=turn.text(f"devices.source_name.{batch.source.value}"),
                donor=html.escape(batch.donor_name) if batch.donor_name else turn.text("devices.none"),
            ),
            turn.text(
                "devices.donation.deadline",
                deadline=show_date(turn.context.services.donations.report_deadline(batch.received_on)),
            ),
        ]
        if batch.entered_late:
            lines.append(turn.text("core.late_flag"))
        return "\n\n".join(lines)


def matching_donors(donors: list[DonorOut], query: str) -> list[DonorOut]:
    """Donors whose name holds what was typed, ignoring case and diacritics."""
    wanted = fold(query)
    exact = [d for d in donors if fold(d.name) == wanted]
    return exact or [d for d in donors if wanted and wanted in fold(d.name)]


def build_donation_conversation() -> DonationFlow:
    return DonationFlow()
