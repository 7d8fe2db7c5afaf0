"""/reopen: the statistics officer (or an admin) reopens a school's approved period of one part.

The approved parts of the current round as buttons -> the reason (required) -> reopened: the school's
people and the part's reviewers are told, the school submits again and the new snapshot is reviewed.
The service checks who may (storage.permissions.Action.REOPEN), writes the audit log and keeps the
approved snapshot as it was, stamped reopened.
"""

from __future__ import annotations

import enum

from bot.keyboards import rows
from bot.texts import t
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.round_helpers import district_of, error_text, esc, names_of, notify, track_label
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label

MAX_LISTED = 40


class Step(enum.IntEnum):
    PICK = 1
    REASON = 2


class ReopenAnswers(Answers):
    submission_id: int | None = None
    # The current round, read at the start; the chosen part as the reason question names it.
    round_id: int | None = None
    round_name: str | None = None
    label: str | None = None
    derived = Answers.derived | {"round_id", "round_name", "label"}


Ask = Turn[ReopenAnswers]


class ReopenFlow(Flow[ReopenAnswers]):
    name = "reopen"
    command = "reopen"
    title_key = "rounds_chat.reopen.title"
    action = Action.REOPEN
    answers_model = ReopenAnswers

    def windows(self) -> Windows[ReopenAnswers]:
        return {
            Step.PICK: Window(self.ask_pick, [self.on_button(r"pick:\d+$", self.on_pick)]),
            Step.REASON: Window(self.ask_reason, [self.on_text(self.on_reason)]),
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
        approved = await rounds.approved_submissions(current.id, actor_id=turn.staff.id)
        if not approved:
            return await turn.finish(
                turn.text("rounds_chat.reopen.none", round=esc(round_label(current.name)))
            )
        turn.answers.round_id, turn.answers.round_name = current.id, current.name
        return await turn.ask(Step.PICK)

    async def ask_pick(self, turn: Ask) -> None:
        answers = turn.answers
        assert answers.round_id is not None
        approved = await turn.context.services.rounds.approved_submissions(
            answers.round_id, actor_id=turn.staff.id
        )
        buttons = [
            [
                (
                    turn.text(
                        "rounds_chat.reopen.button",
                        code=s.school_code,
                        name=s.school_name,
                        track=track_label(s.track, turn.language),
                    ),
                    self.cb("pick", s.id),
                )
            ]
            for s in approved[:MAX_LISTED]
        ]
        text = turn.text("rounds_chat.reopen.list", round=esc(round_label(answers.round_name or "")))
        await turn.reply(text, rows(*buttons, [(turn.text("core.cancel"), self.cb("cancel"))]))

    async def ask_reason(self, turn: Ask) -> None:
        await turn.reply(
            turn.text("rounds_chat.reopen.reason_question", school=esc(turn.answers.label or ""))
        )

    async def on_pick(self, turn: Ask) -> int | None:
        chosen = int(turn.answer)
        assert turn.answers.round_id is not None
        approved = await turn.context.services.rounds.approved_submissions(
            turn.answers.round_id, actor_id=turn.staff.id
        )
        found = next((s for s in approved if s.id == chosen), None)
        if found is None:  # reopened or changed meanwhile: the list again
            return await turn.ask(Step.PICK)
        turn.answers.submission_id = found.id
        turn.answers.label = f"{found.school_name} · {track_label(found.track, turn.language)}"
        return await turn.ask(Step.REASON)

    async def on_reason(self, turn: Ask) -> int | None:
        services, language = turn.context.services, turn.language
        assert turn.answers.submission_id is not None
        try:
            outcome = await services.rounds.reopen(
                turn.answers.submission_id, actor_id=turn.staff.id, reason=turn.answer
            )
        except DomainError as exc:
            if exc.code in ("rounds.reason_required", "rounds.reason_too_long"):
                return await turn.retry(error_text(exc, language))
            return await turn.finish(error_text(exc, language))
        submission = outcome.submission
        school, round_name, reason = (
            esc(submission.school_name),
            esc(round_label(submission.round_name)),
            esc(outcome.reason),
        )
        by = esc(turn.staff.full_name)

        def text_for(person_language: str) -> str:
            return t(
                "rounds_chat.reopen.notify",
                person_language,
                track=track_label(submission.track, person_language),
                school=school,
                round=round_name,
                reason=reason,
                by=by,
            )

        told = await notify(turn.context, outcome.notify, text_for)
        return await turn.finish(
            turn.text(
                "rounds_chat.reopen.done",
                track=track_label(submission.track, language),
                school=school,
                reason=reason,
                people=names_of(told, language),
            )
        )


def build_reopen_conversation() -> ReopenFlow:
    return ReopenFlow()
