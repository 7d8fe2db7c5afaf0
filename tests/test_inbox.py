"""The update inbox (issue 18), in-process on SQLite and PostgreSQL: updates stored before Telegram is
told, handled from the inbox and marked; unfinished ones handled first on start, a poison update given
up after its second try; the webhook stores before its 200 and a standby refuses; /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select
from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

from bot import inbox as inbox_module
from bot import metrics as metrics_module
from bot.app import build_application
from bot.fakeapi import FakeBotApi
from bot.inbox import Inbox
from bot.leader import Node
from bot.logging_setup import JsonFormatter, RedactingFilter
from bot.webhook import SECRET_HEADER, start_server
from storage.enums import InboxStatus
from storage.models import UpdateInbox
from storage.services import Services
from storage.services.inbox import Received
from tests.chat import fake_request, make_settings
from tests.factories import TELEGRAM_IDS, make_world
from tests.test_bot_wiring import free_port, wait_for

SECRET = "s3cret-token_1"


def make_node(services: Services, db_url: str, api: FakeBotApi, **settings: Any) -> Node:
    values: dict[str, Any] = {"leader_lease_seconds": 3, "reminder_first_run_seconds": 3600, **settings}
    build = partial(
        build_application,
        request=fake_request(api),
        get_updates_request=fake_request(api),
        rate_limiter=AIORateLimiter(overall_max_rate=0, group_max_rate=0),
    )
    return Node(make_settings(db_url, **values), services, build=build, webhook="webhook_url" in settings)


@contextlib.asynccontextmanager
async def running(node: Node) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(node.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def rows(services: Services) -> dict[int, UpdateInbox]:
    async with services.sessionmaker() as session:
        return {r.update_id: r for r in await session.scalars(select(UpdateInbox))}


async def handled(services: Services, *ids: int) -> None:
    async def check() -> bool:
        found = await rows(services)
        return all(i in found and found[i].status == InboxStatus.HANDLED for i in ids)

    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"updates {ids} not handled: {await rows(services)}")


def bot_texts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [str(m["text"]) for m in api.chats.get(chat_id, []) if m["from"]["is_bot"] and "text" in m]


async def test_receive_keeps_each_update_once_and_recover_gives_up_poison(services: Services) -> None:
    inbox = services.inbox
    assert await inbox.receive([Received(1, 10, {"update_id": 1}), Received(2, 10, {"update_id": 2})]) == [
        1,
        2,
    ]
    # Telegram delivers 2 again (not confirmed yet) with a new one: only 3 is new.
    assert await inbox.receive([Received(2, 10, {"update_id": 2}), Received(3, 11, {"update_id": 3})]) == [3]
    await inbox.started(1)
    await inbox.handled(1)
    await inbox.started(2)
    await inbox.started(2)  # started twice, never finished: it ended the process twice
    await inbox.started(3)  # in progress when the process died: tried once more
    pending, failed = await inbox.recover()
    assert [u.update_id for u in pending] == [3] and [u.update_id for u in failed] == [2]
    found = await rows(services)
    assert found[1].status == InboxStatus.HANDLED and found[1].payload is None
    assert found[2].status == InboxStatus.FAILED
    summary = await inbox.summary()
    assert (summary.pending, summary.handling, summary.failed, summary.last_handled_id) == (0, 1, 1, 1)


async def test_polling_stores_before_confirming_and_handles_from_the_inbox(
    services: Services, db_url: str
) -> None:
    await make_world(services)
    api = FakeBotApi()
    teacher = api.user(TELEGRAM_IDS["teacher"], "Hoa")
    # Left by a process that died: one never started, one started once, one started twice (poison).
    left = [api.incoming_message(teacher, text=text) for text in ("/me", "/help", "/cancel")]
    await services.inbox.receive([Received(u["update_id"], teacher["id"], u) for u in left])
    await services.inbox.started(left[1]["update_id"])
    await services.inbox.started(left[2]["update_id"])
    await services.inbox.started(left[2]["update_id"])
    node = make_node(services, db_url, api)
    async with running(node):
        await handled(services, left[0]["update_id"], left[1]["update_id"])
        fresh = api.incoming_message(teacher, text="/me")
        api.push_update(fresh)
        await handled(services, fresh["update_id"])
        assert node.role == "leader"

        def confirmed() -> bool:  # the next getUpdates (after the poll's short gathering pause) confirms it
            offsets = [int(c.params.get("offset") or 0) for c in api.calls if c.method == "getUpdates"]
            return fresh["update_id"] + 1 in offsets

        await wait_for(confirmed)
    texts = bot_texts(api, teacher["id"])
    # The unfinished ones first, in order, then the new one; the poison one only said it failed.
    assert "Đỗ Thị Hoa" in texts[1] and "/handover" in texts[2] and "Đỗ Thị Hoa" in texts[3]
    assert "Có lỗi xảy ra" in texts[0] and len(texts) == 4
    assert (await rows(services))[left[2]["update_id"]].status == InboxStatus.FAILED
    assert node.role == "stopped"
    lease = await services.lease.current()
    assert lease is not None and lease.holder == node.name  # released: ended, not handed to anyone


async def test_webhook_leader_stores_before_200_standby_refuses_health_says_who(
    services: Services, db_url: str
) -> None:
    await make_world(services)
    api = FakeBotApi()
    settings = {"webhook_url": "https://bot.example.org/telegram", "webhook_secret_token": SECRET}

    async def webhook_info(params: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
        url = next((c.params["url"] for c in api.calls if c.method == "setWebhook"), "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    api._m_getwebhookinfo = webhook_info  # type: ignore[attr-defined]
    leader, standby = (
        make_node(services, db_url, api, **settings),
        make_node(services, db_url, api, **settings),
    )
    ports = free_port(), free_port()
    servers = [
        await start_server(None, SECRET, "127.0.0.1", port, webhook_url=settings["webhook_url"], node=node)
        for node, port in zip((leader, standby), ports, strict=True)
    ]
    teacher = api.user(TELEGRAM_IDS["teacher"], "Hoa")
    try:
        async with running(leader), httpx.AsyncClient(trust_env=False) as client:
            await wait_for(lambda: leader.accepting, 10)
            standing = asyncio.Event()
            standby_task = asyncio.create_task(standby.run(standing))
            await wait_for(lambda: standby.role == "standby", 10)
            update = api.incoming_message(teacher, text="/me")
            headers = {SECRET_HEADER: SECRET}
            refused = await client.post(f"http://127.0.0.1:{ports[1]}/telegram", json=update, headers=headers)
            assert refused.status_code == 503  # the standby takes nothing: Telegram retries
            taken = await client.post(f"http://127.0.0.1:{ports[0]}/telegram", json=update, headers=headers)
            assert taken.status_code == 200
            assert update["update_id"] in await rows(services)  # stored before the 200
            await handled(services, update["update_id"])
            again = await client.post(f"http://127.0.0.1:{ports[0]}/telegram", json=update, headers=headers)
            assert again.status_code == 200  # a retried delivery: answered, not handled twice

            answer = await client.get(f"http://127.0.0.1:{ports[0]}/healthz")
            health = answer.json()
            assert answer.status_code == 200, health
            assert health["role"] == "leader" and health["database"] == "ok" and health["webhook"] == "ok"
            assert health["lease"]["holder"] == leader.name
            assert health["last_update"]["id"] == update["update_id"]
            assert health["job_queue"]["running"] and health["updates_handled"] == 1
            assert any(job["name"] == "round_reminders" for job in health["job_queue"]["jobs"])
            other = await client.get(f"http://127.0.0.1:{ports[1]}/healthz")
            assert other.status_code == 200 and other.json()["role"] == "standby"
            assert (await client.get(f"http://127.0.0.1:{ports[1]}/healthz/leader")).status_code == 503
            assert (await client.get(f"http://127.0.0.1:{ports[0]}/healthz/leader")).status_code == 200
            metrics = await client.get(f"http://127.0.0.1:{ports[0]}/metrics")
            if metrics_module.available():
                assert metrics.status_code == 200 and "schoolbot_updates_handled_total 1.0" in metrics.text
                assert "schoolbot_leader 1.0" in metrics.text
            else:
                assert metrics.status_code == 404
            standing.set()
            await standby_task
    finally:
        for server in servers:
            server.stop()
    assert len(bot_texts(api, teacher["id"])) == 1
    assert any(c.method == "setWebhook" for c in api.calls)


async def test_json_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter(["123456:TEST-TOKEN"]))
    handler.setFormatter(JsonFormatter())
    record = logging.LogRecord(
        "bot",
        logging.INFO,
        __file__,
        1,
        "call %s with text='%s' 0903123456",
        ("123456:TEST-TOKEN", "An"),
        None,
    )
    assert handler.filter(record)
    line = json.loads(handler.format(record))
    assert line["level"] == "INFO" and line["logger"] == "bot"
    assert "TEST-TOKEN" not in line["message"] and "An'" not in line["message"]
    assert "0903123456" not in line["message"] and "[redacted]" in line["message"]


async def test_polled_payloads_are_stored_as_telegram_sent_them() -> None:
    """The inbox keeps getUpdates' payloads as they came (no `Update.to_dict()` of each parsed update):
    a field this PTB does not know survives to the stored payload, and the update is parsed once."""

    class Recording:
        def __init__(self) -> None:
            self.received: list[Received] = []

        async def receive(self, received: list[Received], fence: object) -> list[int]:
            self.received.extend(received)
            return [r.update_id for r in received]

    payload = {
        "update_id": 7,
        "message": {
            "message_id": 3,
            "date": 1_700_000_000,
            "chat": {"id": 42, "type": "private"},
            "from": {"id": 42, "is_bot": False, "first_name": "Hoa"},
            "text": "/me",
            "a_field_of_a_later_bot_api": {"x": 1},
        },
    }
    queue: asyncio.Queue[object] = asyncio.Queue()
    application = cast(Any, SimpleNamespace(bot=None, update_queue=queue))
    service = Recording()
    inbox = Inbox(application, cast(Any, service))
    assert await inbox.receive([payload]) == [7]
    assert [(r.update_id, r.chat_id, r.payload) for r in service.received] == [(7, 42, payload)]
    update = queue.get_nowait()
    assert isinstance(update, Update) and update.message is not None and update.message.text == "/me"


@pytest.mark.parametrize("retry_after", [3, timedelta(seconds=3)], ids=["seconds", "timedelta"])
async def test_polling_waits_as_long_as_telegram_asks(
    monkeypatch: pytest.MonkeyPatch, retry_after: int | timedelta
) -> None:
    """A 429 on getUpdates waits what Telegram said, whether PTB gives seconds or (PTB_TIMEDELTA, its
    next major version) a timedelta — the timedelta used to be waited as 5 s whatever it said."""
    waits: list[float] = []
    calls = 0

    class Bot:
        async def get_update_payloads(self, **_: Any) -> list[dict[str, Any]]:
            nonlocal calls
            calls += 1
            if calls == 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # PTB's deprecation of whole seconds
                    raise RetryAfter(retry_after)
            raise asyncio.CancelledError

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(inbox_module.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await inbox_module.poll_updates(cast(Any, SimpleNamespace(bot=Bot())), cast(Any, None))
    assert waits == [3.0]
