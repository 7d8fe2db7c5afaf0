"""/review (TH/THCS specialist: programme data) and /review_vaccine (school-health officer: vaccination
data): the schools waiting, as buttons → a school's summary: its figures as submitted, what changed
since the submission that was sent back, the inconsistencies, and a button that sends the school's
Excel workbook → Approve, or Send back → the reason (required) → the principal and the staff who
entered the records get the decision, and the reason, in chat.
"""

from __future__ import annotations

import enum
import functools
from datetime import datetime
from typing import ClassVar

from bot.keyboards import rows
from bot.replies import reply
from bot.round_texts import figure_label, status_label
from bot.texts import t
from conversations.common import Answers, Flow, Turn, Window, Windows, reply_plain
from conversations.widgets.messages import send_lines
from conversations.widgets.round_helpers import (
    error_text,
    esc,
    figure_lines,
    issue_lines,
    names_of,
    notify,
    track_label,
)
from storage.enums import SubmissionStatus, SubmissionTrack
from storage.errors import DomainError
from storage.permissions import Action
from storage.rules import round_label
from storage.rules.dates import show_local
from storage.schemas.reports import ReportKind, ReportPeriod, ReportScope
from storage.schemas.rounds import PendingReview, ReviewSummary

MAX_LISTED = 60  # school buttons in one list (Telegram allows 100 buttons)
# The workbook a reviewer gets for one school: everything for the programme, the vaccination report
# for the health officer.
REPORT_KINDS = {SubmissionTrack.PROGRAM: ReportKind.DISTRICT, SubmissionTrack.VACCINE: ReportKind.VACCINATION}


class Step(enum.IntEnum):
    LIST = 1
    SCHOOL = 2
    REASON = 3


def signed(delta: int) -> str:
    return f"+{delta}" if delta > 0 else str(delta)


def decision_text(
    language: str, *, key: str, track: SubmissionTrack, school: str, round_name: str, reason: str = ""
) -> str:
    """What the school's people read (names and reason already escaped)."""
    return t(
        key, language, track=track_label(track, language), school=school, round=round_name, reason=reason
    )


class ReviewAnswers(Answers):
    submission_id: int | None = None  # the school's submission being reviewed
    # That submission as the list showed it (its school, round, and who submitted it).
    school: str | None = None
    school_id: int | None = None
    round_id: int | None = None
    round_name: str | None = None
    submitted_by: str | None = None
    derived = frozenset({"school", "school_id", "round_id", "round_name", "submitted_by"})


Ask = Turn[ReviewAnswers]


class ReviewFlow(Flow[ReviewAnswers]):
    name = "review"
    command = "review"
    title_key = "rounds_chat.review.title"
    action = Action.REVIEW_PROGRAM
    track: ClassVar[SubmissionTrack] = SubmissionTrack.PROGRAM
    answers_model = ReviewAnswers

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[ReviewAnswers]:
        return {
            Step.LIST: Window(self.show_list, [self.on_button(r"pick:\d+$", self.on_pick)]),
            Step.SCHOOL: Window(
                self.show_school,
                [
                    self.on_button("act:report$", self.on_report),
                    self.on_button("act:approve$", self.on_approve),
                    self.on_button("act:back$", self.on_send_back),
                    self.on_button("act:list$", self.on_list),
                ],
            ),
            Step.REASON: Window(
                self.ask_reason, [self.on_text(self.on_reason), self.on_button("act:show$", self.on_show)]
            ),
        }

    async def _pending(self, turn: Ask) -> list[PendingReview]:
        return await turn.context.services.rounds.pending_reviews(turn.staff.id, self.track)

    async def begin(self, turn: Ask) -> int:
        try:
            pending = await self._pending(turn)
        except DomainError as exc:
            return await turn.finish(error_text(exc, turn.language))
        if not pending:
            return await turn.finish(self._nothing(turn))
        return await turn.ask(Step.LIST)

    def _nothing(self, turn: Ask) -> str:
        return turn.text("rounds_chat.review.nothing", track=track_label(self.track, turn.language))

    async def show_list(self, turn: Ask) -> None:
        pending = await self._pending(turn)
        if not pending:
            await turn.reply(self._nothing(turn))
            return
        buttons = []
        for item in pending[:MAX_LISTED]:
            label = turn.text(
                "rounds_chat.review.school_button", code=item.school_code, name=item.school_name
            )
            label += turn.text("rounds_chat.review.late_mark") if item.late else ""
            label += turn.text("rounds_chat.review.again_mark") if item.resubmission else ""
            buttons.append([(label, self.cb("pick", item.submission_id))])
        text = turn.text(
            "rounds_chat.review.list", count=len(pending), track=track_label(self.track, turn.language)
        )
        if len(pending) > MAX_LISTED:
            text += "\n" + turn.text("rounds_chat.review.list_more", count=len(pending) - MAX_LISTED)
        await turn.reply(text, rows(*buttons))

    def _submission_id(self, turn: Ask) -> int:
        assert turn.answers.submission_id is not None  # picked from the list
        return turn.answers.submission_id

    async def _summary(self, turn: Ask) -> ReviewSummary:
        return await turn.context.services.rounds.review_summary(
            self._submission_id(turn), reviewer_id=turn.staff.id
        )

    async def show_school(self, turn: Ask) -> None:
        language, tz = turn.language, turn.context.services.clock.tz
        summary = await self._summary(turn)
        submission = summary.submission
        submitted_at: datetime | None = submission.submitted_at
        lines = [
            turn.text(
                "rounds_chat.review.header",
                school=esc(submission.school_name),
                code=esc(submission.school_code),
                track=track_label(submission.track, language),
                round=esc(round_label(submission.round_name)),
                submitted_at=show_local(submitted_at, tz) if submitted_at else "–",
                by=esc(turn.answers.submitted_by or "–"),
                late=turn.text("rounds_chat.late_suffix") if submission.late else "",
                times=summary.submissions,
            )
        ]
        if summary.previous is not None:
            if summary.previous_reason:
                lines.append(
                    turn.text("rounds_chat.review.previous_reason", reason=esc(summary.previous_reason))
                )
            if summary.changes:
                lines.append(turn.text("rounds_chat.review.changes_header"))
                lines += [
                    turn.text(
                        "rounds_chat.review.change_line",
                        label=esc(figure_label(change.key, language)),
                        before=change.before,
                        after=change.after,
                        delta=signed(change.delta),
                    )
                    for change in summary.changes
                ]
            else:
                lines.append(turn.text("rounds_chat.review.no_changes"))
        lines.append(turn.text("rounds_chat.review.figures_header"))
        lines += figure_lines(summary.submitted or summary.figures, submission.track, language)
        lines += issue_lines(summary.inconsistencies, 0, language)
        if submission.status is not SubmissionStatus.SUBMITTED:
            status = status_label(submission.status, language)
            lines.append(turn.text("rounds_chat.review.status_not_pending", status=status))
            await send_lines(
                turn.update,
                lines,
                rows([(turn.text("rounds_chat.review.back_button"), self.cb("act", "list"))]),
            )
            return
        lines.append(turn.text("rounds_chat.review.question"))
        markup = rows(
            [(turn.text("rounds_chat.review.report_button"), self.cb("act", "report"))],
            [
                (turn.text("rounds_chat.review.approve_button"), self.cb("act", "approve")),
                (turn.text("rounds_chat.review.send_back_button"), self.cb("act", "back")),
            ],
            [(turn.text("rounds_chat.review.back_button"), self.cb("act", "list"))],
        )
        await send_lines(turn.update, lines, markup)

    async def ask_reason(self, turn: Ask) -> None:
        back = [(turn.text("rounds_chat.review.back_to_school"), self.cb("act", "show"))]
        text = turn.text("rounds_chat.review.reason_question", school=esc(turn.answers.school or ""))
        await turn.reply(text, rows(back))

    # --- answers --------------------------------------------------------------------------------

    async def on_pick(self, turn: Ask) -> int | None:
        chosen = int(turn.answer)
        pending = {p.submission_id: p for p in await self._pending(turn)}
        item = pending.get(chosen)
        if item is None:  # reviewed by someone else meanwhile
            await reply(turn.update, turn.text("core.stale_button"))
            return await self.on_list(turn)
        answers = turn.answers
        answers.submission_id, answers.school = item.submission_id, item.school_name
        answers.round_id, answers.round_name = item.round_id, item.round_name
        answers.school_id, answers.submitted_by = item.school_id, item.submitted_by_name or ""
        return await turn.ask(Step.SCHOOL)

    async def on_list(self, turn: Ask) -> int:
        if not await self._pending(turn):
            return await turn.finish(self._nothing(turn))
        return await turn.ask(Step.LIST)

    async def on_show(self, turn: Ask) -> int:
        return await turn.ask(Step.SCHOOL)

    async def on_report(self, turn: Ask) -> int | None:
        """The school's workbook for the round; the summary's buttons stay for the decision."""
        services, language = turn.context.services, turn.language
        query = turn.update.callback_query
        if query is not None:
            await query.answer()
        answers = turn.answers
        assert answers.round_id is not None and answers.school_id is not None  # picked from the list
        try:
            current = await services.rounds.get_round(answers.round_id)
            report = await services.reports.build(
                REPORT_KINDS[self.track],
                ReportScope.for_school(current.district_id, answers.school_id),
                ReportPeriod(round_id=current.id),
                language,
                actor_id=turn.staff.id,
            )
        except DomainError as exc:
            await reply_plain(
                turn.update, turn.text("rounds_chat.review.report_failed", reason=error_text(exc, language))
            )
            return turn.step
        chat = turn.update.effective_chat
        if chat is not None:
            caption = turn.text(
                "rounds_chat.review.report_caption",
                school=esc(answers.school or ""),
                round=esc(round_label(answers.round_name or "")),
            )
            await chat.send_document(document=report.content, filename=report.filename, caption=caption)
        return turn.step

    async def on_approve(self, turn: Ask) -> int:
        services, language = turn.context.services, turn.language
        try:
            outcome = await services.rounds.approve(self._submission_id(turn), reviewer_id=turn.staff.id)
        except DomainError as exc:
            await reply(turn.update, error_text(exc, language))
            return await self.on_list(turn)
        submission = outcome.submission
        school, round_name = esc(submission.school_name), esc(round_label(submission.round_name))
        told = await notify(
            turn.context,
            outcome.notify,
            functools.partial(
                decision_text,
                key="rounds_chat.review.notify_approved",
                track=submission.track,
                school=school,
                round_name=round_name,
            ),
        )
        text = turn.text(
            "rounds_chat.review.approved",
            track=track_label(submission.track, language),
            school=school,
            people=names_of(told, language),
        )
        return await turn.finish(text + await self._left(turn))

    async def on_send_back(self, turn: Ask) -> int:
        return await turn.ask(Step.REASON)

    async def on_reason(self, turn: Ask) -> int | None:
        services, language = turn.context.services, turn.language
        try:
            outcome = await services.rounds.send_back(
                self._submission_id(turn), reviewer_id=turn.staff.id, reason=turn.answer
            )
        except DomainError as exc:
            if exc.code in ("rounds.reason_required", "rounds.reason_too_long"):
                return await turn.retry(error_text(exc, language))
            await reply(turn.update, error_text(exc, language))
            return await self.on_list(turn)
        submission = outcome.submission
        school, round_name, reason = (
            esc(submission.school_name),
            esc(round_label(submission.round_name)),
            esc(outcome.reason),
        )
        told = await notify(
            turn.context,
            outcome.notify,
            functools.partial(
                decision_text,
                key="rounds_chat.review.notify_returned",
                track=submission.track,
                school=school,
                round_name=round_name,
                reason=reason,
            ),
        )
        text = turn.text(
            "rounds_chat.review.sent_back", school=school, reason=reason, people=names_of(told, language)
        )
        return await turn.finish(text + await self._left(turn))

    async def _left(self, turn: Ask) -> str:
        left = len(await self._pending(turn))
        if not left:
            return turn.text("rounds_chat.review.none_left")
        return turn.text("rounds_chat.review.left", count=left, command=self.command)


class VaccineReviewFlow(ReviewFlow):
    name = "review_vaccine"
    command = "review_vaccine"
    title_key = "rounds_chat.review.title_vaccine"
    action = Action.REVIEW_VACCINE
    track = SubmissionTrack.VACCINE


def build_review_conversation() -> ReviewFlow:
    return ReviewFlow()


def build_review_vaccine_conversation() -> VaccineReviewFlow:
    return VaccineReviewFlow()
