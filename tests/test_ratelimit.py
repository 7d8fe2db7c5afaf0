"""The rate limiter's rules (bot/ratelimit.py), by order and queue positions, never by durations.

Small rates and short RetryAfter waits keep the tests quick; what is asserted is who was sent first,
who is still waiting, and that every request was sent in the end.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter

from bot.ratelimit import SchoolRateLimiter, handling_chat


class FakeTelegram:
    """The callback the limiter wraps: records what was sent, refuses what it is told to."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.attempts: dict[str, int] = {}
        self.refuse: dict[str, list[float]] = {}  # label -> RetryAfter seconds for its next attempts

    async def call(self, label: str) -> dict[str, Any]:
        self.attempts[label] = self.attempts.get(label, 0) + 1
        waits = self.refuse.get(label)
        if waits:
            raise RetryAfter(timedelta(seconds=waits.pop(0)))  # type: ignore[arg-type]
        self.sent.append(label)
        return {"ok": label}


def send(
    limiter: SchoolRateLimiter,
    api: FakeTelegram,
    label: str,
    chat: int | None,
    *,
    method: str = "sendMessage",
    handling: int | None = None,
) -> asyncio.Task[Any]:
    """A request as PTB makes it, from a task handling `handling`'s update (None: a job)."""

    async def run() -> Any:
        handling_chat.set(handling)
        data = {"chat_id": chat} if chat is not None else {}
        return await limiter.process_request(api.call, (label,), {}, method, data, None)

    return asyncio.create_task(run())


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_a_reply_never_waits_behind_broadcasts() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=5, broadcast_burst=1)
    api = FakeTelegram()
    broadcasts = [send(limiter, api, f"b{i}", 1000 + i) for i in range(6)]
    await settle()
    assert api.sent == ["b0"] and limiter.broadcasts.waiting == 5
    reply = send(limiter, api, "reply", 42, handling=42)
    await settle()
    # Sent at once, ahead of the five broadcasts still waiting for the overall bucket.
    assert api.sent == ["b0", "reply"] and reply.done()
    assert limiter.broadcasts.waiting == 5
    for task in broadcasts:
        task.cancel()


async def test_replies_to_many_chats_are_not_limited_overall() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=1, broadcast_burst=1, chat_burst=1)
    api = FakeTelegram()
    replies = [send(limiter, api, f"r{i}", i, handling=i) for i in range(1, 101)]
    await asyncio.gather(*replies)
    assert len(api.sent) == 100 and limiter.sent == {"reply": 100, "broadcast": 0}


async def test_a_broadcast_waits_for_the_bucket_in_order_and_all_are_sent() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=50, broadcast_burst=2)
    api = FakeTelegram()
    tasks = [send(limiter, api, f"b{i}", 2000 + i) for i in range(8)]
    await settle()
    assert api.sent == ["b0", "b1"] and limiter.broadcasts.waiting == 6
    await asyncio.gather(*tasks)
    assert api.sent == [f"b{i}" for i in range(8)]  # first come, first sent
    assert limiter.sent == {"reply": 0, "broadcast": 8}


async def test_a_message_to_another_chat_while_handling_an_update_is_a_broadcast() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=5, broadcast_burst=1)
    api = FakeTelegram()
    first = send(limiter, api, "notice-1", 7, handling=42)
    second = send(limiter, api, "notice-2", 8, handling=42)
    await settle()
    assert api.sent == ["notice-1"] and limiter.broadcasts.waiting == 1
    await asyncio.gather(first, second)
    assert limiter.sent == {"reply": 0, "broadcast": 2}


async def test_in_one_chat_a_waiting_reply_goes_before_a_waiting_broadcast() -> None:
    limiter = SchoolRateLimiter(chat_per_second=20, chat_burst=1)
    api = FakeTelegram()
    await send(limiter, api, "r0", 5, handling=5)  # the chat's only token
    broadcast = send(limiter, api, "reminder", 5)
    await settle()
    reply = send(limiter, api, "r1", 5, handling=5)
    await settle()
    assert limiter.chat_bucket(5).waiting == 2
    await asyncio.gather(broadcast, reply)
    assert api.sent == ["r0", "r1", "reminder"]


async def test_answering_a_button_is_not_counted() -> None:
    limiter = SchoolRateLimiter(chat_per_second=0.001, chat_burst=1)
    api = FakeTelegram()
    await send(limiter, api, "r0", 5, handling=5)
    await asyncio.gather(*(send(limiter, api, f"a{i}", None, method="answerCallbackQuery") for i in range(5)))
    assert api.sent == ["r0", "a0", "a1", "a2", "a3", "a4"]


async def test_an_edit_answering_a_tap_in_a_private_chat_is_not_paced_but_honours_a_pause() -> None:
    limiter = SchoolRateLimiter(chat_per_second=0.001, chat_burst=1)
    api = FakeTelegram()
    await send(limiter, api, "r0", 5, handling=5)  # the chat's bucket is now empty
    edits = [send(limiter, api, f"e{i}", 5, method="editMessageText", handling=5) for i in range(3)]
    await asyncio.gather(*edits)
    assert api.sent == ["r0", "e0", "e1", "e2"]
    # A new message to the chat is still paced by its bucket.
    message = send(limiter, api, "m1", 5, handling=5)
    await settle()
    assert "m1" not in api.sent
    message.cancel()
    # Telegram's RetryAfter for an edit pauses the chat; the next edit waits for it.
    api.refuse["e3"] = [0.2]
    refused = send(limiter, api, "e3", 5, method="editMessageText", handling=5)
    await settle()
    follow = send(limiter, api, "e4", 5, method="editMessageText", handling=5)
    await settle()
    assert "e3" not in api.sent and "e4" not in api.sent
    await asyncio.gather(refused, follow)
    # Both went once the pause was over (a chat's updates are handled one at a time, so two edits of
    # one chat are not in flight together in the bot; their order here is not the point).
    assert sorted(api.sent[-2:]) == ["e3", "e4"] and api.attempts["e3"] == 2


async def test_edits_in_a_group_and_edits_sent_as_broadcasts_are_paced() -> None:
    limiter = SchoolRateLimiter(chat_per_second=0.001, chat_burst=1, group_per_minute=0.06)
    api = FakeTelegram()
    await send(limiter, api, "g0", -100, handling=-100)
    group_edit = send(limiter, api, "g1", -100, method="editMessageText", handling=-100)
    await send(limiter, api, "p0", 6)  # a broadcast to chat 6 empties its bucket
    broadcast_edit = send(limiter, api, "p1", 6, method="editMessageText")
    await settle()
    assert api.sent == ["g0", "p0"]
    group_edit.cancel()
    broadcast_edit.cancel()


async def test_retry_after_for_one_chat_delays_only_that_chat() -> None:
    limiter = SchoolRateLimiter()
    api = FakeTelegram()
    api.refuse["slow"] = [0.3]
    refused = send(limiter, api, "slow", 7, handling=7)
    await settle()
    assert api.attempts["slow"] == 1 and limiter.pauses.left(7, False) > 0
    # Another chat's reply and a broadcast go on while chat 7 waits.
    await send(limiter, api, "other", 8, handling=8)
    await send(limiter, api, "notice", 9)
    assert api.sent == ["other", "notice"] and not refused.done()
    # A second message to chat 7 waits for the pause too.
    same_chat = send(limiter, api, "slow-2", 7, handling=7)
    await settle()
    assert "slow-2" not in api.sent
    await asyncio.gather(refused, same_chat)
    assert api.sent == ["other", "notice", "slow", "slow-2"] and api.attempts["slow"] == 2
    assert limiter.retries == 1


async def test_a_broadcast_refused_pauses_the_broadcasts_not_the_replies() -> None:
    limiter = SchoolRateLimiter()
    api = FakeTelegram()
    api.refuse["b0"] = [0.3]
    first = send(limiter, api, "b0", 100)
    await settle()
    second = send(limiter, api, "b1", 101)
    reply = send(limiter, api, "reply", 5, handling=5)
    await settle()
    assert api.sent == ["reply"] and reply.done() and not second.done()
    await asyncio.gather(first, second)
    assert api.sent == ["reply", "b0", "b1"]


async def test_a_global_retry_after_delays_every_chat() -> None:
    limiter = SchoolRateLimiter()
    api = FakeTelegram()
    api.refuse["commands"] = [0.3]
    refused = send(limiter, api, "commands", None, method="setMyCommands")
    await settle()
    assert limiter.pauses.left(None, False) > 0
    reply = send(limiter, api, "reply", 5, handling=5)
    broadcast = send(limiter, api, "notice", 6)
    await settle()
    assert api.sent == [] and not reply.done() and not broadcast.done()
    await asyncio.gather(refused, reply, broadcast)
    assert sorted(api.sent) == ["commands", "notice", "reply"]


async def test_refusals_of_several_chats_at_once_pause_the_whole_bot() -> None:
    limiter = SchoolRateLimiter()
    api = FakeTelegram()
    for label in ("x", "y", "z"):
        api.refuse[label] = [0.3]
    tasks = [send(limiter, api, label, chat, handling=chat) for label, chat in (("x", 1), ("y", 2), ("z", 3))]
    await settle()
    assert limiter.pauses.left(99, False) > 0  # a chat never refused waits as well
    await asyncio.gather(*tasks)
    assert sorted(api.sent) == ["x", "y", "z"]


async def test_nothing_is_dropped_however_often_telegram_refuses() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=200, broadcast_burst=10)
    api = FakeTelegram()
    for i in range(0, 40, 8):
        api.refuse[f"b{i}"] = [0.01, 0.01]
    results = await asyncio.gather(*(send(limiter, api, f"b{i}", 3000 + i) for i in range(40)))
    assert sorted(api.sent) == sorted(f"b{i}" for i in range(40))
    assert [r["ok"] for r in results] == [f"b{i}" for i in range(40)]


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    limiter = SchoolRateLimiter(broadcast_per_second=2, broadcast_burst=1)
    api = FakeTelegram()
    first = send(limiter, api, "b0", 1)
    second = send(limiter, api, "b1", 2)
    third = send(limiter, api, "b2", 3)
    await settle()
    second.cancel()
    await settle()
    assert limiter.broadcasts.waiting == 1
    await asyncio.gather(first, third)
    assert api.sent == ["b0", "b2"]
