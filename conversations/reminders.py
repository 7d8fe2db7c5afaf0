"""Reminders of the rounds' deadlines, from the job queue.

Every few minutes (first soon after start) the job asks the rounds service which reminders are due
(`due_reminders`: before each deadline to the people whose step is not done, the late digest to the
deputy head after it, nothing in the quiet hours), sends each in the person's language, and marks it
sent right after (`mark_sent`): the SentReminder table is the memory, so a restart never sends one
twice. Sends go through the application's rate limiter (AIORateLimiter), so a broadcast to thousands
queues rather than hits Telegram's limits; a few run side by side so the limiter, not the round trips,
sets the pace.

A person who blocked the bot (Forbidden) or whose chat is gone is logged and marked, never retried; a
network error or a flood wait leaves the reminder unmarked, for the next run.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass, field

from telegram.error import BadRequest, Forbidden, TelegramError

from bot.context import BotContext, SchoolBotApplication
from bot.texts import t
from storage.schemas.rounds import ReminderDue

log = logging.getLogger(__name__)

JOB_NAME = "round_reminders"
INTERVAL_SECONDS = 5 * 60
FIRST_RUN_SECONDS = 30
CONCURRENT_SENDS = 16


@dataclass
class ReminderRun:
    """What one run did (for logs and tests)."""

    sent: list[ReminderDue] = field(default_factory=list)
    unreachable: list[ReminderDue] = field(default_factory=list)  # blocked or gone: marked, not sent
    failed: list[ReminderDue] = field(default_factory=list)  # left for the next run


def reminder_text(reminder: ReminderDue) -> str:
    """The reminder in the person's language; names in it made safe for HTML."""
    params = {k: html.escape(v, quote=False) if isinstance(v, str) else v for k, v in reminder.params.items()}
    return t(reminder.text_key, reminder.language, **params)


async def send_due_reminders(context: BotContext) -> ReminderRun:
    """The job: send what is due now, mark each one sent."""
    application = context.application
    services, settings = application.services, application.settings  # type: ignore[attr-defined]
    due = await services.rounds.due_reminders(
        hours_before=settings.reminder_hours_before,
        quiet_start=settings.quiet_hours_start,
        quiet_end=settings.quiet_hours_end,
    )
    run = ReminderRun()
    if not due:
        return run
    slots = asyncio.Semaphore(CONCURRENT_SENDS)

    async def deliver(reminder: ReminderDue) -> None:
        async with slots:
            try:
                await context.bot.send_message(reminder.telegram_user_id, reminder_text(reminder))
            except (Forbidden, BadRequest) as exc:
                # Blocked, deactivated, chat not found: retrying will not help.
                log.info(
                    "Reminder %s to staff %s not deliverable: %s",
                    reminder.reminder_key,
                    reminder.staff_id,
                    type(exc).__name__,
                )
                run.unreachable.append(reminder)
            except TelegramError as exc:
                log.warning(
                    "Reminder %s to staff %s failed (%s); next run retries",
                    reminder.reminder_key,
                    reminder.staff_id,
                    type(exc).__name__,
                )
                run.failed.append(reminder)
                return
            else:
                run.sent.append(reminder)
            await services.rounds.mark_sent(reminder.round_id, reminder.staff_id, reminder.reminder_key)

    await asyncio.gather(*(deliver(reminder) for reminder in due))
    log.info(
        "Reminders: %d sent, %d unreachable, %d to retry",
        len(run.sent),
        len(run.unreachable),
        len(run.failed),
    )
    return run


def schedule_jobs(application: SchoolBotApplication) -> None:
    """Called by bot.app for every conversations module that has it."""
    queue = application.job_queue
    if queue is None:
        log.warning("No job queue (install python-telegram-bot[job-queue]): deadline reminders are off")
        return
    queue.run_repeating(send_due_reminders, interval=INTERVAL_SECONDS, first=FIRST_RUN_SECONDS, name=JOB_NAME)
