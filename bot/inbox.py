"""Durable receipt: every update is in the database before Telegram is told it was received.

Polling: `poll_updates` asks getUpdates itself (not PTB's Updater, which confirms a batch by the offset
of its next call whether or not the batch was handled): each batch is written to the inbox, and only
then is getUpdates asked with the next offset. The webhook writes the update before answering 200
(bot/webhook.py). Updates are handled from there: `Inbox` puts them on the application's queue and, as
the update processor's hooks, marks each one started and handled (storage/services/inbox.py) — the
marks of updates handled at the same moment written together (`MarkBatcher`), each awaited.

On start and on takeover, `drain` hands the unfinished updates to the queue first, oldest first (the
update processor keeps one chat's updates in order); one whose handling was started twice without
finishing (it ended the process twice) is marked failed and its person told, never tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from telegram import Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from bot.context import SchoolBotApplication
from bot.metrics import Metrics
from bot.ratelimit import retry_seconds
from bot.texts import t
from storage.services.inbox import InboxService, InboxUpdate, Received
from storage.services.lease import Fence

log = logging.getLogger(__name__)

POLL_TIMEOUT = 10  # seconds a getUpdates waits for an update (long polling)
POLL_LIMIT = 100  # updates a getUpdates returns at most (Telegram's maximum)
RETRY_SECONDS = (0.5, 1, 2, 5, 10)  # waits after failed getUpdates calls, then 10 s each
MARK_RETRY_SECONDS = (0.2, 0.5, 1.0)  # waits before marking an update started again
# After a batch that was not full, this long before asking again, so that the next call brings the
# updates of that moment together: asked at once, a busy bot next to its Bot API server (no network
# between) made a getUpdates for every two updates (200 staff tapping about once a second: 0.45 calls
# per update, each a request, a parse and an inbox write). Over Telegram's own round trip (tens of ms)
# it changes nothing; a full batch is followed at once.
POLL_GATHER_SECONDS = 0.02


def chat_of(update: Update) -> int | None:
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class MarkBatcher:
    """Group commit of the inbox's marks: every "started" and "handled" asked for while one write is
    in flight goes into the next write, together. Each caller still waits until its own mark is
    committed, so the guarantees stay exactly as they were — an update's handling begins only once
    its "started" is in the database, and an update counts as handled (its chat's next update may
    begin, a stop may finish) only once "handled" is — while under load one transaction carries the
    marks of many updates instead of two transactions per update."""

    def __init__(self, service: InboxService) -> None:
        self.service = service
        self._started: list[tuple[int, asyncio.Future[None]]] = []
        self._handled: list[tuple[int, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # transactions written (the benches count them)

    async def mark(self, update_id: int, *, handled: bool) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # an error nobody waits for any more is not logged as lost
        (self._handled if handled else self._started).append((update_id, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="inbox-marks")
        await asyncio.shield(future)  # a cancelled caller leaves the batch to the others

    async def _write(self) -> None:
        while self._started or self._handled:
            started, self._started = self._started, []
            handled, self._handled = self._handled, []
            try:
                await self.service.mark(started=[i for i, _ in started], handled=[i for i, _ in handled])
                self.writes += 1
            except BaseException as exc:  # every caller of the batch gets the error (and may try again)
                for _, future in (*started, *handled):
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("stopped"))
                if not isinstance(exc, Exception):  # cancelled: nobody may wait for a mark that will not come
                    for _, future in (*self._started, *self._handled):
                        if not future.done():
                            future.set_exception(RuntimeError("stopped"))
                    self._started, self._handled = [], []
                    raise
                continue
            for _, future in (*started, *handled):
                if not future.done():
                    future.set_result(None)


@dataclass
class Inbox:
    """The inbox of one leader term: receives updates, feeds them to the application, and (as the
    update processor's hooks) marks them started and handled."""

    application: SchoolBotApplication
    service: InboxService
    fence: Fence | None = None
    metrics: Metrics | None = None
    tracked: set[int] = field(default_factory=set)  # ids fed from the inbox, not yet handled
    handled_count: int = 0
    last_update_id: int | None = None
    last_handled_at: datetime | None = None
    marks: MarkBatcher | None = None

    def __post_init__(self) -> None:
        if self.marks is None:
            self.marks = MarkBatcher(self.service)

    async def receive(self, payloads: list[dict[str, Any]]) -> list[int]:
        """Write the updates (getUpdates' payloads, stored as Telegram sent them), then queue those
        new to the inbox; their ids. Raises `LeaseLost` when this instance is no longer the leader
        (nothing written then)."""
        bot = self.application.bot
        updates = [Update.de_json(payload, bot) for payload in payloads]
        received = [Received(u.update_id, chat_of(u), p) for u, p in zip(updates, payloads, strict=True)]
        new = set(await self.service.receive(received, self.fence))
        for update in updates:
            if update.update_id in new:
                await self._queue(update)
            else:
                log.info("Update %s is in the inbox already: not handled twice", update.update_id)
        return [u.update_id for u in updates if u.update_id in new]

    async def receive_json(self, data: dict[str, Any]) -> bool:
        """The webhook's update (the JSON Telegram posted); whether it was new."""
        update = Update.de_json(data, self.application.bot)
        received = Received(update.update_id, chat_of(update), data)
        new = await self.service.receive([received], self.fence)
        if new:
            await self._queue(update)
        return bool(new)

    async def drain(self) -> int:
        """Queue what a previous process left unfinished (oldest first); give up poison updates."""
        pending, failed = await self.service.recover()
        for item in failed:
            log.error(
                "Update %s given up: its handling was started %s times and never finished",
                item.update_id,
                item.attempts,
            )
            if self.metrics is not None:
                self.metrics.count("updates_failed")
            await self._tell_failed(item)
        for item in pending:
            await self._queue(Update.de_json(item.payload, self.application.bot))
        if pending or failed:
            log.info("Inbox: %d unfinished updates queued, %d given up", len(pending), len(failed))
        return len(pending)

    async def _queue(self, update: Update) -> None:
        self.tracked.add(update.update_id)
        await self.application.update_queue.put(update)

    async def _tell_failed(self, item: InboxUpdate) -> None:
        update = Update.de_json(item.payload, self.application.bot)
        chat = chat_of(update)
        if chat is None:
            return
        user = update.effective_user
        language = "en" if user is not None and (user.language_code or "").startswith("en") else "vi"
        try:
            await self.application.bot.send_message(chat, t("core.error", language))
        except TelegramError as exc:
            log.warning("Could not tell the person about a given-up update: %s", type(exc).__name__)

    # --- the update processor's hooks ----------------------------------------------------------------

    async def started(self, update: object) -> None:
        if not isinstance(update, Update) or update.update_id not in self.tracked:
            return
        for wait in (*MARK_RETRY_SECONDS, None):
            try:
                assert self.marks is not None
                await self.marks.mark(update.update_id, handled=False)
                return
            except Exception:  # the database, briefly: try again; then the update waits in the inbox
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def finished(self, update: object, seconds: float) -> None:
        if not isinstance(update, Update):
            return
        if update.update_id in self.tracked:
            self.tracked.discard(update.update_id)
            try:
                assert self.marks is not None
                await self.marks.mark(update.update_id, handled=True)
            except Exception as exc:  # handled all the same; the next drain handles it once more
                log.warning("Update %s handled but not marked: %s", update.update_id, type(exc).__name__)
        self.handled_count += 1
        self.last_update_id = update.update_id
        self.last_handled_at = datetime.now(UTC)
        if self.metrics is not None:
            self.metrics.handled(seconds)


async def poll_updates(
    application: SchoolBotApplication,
    inbox: Inbox,
    *,
    timeout: float = POLL_TIMEOUT,
    gather: float = POLL_GATHER_SECONDS,
) -> None:
    """Long polling until cancelled. A batch is confirmed to Telegram (the next offset) only once it
    is in the inbox; `LeaseLost` and a wrong token end the loop (raised)."""
    bot = application.bot
    offset: int | None = None
    failures = 0
    while True:
        try:
            payloads = await bot.get_update_payloads(
                offset=offset, limit=POLL_LIMIT, timeout=int(timeout), read_timeout=timeout + 10
            )
        except InvalidToken:
            raise
        except RetryAfter as exc:
            await asyncio.sleep(retry_seconds(exc.retry_after))  # seconds or a timedelta, as PTB gives it
            continue
        except Conflict:
            # Another getUpdates (a former leader's last call) or a webhook is set: wait it out.
            failures += 1
            log.warning("getUpdates conflict (another poller or a webhook); retrying")
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])
            continue
        except TelegramError as exc:
            failures += 1
            wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1]
            log.warning("getUpdates failed (%s); retrying in %s s", type(exc).__name__, wait)
            await asyncio.sleep(wait)
            continue
        failures = 0
        if not payloads:
            continue
        began = time.monotonic()
        await inbox.receive(payloads)
        log.debug("Stored %d updates in %.3f s", len(payloads), time.monotonic() - began)
        offset = max(int(p["update_id"]) for p in payloads) + 1
        if len(payloads) < POLL_LIMIT and gather > 0:
            await asyncio.sleep(max(0.0, gather - (time.monotonic() - began)))
