"""Rate limiting as Telegram counts it: per chat for replies, overall for broadcasts.

Telegram's limits are about one chat (about one message a second, short bursts allowed; 20 a minute in
a group) and about broadcasts (about 30 messages a second to many people). A person answering their
own conversation is not a broadcast, so:

- a *reply* — a request to the chat whose update is being handled (`handling_chat`, set while the
  application processes an update) — waits only for its own chat's bucket, never behind anyone else's
  messages;
- a *broadcast* — a request to any other chat, or from a job (reminders, notices to reviewers and
  enterers, digests) — waits for the overall bucket (`BROADCAST_MAX_PER_SECOND`) and then for the
  chat's bucket, where it comes after every reply waiting for that chat;
- a `RetryAfter` pauses what Telegram refused: the chat of the request (and the broadcasts when a
  broadcast was refused — the overall limit), or the whole bot for a request without a chat or when
  several chats are refused within a second; the request is then tried again, as often as Telegram
  asks: nothing is dropped.

Requests that are not messages (answering a button, chat actions, getFile, setMyCommands) are not
counted; they only respect a pause of the whole bot. An edit that answers a person's tap in their
private chat (the next question put in place of the tapped one) is not a message sent either: it waits
only for a pause of its chat or of the bot, never for the chat's bucket (`EDITS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.botapi_request import BotApiRequest, Sender

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]

# The chat of the update being handled (None in jobs): requests to it are replies.
handling_chat: ContextVar[int | None] = ContextVar("handling_chat", default=None)

REPLY = 0  # priority in a bucket's queue: lower goes first
BROADCAST = 1

# Methods that put or change a message in a chat: what Telegram's flood limits count.
COUNTED = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "sendMediaGroup",
        "sendAudio",
        "sendVideo",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendPoll",
        "copyMessage",
        "forwardMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
    }
)
# Edits change a message already there. Telegram's per-chat limit is about messages sent: an edit
# answering a person's own tap in their private chat (the next question put in place of the tapped
# one) comes at the pace of their taps and is not paced by the chat's bucket; a RetryAfter for it is
# still honoured like any other (the chat paused, the edit tried again).
EDITS = frozenset({"editMessageText", "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia"})
GLOBAL_AFTER_CHATS = 3  # refusals of this many chats within a second: the whole bot is limited
_MARGIN = 0.1  # seconds added to what Telegram asks (clocks and transit)


class Bucket:
    """A token bucket whose waiters are served by priority, then in order of arrival."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def _shortfall(self) -> float:
        """Seconds until a token is there (0: there is one)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    @property
    def idle(self) -> bool:
        """Full and nobody waiting: the bucket can be forgotten."""
        self._refill()
        return not self._queue and self.tokens >= self.burst

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def acquire(
        self, priority: int = REPLY, *, seq: int | None = None, hold: Callable[[], float] | None = None
    ) -> None:
        """Take a token. `seq` orders waiters of one priority (a retried request keeps its place);
        `hold` gives the seconds a pause from Telegram still lasts (nobody takes a token meanwhile)."""
        if self.rate <= 0 and hold is None:
            return
        if not self._queue and self._ready(hold) == 0:
            self._take()
            return
        waiter = _Waiter(priority, next(self._seq) if seq is None else seq)
        heapq.heappush(self._queue, waiter)
        if self._queue[0] is waiter:
            self._wake_all()  # the former head is not the head any more
        try:
            while True:
                delay: float | None = None
                if self._queue[0] is waiter:
                    delay = self._ready(hold)
                    if delay == 0:
                        heapq.heappop(self._queue)
                        self._take()
                        self._wake_head()
                        return
                waiter.event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.event.wait(), delay)
        except BaseException:
            if waiter in self._queue:
                self._queue.remove(waiter)
                heapq.heapify(self._queue)
                self._wake_head()
            raise

    def _ready(self, hold: Callable[[], float] | None) -> float:
        paused = hold() if hold is not None else 0.0
        return max(paused, self._shortfall() if self.rate > 0 else 0.0)

    def _take(self) -> None:
        if self.rate > 0:
            self.tokens -= 1

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].event.set()

    def _wake_all(self) -> None:
        for waiter in self._queue:
            waiter.event.set()


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    event: asyncio.Event = field(default_factory=asyncio.Event, compare=False)


@dataclass
class Pauses:
    """Until when Telegram asked the bot, the broadcasts or one chat to wait."""

    clock: Callable[[], float] = time.monotonic
    everything: float = 0.0
    broadcasts: float = 0.0
    chats: dict[int | str, float] = field(default_factory=dict)
    refusals: list[tuple[float, int | str]] = field(default_factory=list)  # recent (when, chat)

    def left(self, chat: int | str | None, broadcast: bool) -> float:
        now = self.clock()
        until = self.everything
        if broadcast:
            until = max(until, self.broadcasts)
        if chat is not None:
            until = max(until, self.chats.get(chat, 0.0))
        return max(0.0, until - now)

    def refused(self, chat: int | str | None, broadcast: bool, seconds: float) -> str:
        """Record a RetryAfter; what is paused ("bot", "broadcasts" or "chat")."""
        now = self.clock()
        until = now + seconds + _MARGIN
        if chat is None:
            self.everything = max(self.everything, until)
            return "bot"
        self.chats[chat] = max(self.chats.get(chat, 0.0), until)
        self.refusals = [(at, c) for at, c in self.refusals if now - at < 1.0] + [(now, chat)]
        if len({c for _, c in self.refusals}) >= GLOBAL_AFTER_CHATS:
            self.everything = max(self.everything, until)
            return "bot"
        if broadcast:
            self.broadcasts = max(self.broadcasts, until)
            return "broadcasts"
        return "chat"

    def forget_old(self) -> None:
        now = self.clock()
        for chat in [c for c, until in self.chats.items() if until <= now]:
            del self.chats[chat]


class SchoolRateLimiter(BaseRateLimiter[str]):
    """Replies per chat, broadcasts through the overall bucket, RetryAfter honoured (module docstring).

    `rate_limit_args` of a request may be "reply" or "broadcast" to say which it is explicitly.
    """

    def __init__(
        self,
        *,
        broadcast_per_second: float = 30,
        broadcast_burst: float = 30,
        chat_per_second: float = 1,
        chat_burst: float = 3,
        group_per_minute: float = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.broadcasts = Bucket(broadcast_per_second, broadcast_burst, clock)
        self.chat_per_second = chat_per_second
        self.chat_burst = chat_burst
        self.group_per_minute = group_per_minute
        self.pauses = Pauses(clock)
        self._chats: dict[int | str, Bucket] = {}
        self._tickets = itertools.count()
        self.retries = 0  # RetryAfter answers seen (for /metrics and the benches)
        self.sent = {"reply": 0, "broadcast": 0}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def chat_bucket(self, chat: int | str) -> Bucket:
        bucket = self._chats.get(chat)
        if bucket is None:
            if len(self._chats) > 1024:  # forget chats that have been quiet (a full bucket)
                for key in [k for k, b in self._chats.items() if b.idle]:
                    del self._chats[key]
                self.pauses.forget_old()
            group = isinstance(chat, str) or chat < 0
            if group:
                bucket = Bucket(self.group_per_minute / 60, min(self.chat_burst, 3), self.clock)
            else:
                bucket = Bucket(self.chat_per_second, self.chat_burst, self.clock)
            self._chats[chat] = bucket
        return bucket

    def kind_of(self, chat: int | str | None, rate_limit_args: str | None) -> str:
        if rate_limit_args in ("reply", "broadcast"):
            return rate_limit_args
        current = handling_chat.get()
        return "reply" if chat is not None and current is not None and chat == current else "broadcast"

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> JSONResult:
        chat = _chat_of(data.get("chat_id"))
        counted = endpoint in COUNTED and chat is not None
        broadcast = counted and self.kind_of(chat, rate_limit_args) == "broadcast"
        private = isinstance(chat, int) and chat > 0
        paced = counted and not (endpoint in EDITS and private and not broadcast)
        seq = next(self._tickets)  # kept across retries: a retried message keeps its place
        while True:
            if paced:
                assert chat is not None
                if broadcast:
                    await self.broadcasts.acquire(
                        BROADCAST, seq=seq, hold=lambda: self.pauses.left(None, True)
                    )
                await self.chat_bucket(chat).acquire(
                    BROADCAST if broadcast else REPLY,
                    seq=seq,
                    hold=lambda: self.pauses.left(chat, broadcast),
                )
            else:
                await self._wait_pauses(chat if counted else None)
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as exc:
                self.retries += 1
                wait = retry_seconds(exc.retry_after)
                scope = self.pauses.refused(chat, broadcast, wait)
                log.warning(
                    "Telegram asked to wait %.1f s (%s %s): paused the %s, will retry",
                    wait,
                    endpoint,
                    "broadcast" if broadcast else "reply",
                    scope,
                )
                continue
            if counted:
                self.sent["broadcast" if broadcast else "reply"] += 1
            return result

    async def _wait_pauses(self, chat: int | str | None = None) -> None:
        """Wait out a pause of the whole bot (and of `chat`, when given)."""
        while (left := self.pauses.left(chat, False)) > 0:
            await asyncio.sleep(left)


def retry_seconds(value: float | timedelta) -> float:
    """RetryAfter.retry_after: seconds, or a timedelta (PTB's newer behaviour)."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _chat_of(value: object) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return int(value)
    try:
        return int(str(value))  # a chat id sent as text
    except ValueError:
        return str(value)  # a @channel username


def build_rate_limiter(settings: Settings) -> SchoolRateLimiter:
    return SchoolRateLimiter(
        broadcast_per_second=settings.broadcast_max_per_second,
        # No burst: evenly spaced, so no second ever holds more than the rate (a bucket that starts
        # full would let a reminder run send twice the rate in its first second).
        broadcast_burst=1,
        chat_per_second=settings.chat_max_per_second,
        chat_burst=settings.chat_burst,
        group_per_minute=settings.group_max_per_minute,
    )


def build_request(
    settings: Settings, *, connections: int | None = None, sender: Sender | None = None
) -> BotApiRequest:
    """The Bot API client (`bot.botapi_request`): PTB's request semantics over one aiohttp session,
    ~0.2 ms of CPU per call where PTB's `HTTPXRequest` took 0.7–2.5 ms (`bench/botapi_client_bench.py`).
    Every connection of the pool (`BOT_API_CONNECTIONS`) is kept alive, and a reply waits up to 30 s for
    a free one instead of PTB's 1 s, after which it would be lost to a `TimedOut`. `connections`: another
    pool size (getUpdates: one call at a time); `sender`: the tests' in-process fake Bot API
    (`FakeBotApi.sender()`)."""
    size = connections if connections is not None else settings.bot_api_connections
    return BotApiRequest(size, pool_timeout=30.0, sender=sender)
