"""Reminders of the rounds' deadlines, from the job queue.

Every few minutes (first soon after start) the job asks the rounds service which reminders are due
(`due_reminders`: before each deadline to the people whose step is not done, the late digest to the
deputy head after it, nothing in the quiet hours) and sends each in the person's language.

At most once: each reminder is marked sent (`mark_sent`, unique per round, person and key) *before*
it is sent, and only the run that marked it sends it. So neither a restart nor a second instance taking
over (a leader killed mid-run) sends one twice; a process killed between the mark and the send loses
that one reminder instead. A send that surely did not reach Telegram (an error answer) is unmarked for
the next run; a timeout is not (Telegram may have delivered it).

Sends go through the application's rate limiter (AIORateLimiter), so a broadcast to thousands queues
rather than hits Telegram's limits; a few people's run side by side so the limiter, not the round trips,
sets the pace. One person's reminders go one after another, by the deadline they are about.

A person who blocked the bot (Forbidden) or whose chat is gone is logged and marked, never retried; a
network error or a flood wait leaves the reminder unmarked, for the next run.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass, field

from telegram.error import BadRequest, Forbidden, TelegramError, TimedOut

from bot.context import BotContext, SchoolBotApplication
from bot.metrics import count
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
    text = t(reminder.text_key, reminder.language, **params)
    if params.get("csdl_count"):
        # The principal's reminder names the records not in the sector database a day after entry.
        line = t(
            "csdl.reminder.line",
            reminder.language,
            count=params["csdl_count"],
            records=params["csdl_records"],
        )
        text += "\n" + line
    return text


async def send_due_reminders(context: BotContext) -> ReminderRun:
    """The job: send what is due now, mark each one sent."""
    application = context.application
    services, settings = application.services, application.settings
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
            keys = (reminder.round_id, reminder.staff_id, reminder.reminder_key)
            if not await services.rounds.mark_sent(*keys):
                return  # another run (another instance) has it
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
            except TimedOut:
                # Telegram may have delivered it: at most once, so it stays marked.
                log.warning("Reminder %s to staff %s timed out", reminder.reminder_key, reminder.staff_id)
                run.failed.append(reminder)
            except TelegramError as exc:
                log.warning(
                    "Reminder %s to staff %s failed (%s); next run retries",
                    reminder.reminder_key,
                    reminder.staff_id,
                    type(exc).__name__,
                )
                run.failed.append(reminder)
                await services.rounds.forget_sent(*keys)
            else:
                run.sent.append(reminder)

    async def deliver_in_order(reminders: list[ReminderDue]) -> None:
        # One person's reminders one after another, in the service's order (by deadline): sent side
        # by side they could arrive the other way round (the late approval before the late submission).
        for reminder in reminders:
            await deliver(reminder)

    per_person: dict[int, list[ReminderDue]] = {}
    for reminder in due:
        per_person.setdefault(reminder.telegram_user_id, []).append(reminder)
    await asyncio.gather(*(deliver_in_order(reminders) for reminders in per_person.values()))
    log.info(
        "Reminders: %d sent, %d unreachable, %d to retry",
        len(run.sent),
        len(run.unreachable),
        len(run.failed),
    )
    count(application, "reminders_sent", len(run.sent))
    return run


def schedule_jobs(application: SchoolBotApplication) -> None:
    """Called by bot.app (listed in its JOBS)."""
    queue = application.job_queue
    if queue is None:
        log.warning("No job queue (install python-telegram-bot[job-queue]): deadline reminders are off")
        return
    first = getattr(application.settings, "reminder_first_run_seconds", FIRST_RUN_SECONDS)
    queue.run_repeating(send_due_reminders, interval=INTERVAL_SECONDS, first=first, name=JOB_NAME)
