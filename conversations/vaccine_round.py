"""/vaccine_round: a vaccination round at school, a whole class at a time.

class -> date -> product -> place -> which dose (each student's next one, or a given number) -> the
class list as toggle buttons (each student with the doses recorded so far; tick all / untick all;
pages; typed list numbers such as `1-12, 15`) -> summary from the service's preview (who gets which
dose, who is skipped and why) -> one confirm -> "saved N; skipped M: ..." with each reason.

The ticks are an answer (`ticked`), written to the draft on every tap, so a restart mid-round keeps
them. A tap edits the list message in place instead of sending a new one.
"""

from __future__ import annotations

import contextlib
import enum
import html
import math
import re
from datetime import date

from pydantic import ValidationError
from telegram import InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.keyboards import confirm_choices, date_choices, rows
from bot.replies import answer_alert
from conversations.common import EditableFlow, Turn, Window, Windows, option_rows, reply_plain
from conversations.widgets.date_picker import parse_picked_date
from conversations.widgets.messages import pack_lines, send_lines
from conversations.widgets.vaccine_choices import (
    DoseChoiceAnswers,
    ProductAndPlace,
    ProductStates,
    check_dose_number,
    finding_text,
    place_label,
    product_keyboard,
    shown_product,
    typed_dose_number,
)
from storage.enums import DosePlace
from storage.errors import DomainError
from storage.rules.dates import show_date
from storage.schemas.students import clean_class_name
from storage.schemas.vaccines import MAX_DOSE_NUMBER, RosterStudent, RoundIn, RoundResult

PAGE_SIZE = 24  # students per page of toggle buttons: 8 rows of 3
COLUMNS = 3
ROUND_DOSES = (1, 2, 3)  # dose buttons offered for a round (any number can be typed)
NEXT = "next"  # the round gives each student their own next dose
_RANGE = re.compile(r"(\d{1,3})(?:-(\d{1,3}))?")


class Step(enum.IntEnum):
    CLASS = 1
    DATE = 2
    PRODUCT = 3
    PRODUCT_NAME = 4
    PLACE = 5
    DOSE = 6
    TICK = 7
    SUMMARY = 8
    EDIT = 9


class VaccineRoundAnswers(DoseChoiceAnswers):
    class_name: str | None = None
    given_on: date | None = None
    dose_number: int | None = None  # None: each student's own next dose
    ticked: list[int] = []  # student ids, in class-list order
    page: int = 1  # the page of the class list shown
    derived = DoseChoiceAnswers.derived | {"page"}


Ask = Turn[VaccineRoundAnswers]

# Summary "Edit": field -> the step that asks it again.
EDITABLE = {
    "class": Step.CLASS,
    "date": Step.DATE,
    "product": Step.PRODUCT,
    "place": Step.PLACE,
    "dose": Step.DOSE,
    "ticks": Step.TICK,
}


def list_numbers(text: str, size: int) -> list[int] | None:
    """`1-12, 15` -> [1, ..., 12, 15] (positions in the class list); None when not such a list."""
    cleaned = re.sub(r"\s*[-\u2013]\s*", "-", text.strip())
    parts = [p for p in re.split(r"[,;\s]+", cleaned) if p]
    numbers: list[int] = []
    for part in parts:
        match = _RANGE.fullmatch(part)
        if match is None:
            return None
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if not 1 <= first <= last <= size:
            return None
        numbers.extend(range(first, last + 1))
    return numbers or None


def given_name(full_name: str) -> str:
    """The name a class list is ordered by (the last word), short enough for a button."""
    return full_name.rsplit(" ", 1)[-1]


class VaccineRoundFlow(EditableFlow[VaccineRoundAnswers]):
    name = "vaccine_round"
    command = "vaccine_round"
    title_key = "vaccines.round.title"
    summary_state = Step.SUMMARY
    edit_state = Step.EDIT
    editable = EDITABLE
    field_labels = "vaccines.round.field"
    edit_texts = "vaccines"
    answers_model = VaccineRoundAnswers

    def __init__(self) -> None:
        self.choices = ProductAndPlace(
            self,
            ProductStates(Step.PRODUCT, Step.PRODUCT_NAME, Step.PLACE, following=Step.DOSE),
            ask_product=self.ask_product,
        )

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[VaccineRoundAnswers]:
        press = self.on_text(self.press_button)
        return {
            Step.CLASS: Window(
                self.ask_class, [self.on_button("class:", self.on_class), self.on_text(self.on_class)]
            ),
            Step.DATE: Window(
                self.ask_date, [self.on_button("date:", self.on_date), self.on_text(self.on_date)]
            ),
            **self.choices.windows(),
            Step.DOSE: Window(
                self.ask_dose, [self.on_button(r"dose:\w+$", self.on_dose), self.on_text(self.on_dose)]
            ),
            Step.TICK: Window(
                self.show_ticks,
                [
                    self.on_button(r"t:\d+$", self.on_toggle),
                    self.on_button("all$", self.on_all),
                    self.on_button("none$", self.on_none),
                    self.on_button(r"page:\d+$", self.on_page),
                    self.on_button("done$", self.on_done),
                    self.on_text(self.on_numbers),
                ],
            ),
            **self.summary_windows(self.show_summary, typed=press),
        }

    async def begin(self, turn: Ask) -> int:
        classes = await turn.context.services.students.classes(turn.school_id)
        if not classes:
            return await turn.finish(turn.text("vaccines.round.no_classes"))
        return await turn.ask(Step.CLASS)

    async def ask_class(self, turn: Ask) -> None:
        classes = await turn.context.services.students.classes(turn.school_id)
        options = [
            (
                turn.text("vaccines.round.class_button", class_name=c.class_name, count=c.student_count),
                self.cb("class", c.class_name),
            )
            for c in classes
        ]
        await turn.reply(turn.text("vaccines.round.class_question"), rows(*option_rows(options, columns=4)))

    async def ask_date(self, turn: Ask) -> None:
        text = turn.text("vaccines.round.date_question", class_name=html.escape(self._class_name(turn)))
        await turn.reply(text, date_choices(self.cb("date"), turn.language))

    async def ask_product(self, turn: Ask) -> None:
        text = turn.text(
            "vaccines.round.product_question",
            class_name=html.escape(self._class_name(turn)),
            given_on=self._given_on(turn),
        )
        await turn.reply(text, await product_keyboard(turn, self))

    async def ask_dose(self, turn: Ask) -> None:
        numbers = [
            (turn.text("vaccines.round.dose_button", dose_number=n), self.cb("dose", n)) for n in ROUND_DOSES
        ]
        markup = rows([(turn.text("vaccines.round.dose_next"), self.cb("dose", NEXT))], numbers)
        await turn.reply(turn.text("vaccines.round.dose_question"), markup)

    async def show_ticks(self, turn: Ask) -> None:
        text, markup = self._tick_view(turn, await self._roster(turn))
        await turn.reply(text, markup)

    def _class_name(self, turn: Ask) -> str:
        assert turn.answers.class_name is not None  # the first question
        return turn.answers.class_name

    def _place(self, turn: Ask) -> DosePlace:
        assert turn.answers.place is not None  # asked before the class list
        return turn.answers.place

    def _given_on(self, turn: Ask) -> str:
        assert turn.answers.given_on is not None  # asked second
        return show_date(turn.answers.given_on)

    def _dose_label(self, turn: Ask) -> str:
        number = turn.answers.dose_number
        if number is None:
            return turn.text("vaccines.round.dose_next_short")
        return turn.text("vaccines.round.dose_short", dose_number=number)

    async def _roster(self, turn: Ask) -> list[RosterStudent]:
        return await turn.context.services.vaccines.class_roster(turn.school_id, self._class_name(turn))

    def _tick_view(self, turn: Ask, roster: list[RosterStudent]) -> tuple[str, InlineKeyboardMarkup]:
        answers = turn.answers
        ticked = set(answers.ticked)
        pages = max(1, math.ceil(len(roster) / PAGE_SIZE))
        page = min(max(1, answers.page), pages)
        numbered = list(enumerate(roster, start=1))[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        header = turn.text(
            "vaccines.round.tick_header",
            class_name=html.escape(self._class_name(turn)),
            given_on=self._given_on(turn),
            product=shown_product(answers),
            place=place_label(self._place(turn), turn.language),
            dose=self._dose_label(turn),
            ticked=len(ticked),
            total=len(roster),
            page=page,
            pages=pages,
        )
        lines = [
            turn.text(
                "vaccines.round.tick_line_on" if s.student_id in ticked else "vaccines.round.tick_line",
                number=n,
                name=html.escape(s.full_name),
                doses=s.dose_count,
            )
            for n, s in numbered
        ]
        toggles = [
            (
                turn.text(
                    "vaccines.round.tick_on" if s.student_id in ticked else "vaccines.round.tick_off",
                    number=n,
                    name=given_name(s.full_name),
                    doses=s.dose_count,
                ),
                self.cb("t", s.student_id),
            )
            for n, s in numbered
        ]
        paging = []
        if page > 1:
            paging.append((turn.text("vaccines.round.page_previous"), self.cb("page", page - 1)))
        if page < pages:
            paging.append((turn.text("vaccines.round.page_next"), self.cb("page", page + 1)))
        markup = rows(
            *option_rows(toggles, columns=COLUMNS),
            [
                (turn.text("vaccines.round.select_all"), self.cb("all")),
                (turn.text("vaccines.round.select_none"), self.cb("none")),
            ],
            paging,
            [(turn.text("vaccines.round.done", ticked=len(ticked)), self.cb("done"))],
            [(turn.text("core.cancel"), self.cb("cancel"))],
        )
        return header + "\n\n" + "\n".join(lines), markup

    def _who(self, numbers: dict[int, int], student_id: int, name: str) -> str:
        number = numbers.get(student_id)
        return f"{number}. {html.escape(name)}" if number else html.escape(name)

    def _skip_lines(self, turn: Ask, result: RoundResult, numbers: dict[int, int]) -> list[str]:
        return [
            turn.text(
                "vaccines.round.skip_line",
                name=self._who(numbers, s.student_id, s.student_name),
                reason=finding_text(s.reason.as_error(), turn.language),
            )
            for s in result.skipped
        ]

    def _details(self, turn: Ask) -> dict[str, str]:
        return {
            "class_name": html.escape(self._class_name(turn)),
            "given_on": self._given_on(turn),
            "product": shown_product(turn.answers),
            "place": place_label(self._place(turn), turn.language),
        }

    async def show_summary(self, turn: Ask) -> None:
        edit_or_cancel = rows(
            [(turn.text("core.edit"), self.cb("edit"))], [(turn.text("core.cancel"), self.cb("cancel"))]
        )
        roster = await self._roster(turn)
        numbers = {s.student_id: n for n, s in enumerate(roster, start=1)}
        try:
            preview = await turn.context.services.vaccines.preview_round(
                self._round_in(turn), school_id=turn.school_id
            )
        except (DomainError, ValidationError) as exc:  # wrong for the whole round (e.g. records locked)
            reason = finding_text(exc, turn.language)
            await turn.reply(turn.text("vaccines.round.blocked", reason=reason), edit_or_cancel)
            return
        lines = [
            turn.text("vaccines.round.summary_header", **self._details(turn), dose=self._dose_label(turn))
        ]
        if preview.saved:
            lines += ["", turn.text("vaccines.round.will_save", count=len(preview.saved))]
            lines += [
                turn.text(
                    "vaccines.round.will_save_line",
                    name=self._who(numbers, s.student_id, s.student_name),
                    dose_number=s.dose_number,
                )
                for s in preview.saved
            ]
        if preview.skipped:
            lines += ["", turn.text("vaccines.round.will_skip", count=len(preview.skipped))]
            lines += self._skip_lines(turn, preview, numbers)
        if not preview.saved:
            lines += ["", turn.text("vaccines.round.nothing_to_save")]
        if preview.entered_late:
            lines += ["", turn.text("core.late_flag")]
        markup = confirm_choices(self.cb(), turn.language) if preview.saved else edit_or_cancel
        await send_lines(turn.update, lines, markup)

    # --- answers ---------------------------------------------------------------------------------

    async def press_button(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("vaccines.press_button"))

    async def on_class(self, turn: Ask) -> int | None:
        wanted = turn.answer if turn.update.callback_query is not None else clean_class_name(turn.answer)
        classes = await turn.context.services.students.classes(turn.school_id)
        if not any(c.class_name == wanted for c in classes):
            return await turn.retry(turn.text("vaccines.round.class_unknown", class_name=html.escape(wanted)))
        answers = turn.answers
        changed = answers.class_name != wanted
        answers.class_name = wanted
        if changed:
            answers.ticked, answers.page = [], 1
            if turn.editing:
                return await turn.ask(Step.TICK)  # a new class list to tick; "Done" returns to the summary
        return await turn.advance(Step.DATE)

    async def on_date(self, turn: Ask) -> int | None:
        given_on = parse_picked_date(turn)
        # Known once dated: a round of a locked period is refused here, before the other questions.
        await turn.context.services.rounds.check_entry_day(turn.school_id, "vaccines", given_on)
        turn.answers.given_on = given_on
        return await turn.advance(Step.PRODUCT)

    async def on_dose(self, turn: Ask) -> int | None:
        if turn.update.callback_query is not None and turn.answer == NEXT:
            number = None
        else:
            number = typed_dose_number(turn.answer)
            if number is None:
                text = turn.text(
                    "vaccines.round.dose_invalid", value=html.escape(turn.answer), maximum=MAX_DOSE_NUMBER
                )
                return await turn.retry(text)
            check_dose_number(number)
        turn.answers.dose_number = number
        return await turn.advance(Step.TICK)

    # The class list: every tap is written to the draft, then the list message is redrawn in place.

    async def on_toggle(self, turn: Ask) -> int | None:
        roster = await self._roster(turn)
        student_id = int(turn.answer)
        if not any(s.student_id == student_id for s in roster):
            await answer_alert(turn.update, turn.text("core.stale_button"))
            return turn.step
        ticked = set(turn.answers.ticked) ^ {student_id}
        return await self._redraw(turn, roster, ticked)

    async def on_all(self, turn: Ask) -> int | None:
        roster = await self._roster(turn)
        return await self._redraw(turn, roster, {s.student_id for s in roster})

    async def on_none(self, turn: Ask) -> int | None:
        return await self._redraw(turn, await self._roster(turn), set())

    async def on_page(self, turn: Ask) -> int | None:
        turn.answers.page = int(turn.answer)
        roster = await self._roster(turn)
        return await self._redraw(turn, roster, set(turn.answers.ticked))

    async def on_numbers(self, turn: Ask) -> int | None:
        roster = await self._roster(turn)
        numbers = list_numbers(turn.answer, len(roster))
        if numbers is None:
            text = turn.text(
                "vaccines.round.numbers_invalid", value=html.escape(turn.answer), maximum=len(roster)
            )
            return await turn.retry(text)
        ticked = set(turn.answers.ticked) | {roster[n - 1].student_id for n in numbers}
        return await self._redraw(turn, roster, ticked)

    async def _redraw(self, turn: Ask, roster: list[RosterStudent], ticked: set[int]) -> int | None:
        turn.answers.ticked = [s.student_id for s in roster if s.student_id in ticked]  # class-list order
        await turn.save()
        text, markup = self._tick_view(turn, roster)
        query = turn.update.callback_query
        if query is None or not isinstance(query.message, Message):
            await turn.reply(text, markup)  # typed numbers: a fresh list below the person's message
            return turn.step
        await query.answer()
        with contextlib.suppress(BadRequest):  # unchanged (a double tap): nothing to redraw
            await query.edit_message_text(text, reply_markup=markup)
        return turn.step

    async def on_done(self, turn: Ask) -> int | None:
        try:
            self._round_in(turn)
        except ValidationError as exc:
            return await turn.retry(exc)
        return await turn.advance(Step.SUMMARY)

    # --- summary, edit, confirm -------------------------------------------------------------------

    def _round_in(self, turn: Ask) -> RoundIn:
        answers = turn.answers
        assert answers.given_on is not None and answers.product_id is not None  # asked before the list
        return RoundIn(
            student_ids=answers.ticked,
            given_on=answers.given_on,
            product_id=answers.product_id,
            product_other_name=answers.product_other_name or "",
            place=self._place(turn),
            dose_number=answers.dose_number,
        )

    async def on_confirm(self, turn: Ask) -> int:
        roster = await self._roster(turn)
        numbers = {s.student_id: n for n, s in enumerate(roster, start=1)}
        result = await turn.context.services.vaccines.record_round(
            self._round_in(turn),
            school_id=turn.school_id,
            actor_id=turn.staff.id,
            request_key=turn.request_key,
        )
        details = self._details(turn)
        if result.skipped:
            lines = [
                turn.text(
                    "vaccines.round.saved_skipped", saved=len(result.saved), skipped=len(result.skipped)
                )
            ]
            lines += self._skip_lines(turn, result, numbers)
            lines.append(turn.text("vaccines.round.saved_details", **details))
        else:
            lines = [turn.text("vaccines.round.saved", saved=len(result.saved), **details)]
        if result.entered_late:
            lines.append(turn.text("core.late_flag"))
        first, *rest = pack_lines(lines)
        state = await turn.finish(first)
        for chunk in rest:
            await reply_plain(turn.update, chunk)
        return state


def build_vaccine_round_conversation() -> VaccineRoundFlow:
    return VaccineRoundFlow()
