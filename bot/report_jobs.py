"""The reports asked for in /report, built in tasks of their own while the bot answers everyone else.

conversations/report.py ends its conversation as soon as a request is accepted and hands it here: the
build runs in a task, the progress message is edited as `ReportProgress` comes in (at most one edit in
flight and one every `EDIT_INTERVAL` seconds; «message is not modified» is ignored), carries a «cancel
this report» button that cancels the task, and ends as «the report is ready» (then the document with the
one-line summary as its caption), or says why the report could not be built. One report at a time per
person; bot/leader.py waits for (or interrupts) the running ones when the bot stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application

from bot.context import SchoolBotApplication
from bot.errors import render_error_html
from bot.keyboards import rows
from bot.metrics import count
from bot.replies import ReplyMarkup
from bot.texts import t
from storage.errors import DomainError
from storage.schemas.reports import ReportKind, ReportPeriod, ReportProgress, ReportScope
from storage.services import Services

log = logging.getLogger(__name__)

EDIT_INTERVAL = 1.5  # seconds between two progress edits (Telegram allows about one a second per chat)
FINAL_EDIT_WAIT = 10.0  # seconds the last edit waits for a progress edit still in flight
CAPTION_LIMIT = 1024  # Telegram's limit for a document's caption
STOP_PREFIX = "reportjob"  # the «cancel this report» button: `reportjob:stop:<request key>`


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


@dataclass(frozen=True)
class ReportRequest:
    """Everything the build needs once the conversation is over."""

    key: str  # the draft's request key: names the «cancel» button
    kind: ReportKind
    scope: ReportScope
    period: ReportPeriod
    language: str
    staff_id: int
    user_id: int
    chat_id: int
    kind_label: str
    scope_label: str
    period_label: str
    number: str = ""  # the document's number on the cover; empty: blank for the clerk

    def text(self, key: str, /, **values: object) -> str:
        return t(key, self.language, **values)

    def framed(self, key: str, /, **values: object) -> str:
        """A text that names the report, its scope and its period (escaped)."""
        return self.text(
            key,
            kind=esc(self.kind_label),
            scope=esc(self.scope_label),
            period=esc(self.period_label),
            **values,
        )

    def progress_text(self, update: ReportProgress | None) -> str:
        if update is None:
            line = self.text("report_chat.preparing")
        else:
            stage_key = f"reports.stage.{update.stage}"
            try:
                stage = self.text(stage_key)
            except KeyError:
                stage = self.text("reports.stage.summary")
            # Before the rows are counted there is no share to show (the service says 1.0 for 0 of 0).
            counted = update.total > 0 or update.stage == "finishing"
            percent = int(update.fraction * 100) if counted else 0
            line = self.text("reports.stage.progress", percent=percent, stage=stage)
        return self.framed("report_chat.progress", progress=line)

    def stop_markup(self) -> InlineKeyboardMarkup:
        return rows([(self.text("report_chat.stop_button"), f"{STOP_PREFIX}:stop:{self.key}")])


@dataclass
class ReportJob:
    """One person's report being built: the progress message, its edits, the document at the end."""

    request: ReportRequest
    services: Services
    bot: Bot
    message_id: int
    menu: ReplyMarkup
    jobs: dict[int, ReportJob]
    task: asyncio.Task[None] | None = None
    built: bool = False  # the workbook exists: it is being sent, no longer cancelled
    interrupted: bool = False  # cancelled because the bot is stopping, not by the person
    application: Any = field(default=None, repr=False)  # for its metrics
    _edit: asyncio.Task[None] | None = field(default=None, repr=False)
    _shown: str = ""
    _last_edit: float = 0.0
    _edits: int = 0

    async def run(self) -> None:
        request = self.request
        try:
            try:
                report = await self.services.reports.build(
                    request.kind,
                    request.scope,
                    request.period,
                    request.language,
                    actor_id=request.staff_id,
                    progress=self.progress,
                    number=request.number,
                )
            except asyncio.CancelledError:
                key = "report_chat.interrupted" if self.interrupted else "report_chat.stopped"
                await self.close(request.framed(key))
                raise
            except (DomainError, ValidationError) as exc:
                reason = render_error_html(exc, request.language)
                await self.close(request.framed("report_chat.failed", reason=reason))
                return
            except Exception as exc:
                # The exception type and the stack only: messages can hold names.
                frames = "".join(traceback.format_tb(exc.__traceback__))
                log.error("Report %s failed: %s\n%s", request.kind.value, type(exc).__name__, frames)
                await self.close(request.framed("report_chat.failed_unexpected"))
                return
            self.built = True
            count(self.application, "reports_built")
            await self.close(request.framed("report_chat.done"))
            await self.send(report.content, report.filename, report.summary)
        finally:
            if self.jobs.get(request.user_id) is self:
                del self.jobs[request.user_id]

    async def send(self, content: bytes, filename: str, summary: str) -> None:
        request = self.request
        caption = request.framed("report_chat.caption", summary=esc(summary))
        if len(caption) > CAPTION_LIMIT:
            caption = esc(summary)[:CAPTION_LIMIT]
        try:
            await self.bot.send_document(
                request.chat_id,
                document=content,
                filename=filename,
                caption=caption,
                reply_markup=self.menu,
            )
        except TelegramError as exc:
            log.warning("Could not send a report (%s bytes): %s", len(content), type(exc).__name__)
            size = math.ceil(len(content) / 1024)
            with contextlib.suppress(TelegramError):
                await self.bot.send_message(
                    request.chat_id,
                    request.framed("report_chat.send_failed", size=size),
                    reply_markup=self.menu,
                )

    # -- the progress message ----------------------------------------------------------------------

    def progress(self, update: ReportProgress) -> None:
        """Called by the service as rows are written: start an edit unless one is in flight, the last
        was too recent, or nothing changed. Never waits for Telegram (the build goes on)."""
        if update.stage == "done":
            return  # the last edit is `close`
        text = self.request.progress_text(update)
        now = time.monotonic()
        if text == self._shown or (self._edit is not None and not self._edit.done()):
            return
        if self._edits and now - self._last_edit < EDIT_INTERVAL:
            return
        self._shown, self._last_edit = text, now
        self._edits += 1
        self._edit = asyncio.ensure_future(self._apply(text, self.request.stop_markup()))

    async def close(self, text: str) -> None:
        """The last edit: what happened, without the «cancel» button."""
        if self._edit is not None and not self._edit.done():
            with contextlib.suppress(Exception):  # a timeout: the edit is dropped below
                await asyncio.wait_for(asyncio.shield(self._edit), FINAL_EDIT_WAIT)
            if not self._edit.done():
                self._edit.cancel()
        await self._apply(text, None)

    async def _apply(self, text: str, markup: InlineKeyboardMarkup | None) -> None:
        try:
            await self.bot.edit_message_text(
                text, chat_id=self.request.chat_id, message_id=self.message_id, reply_markup=markup
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                log.warning("Could not edit a report's progress: %s", exc)
        except TelegramError as exc:
            log.warning("Could not edit a report's progress: %s", type(exc).__name__)


def report_jobs(application: Application[Any, Any, Any, Any, Any, Any]) -> dict[int, ReportJob]:
    """The reports being built, by the Telegram user who asked (one each): the application's own,
    which build_application sets."""
    assert isinstance(application, SchoolBotApplication)
    return application.report_jobs


def running_reports(application: Application[Any, Any, Any, Any, Any, Any]) -> list[asyncio.Task[None]]:
    """The tasks of the reports being built (tests and shutdown wait for them)."""
    return [job.task for job in report_jobs(application).values() if job.task is not None]


def interrupt_reports(application: Application[Any, Any, Any, Any, Any, Any]) -> list[asyncio.Task[None]]:
    """The bot is stopping: cancel the reports still being built (not those being sent); each tells its
    person it was interrupted and to ask again. The tasks, to wait for their last message."""
    tasks = []
    for job in list(report_jobs(application).values()):
        if job.task is not None and not job.task.done() and not job.built:
            job.interrupted = True
            job.task.cancel()
            tasks.append(job.task)
    return tasks


def spawn(
    application: Application[Any, Any, Any, Any, Any, Any], coroutine: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """A task the application waits for when it stops (when it is running: polling, webhook)."""
    if application.running:
        return application.create_task(coroutine, name=name)
    return asyncio.create_task(coroutine, name=name)
