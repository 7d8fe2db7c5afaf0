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
from conversations.common import Flow, Handlers, Turn
from conversations.widgets.messages import send_lines
from conversations.widgets.round_helpers import district_of, error_text, esc
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label
from storage.schemas.rounds import CompileCheck, CompileChoice, SchoolRef


class Step(enum.IntEnum):
    CHECK = 1
    MISSING = 2


class CompileFlow(Flow):
    name = "compile"
    command = "compile"
    title_key = "rounds_chat.compile.title"
    action = Action.COMPILE

    async def begin(self, turn: Turn) -> int:
        rounds = turn.context.services.rounds
        try:
            district_id = await district_of(turn.context, turn.staff)
            current = await rounds.current_round(district_id)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        if current is None:
            return await turn.finish(turn.text("rounds_chat.no_round"))
        turn.remember(_round_id=current.id, _district_id=current.district_id)
        return await turn.ask(Step.CHECK)

    def _school_lines(self, turn: Turn, schools: list[SchoolRef]) -> str:
        return "\n".join(
            turn.text("rounds_chat.compile.school_line", code=esc(s.school_code), name=esc(s.school_name))
            for s in schools
        )

    async def prompt(self, turn: Turn, state: int) -> None:
        if state == Step.CHECK:
            check = await turn.context.services.rounds.compile_check(turn.draft["_round_id"])
            await self._show_check(turn, check)
        elif state == Step.MISSING:
            missing = [SchoolRef.model_validate(s) for s in turn.draft["_missing"]]
            text = turn.text(
                "rounds_chat.compile.missing_confirm",
                round=esc(round_label(turn.draft["_round_name"])),
                count=len(missing),
                schools=self._school_lines(turn, missing),
                choice=turn.text(f"rounds_chat.compile.choice_{turn.draft['_choice']}"),
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

    async def _show_check(self, turn: Turn, check: CompileCheck) -> None:
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

    def steps(self) -> Handlers:
        return {
            Step.CHECK: [
                self.on_button("run:all$", self.on_compile),
                self.on_button("without:(leave_out|include_live)$", self.on_without),
            ],
            Step.MISSING: [self.on_button("run:without$", self.on_compile)],
        }

    async def on_without(self, turn: Turn) -> int:
        check = await turn.context.services.rounds.compile_check(turn.draft["_round_id"])
        if check.ready:  # approved meanwhile: nothing is missing any more
            return await turn.ask(Step.CHECK)
        turn.draft["_round_name"] = check.round_name
        turn.draft["_missing"] = [s.model_dump(mode="json") for s in check.missing]
        turn.draft["_choice"] = CompileChoice(turn.answer).value
        return await turn.ask(Step.MISSING)

    async def on_compile(self, turn: Turn) -> int:
        services, language = turn.context.services, turn.language
        draft = turn.draft
        without = turn.answer == "without"
        missing = draft.get("_missing", []) if without else []
        choice = CompileChoice(draft["_choice"]) if without else CompileChoice.ALL_APPROVED
        await turn.reply(turn.text("rounds_chat.compile.building"))
        try:
            compiled, content = await services.rounds.compile(
                draft["_round_id"], turn.staff.id, choice, [s["school_id"] for s in missing], language
            )
        except DomainError as exc:
            failed = turn.text("rounds_chat.compile.failed", reason=error_text(exc, language))
            if exc.code == "rounds.already_compiled":
                return await turn.finish(failed)
            await turn.reply(failed)
            draft.pop("missing", None)
            return await turn.ask(Step.CHECK)
        current = await services.rounds.get_round(draft["_round_id"])
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
