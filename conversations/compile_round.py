"""/compile: the statistics officer compiles the district report of the current round.

The check first (which schools are approved): when every school's programme data is approved,
«Compile»; otherwise the missing schools are listed and the officer chooses, explicitly, to leave
them out (named on the cover and the status sheet) or to include their live data marked row by row
"chưa duyệt"; a second confirmation names exactly that list (the service refuses when it changed
meanwhile). Then the district workbook is built from the approved snapshots and stored with the
round (services.rounds.compile, which closes the round), and sent here as a document.
"""

from __future__ import annotations

import enum

from bot.keyboards import rows
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.messages import send_lines
from conversations.widgets.round_helpers import district_of, error_text, esc
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label
from storage.schemas.rounds import CompileCheck, CompileChoice, SchoolRef


class Step(enum.IntEnum):
    CHECK = 1
    MISSING = 2


class CompileAnswers(Answers):
    # What the officer chose for the schools not approved (at the check).
    choice: CompileChoice | None = None
    # The current round, read at the start; the round's name and the schools not approved as the
    # check found them when the choice was made (the second confirmation names exactly those).
    round_id: int | None = None
    district_id: int | None = None
    round_name: str | None = None
    missing: list[SchoolRef] = []
    derived = Answers.derived | {"round_id", "district_id", "round_name", "missing"}


Ask = Turn[CompileAnswers]


class CompileFlow(Flow[CompileAnswers]):
    name = "compile"
    command = "compile"
    title_key = "rounds_chat.compile.title"
    action = Action.COMPILE
    answers_model = CompileAnswers

    def windows(self) -> Windows[CompileAnswers]:
        return {
            Step.CHECK: Window(
                self.show_check,
                [
                    self.on_button("run:all$", self.on_compile),
                    self.on_button("without:(leave_out|include_live)$", self.on_without),
                ],
            ),
            Step.MISSING: Window(self.ask_missing, [self.on_button("run:without$", self.on_compile)]),
        }

    async def begin(self, turn: Ask) -> int:
        rounds = turn.context.services.rounds
        try:
            district_id = await district_of(turn.context, turn.staff)
            current = await rounds.current_round(district_id)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        if current is None:
            return await turn.finish(turn.text("rounds_chat.no_round"))
        turn.answers.round_id, turn.answers.district_id = current.id, current.district_id
        return await turn.ask(Step.CHECK)

    def _school_lines(self, turn: Ask, schools: list[SchoolRef]) -> str:
        return "\n".join(
            turn.text("rounds_chat.compile.school_line", code=esc(s.school_code), name=esc(s.school_name))
            for s in schools
        )

    async def show_check(self, turn: Ask) -> None:
        assert turn.answers.round_id is not None
        check = await turn.context.services.rounds.compile_check(turn.answers.round_id)
        await self._show_check(turn, check)

    async def ask_missing(self, turn: Ask) -> None:
        answers = turn.answers
        assert answers.choice is not None
        missing = answers.missing
        text = turn.text(
            "rounds_chat.compile.missing_confirm",
            round=esc(round_label(answers.round_name or "")),
            count=len(missing),
            schools=self._school_lines(turn, missing),
            choice=turn.text(f"rounds_chat.compile.choice_{answers.choice.value}"),
        )
        markup = rows(
            [
                (
                    turn.text("rounds_chat.compile.missing_confirm_button", count=len(missing)),
                    self.cb("run", "without"),
                )
            ],
            [(turn.text("core.cancel"), self.cb("cancel"))],
        )
        await turn.reply(text, markup)

    async def _show_check(self, turn: Ask, check: CompileCheck) -> None:
        name = esc(round_label(check.round_name))
        cancel = [(turn.text("core.cancel"), self.cb("cancel"))]
        if check.ready:
            lines = [turn.text("rounds_chat.compile.ready", round=name, count=len(check.approved))]
            button = [(turn.text("rounds_chat.compile.compile_button"), self.cb("run", "all"))]
        else:
            lines = [
                turn.text(
                    "rounds_chat.compile.not_ready",
                    round=name,
                    count=len(check.missing),
                    total=len(check.approved) + len(check.missing),
                    schools=self._school_lines(turn, check.missing),
                )
            ]
            count = len(check.missing)
            choices = [
                [
                    (
                        turn.text("rounds_chat.compile.without_button", count=count),
                        self.cb("without", "leave_out"),
                    )
                ],
                [
                    (
                        turn.text("rounds_chat.compile.include_button", count=count),
                        self.cb("without", "include_live"),
                    )
                ],
            ]
        if check.vaccine_missing:
            lines.append(
                turn.text(
                    "rounds_chat.compile.vaccine_missing",
                    count=len(check.vaccine_missing),
                    schools="; ".join(esc(s.school_name) for s in check.vaccine_missing),
                )
            )
        if check.ready:
            lines.append(turn.text("rounds_chat.compile.ready_question"))
            await send_lines(turn.update, lines, rows(button, cancel))
        else:
            await send_lines(turn.update, lines, rows(*choices, cancel))

    async def on_without(self, turn: Ask) -> int:
        answers = turn.answers
        assert answers.round_id is not None
        check = await turn.context.services.rounds.compile_check(answers.round_id)
        if check.ready:  # approved meanwhile: nothing is missing any more
            return await turn.ask(Step.CHECK)
        answers.round_name, answers.missing = check.round_name, check.missing
        answers.choice = CompileChoice(turn.answer)
        return await turn.ask(Step.MISSING)

    async def on_compile(self, turn: Ask) -> int:
        services, language = turn.context.services, turn.language
        answers = turn.answers
        assert answers.round_id is not None
        without = turn.answer == "without"
        missing, choice = [], CompileChoice.ALL_APPROVED
        if without:  # the second confirmation: the choice and the schools it named
            assert answers.choice is not None
            missing, choice = answers.missing, answers.choice
        await turn.reply(turn.text("rounds_chat.compile.building"))
        try:
            compiled, content = await services.rounds.compile(
                answers.round_id,
                actor_id=turn.staff.id,
                choice=choice,
                missing_school_ids_acknowledged=[s.school_id for s in missing],
                language=language,
            )
        except DomainError as exc:
            failed = turn.text("rounds_chat.compile.failed", reason=error_text(exc, language))
            if exc.code == "rounds.already_compiled":
                return await turn.finish(failed)
            await turn.reply(failed)
            return await turn.ask(Step.CHECK)
        current = await services.rounds.get_round(answers.round_id)
        chat = turn.update.effective_chat
        if chat is not None:
            caption = turn.text("rounds_chat.compile.caption", round=esc(round_label(current.name)))
            await chat.send_document(document=content, filename=compiled.filename, caption=caption)
        text = turn.text(
            "rounds_chat.compile.done", round=esc(round_label(current.name)), filename=esc(compiled.filename)
        )
        if compiled.missing_acknowledged:
            text += turn.text(
                "rounds_chat.compile.done_missing",
                count=len(compiled.missing_acknowledged),
                schools="; ".join(esc(s.school_name) for s in compiled.missing_acknowledged),
            )
        return await turn.finish(text)


def build_compile_conversation() -> CompileFlow:
    return CompileFlow()
