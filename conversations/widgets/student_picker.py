"""The student picker every flow that names a student reuses.

`StudentPicker`: type part of a name (with or without diacritics) or the student code; matches come
back as buttons with name, class and date of birth (namesakes are told apart), with paging; only the
person's own school. A missing student can be added in place (name → date of birth → class → CSDL
code, which can be skipped) without leaving the flow: nothing is written then; the new student rides
in the draft (`new_student`) and the flow's service creates them together with the record at its
confirm, so `/cancel` leaves no student behind. The picker owns a few of the flow's states; the flow
hands it their numbers and gets the chosen (or new) student in `on_picked`. A flow naming a student
types its answers as a `StudentAnswers`: `remember_student` keeps the student there and `student_of`
hands it to the record's input schema.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from bot.keyboards import rows
from conversations.common import Answers, Flow, Turn, Window
from storage.rules.dates import show_date
from storage.schemas.parsing import clean_name
from storage.schemas.students import (
    NewStudentIn,
    StudentOut,
    StudentPage,
    clean_class_name,
    grade_of_class,
    parse_date_of_birth,
)


class PickerAnswers(BaseModel):
    """The picker's own answers while it is open: the search typed and the page shown, or the new
    student's answers so far (name, date of birth, class)."""

    query: str | None = None
    page: int = 1
    new: dict[str, Any] | None = None


class StudentAnswers(Answers):
    """Answers of a flow that names a student: one of the school's (`student_id`) or a new one
    (`new_student`, the NewStudentIn as JSON, created with the record at the confirm)."""

    student_id: int | None = None
    new_student: dict[str, Any] | None = None
    # As questions and summaries show the student, and the bare name (messages that name them).
    student_label: str | None = Field(None, validation_alias=AliasChoices("student_label", "student"))
    student_name: str | None = None
    picker: PickerAnswers | None = None
    derived = frozenset({"student_label", "student_name", "picker"})


@dataclass(frozen=True)
class Picked:
    """The student a flow goes on with: one of the school's (`id`), or a new one (`new`, the
    NewStudentIn as JSON) that the flow's service adds with the record at the confirm."""

    id: int | None
    full_name: str
    label: str  # as questions and summaries show it; a new student's label says so
    new: dict[str, Any] | None = None

    @classmethod
    def of(cls, student: StudentOut) -> Picked:
        return cls(student.id, student.full_name, student_label(student))


OnPicked = Callable[[Turn[StudentAnswers], Picked], Awaitable[int]]


def remember_student(answers: StudentAnswers, picked: Picked) -> None:
    """Keep the student: its id, or the new student's answers (never both), and how it is shown."""
    answers.student_id = picked.id
    answers.new_student = picked.new if picked.id is None else None
    answers.student_label, answers.student_name = picked.label, picked.full_name


def student_of(answers: StudentAnswers) -> dict[str, Any]:
    """The student part of a record's input schema (`ForStudent`): the id, or the new student."""
    if answers.new_student is not None:
        return {"new_student": answers.new_student}
    return {"student_id": answers.student_id}


@dataclass(frozen=True)
class PickerStates:
    """The flow's state numbers the picker uses."""

    search: int
    new_name: int
    new_birth: int
    new_class: int
    new_code: int


def student_label(student: StudentOut) -> str:
    return f"{student.full_name} · {student.class_name} · {show_date(student.date_of_birth)}"


class StudentPicker:
    def __init__(
        self, flow: Flow[Any], states: PickerStates, on_picked: OnPicked, *, prompt_key: str
    ) -> None:
        self.flow = flow
        self.states = states
        self.on_picked = on_picked
        self.prompt_key = prompt_key  # the flow's own question ("who receives the device?")

    # --- used by the flow -------------------------------------------------------------------------

    async def ask(self, turn: Turn[StudentAnswers]) -> int:
        turn.answers.picker = None
        return await turn.ask(self.states.search)

    def windows(self) -> dict[int, Window[StudentAnswers]]:
        """The picker's states: the search (and its results), then adding a missing student."""
        f, s = self.flow, self.states
        back = f.on_button("pick:back$", self._back_to_search)
        return {
            s.search: Window(
                self._ask_search,
                [
                    f.on_text(self._search),
                    f.on_button(r"pick:id:\d+$", self._picked),
                    f.on_button(r"pick:page:\d+$", self._page),
                    f.on_button("pick:add$", self._start_add),
                ],
            ),
            s.new_name: Window(self._ask_new_name, [f.on_text(self._new_name), back]),
            s.new_birth: Window(self._ask_new_birth, [f.on_text(self._new_birth), back]),
            s.new_class: Window(self._ask_new_class, [f.on_text(self._new_class), back]),
            s.new_code: Window(
                self._ask_new_code,
                [f.on_text(self._new_code), f.on_button("pick:nocode$", self._no_code), back],
            ),
        }

    # --- searching ----------------------------------------------------------------------------------

    async def _ask_search(self, turn: Turn[StudentAnswers]) -> None:
        picker = turn.answers.picker
        if picker is not None and picker.query:
            await self._show_results(turn, picker.query, picker.page)
        else:
            await turn.reply(turn.text(self.prompt_key) + "\n" + turn.text("pickers.student_search_hint"))

    async def _search(self, turn: Turn[StudentAnswers]) -> int | None:
        query = turn.answer.strip()
        await self._matches(turn, query, 1)  # validates (and is shown by the prompt, read once)
        turn.answers.picker = PickerAnswers(query=query, page=1)
        return await turn.ask(self.states.search)

    async def _page(self, turn: Turn[StudentAnswers]) -> int | None:
        picker = turn.answers.picker = turn.answers.picker or PickerAnswers()
        picker.page = int(turn.answer)
        return await turn.ask(self.states.search)

    async def _matches(self, turn: Turn[StudentAnswers], query: str, page: int) -> StudentPage:
        lookup = turn.context.services.student_lookup
        school_id = turn.school_id
        found: StudentPage = await turn.once(
            ("students", query, page), lambda: lookup.search(school_id, query, page)
        )
        return found

    async def _show_results(self, turn: Turn[StudentAnswers], query: str, page: int) -> None:
        result = await self._matches(turn, query, page)
        add = [(turn.text("pickers.add_student"), self.flow.cb("pick", "add"))]
        if not result.items:
            await turn.reply(turn.text("pickers.no_match", query=html.escape(query)), rows(add))
            return
        options = [[(student_label(s), self.flow.cb("pick", "id", s.id))] for s in result.items]
        paging = []
        if result.has_previous:
            paging.append((turn.text("core.back"), self.flow.cb("pick", "page", page - 1)))
        if result.has_next:
            paging.append((turn.text("core.more"), self.flow.cb("pick", "page", page + 1)))
        text = turn.text(
            "pickers.matches", query=html.escape(query), total=result.total, page=page, pages=result.pages
        )
        await turn.reply(text, rows(*options, paging, add))

    async def _picked(self, turn: Turn[StudentAnswers]) -> int:
        student = await turn.context.services.student_lookup.get(int(turn.answer), school_id=turn.school_id)
        turn.answers.picker = None
        return await self.on_picked(turn, Picked.of(student))

    # --- adding a missing student -------------------------------------------------------------------

    def _back_button(self, turn: Turn[StudentAnswers]) -> Any:
        return rows([(turn.text("core.back"), self.flow.cb("pick", "back"))])

    async def _ask_new_name(self, turn: Turn[StudentAnswers]) -> None:
        await turn.reply(turn.text("pickers.new_name"), self._back_button(turn))

    async def _ask_new_birth(self, turn: Turn[StudentAnswers]) -> None:
        await turn.reply(turn.text("pickers.new_birth"), self._back_button(turn))

    async def _ask_new_class(self, turn: Turn[StudentAnswers]) -> None:
        await turn.reply(turn.text("pickers.new_class"), self._back_button(turn))

    async def _ask_new_code(self, turn: Turn[StudentAnswers]) -> None:
        markup = rows(
            [(turn.text("pickers.skip_code"), self.flow.cb("pick", "nocode"))],
            [(turn.text("core.back"), self.flow.cb("pick", "back"))],
        )
        await turn.reply(turn.text("pickers.new_code"), markup)

    async def _back_to_search(self, turn: Turn[StudentAnswers]) -> int:
        return await self.ask(turn)

    async def _start_add(self, turn: Turn[StudentAnswers]) -> int:
        turn.answers.picker = PickerAnswers(new={})
        return await turn.ask(self.states.new_name)

    def _new(self, turn: Turn[StudentAnswers]) -> dict[str, Any]:
        picker = turn.answers.picker = turn.answers.picker or PickerAnswers()
        if picker.new is None:
            picker.new = {}
        return picker.new

    async def _new_name(self, turn: Turn[StudentAnswers]) -> int:
        self._new(turn)["full_name"] = clean_name(turn.answer)
        return await turn.ask(self.states.new_birth)

    async def _new_birth(self, turn: Turn[StudentAnswers]) -> int:
        born = parse_date_of_birth(turn.answer, turn.context.services.clock.today())
        self._new(turn)["date_of_birth"] = born.isoformat()
        return await turn.ask(self.states.new_class)

    async def _new_class(self, turn: Turn[StudentAnswers]) -> int:
        class_name = clean_class_name(turn.answer)
        new = self._new(turn)
        # The birth date must suit the class's grade: say so here, where it can be fixed.
        parse_date_of_birth(
            date.fromisoformat(new["date_of_birth"]),
            turn.context.services.clock.today(),
            grade_of_class(class_name),
        )
        new["class_name"] = class_name
        return await turn.ask(self.states.new_code)

    async def _new_code(self, turn: Turn[StudentAnswers]) -> int:
        return await self._new_ready(turn, turn.answer)

    async def _no_code(self, turn: Turn[StudentAnswers]) -> int:
        return await self._new_ready(turn, None)

    async def _new_ready(self, turn: Turn[StudentAnswers], code: str | None) -> int:
        """The new student's answers checked (code format, code not taken, grade of this school,
        age), kept in the draft; nothing is written until the record's confirm."""
        new = {**self._new(turn), "code": code}
        data = NewStudentIn.model_validate(new, context={"today": turn.context.services.clock.today()})
        await turn.context.services.students.check_new(data, school_id=turn.school_id)
        turn.answers.picker = None
        label = new_student_label(turn, data)
        picked = Picked(None, data.full_name, label, data.model_dump(mode="json"))
        await turn.reply(turn.text("pickers.student_new", name=html.escape(label)))
        return await self.on_picked(turn, picked)


def new_student_label(turn: Turn[Any], data: NewStudentIn) -> str:
    """A new student as summaries show them: marked new, and without a CSDL code if so."""
    return turn.text(
        "pickers.new_label",
        name=data.full_name,
        class_name=data.class_name,
        born=show_date(data.date_of_birth),
        code=turn.text("pickers.code_label", code=data.code) if data.code else turn.text("pickers.no_code"),
    )
