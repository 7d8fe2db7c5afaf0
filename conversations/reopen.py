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
from conversations.common import Flow, Handlers, Turn
from conversations.widgets.round_helpers import district_of, error_text, esc, names_of, notify, track_label
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label

MAX_LISTED = 40


class Step(enum.IntEnum):
    PICK = 1
    REASON = 2


class ReopenFlow(Flow):
    name = "reopen"
    command = "reopen"
    title_key = "rounds_chat.reopen.title"
    action = Action.REOPEN

    async def begin(self, turn: Turn) -> int:
        rounds = turn.context.services.rounds
        try:
            district_id = await district_of(turn.context, turn.staff)
            current = await rounds.current_round(district_id)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        if current is None:
            return await turn.finish(turn.text("rounds_chat.no_round"))
        approved = await rounds.approved_submissions(current.id, turn.staff.id)
        if not approved:
            return await turn.finish(
                turn.text("rounds_chat.reopen.none", round=esc(round_label(current.name)))
            )
        turn.remember(_round_id=current.id, _round_name=current.name)
        return await turn.ask(Step.PICK)

    async def prompt(self, turn: Turn, state: int) -> None:
        if state == Step.PICK:
            approved = await turn.context.services.rounds.approved_submissions(
                turn.draft["_round_id"], turn.staff.id
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
            text = turn.text("rounds_chat.reopen.list", round=esc(round_label(turn.draft["_round_name"])))
            await turn.reply(text, rows(*buttons, [(turn.text("core.cancel"), self.cb("cancel"))]))
        elif state == Step.REASON:
            await turn.reply(
                turn.text("rounds_chat.reopen.reason_question", school=esc(turn.draft["_label"]))
            )

    def steps(self) -> Handlers:
        return {
            Step.PICK: [self.on_button(r"pick:\d+$", self.on_pick)],
            Step.REASON: [self.on_text(self.on_reason)],
        }

    async def on_pick(self, turn: Turn) -> int | None:
        chosen = int(turn.answer)
        approved = await turn.context.services.rounds.approved_submissions(
            turn.draft["_round_id"], turn.staff.id
        )
        found = next((s for s in approved if s.id == chosen), None)
        if found is None:  # reopened or changed meanwhile: the list again
            return await turn.ask(Step.PICK)
        turn.remember(
            submission_id=found.id,
            _label=f"{found.school_name} · {track_label(found.track, turn.language)}",
        )
        return await turn.ask(Step.REASON)

    async def on_reason(self, turn: Turn) -> int | None:
        services, language = turn.context.services, turn.language
        try:
            outcome = await services.rounds.reopen(turn.draft["submission_id"], turn.staff.id, turn.answer)
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
