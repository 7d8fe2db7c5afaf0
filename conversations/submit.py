"""/submit: the principal reviews the school's figures for the current round and submits them.

which data (asked only when both parts are still to be submitted: programme, vaccination, or both)
→ the figures of each part with the inconsistencies found, and the reason of the last send-back →
confirm → submitted: the school's records of that part are locked (the services refuse changes from
then on) and the reviewers — the TH/THCS specialist, or the school-health officer — are told in chat.
"""

from __future__ import annotations

import enum
import functools

from bot.keyboards import rows
from bot.round_texts import status_label
from bot.texts import t
from conversations.common import Answers, Flow, Turn, Window, Windows
from conversations.widgets.messages import send_lines
from conversations.widgets.round_helpers import (
    REVIEW_COMMANDS,
    district_of,
    error_text,
    esc,
    figure_lines,
    issue_lines,
    names_of,
    notify,
    track_label,
)
from storage.enums import SubmissionTrack
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label
from storage.rules.dates import show_local
from storage.rules.reminders import PENDING_STATUSES
from storage.schemas.rounds import SubmissionOut

BOTH = "both"


class Step(enum.IntEnum):
    TRACK = 1
    CONFIRM = 2


class SubmitAnswers(Answers):
    tracks: list[SubmissionTrack] | None = None  # the parts to submit
    # The current round, and its parts still to be submitted by the school, read at the start.
    round_id: int | None = None
    pending: list[SubmissionTrack] = []
    derived = frozenset({"round_id", "pending"})


Ask = Turn[SubmitAnswers]


class SubmitFlow(Flow[SubmitAnswers]):
    name = "submit"
    command = "submit"
    title_key = "rounds_chat.submit.title"
    action = Action.SUBMIT
    answers_model = SubmitAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[SubmitAnswers]:
        return {
            Step.TRACK: Window(self.ask_track, [self.on_button(r"track:\w+$", self.on_track)]),
            Step.CONFIRM: Window(self.show_figures, [self.on_button("confirm$", self.on_confirm)]),
        }

    async def begin(self, turn: Ask) -> int:
        staff, services = turn.staff, turn.context.services
        if staff.school_id is None:
            return await turn.finish(turn.text("rounds_chat.no_school"))
        try:
            current = await services.rounds.current_round(await district_of(turn.context, staff))
            if current is None:
                return await turn.finish(turn.text("rounds_chat.no_round"))
            submissions = [
                await services.rounds.submission(current.id, track, school_id=staff.school_id)
                for track in SubmissionTrack
            ]
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        answers = turn.answers
        answers.round_id = current.id
        answers.pending = [s.track for s in submissions if s.status in PENDING_STATUSES]
        if not answers.pending:
            deadline = show_local(current.submit_deadline, services.clock.tz)
            lines = [self._header(turn, submissions, deadline), turn.text("rounds_chat.submit.nothing_left")]
            return await turn.finish("\n".join(lines))
        if len(answers.pending) == 1:
            answers.tracks = list(answers.pending)
            return await turn.ask(Step.CONFIRM)
        return await turn.ask(Step.TRACK)

    def _round_id(self, turn: Ask) -> int:
        assert turn.answers.round_id is not None  # read by `begin`
        return turn.answers.round_id

    async def _submissions(self, turn: Ask) -> list[SubmissionOut]:
        rounds, school_id = turn.context.services.rounds, turn.school_id
        return [
            await rounds.submission(self._round_id(turn), track, school_id=school_id)
            for track in SubmissionTrack
        ]

    async def _deadline(self, turn: Ask) -> str:
        services = turn.context.services
        current = await services.rounds.get_round(self._round_id(turn))
        return show_local(current.submit_deadline, services.clock.tz)

    def _header(self, turn: Ask, submissions: list[SubmissionOut], deadline: str) -> str:
        first = submissions[0]
        lines = [
            turn.text(
                "rounds_chat.submit.header",
                round=esc(round_label(first.round_name)),
                deadline=deadline,
                school=esc(first.school_name),
            )
        ]
        lines += [
            turn.text(
                "rounds_chat.submit.track_status",
                track=track_label(s.track, turn.language),
                status=status_label(s.status, turn.language),
            )
            for s in submissions
        ]
        return "\n".join(lines)

    async def ask_track(self, turn: Ask) -> None:
        deadline = await self._deadline(turn)
        submissions = await self._submissions(turn)
        options = [
            [(track_label(track, turn.language), self.cb("track", track))] for track in turn.answers.pending
        ]
        options.append([(turn.text("rounds_chat.submit.both"), self.cb("track", BOTH))])
        text = self._header(turn, submissions, deadline) + "\n\n" + turn.text("rounds_chat.submit.choose")
        await turn.reply(text, rows(*options))

    async def show_figures(self, turn: Ask) -> None:
        services, language = turn.context.services, turn.language
        deadline = await self._deadline(turn)
        submissions = await self._submissions(turn)
        figures = await services.rounds.school_figures(self._round_id(turn), school_id=turn.school_id)
        by_track = {s.track: s for s in submissions}
        tracks = turn.answers.tracks or []
        lines: list[str] = []
        for track in tracks:
            submission = by_track[track]
            lines.append("")
            lines.append(
                turn.text(
                    "rounds_chat.submit.figures_header",
                    track=track_label(track, language),
                    school=esc(submission.school_name),
                    round=esc(round_label(submission.round_name)),
                )
            )
            if submission.return_reason:
                lines.append(turn.text("rounds_chat.submit.returned", reason=esc(submission.return_reason)))
            lines += figure_lines(figures, track, language)
            issues = figures.issues(track)
            lines += issue_lines(issues, figures.more_inconsistencies if issues else 0, language)
            if issues:
                lines.append(turn.text("rounds_chat.submit.issues_hint"))
        if any(by_track[track].late for track in tracks):
            lines.append(turn.text("rounds_chat.submit.late_warning", deadline=deadline))
        lines.append("")
        lines.append(turn.text("rounds_chat.submit.confirm_question"))
        markup = rows(
            [(turn.text("rounds_chat.submit.confirm_button"), self.cb("confirm"))],
            [(turn.text("rounds_chat.submit.cancel_button"), self.cb("cancel"))],
        )
        await send_lines(turn.update, lines[1:], markup)

    # --- answers --------------------------------------------------------------------------------

    async def on_track(self, turn: Ask) -> int | None:
        pending = turn.answers.pending
        chosen = pending if turn.answer == BOTH else [t for t in SubmissionTrack if t.value == turn.answer]
        if not chosen or not set(chosen) <= set(pending):
            return await turn.ask(Step.TRACK)
        turn.answers.tracks = list(chosen)
        return await turn.ask(Step.CONFIRM)

    async def on_confirm(self, turn: Ask) -> int:
        context, staff, language = turn.context, turn.staff, turn.language
        lines: list[str] = []
        for track in turn.answers.tracks or []:
            try:
                result = await context.services.rounds.submit(
                    self._round_id(turn), track, school_id=staff.own_school_id, actor_id=staff.id
                )
            except DomainError as exc:
                lines.append(
                    turn.text(
                        "rounds_chat.submit.failed",
                        track=track_label(track, language),
                        reason=error_text(exc, language),
                    )
                )
                continue
            submission = result.submission
            school, round_name = esc(submission.school_name), esc(round_label(submission.round_name))

            told = await notify(
                context,
                result.notify,
                functools.partial(
                    reviewer_text, track=track, school=school, round_name=round_name, late=result.late
                ),
            )
            lines.append(
                turn.text(
                    "rounds_chat.submit.submitted",
                    track=track_label(track, language),
                    school=school,
                    round=round_name,
                    late=turn.text("rounds_chat.late_suffix") if result.late else "",
                    people=names_of(told, language),
                )
            )
        return await turn.finish("\n\n".join(lines))


def reviewer_text(language: str, *, track: SubmissionTrack, school: str, round_name: str, late: bool) -> str:
    """What the reviewers read when a school submits (names already escaped)."""
    return t(
        "rounds_chat.submit.notify_reviewer",
        language,
        school=school,
        track=track_label(track, language),
        round=round_name,
        late=t("rounds_chat.late_suffix", language) if late else "",
        command=REVIEW_COMMANDS[track],
    )


def build_submit_conversation() -> SubmitFlow:
    return SubmitFlow()
