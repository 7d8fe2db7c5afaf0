"""/vaccine: one COVID-19 vaccine dose of one student (menu 4.9.1).

student (picker) -> dose number (the next one suggested, the doses already recorded shown) -> date
-> product (the "other" product asks for its name) -> place -> summary -> confirm. The service's
refusals are said at the step that can fix them; its warnings (a short interval, a missing earlier
dose) are shown on the summary and need a second, explicit button before the dose is saved.

The product, place and dose-number questions are widgets (conversations/widgets/vaccine_choices.py),
shared with /vaccine_round.
"""

from __future__ import annotations

import enum
import html
from datetime import date
from typing import Any

from bot.keyboards import confirm_choices, date_choices, rows
from conversations.common import EditableFlow, Turn, Window, Windows, option_rows
from conversations.widgets.date_picker import parse_picked_date
from conversations.widgets.student_picker import (
    Picked,
    PickerStates,
    StudentAnswers,
    StudentPicker,
    remember_student,
    student_of,
)
from conversations.widgets.vaccine_choices import (
    DoseChoiceAnswers,
    ProductAndPlace,
    ProductStates,
    check_dose_number,
    finding_text,
    place_label,
    product_keyboard,
    products_of,
    shown_product,
    typed_dose_number,
)
from storage.enums import DosePlace
from storage.errors import DomainError
from storage.rules.dates import show_date
from storage.rules.findings import WarningsNotConfirmed
from storage.schemas.vaccines import (
    MAX_DOSE_NUMBER,
    DoseCheck,
    DoseIn,
    DoseOut,
)

# Refusals that say the chosen product does not suit the student: said at the product step.
PRODUCT_ERRORS = frozenset({"vaccines.too_young", "vaccines.unknown_product", "vaccines.other_needs_name"})


# --- the flow ---------------------------------------------------------------------------------------


class Step(enum.IntEnum):
    SEARCH = 1
    NEW_NAME = 2
    NEW_BIRTH = 3
    NEW_CLASS = 4
    NEW_CODE = 5
    DOSE = 6
    DATE = 7
    PRODUCT = 8
    PRODUCT_NAME = 9
    PLACE = 10
    SUMMARY = 11
    WARNINGS = 12
    EDIT = 13


class DoseAnswers(StudentAnswers, DoseChoiceAnswers):
    dose_number: int | None = None
    given_on: date | None = None
    derived = StudentAnswers.derived | DoseChoiceAnswers.derived


Ask = Turn[DoseAnswers]

# Summary "Edit": field -> the step that asks it again.
EDITABLE = {"dose_number": Step.DOSE, "date": Step.DATE, "product": Step.PRODUCT, "place": Step.PLACE}


class VaccineFlow(EditableFlow[DoseAnswers]):
    name = "vaccine"
    command = "vaccine"
    title_key = "vaccines.dose.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "vaccines.dose.field"
    edit_texts = "vaccines"
    answers_model = DoseAnswers

    def __init__(self) -> None:
        states = PickerStates(Step.SEARCH, Step.NEW_NAME, Step.NEW_BIRTH, Step.NEW_CLASS, Step.NEW_CODE)
        self.picker = StudentPicker(
            self, states, self.on_student, prompt_key="vaccines.dose.student_question"
        )
        self.choices = ProductAndPlace(
            self,
            ProductStates(Step.PRODUCT, Step.PRODUCT_NAME, Step.PLACE, following=Step.SUMMARY),
            ask_product=self.ask_product,
            check=self._check_product,
        )

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[DoseAnswers]:
        press = self.on_text(self.press_button)
        return {
            **self.picker.windows(),
            Step.DOSE: Window(
                self.ask_dose, [self.on_button(r"dose:\d+$", self.on_dose), self.on_text(self.on_dose)]
            ),
            Step.DATE: Window(
                self.ask_date, [self.on_button("date:", self.on_date), self.on_text(self.on_date)]
            ),
            **self.choices.windows(),
            **self.summary_windows(self.show_summary, typed=press),
            Step.WARNINGS: Window(
                self.show_warnings,
                [
                    self.on_button("warn:confirm$", self.on_confirm_warnings),
                    self.on_button("edit$", self.on_edit),
                    press,
                ],
            ),
        }

    async def begin(self, turn: Ask) -> int:
        return await self.picker.ask(turn)

    async def ask_date(self, turn: Ask) -> None:
        text = turn.text("vaccines.dose.date_question", dose_number=turn.answers.dose_number)
        await turn.reply(text, date_choices(self.cb("date"), turn.language))

    async def ask_product(self, turn: Ask) -> None:
        assert turn.answers.given_on is not None  # the date is asked first
        text = turn.text("vaccines.dose.product_question", given_on=show_date(turn.answers.given_on))
        await turn.reply(text, await product_keyboard(turn, self))

    async def ask_dose(self, turn: Ask) -> None:
        services, school_id = turn.context.services, turn.school_id
        student_id = turn.answers.student_id
        doses: list[DoseOut] = []  # a new student, added at the confirm, has none yet
        suggested = 1
        if student_id is not None:
            doses, suggested = await services.vaccines.doses_and_next(student_id, school_id=school_id)
        if doses:
            lines = [turn.text("vaccines.dose.recorded_header")]
            lines += [self._recorded_line(turn, dose) for dose in doses]
        else:
            lines = [turn.text("vaccines.dose.recorded_none")]
        text = turn.text(
            "vaccines.dose.dose_question",
            student=html.escape(turn.answers.student_label or ""),
            recorded="\n".join(lines),
        )
        taken = {dose.dose_number for dose in doses}
        first = []
        if suggested not in taken:
            first = [
                (turn.text("vaccines.dose.next_button", dose_number=suggested), self.cb("dose", suggested))
            ]
        others = [
            (turn.text("vaccines.dose.number_button", dose_number=n), self.cb("dose", n))
            for n in range(1, min(suggested + 1, MAX_DOSE_NUMBER) + 1)
            if n not in taken and n != suggested
        ]
        await turn.reply(text, rows(first, *option_rows(others, columns=4)))

    @staticmethod
    def _recorded_line(turn: Ask, dose: DoseOut) -> str:
        return turn.text(
            "vaccines.dose.recorded_line",
            dose_number=dose.dose_number,
            given_on=show_date(dose.given_on),
            product=html.escape(dose.product_label),
            place=place_label(dose.place, turn.language),
        )

    def _summary_text(self, turn: Ask) -> str:
        answers = turn.answers
        assert answers.given_on is not None and answers.place is not None
        return turn.text(
            "vaccines.dose.summary",
            student=html.escape(answers.student_label or ""),
            dose_number=answers.dose_number,
            given_on=show_date(answers.given_on),
            product=shown_product(answers),
            place=place_label(answers.place, turn.language),
        )

    async def show_summary(self, turn: Ask) -> None:
        check = await self._check(turn)
        lines = [self._summary_text(turn)]
        if check.errors:
            lines += ["", turn.text("vaccines.errors_header")]
            lines += [
                turn.text("vaccines.line", text=finding_text(e.as_error(), turn.language))
                for e in check.errors
            ]
        if check.warnings:
            lines += ["", turn.text("vaccines.warnings_header")]
            lines += [
                turn.text("vaccines.line", text=finding_text(w.as_error(), turn.language))
                for w in check.warnings
            ]
        if check.entered_late:
            lines += ["", turn.text("core.late_flag")]
        if check.errors:  # nothing can be saved: fix an answer or cancel
            markup = rows(
                [(turn.text("core.edit"), self.cb("edit"))], [(turn.text("core.cancel"), self.cb("cancel"))]
            )
        else:
            markup = confirm_choices(self.cb(), turn.language)
        await turn.reply("\n".join(lines), markup)

    async def show_warnings(self, turn: Ask) -> None:
        check = await self._check(turn)
        warnings = [
            turn.text("vaccines.line", text=finding_text(w.as_error(), turn.language))
            for w in check.errors + check.warnings
        ]
        text = self._summary_text(turn) + "\n\n"
        text += turn.text("vaccines.dose.warnings_confirm", warnings="\n".join(warnings))
        markup = rows(
            [(turn.text("vaccines.dose.warnings_button"), self.cb("warn", "confirm"))],
            [(turn.text("core.edit"), self.cb("edit")), (turn.text("core.cancel"), self.cb("cancel"))],
        )
        await turn.reply(text, markup)

    # --- answers --------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("vaccines.press_button"))

    async def on_student(self, turn: Turn[StudentAnswers], student: Picked) -> int:
        remember_student(turn.answers, student)
        return await turn.ask(Step.DOSE)

    async def on_dose(self, turn: Ask) -> int | None:
        number = typed_dose_number(turn.answer)
        if number is None:
            text = turn.text(
                "vaccines.dose.number_invalid", value=html.escape(turn.answer), maximum=MAX_DOSE_NUMBER
            )
            return await turn.retry(text)
        check_dose_number(number)
        student_id = turn.answers.student_id
        doses = (
            await turn.context.services.vaccines.doses_of(student_id, school_id=turn.school_id)
            if student_id is not None
            else []
        )
        taken = next((dose for dose in doses if dose.dose_number == number), None)
        if taken is not None:  # one record per dose number: say so now, not at the summary
            raise DomainError("vaccines.duplicate_dose", dose_number=number, given_on=taken.given_on)
        turn.answers.dose_number = number
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Ask) -> int | None:
        given_on = parse_picked_date(turn)
        await self._check_date(turn, given_on)
        turn.answers.given_on = given_on
        return await turn.advance(Step.PRODUCT)

    async def on_confirm(self, turn: Ask) -> int | None:
        try:
            dose = await self._record(turn, confirm_warnings=False)
        except WarningsNotConfirmed:
            return await turn.ask(Step.WARNINGS)
        return await self._saved(turn, dose)

    async def on_confirm_warnings(self, turn: Ask) -> int | None:
        return await self._saved(turn, await self._record(turn, confirm_warnings=True))

    # --- calls to the service ---------------------------------------------------------------------

    def _dose_in(self, turn: Ask, **override: Any) -> DoseIn:
        answers = turn.answers
        values: dict[str, Any] = {
            **student_of(answers),
            "dose_number": answers.dose_number,
            "given_on": answers.given_on,
            "product_id": answers.product_id,
            "product_other_name": answers.product_other_name or "",
            "place": answers.place or DosePlace.SCHOOL,
            **override,
        }
        return DoseIn.model_validate(values)

    async def _check(self, turn: Ask, **override: Any) -> DoseCheck:
        data = self._dose_in(turn, **override)
        return await turn.context.services.vaccines.check_dose(data, school_id=turn.school_id)

    async def _check_date(self, turn: Ask, given_on: date) -> None:
        """Refusals the date alone decides (order of the doses, birth date, future), said at once.

        Before a product is chosen, the check runs with the "other" product: it has no age or
        interval rule, so only what the date decides can be refused here."""
        override: dict[str, Any] = {"given_on": given_on}
        if turn.answers.product_id is None:
            products = await products_of(turn)
            neutral = next((p for p in products if p.needs_name), None)
            if neutral is None:
                return  # the summary checks everything anyway
            override |= {"product_id": neutral.id, "product_other_name": neutral.name}
        check = await self._check(turn, **override)
        if check.errors:
            raise check.errors[0].as_error()

    async def _check_product(self, turn: Ask) -> None:
        check = await self._check(turn)
        for error in check.errors:
            if error.code in PRODUCT_ERRORS:
                raise error.as_error()

    async def _record(self, turn: Ask, *, confirm_warnings: bool) -> DoseOut:
        return await turn.context.services.vaccines.record_dose(
            self._dose_in(turn),
            school_id=turn.school_id,
            actor_id=turn.staff.id,
            request_key=turn.request_key,
            confirm_warnings=confirm_warnings,
            finish_draft=turn.finish_draft,
        )

    async def _saved(self, turn: Ask, dose: DoseOut) -> int:
        text = turn.text(
            "vaccines.dose.saved",
            dose_number=dose.dose_number,
            student=html.escape(turn.answers.student_label or ""),
            given_on=show_date(dose.given_on),
            product=html.escape(dose.product_label),
            place=place_label(dose.place, turn.language),
        )
        return await turn.finish_saved(text, late=dose.entered_late, draft_gone=True)


def build_vaccine_conversation() -> VaccineFlow:
    return VaccineFlow()
