"""Stopping cleanly (issue 18): on SIGTERM the leader stops taking updates, lets a report being built
finish within SHUTDOWN_TIMEOUT_SECONDS or interrupts it and tells the person, and stops in bounded time.
(The update in progress completing is shown with real processes in tests/test_leader.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.fakeapi import JSON, FakeBotApi
from bot.report_jobs import running_reports
from storage.services import Services
from tests.factories import TELEGRAM_IDS
from tests.reports_world import make_report_world
from tests.test_inbox import handled, make_node, running
from tests.test_report_flow import DISTRICT, ROUND, SKIP_NUMBER, WHOLE_DISTRICT

BOUND = 60.0  # seconds: a bound for waits, not a measurement


def tap(api: FakeBotApi, user: JSON, label: str) -> int:
    for message in reversed(api.chats.get(user["id"], [])):
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label:
                    update = api.callback_query(user, message, button["callback_data"])
                    api.push_update(update)
                    return int(update["update_id"])
    raise AssertionError(f"no button {label!r}")


def say(api: FakeBotApi, user: JSON, text: str) -> int:
    update = api.incoming_message(user, text=text)
    api.push_update(update)
    return int(update["update_id"])


async def ask_district_report(services: Services, api: FakeBotApi, officer: JSON) -> None:
    await handled(services, say(api, officer, "/report"))
    for label in (DISTRICT, WHOLE_DISTRICT, ROUND, SKIP_NUMBER):
        await handled(services, tap(api, officer, label))


async def report_started(node: Any) -> None:
    for _ in range(int(BOUND / 0.02)):
        if node.application is not None and running_reports(node.application):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no report being built")


def last_text(api: FakeBotApi, chat_id: int) -> str:
    texts = [m["text"] for m in api.chats.get(chat_id, []) if m["from"]["is_bot"] and "text" in m]
    return str(texts[-1])


@pytest.fixture
def report_executor() -> str:
    return "thread"  # what is tested is the bot's stop; the worker process has its own tests


async def test_a_report_still_building_at_the_timeout_is_interrupted_and_the_person_told(
    services: Services, db_url: str
) -> None:
    await make_report_world(services)
    never = asyncio.Event()

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        await never.wait()

    services.reports.build = hangs  # type: ignore[method-assign]
    api = FakeBotApi()
    officer = api.user(TELEGRAM_IDS["statistics_officer"], "Mai")
    node = make_node(services, db_url, api, shutdown_timeout_seconds=1.5)
    async with running(node) as stop:
        await ask_district_report(services, api, officer)
        await report_started(node)
        stop.set()  # what SIGTERM does
    assert node.role == "stopped"
    text = last_text(api, officer["id"])
    assert "Bot đang khởi động lại" in text and "Báo cáo tổng hợp của Phòng" in text
    assert not any("document" in m for m in api.chats[officer["id"]])


async def test_a_report_that_finishes_within_the_timeout_is_sent_before_exit(
    services: Services, db_url: str
) -> None:
    await make_report_world(services)
    original = services.reports.build
    go = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await go.wait()  # still building when the stop begins
        return await original(*args, **kwargs)

    services.reports.build = slow  # type: ignore[method-assign]
    api = FakeBotApi()
    officer = api.user(TELEGRAM_IDS["statistics_officer"], "Mai")
    node = make_node(services, db_url, api, shutdown_timeout_seconds=30)
    async with running(node) as stop:
        await ask_district_report(services, api, officer)
        await report_started(node)
        stop.set()
        await asyncio.sleep(0.2)
        assert node.role == "stopping"
        late = say(api, officer, "/me")  # not taken while stopping
        go.set()
    assert any("document" in m for m in api.chats[officer["id"]])
    assert "Đã tạo xong báo cáo" in " ".join(
        m.get("text", "") for m in api.chats[officer["id"]] if m["from"]["is_bot"]
    )
    found = await services.inbox.summary()
    assert found.last_handled_id is not None and found.last_handled_id < late
