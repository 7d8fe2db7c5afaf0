"""The daily backup job: at BACKUP_TIME (local time) a backup of the database into BACKUP_DIR, then the
job's own old backups beyond BACKUP_KEEP deleted (storage/backup.py does the work; here only the
schedule). An empty BACKUP_DIR means no job. A failed backup is logged as an error and tried again the
next day; the backups already there are never deleted by a failed run.
"""

from __future__ import annotations

import asyncio
import logging

from bot.context import BotContext, SchoolBotApplication
from storage.backup import BackupResult, Refused, TargetWriteError, scheduled_backup

log = logging.getLogger(__name__)

JOB_NAME = "daily_backup"


async def run_backup(context: BotContext) -> BackupResult | None:
    """The job: one backup now. Returns what it wrote (None when it failed; the log says why)."""
    application = context.application
    settings = application.settings
    if settings.backup_dir is None:  # scheduled only when BACKUP_DIR is set (schedule_backup_job)
        return None
    now = application.services.clock.now().astimezone(settings.tz)
    try:
        # SQLite's backup API or pg_dump: blocking, so in a thread; the bot keeps answering meanwhile.
        result = await asyncio.to_thread(
            scheduled_backup, settings.database_url, settings.backup_dir, settings.backup_keep, now
        )
    except (Refused, TargetWriteError, OSError) as exc:
        log.error("Daily backup into %s failed: %s", settings.backup_dir, exc)
        return None
    except Exception:
        log.exception("Daily backup into %s failed", settings.backup_dir)
        return None
    log.info(
        "Daily backup %s written (%d bytes); %d old backups deleted",
        result.path,
        result.bytes,
        len(result.deleted),
    )
    return result


def schedule_backup_job(application: SchoolBotApplication) -> None:
    """Called by bot.app's `schedule_jobs`: the daily backup, when BACKUP_DIR is set."""
    settings = application.settings
    if settings.backup_dir is None:
        log.info("BACKUP_DIR is empty: no daily backup job")
        return
    queue = application.job_queue
    if queue is None:
        log.warning("No job queue (install python-telegram-bot[job-queue]): daily backups are off")
        return
    at = settings.backup_time.replace(tzinfo=settings.tz)
    queue.run_daily(run_backup, time=at, name=JOB_NAME)
    log.info(
        "Daily backup at %s into %s, keeping %d",
        at.strftime("%H:%M"),
        settings.backup_dir,
        settings.backup_keep,
    )
