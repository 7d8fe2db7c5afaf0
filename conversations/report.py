"""/report: compiled Excel reports in the chat, for officers (and principals, for their own school).

report (needs, devices, vaccination, timeliness, district) → scope (the whole district, one level, one
school: buttons from `services.reports.available_scopes`, schools paged, or typed code/name to find
one) → period (a round of `services.reports.rounds`, all data, a typed range `01/09/2021 - 15/11/2021`,
or from… to… in two steps) → [the district report of the district or a level: the document's number
for the cover, typed, or skipped to leave it blank for the clerk] → the request is accepted: the draft
is discarded and the conversation ends at once, a «building the report…» message is sent and the
workbook is built in a task of its own.

The build never holds up the bot: the handler returns as soon as the task is started, so other
people's updates (and this person's /cancel, /help …) are answered while the worker writes. The task,
its progress message and its «cancel this report» button are bot/report_jobs.py's; this module keeps
the conversation and the button's handler.

A teacher never gets here (Action.REPORT); a principal is offered their own school only, and a
forged button for another scope is refused by the service's `check_scope`. One report at a time
per person; the service caps how many are written at once.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError
from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.context import BotContext
from bot.errors import render_error_html
from bot.keyboards import rows
from bot.replies import answer_alert, reply
from bot.report_jobs import STOP_PREFIX, ReportJob, ReportRequest, esc, report_jobs, spawn
from bot.texts import t
from conversations.common import END, Answers, Flow, Turn, Window, Windows, menu_for
from storage.errors import AccessDenied, DomainError
from storage.permissions import Action
from storage.rules.dates import show_date
from storage.schemas.parsing import parse_date
from storage.schemas.reports import (
    ReportKind,
    ReportPeriod,
    ReportScope,
    RoundOption,
    ScopeKind,
    ScopeOption,
    parse_date_range,
    parse_document_number,
)
from storage.services.reports import check_scope
from storage.text import fold

SCHOOLS_PER_PAGE = 8
MAX_ROUNDS = 6  # the latest rounds offered as buttons
ROUND_NAME_SHOWN = 40  # characters of a round's name on its button


class Step(enum.IntEnum):
    KIND = 1
    SCOPE = 2
    PERIOD = 3
    DATE_FROM = 4
    DATE_TO = 5
    NUMBER = 6


# --- what the person picked, in words -------------------------------------------------------------


def scope_label(option: ScopeOption, language: str) -> str:
    """The scope as the report names it (plain text: escape it for HTML)."""
    scope = option.scope
    if scope.kind is ScopeKind.SCHOOL:
        return t("reports.scope.school", language, school=option.label, code=option.school_code or "")
    if scope.kind is ScopeKind.LEVEL:
        return t(f"reports.label.level_scope.{scope.level}", language)
    return t("reports.scope.district", language, district=option.label)


def scope_button(option: ScopeOption, language: str) -> str:
    scope = option.scope
    if scope.kind is ScopeKind.SCHOOL:
        return t("report_chat.school_button", language, code=option.school_code or "", name=option.label)
    if scope.kind is ScopeKind.LEVEL:
        level = t(f"reports.label.level_scope.{scope.level}", language)
        return t("report_chat.level_button", language, level=level)
    return t("report_chat.district_button", language, district=option.label)


def period_label(period: ReportPeriod, round_: RoundOption | None, today: date, language: str) -> str:
    """The period as the workbook's subtitle says it (plain text)."""
    date_from, date_to = (
        (round_.period_start, round_.period_end) if round_ else (period.date_from, period.date_to)
    )
    if date_from and date_to:
        span = t("reports.period.range", language, date_from=show_date(date_from), date_to=show_date(date_to))
    elif date_from:
        span = t("reports.period.since", language, date_from=show_date(date_from))
    elif date_to:
        span = t("reports.period.until", language, date_to=show_date(date_to))
    else:
        span = t("reports.period.all", language, today=show_date(today))
    if round_ is not None:
        return t("reports.period.round", language, round=round_.name, span=span)
    return span


def matches(option: ScopeOption, query: str) -> bool:
    """A school whose code or name contains what was typed (without diacritics)."""
    wanted = fold(query)
    return bool(wanted) and (wanted in fold(option.label) or wanted in fold(option.school_code or ""))


def scope_of_token(token: str, district_id: int) -> ReportScope:
    """`district` | `level:TH` | `school:<id>` (the buttons' data) as a scope of `district_id`."""
    head, _, value = token.partition(":")
    if head == ScopeKind.SCHOOL and value.isdigit():
        return ReportScope.for_school(district_id, int(value))
    if head == ScopeKind.LEVEL:
        return ReportScope.for_level(district_id, value)
    return ReportScope.district(district_id)


# --- the conversation -----------------------------------------------------------------------------


class ReportAnswers(Answers):
    kind: ReportKind | None = None
    scope: ReportScope | None = None
    date_from: date | None = None  # the first of the period's two dates, asked one by one
    period: ReportPeriod | None = None  # chosen before the document's number is asked
    # The round of the period (its name and dates for the labels); the scope's district and label;
    # the school list's filter (what was typed) and page.
    round: RoundOption | None = None
    district_id: int | None = None
    scope_label: str | None = None
    query: str = ""
    page: int = 1
    derived = Answers.derived | {"round", "district_id", "scope_label", "query", "page"}


Ask = Turn[ReportAnswers]


class ReportFlow(Flow[ReportAnswers]):
    name = "report"
    command = "report"
    title_key = "report_chat.title"
    action = Action.REPORT
    answers_model = ReportAnswers

    def entry_points(self) -> list[BaseHandler[Update, BotContext, Any]]:
        # The «cancel this report» button works in and out of the conversation.
        return [CallbackQueryHandler(self.on_stop, pattern=rf"^{STOP_PREFIX}:stop:\w+$")]

    # --- the states: each question with the answers it takes --------------------------------------

    def windows(self) -> Windows[ReportAnswers]:
        back = self.on_button("back$", self.on_back)
        return {
            Step.KIND: Window(
                self.ask_kind,
                [self.on_button(r"kind:\w+$", self.on_kind), self.on_text(self.on_kind_typed)],
            ),
            Step.SCOPE: Window(
                self.ask_scope,
                [
                    self.on_button(r"scope:(district|level:\w+|school:\d+)$", self.on_scope),
                    self.on_button(r"page:\d+$", self.on_page),
                    back,
                    self.on_text(self.on_school_typed),
                ],
            ),
            Step.PERIOD: Window(
                self.ask_period,
                [
                    self.on_button("period:all$", self.on_all),
                    self.on_button("period:dates$", self.on_dates),
                    self.on_button(r"round:\d+$", self.on_round),
                    back,
                    self.on_text(self.on_range),
                ],
            ),
            Step.DATE_FROM: Window(self.ask_date_from, [self.on_text(self.on_date_from), back]),
            Step.DATE_TO: Window(
                self.ask_date_to,
                [self.on_text(self.on_date_to), self.on_button("to:today$", self.on_to_today), back],
            ),
            Step.NUMBER: Window(
                self.ask_number,
                [self.on_text(self.on_number), self.on_button("number:skip$", self.on_number_skip), back],
            ),
        }

    # --- questions ------------------------------------------------------------------------------

    async def _options(self, turn: Ask) -> list[ScopeOption]:
        return await turn.context.services.reports.available_scopes(turn.staff.id)

    async def begin(self, turn: Ask) -> int:
        if not await self._options(turn):
            return await turn.finish(turn.text("report_chat.no_scope"))
        return await turn.ask(Step.KIND)

    async def ask_kind(self, turn: Ask) -> None:
        options = [[(turn.text(f"report_chat.kind.{k.value}"), self.cb("kind", k.value))] for k in ReportKind]
        await turn.reply(turn.text("report_chat.kind_question"), rows(*options))

    async def ask_date_from(self, turn: Ask) -> None:
        await turn.reply(turn.text("report_chat.from_question"), self._back(turn))

    async def ask_date_to(self, turn: Ask) -> None:
        assert turn.answers.date_from is not None  # asked first
        markup = rows(
            [(turn.text("report_chat.to_today"), self.cb("to", "today"))],
            [(turn.text("core.back"), self.cb("back"))],
        )
        text = turn.text("report_chat.to_question", date_from=show_date(turn.answers.date_from))
        await turn.reply(text, markup)

    async def ask_number(self, turn: Ask) -> None:
        period, round_ = self._chosen_period(turn)
        text = turn.text(
            "report_chat.number_question",
            kind=esc(self._kind_label(turn)),
            scope=esc(turn.answers.scope_label or ""),
            period=esc(period_label(period, round_, turn.context.services.clock.today(), turn.language)),
            suffix=esc(turn.context.services.reports.cover.number_suffix),
        )
        markup = rows(
            [(turn.text("report_chat.number_skip"), self.cb("number", "skip"))],
            [(turn.text("core.back"), self.cb("back"))],
        )
        await turn.reply(text, markup)

    def _back(self, turn: Ask) -> InlineKeyboardMarkup:
        return rows([(turn.text("core.back"), self.cb("back"))])

    def _kind_label(self, turn: Ask) -> str:
        assert turn.answers.kind is not None  # the first answer
        return turn.text(f"reports.kind.{turn.answers.kind.value}")

    async def ask_scope(self, turn: Ask) -> None:
        options = await self._options(turn)
        areas = [o for o in options if o.scope.kind is not ScopeKind.SCHOOL]
        schools = [o for o in options if o.scope.kind is ScopeKind.SCHOOL]
        query = turn.answers.query
        shown = [o for o in schools if matches(o, query)] if query else schools
        pages = max(1, math.ceil(len(shown) / SCHOOLS_PER_PAGE))
        page = min(max(1, turn.answers.page), pages)
        first = (page - 1) * SCHOOLS_PER_PAGE
        language = turn.language
        buttons: list[Sequence[tuple[str, str]]] = []
        if not query:
            buttons += [[(scope_button(o, language), self.cb("scope", o.scope.token()))] for o in areas]
        buttons += [
            [(scope_button(o, language), self.cb("scope", o.scope.token()))]
            for o in shown[first : first + SCHOOLS_PER_PAGE]
        ]
        paging = []
        if page > 1:
            paging.append((turn.text("report_chat.page_previous"), self.cb("page", page - 1)))
        if page < pages:
            paging.append((turn.text("report_chat.page_next"), self.cb("page", page + 1)))
        buttons.append(paging)
        if query:
            buttons.append([(turn.text("report_chat.all_schools"), self.cb("page", 1))])
        buttons.append([(turn.text("core.back"), self.cb("back"))])
        kind = esc(self._kind_label(turn))
        if query:
            text = turn.text(
                "report_chat.scope_found",
                kind=kind,
                query=esc(query),
                count=len(shown),
                page=page,
                pages=pages,
            )
        elif len(schools) > 1:
            text = turn.text(
                "report_chat.scope_question_schools", kind=kind, count=len(schools), page=page, pages=pages
            )
        else:
            text = turn.text("report_chat.scope_question", kind=kind)
        await turn.reply(text, rows(*buttons))

    async def _all_rounds(self, turn: Ask) -> list[RoundOption]:
        assert turn.answers.district_id is not None  # known with the scope
        return await turn.context.services.reports.rounds(turn.answers.district_id)

    async def ask_period(self, turn: Ask) -> None:
        buttons: list[Sequence[tuple[str, str]]] = [
            [(turn.text("report_chat.period_all"), self.cb("period", "all"))]
        ]
        for option in (await self._all_rounds(turn))[:MAX_ROUNDS]:
            name = (
                option.name
                if len(option.name) <= ROUND_NAME_SHOWN
                else option.name[: ROUND_NAME_SHOWN - 1] + "…"
            )
            label = turn.text(
                "report_chat.period_round",
                name=name,
                start=show_date(option.period_start),
                end=show_date(option.period_end),
            )
            buttons.append([(label, self.cb("round", option.id))])
        buttons.append([(turn.text("report_chat.period_dates"), self.cb("period", "dates"))])
        buttons.append([(turn.text("core.back"), self.cb("back"))])
        text = turn.text(
            "report_chat.period_question",
            kind=esc(self._kind_label(turn)),
            scope=esc(turn.answers.scope_label or ""),
        )
        await turn.reply(text, rows(*buttons))

    # --- answers --------------------------------------------------------------------------------

    async def on_kind(self, turn: Ask) -> int | None:
        if turn.answer not in {k.value for k in ReportKind}:
            return await turn.retry(turn.text("report_chat.kind_hint"))
        answers = turn.answers
        answers.kind, answers.query, answers.page = ReportKind(turn.answer), "", 1
        return await turn.ask(Step.SCOPE)

    async def on_kind_typed(self, turn: Ask) -> int | None:
        return await turn.retry(turn.text("report_chat.kind_hint"))

    async def on_back(self, turn: Ask) -> int:
        previous = {
            Step.SCOPE: Step.KIND,
            Step.PERIOD: Step.SCOPE,
            Step.DATE_FROM: Step.PERIOD,
            Step.DATE_TO: Step.PERIOD,
            Step.NUMBER: Step.PERIOD,
        }
        assert turn.step is not None
        return await turn.ask(previous.get(Step(turn.step), Step.KIND))

    async def on_page(self, turn: Ask) -> int:
        page = int(turn.answer)
        if page == 1:
            turn.answers.query = ""
        turn.answers.page = page
        return await turn.ask(Step.SCOPE)

    async def on_school_typed(self, turn: Ask) -> int | None:
        query = turn.answer.strip()
        schools = [o for o in await self._options(turn) if o.scope.kind is ScopeKind.SCHOOL]
        found = [o for o in schools if matches(o, query)]
        if not found:
            return await turn.retry(turn.text("report_chat.scope_not_found", query=esc(query)))
        if len(found) == 1:
            return await self._chosen(turn, found[0])
        turn.answers.query, turn.answers.page = query, 1
        return await turn.ask(Step.SCOPE)

    async def on_scope(self, turn: Ask) -> int | None:
        query = turn.update.callback_query
        token = (query.data or "").split(":", 2)[2] if query is not None else ""
        options = await self._options(turn)
        chosen = next((o for o in options if o.scope.token() == token), None)
        if chosen is not None:
            return await self._chosen(turn, chosen)
        # Not offered to this person (a forged or outdated button): the service says why.
        services = turn.context.services
        who = await services.reports.requester(turn.staff.id)
        district_id = who.district_id or (options[0].scope.district_id if options else 0)
        try:
            check_scope(
                who.role,
                who.school_id,
                who.district_id,
                scope_of_token(token, district_id),
                active=who.active,
            )
        except AccessDenied as exc:
            return await turn.retry(exc)
        return await turn.retry(turn.text("report_chat.scope_gone"))

    async def _chosen(self, turn: Ask, option: ScopeOption) -> int:
        answers = turn.answers
        answers.scope, answers.district_id = option.scope, option.scope.district_id
        answers.scope_label, answers.query = scope_label(option, turn.language), ""
        return await turn.ask(Step.PERIOD)

    async def on_all(self, turn: Ask) -> int | None:
        return await self._period_chosen(turn, ReportPeriod())

    async def on_round(self, turn: Ask) -> int | None:
        chosen = int(turn.answer)
        found = next((r for r in await self._all_rounds(turn) if r.id == chosen), None)
        if found is None:
            return await turn.retry(turn.text("report_chat.round_gone"))
        return await self._period_chosen(turn, ReportPeriod(round_id=found.id), found)

    async def on_range(self, turn: Ask) -> int | None:
        try:
            period = parse_date_range(turn.answer, turn.context.services.clock.today())
        except (DomainError, ValidationError) as exc:
            if isinstance(exc, DomainError) and exc.code == "reports.period_invalid":
                # The ends typed the other way round: offer the range the person most likely meant.
                hint = turn.text(
                    "report_chat.period_reversed_hint",
                    date_from=exc.params["date_to"],
                    date_to=exc.params["date_from"],
                )
            else:
                hint = turn.text("report_chat.period_hint")
            return await turn.retry(f"{render_error_html(exc, turn.language)}\n{hint}")
        return await self._period_chosen(turn, period)

    async def on_dates(self, turn: Ask) -> int:
        return await turn.ask(Step.DATE_FROM)

    def _typed_date(self, turn: Ask) -> date:
        return parse_date(turn.answer, turn.context.services.clock.today(), allow_future=True)

    async def on_date_from(self, turn: Ask) -> int | None:
        try:
            date_from = self._typed_date(turn)
        except DomainError as exc:
            # A whole range typed here (as the period question suggests) is taken as it is.
            with contextlib.suppress(DomainError, ValidationError):
                period = parse_date_range(turn.answer, turn.context.services.clock.today())
                return await self._period_chosen(turn, period)
            hint = turn.text("report_chat.date_hint")
            return await turn.retry(f"{render_error_html(exc, turn.language)}\n{hint}")
        turn.answers.date_from = date_from
        return await turn.ask(Step.DATE_TO)

    async def on_date_to(self, turn: Ask) -> int | None:
        try:
            period = ReportPeriod(date_from=turn.answers.date_from, date_to=self._typed_date(turn))
        except (DomainError, ValidationError) as exc:
            hint = turn.text("report_chat.date_hint")
            return await turn.retry(f"{render_error_html(exc, turn.language)}\n{hint}")
        return await self._period_chosen(turn, period)

    async def on_to_today(self, turn: Ask) -> int | None:
        return await self._period_chosen(turn, ReportPeriod(date_from=turn.answers.date_from))

    # --- the document's number (the district report of the district or a level) ----------------

    def _wants_number(self, turn: Ask) -> bool:
        """The official report the office numbers and signs: the district report, not of one school
        (a principal's, or an officer's look at one school, is no document of the office's register)."""
        answers = turn.answers
        assert answers.scope is not None  # chosen before the period
        return answers.kind is ReportKind.DISTRICT and answers.scope.kind is not ScopeKind.SCHOOL

    async def _period_chosen(
        self, turn: Ask, period: ReportPeriod, round_: RoundOption | None = None
    ) -> int | None:
        if not self._wants_number(turn):
            return await self._start(turn, period, round_)
        turn.answers.period, turn.answers.round = period, round_
        return await turn.ask(Step.NUMBER)

    def _chosen_period(self, turn: Ask) -> tuple[ReportPeriod, RoundOption | None]:
        assert turn.answers.period is not None  # chosen before the number is asked
        return turn.answers.period, turn.answers.round

    async def on_number(self, turn: Ask) -> int | None:
        suffix = turn.context.services.reports.cover.number_suffix
        try:
            number = parse_document_number(turn.answer, suffix)
        except DomainError as exc:
            return await turn.retry(exc)
        return await self._start(turn, *self._chosen_period(turn), number=number)

    async def on_number_skip(self, turn: Ask) -> int | None:
        return await self._start(turn, *self._chosen_period(turn))

    # --- the request ----------------------------------------------------------------------------

    async def _start(
        self, turn: Ask, period: ReportPeriod, round_: RoundOption | None = None, *, number: str = ""
    ) -> int | None:
        """Accept the request: end the conversation, send the progress message, build in a task."""
        context, answers = turn.context, turn.answers
        assert answers.kind is not None and answers.scope is not None
        application = context.application
        jobs = report_jobs(application)
        if turn.user_id in jobs:
            return await turn.retry(turn.text("report_chat.already_running"))
        chat = turn.update.effective_chat
        assert chat is not None
        services = context.services
        request = ReportRequest(
            key=turn.request_key,
            kind=answers.kind,
            scope=answers.scope,
            period=period,
            language=turn.language,
            staff_id=turn.staff.id,
            user_id=turn.user_id,
            chat_id=chat.id,
            kind_label=self._kind_label(turn),
            scope_label=answers.scope_label or "",
            period_label=period_label(period, round_, services.clock.today(), turn.language),
            number=number,
        )
        await services.drafts.discard(turn.user_id, self.name)
        message = await reply(turn.update, request.progress_text(None), request.stop_markup())
        if message is None:
            return END
        job = ReportJob(
            request=request,
            services=services,
            bot=context.bot,
            message_id=message.message_id,
            menu=menu_for(context, turn.staff),
            jobs=jobs,
            application=application,
        )
        jobs[turn.user_id] = job
        job.task = spawn(application, job.run(), f"report-{request.kind.value}-{turn.user_id}")
        return END

    async def on_stop(self, update: Update, context: BotContext) -> None:
        """«Cancel this report» on a progress message: cancel that build (only the asker's own)."""
        await context.staff_of(update)  # for the language of the answer
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        key = (query.data or "").rsplit(":", 1)[-1]
        job = report_jobs(context.application).get(user.id)
        if job is None or job.request.key != key or job.task is None or job.task.done() or job.built:
            await answer_alert(update, context.text(update, "report_chat.stop_stale"))
            return
        await query.answer(context.text(update, "report_chat.stopping"))
        job.task.cancel()


def build_report_conversation() -> ReportFlow:
    return ReportFlow()
