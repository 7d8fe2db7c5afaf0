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

from pydantic import BaseModel, ValidationError

from bot.keyboards import confirm_choices, date_choices, rows
from conversations.common import EditableFlow, Turn, Window, Windows, option_rows
from conversations.widgets.date_picker import parse_picked_date, shown_date
from conversations.widgets.device_labels import device_name
from conversations.widgets.messages import send
from conversations.widgets.photo_step import PhotoAnswers, photo_handlers, skip_keyboard
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


class NewDonor(BaseModel):
    """A donor not yet in the school's list, answered in the flow and added with the batch."""

    name: str
    kind: DonorKind | None = None
    contact: str | None = None


class DonationAnswers(PhotoAnswers):
    source: DonationSource | None = None
    donor_id: int | None = None  # one of the school's donors, or `new_donor`
    new_donor: NewDonor | None = None
    received_on: date | None = None
    quantity: int | None = None
    device_type: DeviceType | None = None
    make_model: str | None = None
    condition: DeviceCondition | None = None
    specs: str | None = None  # "" when skipped
    # The chosen donor as the summary shows it, and the filter typed at the donor question.
    donor_name: str | None = None
    donor_kind: DonorKind | None = None
    donor_query: str | None = None
    derived = PhotoAnswers.derived | {"donor_name", "donor_kind", "donor_query"}

    def forget_donor(self) -> None:
        """The programme is the source: no donor, chosen or new."""
        self.donor_id = self.donor_name = self.donor_kind = self.new_donor = self.donor_query = None


Ask = Turn[DonationAnswers]

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


class DonationFlow(EditableFlow[DonationAnswers]):
    name = "donation"
    command = "donation"
    title_key = "devices.donation.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "devices.donation.field"
    edit_texts = "devices"
    answers_model = DonationAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[DonationAnswers]:
        press = self.on_text(self.press_button)
        return {
            Step.SOURCE: Window(
                self.ask_source,
                [self.on_button(r"source:\w+$", self.on_source), self.on_text(self.on_source)],
            ),
            Step.DONOR: Window(
                self.ask_donor,
                [
                    self.on_button(r"donor:\d+$", self.on_donor),
                    self.on_button("donor:new$", self.on_donor_new),
                    self.on_button("donor:all$", self.on_donor_all),
                    self.on_text(self.on_donor_typed),
                ],
            ),
            Step.DONOR_NAME: Window(self.ask_donor_name, [self.on_text(self.on_donor_name)]),
            Step.DONOR_KIND: Window(
                self.ask_donor_kind,
                [self.on_button(r"kind:\w+$", self.on_donor_kind), self.on_text(self.on_donor_kind)],
            ),
            Step.DONOR_CONTACT: Window(
                self.ask_donor_contact,
                [self.on_button("contact:skip$", self.on_donor_contact), self.on_text(self.on_donor_contact)],
            ),
            Step.RECEIVED: Window(
                self.ask_received, [self.on_button("date:", self.on_received), self.on_text(self.on_received)]
            ),
            Step.QUANTITY: Window(self.ask_quantity, [self.on_text(self.on_quantity)]),
            Step.DEVICE_TYPE: Window(
                self.ask_device_type,
                [self.on_button(r"type:\w+$", self.on_device_type), self.on_text(self.on_device_type)],
            ),
            Step.MAKE_MODEL: Window(self.ask_make_model, [self.on_text(self.on_make_model)]),
            Step.CONDITION: Window(
                self.ask_condition,
                [self.on_button(r"cond:\w+$", self.on_condition), self.on_text(self.on_condition)],
            ),
            Step.SPECS: Window(
                self.ask_specs, [self.on_button("specs:skip$", self.on_specs), self.on_text(self.on_specs)]
            ),
            Step.PHOTO: Window(self.ask_photo, photo_handlers(self, Step.SUMMARY)),
            **self.summary_windows(self.show_summary, edit_list=self.ask_fields, typed=press),
        }

    async def begin(self, turn: Ask) -> int:
        return await turn.ask(Step.SOURCE)

    # --- questions ------------------------------------------------------------------------------

    async def ask_source(self, turn: Ask) -> None:
        options = [
            (turn.text(f"devices.source.{s.value}"), self.cb("source", s.value)) for s in DonationSource
        ]
        await turn.reply(turn.text("devices.donation.source_question"), rows(*[[o] for o in options]))

    async def ask_donor(self, turn: Ask) -> None:
        donors = await turn.context.services.donations.donors(turn.school_id)
        query = turn.answers.donor_query
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

    async def ask_donor_name(self, turn: Ask) -> None:
        await turn.reply(turn.text("devices.donation.donor_name_question"))

    async def ask_donor_kind(self, turn: Ask) -> None:
        options = [(turn.text(f"devices.donor_kind.{k.value}"), self.cb("kind", k.value)) for k in DonorKind]
        new = turn.answers.new_donor
        name = html.escape(new.name if new is not None else "")
        await turn.reply(
            turn.text("devices.donation.donor_kind_question", name=name), rows(*option_rows(options))
        )

    async def ask_donor_contact(self, turn: Ask) -> None:
        text = turn.text("devices.donation.donor_contact_question")
        await turn.reply(text, skip_keyboard(self, turn.language, "contact"))

    async def ask_received(self, turn: Ask) -> None:
        await turn.reply(
            turn.text("devices.donation.date_question"), date_choices(self.cb("date"), turn.language)
        )

    async def ask_quantity(self, turn: Ask) -> None:
        await turn.reply(turn.text("devices.donation.quantity_question"))

    async def ask_device_type(self, turn: Ask) -> None:
        options = [
            (turn.text(f"devices.device_type.{d.value}"), self.cb("type", d.value)) for d in DeviceType
        ]
        await turn.reply(turn.text("devices.donation.type_question"), rows(*option_rows(options)))

    async def ask_make_model(self, turn: Ask) -> None:
        await turn.reply(turn.text("devices.donation.make_model_question"))

    async def ask_condition(self, turn: Ask) -> None:
        options = [
            (turn.text(f"devices.condition.{c.value}"), self.cb("cond", c.value)) for c in DeviceCondition
        ]
        await turn.reply(turn.text("devices.donation.condition_question"), rows(options))

    async def ask_specs(self, turn: Ask) -> None:
        await turn.reply(
            turn.text("devices.donation.specs_question"), skip_keyboard(self, turn.language, "specs")
        )

    async def ask_photo(self, turn: Ask) -> None:
        await turn.reply(
            turn.text("devices.donation.photo_question"), skip_keyboard(self, turn.language, "photo")
        )

    async def show_summary(self, turn: Ask) -> None:
        await turn.reply(self._summary_text(turn), confirm_choices(self.cb(), turn.language))

    async def ask_fields(self, turn: Ask) -> None:
        """The edit list: the donor only for another source."""
        other = turn.answers.source is DonationSource.OTHER
        await self.ask_field_list(turn, [k for k in EDITABLE if k != "donor" or other])

    def _donor_text(self, turn: Ask) -> str:
        answers = turn.answers
        if answers.source is not DonationSource.OTHER:
            return turn.text("devices.donation.donor_program")
        new = answers.new_donor
        if new is not None and answers.donor_id is None:
            assert new.kind is not None  # asked before the summary
            kind = turn.text(f"devices.donor_kind.{new.kind.value}")
            return turn.text("devices.donation.donor_new", name=html.escape(new.name), kind=kind)
        assert answers.donor_kind is not None  # read with the donor chosen
        kind = turn.text(f"devices.donor_kind.{answers.donor_kind.value}")
        return turn.text("devices.donation.donor_line", name=html.escape(answers.donor_name or ""), kind=kind)

    def _summary_text(self, turn: Ask) -> str:
        answers, none = turn.answers, turn.text("devices.none")
        assert answers.source is not None and answers.received_on is not None  # asked before the summary
        assert answers.device_type is not None and answers.condition is not None
        text = turn.text(
            "devices.donation.summary",
            source=turn.text(f"devices.source_name.{answers.source.value}"),
            donor=self._donor_text(turn),
            received_on=shown_date(answers.received_on),
            quantity=answers.quantity,
            device_type=device_name(answers.device_type, turn.language),
            make_model=html.escape(answers.make_model or ""),
            condition=turn.text(f"devices.condition_name.{answers.condition.value}"),
            specs=html.escape(answers.specs or "") or none,
            photo=turn.text("devices.photo_attached") if answers.photo else none,
        )
        if turn.context.services.donations.entered_late(answers.received_on):
            text += "\n\n" + turn.text("devices.late_preview")
        return text

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("devices.press_button"))

    async def on_source(self, turn: Ask) -> int | None:
        source = parse_coded(turn.answer, DonationSource, SOURCE_WORDS, "devices.source_invalid")
        answers = turn.answers
        answers.source = source
        if source is DonationSource.PROGRAM:
            answers.forget_donor()
            return await turn.advance(Step.RECEIVED)
        if answers.donor_id is None and answers.new_donor is None:
            return await turn.ask(Step.DONOR)  # an edit of the source goes on to the donor first
        return await turn.advance(Step.RECEIVED)

    async def on_donor(self, turn: Ask) -> int | None:
        donors = await turn.context.services.donations.donors(turn.school_id)
        donor = next((d for d in donors if str(d.id) == turn.answer), None)
        if donor is None:
            raise DomainError("devices.donor_not_found")
        return await self._donor_chosen(turn, donor)

    async def _donor_chosen(self, turn: Ask, donor: DonorOut) -> int | None:
        answers = turn.answers
        answers.donor_id, answers.donor_name, answers.donor_kind = donor.id, donor.name, donor.kind
        answers.new_donor = answers.donor_query = None
        return await turn.advance(Step.RECEIVED)

    async def on_donor_typed(self, turn: Ask) -> int | None:
        query = clean_text(turn.answer, max_length=MAX_DONOR_NAME, required=True)
        if names_the_programme(query):
            return await self._program_chosen(turn, query)
        donors = await turn.context.services.donations.donors(turn.school_id)
        found = matching_donors(donors, query)
        if len(found) == 1:
            return await self._donor_chosen(turn, found[0])
        if not found:
            text = turn.text("devices.donation.donor_no_match", query=html.escape(query))
            return await turn.retry(text)
        turn.answers.donor_query = query
        return await turn.ask(Step.DONOR)

    async def _program_chosen(self, turn: Ask, name: str) -> int | None:
        """The programme typed as a donor of another source: it is the source 4.8.3.1, taken as such."""
        await turn.reply(turn.text("devices.donation.program_not_donor", name=html.escape(name)))
        turn.answers.source = DonationSource.PROGRAM
        turn.answers.forget_donor()
        return await turn.advance(Step.RECEIVED)

    async def on_donor_all(self, turn: Ask) -> int | None:
        turn.answers.donor_query = None
        return await turn.ask(Step.DONOR)

    async def on_donor_new(self, turn: Ask) -> int | None:
        turn.answers.donor_query = None
        return await turn.ask(Step.DONOR_NAME)

    async def on_donor_name(self, turn: Ask) -> int | None:
        name = clean_text(turn.answer, max_length=MAX_DONOR_NAME, required=True)
        if names_the_programme(name):
            return await self._program_chosen(turn, name)
        known = await turn.context.services.donations.donor_by_name(turn.school_id, name)
        if known is not None:  # already in the list: take it rather than refuse
            await turn.reply(turn.text("devices.donation.donor_known", name=html.escape(known.name)))
            return await self._donor_chosen(turn, known)
        turn.answers.new_donor = NewDonor(name=name)
        return await turn.ask(Step.DONOR_KIND)

    async def on_donor_kind(self, turn: Ask) -> int | None:
        kind = parse_coded(turn.answer, DonorKind, DONOR_KIND_WORDS, "devices.donor_kind_invalid")
        new = turn.answers.new_donor
        if new is None:  # the name is asked first (a draft that lost it: ask it again)
            return await turn.ask(Step.DONOR_NAME)
        new.kind = kind
        return await turn.ask(Step.DONOR_CONTACT)

    async def on_donor_contact(self, turn: Ask) -> int | None:
        skipped = turn.update.callback_query is not None
        contact = "" if skipped else clean_text(turn.answer, max_length=MAX_CONTACT)
        answers = turn.answers
        if answers.new_donor is None:  # the name is asked first (a draft that lost it: ask it again)
            return await turn.ask(Step.DONOR_NAME)
        answers.new_donor.contact = contact
        try:
            # The whole donor, by the schema the service takes.
            DonorIn.model_validate(answers.new_donor.model_dump(exclude_none=True))
        except ValidationError as exc:
            return await turn.retry(exc)
        answers.donor_id = answers.donor_name = answers.donor_kind = None
        return await turn.advance(Step.RECEIVED)

    async def on_received(self, turn: Ask) -> int | None:
        received_on = parse_picked_date(turn)
        # Known once dated: a batch of a locked period is refused here, before the other questions.
        await turn.context.services.rounds.check_entry_day(turn.school_id, "devices", received_on)
        turn.answers.received_on = received_on
        return await turn.advance(Step.QUANTITY)

    async def on_quantity(self, turn: Ask) -> int | None:
        turn.answers.quantity = parse_quantity(turn.answer)
        return await turn.advance(Step.DEVICE_TYPE)

    async def on_device_type(self, turn: Ask) -> int | None:
        device_type = parse_coded(turn.answer, DeviceType, DEVICE_TYPE_WORDS, "devices.device_type_invalid")
        turn.answers.device_type = device_type
        return await turn.advance(Step.MAKE_MODEL)

    async def on_make_model(self, turn: Ask) -> int | None:
        turn.answers.make_model = clean_text(turn.answer, max_length=MAX_MAKE_MODEL, required=True)
        return await turn.advance(Step.CONDITION)

    async def on_condition(self, turn: Ask) -> int | None:
        condition = parse_coded(turn.answer, DeviceCondition, CONDITION_WORDS, "devices.condition_invalid")
        turn.answers.condition = condition
        return await turn.advance(Step.SPECS)

    async def on_specs(self, turn: Ask) -> int | None:
        skipped = turn.update.callback_query is not None
        specs = "" if skipped else clean_text(turn.answer, max_length=MAX_SPECS, required=True)
        turn.answers.specs = specs
        return await turn.advance(Step.PHOTO)

    async def on_confirm(self, turn: Ask) -> int | None:
        services, school_id, answers = turn.context.services, turn.school_id, turn.answers
        donor_id = answers.donor_id
        if answers.source is DonationSource.OTHER and donor_id is None:
            new = DonorIn.model_validate(
                answers.new_donor.model_dump(exclude_none=True) if answers.new_donor else {}
            )
            # A second Confirm after a failed save finds the donor the first one added.
            donor = await services.donations.donor_by_name(school_id, new.name)
            if donor is None:
                donor = await services.donations.add_donor(new, school_id=school_id, actor_id=turn.staff.id)
            donor_id = donor.id
        values = {
            "source": answers.source,
            "donor_id": donor_id,
            "received_on": answers.received_on,
            "quantity": answers.quantity,
            "device_type": answers.device_type,
            "make_model": answers.make_model,
            "condition": answers.condition,
            "specs": answers.specs or "",
            "receipt_photo_file_id": answers.photo,
        }
        try:
            data = BatchIn.model_validate(values, context={"today": services.clock.today()})
        except ValidationError as exc:
            return await turn.retry(exc)
        batch = await services.donations.create_batch(
            data, school_id=school_id, actor_id=turn.staff.id, request_key=turn.request_key
        )
        end = await turn.finish(self._saved_text(turn, batch))
        offer = turn.text("devices.donation.handover_offer", batch=batch.number)
        button = (turn.text("devices.donation.handover_button"), f"handover:again:{batch.id}")
        await send(turn, offer, rows([button]))
        return end

    def _saved_text(self, turn: Ask, batch: BatchOut) -> str:
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
