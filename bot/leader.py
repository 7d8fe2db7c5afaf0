"""Two instances, one leader: `schoolbot run` on two machines against one database.

A lease row in the database (storage/services/lease.py) names the leader. The leader polls Telegram
(or takes the webhook's posts) and runs the job queue; the other instance, the standby, tries to take
the lease every second and takes over once it has run out (`LEADER_LEASE_SECONDS`, 10 by default).

The leader renews every third of the lease. It counts its lease from the moment it *sent* the last
successful renewal, less a margin, so it always believes it lost the lease before the database says
so: when it cannot renew in time (database unreachable, the process frozen), it stops polling and
handling updates and goes back to standby, without writing its in-memory state. Its inbox writes are
fenced by the lease's term, so a leader that wakes up late cannot confirm updates to Telegram.

A new leader builds a fresh application (conversations are read from the database at that moment),
handles the inbox's unfinished updates first, then polls. On SQLite the same works for instances on one
machine; on one machine a single instance is the normal case and simply holds the lease.

SIGTERM (`stop`): stop taking updates, let the ones in progress finish and the reports being built
finish or be interrupted (their person is told), within `SHUTDOWN_TIMEOUT_SECONDS`; then the job queue
and persistence stop, and the lease is released so the standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from telegram import Update
from telegram.error import InvalidToken, TelegramError

from bot.app import PerChatUpdateProcessor, build_application
from bot.context import SchoolBotApplication
from bot.inbox import Inbox, poll_updates
from bot.metrics import Metrics
from bot.settings import Settings
from storage.services import Services
from storage.services.lease import Fence, LeaseLost, LeaseState

log = logging.getLogger(__name__)

STANDBY_POLL_SECONDS = 1.0  # how often a standby asks for the lease
ABORT_SECONDS = 5.0  # a leader that lost its lease waits this long for its application to stop
HEALTH_QUERY_SECONDS = 5.0
LEAD_RETRY_SECONDS = 5.0  # after starting as the leader failed (Telegram unreachable at getMe)


def instance_name() -> str:
    """This process among the instances: host, pid and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseKeeper:
    """Takes the lease and keeps it; knows until when this instance may act as the leader."""

    def __init__(self, services: Services, holder: str, seconds: float) -> None:
        self.services = services
        self.holder = holder
        self.seconds = seconds
        self.renew_every = seconds / 3
        # The lease is counted from the start of the renewal, less this margin (clocks drift).
        self.margin = max(0.5, seconds / 10)
        self.fence: Fence | None = None
        self.valid_until = 0.0  # time.monotonic()
        self.seen: LeaseState | None = None  # the lease as last read (the other leader's, for /healthz)
        self._warned = False

    def valid(self) -> bool:
        return self.fence is not None and time.monotonic() < self.valid_until

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until the lease is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            began = time.monotonic()
            try:
                state = await asyncio.wait_for(
                    self.services.lease.acquire(self.holder, self.seconds), self.renew_every
                )
            except Exception as exc:  # the database is down or slow: keep trying
                if not self._warned:
                    log.warning("Cannot reach the database for the lease: %s", type(exc).__name__)
                    self._warned = True
                state = None
            else:
                self._warned = False
            if state is not None:
                self.seen = state
                if state.ours:
                    self.fence = Fence(self.holder, state.term)
                    self.valid_until = began + self.seconds - self.margin
                    return True
                if not announced:
                    log.info("Standby: %s is the leader", state.holder)
                    announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STANDBY_POLL_SECONDS)
        return False

    async def keep(self) -> None:
        """Renew until the lease is lost (then return)."""
        assert self.fence is not None
        while True:
            remaining = self.valid_until - time.monotonic()
            if remaining <= 0:
                log.error("Lease not renewed in time: no longer the leader")
                return
            await asyncio.sleep(min(self.renew_every, remaining))
            if not self.valid():
                log.error("Lease not renewed in time: no longer the leader")
                return
            began = time.monotonic()
            try:
                until = await asyncio.wait_for(
                    self.services.lease.renew(self.fence, self.seconds),
                    max(0.1, self.valid_until - began),
                )
            except Exception as exc:  # try again while the lease lasts
                log.warning("Lease renewal failed: %s", type(exc).__name__)
                await asyncio.sleep(min(1.0, max(0.0, self.valid_until - time.monotonic())))
                continue
            if until is None:
                log.error("The lease was taken by another instance: no longer the leader")
                return
            self.valid_until = began + self.seconds - self.margin

    async def release(self) -> None:
        if self.fence is None:
            return
        fence, self.fence = self.fence, None
        self.valid_until = 0.0
        try:
            await asyncio.wait_for(self.services.lease.release(fence), 3)
        except Exception as exc:  # it runs out by itself
            log.warning("Could not release the lease: %s", type(exc).__name__)


class Node:
    """One `schoolbot run` process: standby until it holds the lease, then the leader."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        *,
        webhook: bool = False,
        build: Any = build_application,
    ) -> None:
        self.settings = settings
        self.services = services
        self.webhook = webhook
        self.build = build
        self.name = instance_name()
        self.keeper = LeaseKeeper(services, self.name, settings.leader_lease_seconds)
        self.metrics = Metrics()
        self.role = "starting"
        self.application: SchoolBotApplication | None = None
        self.inbox: Inbox | None = None
        self.accepting = False  # the webhook takes updates (leader, not stopping)
        self.became_leader_at: float | None = None
        self.handled_before = 0  # updates handled in earlier terms of this process

    # --- the life of the process ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Standby, leader, and standby again if the lease is lost, until `stop`."""
        while not stop.is_set():
            self.role = "standby"
            self.metrics.set_leader(False)
            if not await self.keeper.acquire(stop):
                break
            try:
                await self._lead(stop)
            except InvalidToken:
                raise
            except Exception as exc:  # Telegram or the database failed while starting: stand by, retry
                log.error("Leading failed (%s); standing by", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), LEAD_RETRY_SECONDS)
        self.role = "stopped"

    async def _lead(self, stop: asyncio.Event) -> None:
        self.role = "leader"
        self.became_leader_at = time.monotonic()
        self.metrics.set_leader(True)
        term = self.keeper.fence.term if self.keeper.fence else "?"
        log.info("Leader now (instance %s, term %s)", self.name, term)
        # Drafts answered from memory while this instance alone handles updates; nothing kept from an
        # earlier term (another instance may have led and written drafts since).
        self.services.drafts.use_cache(True)
        try:
            await self._lead_term(stop)
        finally:
            self.services.drafts.use_cache(False)

    async def _lead_term(self, stop: asyncio.Event) -> None:
        application = self.build(self.settings, self.services)
        application.metrics = self.metrics
        inbox = Inbox(application, self.services.inbox, self.keeper.fence, self.metrics)
        processor = application.update_processor
        if isinstance(processor, PerChatUpdateProcessor):
            processor.hooks = inbox
        keeper = asyncio.create_task(self.keeper.keep(), name="lease")
        poller: asyncio.Task[None] | None = None
        stopping = asyncio.create_task(stop.wait(), name="stop")
        lost = False
        try:
            await application.initialize()
            self.application, self.inbox = application, inbox
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            await inbox.drain()
            with contextlib.suppress(Exception):  # housekeeping only
                await self.services.inbox.prune()
            if self.webhook:
                await self._set_webhook(application)
                self.accepting = True
            else:
                await application.bot.delete_webhook(drop_pending_updates=False)
                poller = asyncio.create_task(poll_updates(application, inbox), name="poll")
                log.info("Polling Telegram for updates")
            waited: set[asyncio.Task[Any]] = {keeper, stopping}
            if poller is not None:
                waited.add(poller)
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
            if poller is not None and poller in done:
                error = poller.exception()
                if isinstance(error, LeaseLost):
                    lost = True
                elif error is not None:
                    raise error
            lost = lost or keeper in done
        except LeaseLost:
            lost = True
        finally:
            self.accepting = False
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(BaseException):
                    await poller
            stopping.cancel()
            if lost or not application.running:
                await self._abort(application)
            else:
                self.role = "stopping"
                await self._stop_gracefully(application)
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
            if self.inbox is not None:
                self.handled_before += self.inbox.handled_count
            self.application, self.inbox = None, None
            if not lost:
                await self.keeper.release()
            else:
                self.keeper.fence = None
            self.metrics.set_leader(False)

    async def _set_webhook(self, application: SchoolBotApplication) -> None:
        assert self.settings.webhook_url is not None and self.settings.webhook_secret_token is not None
        try:
            await application.bot.set_webhook(
                self.settings.webhook_url,
                secret_token=self.settings.webhook_secret_token.get_secret_value(),
                allowed_updates=Update.ALL_TYPES,
            )
        except TelegramError as exc:  # /healthz says Telegram's webhook is not ours
            log.error("setWebhook failed: %s", type(exc).__name__)

    async def _stop_gracefully(self, application: SchoolBotApplication) -> None:
        """Updates in progress finish, reports finish or are interrupted, all within the timeout."""
        from bot.report_jobs import interrupt_reports, running_reports

        timeout = self.settings.shutdown_timeout_seconds
        deadline = time.monotonic() + timeout
        # Kept for the interrupted reports' last message, the job queue and persistence.
        reserve = min(5.0, timeout / 3)

        def left(keep: float = 0.0) -> float:
            return max(0.0, deadline - keep - time.monotonic())

        log.info("Stopping: finishing the updates in progress (at most %s s)", timeout)
        if not await _within(application.update_queue.join(), left(reserve)):
            self._cancel_updates(application, "the stop timeout")
        reports = running_reports(application)
        if reports:
            log.info("Stopping: waiting for %d reports being built", len(reports))
            await asyncio.wait(reports, timeout=left(reserve) or None)
            interrupted = interrupt_reports(application)
            if interrupted:
                log.warning("Stopping: %d reports interrupted (their people were told)", len(interrupted))
                await asyncio.wait(interrupted, timeout=max(0.1, left() / 2))
        if not await _within(application.stop(), left()):
            log.warning("Stopping: the application did not stop within %s s", timeout)
        with contextlib.suppress(Exception):
            await _within(application.shutdown(), max(1.0, left()))
        log.info("Stopped")

    async def _abort(self, application: SchoolBotApplication) -> None:
        """The lease is lost (or starting failed): stop at once, keep nothing of this term in memory."""
        from bot.report_jobs import interrupt_reports

        self.role = "standby"
        if application.running:
            self._cancel_updates(application, "the lost lease")
            interrupt_reports(application)
            if application.job_queue is not None and application.job_queue.scheduler.running:
                application.job_queue.scheduler.shutdown(wait=False)
            # The new leader owns the conversations now: nothing of ours may be written over them.
            application.persistence = None
            await _within(application.stop(), ABORT_SECONDS)
        with contextlib.suppress(Exception):
            await _within(application.shutdown(), ABORT_SECONDS)

    @staticmethod
    def _cancel_updates(application: SchoolBotApplication, why: str) -> None:
        processor = application.update_processor
        running = list(processor.running) if isinstance(processor, PerChatUpdateProcessor) else []
        if running:
            log.warning("Cancelling %d updates in progress (%s); the inbox keeps them", len(running), why)
        for task in running:
            task.cancel()

    # --- what /healthz says --------------------------------------------------------------------------

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, report): the database, leader or standby, the last update, the job queue."""
        problems: list[str] = []
        report: dict[str, Any] = {"role": self.role, "instance": self.name}
        try:
            await asyncio.wait_for(self._ping(), HEALTH_QUERY_SECONDS)
            report["database"] = "ok"
        except Exception:
            report["database"] = "error"
            problems.append("database unreachable")
        if report["database"] == "ok":
            try:
                lease = await asyncio.wait_for(
                    self.services.lease.current(holder=self.name), HEALTH_QUERY_SECONDS
                )
                summary = await asyncio.wait_for(self.services.inbox.summary(), HEALTH_QUERY_SECONDS)
            except Exception:
                problems.append("database unreachable")
            else:
                if lease is not None:
                    report["lease"] = {
                        "holder": lease.holder,
                        "term": lease.term,
                        "expires_at": lease.expires_at.isoformat(),
                    }
                last_at = summary.last_handled_at
                report["inbox"] = {
                    "pending": summary.pending,
                    "handling": summary.handling,
                    "failed": summary.failed,
                    "last_handled_id": summary.last_handled_id,
                    "last_handled_at": last_at.isoformat() if last_at else None,
                }
        inbox = self.inbox
        report["updates_handled"] = self.handled_before + (inbox.handled_count if inbox else 0)
        if inbox is not None and inbox.last_handled_at is not None:
            report["last_update"] = {
                "id": inbox.last_update_id,
                "at": inbox.last_handled_at.isoformat(),
                "age_seconds": round((datetime.now(UTC) - inbox.last_handled_at).total_seconds(), 1),
            }
        application = self.application
        if self.role == "leader" and application is not None:
            report["job_queue"] = _job_queue(application)
            if not report["job_queue"]["running"]:
                problems.append("job queue not running")
        if self.role == "leader" and self.became_leader_at is not None:
            report["leader_for_seconds"] = round(time.monotonic() - self.became_leader_at, 1)
        report["problems"] = problems
        return not problems, report

    async def _ping(self) -> None:
        async with self.services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))


def _job_queue(application: SchoolBotApplication) -> dict[str, Any]:
    queue = application.job_queue
    if queue is None:
        return {"running": False, "jobs": []}
    jobs = [
        {"name": job.name, "next_run": job.next_t.isoformat() if job.next_t else None} for job in queue.jobs()
    ]
    return {"running": bool(queue.scheduler.running), "jobs": jobs}


async def _within(awaitable: Awaitable[Any], seconds: float) -> bool:
    """Await it for at most `seconds`; False when it took longer (it is cancelled then)."""
    try:
        await asyncio.wait_for(awaitable, max(0.01, seconds))
    except TimeoutError:
        return False
    return True
