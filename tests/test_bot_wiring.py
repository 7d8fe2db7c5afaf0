"""The application around the handlers: polling with offsets, per-chat ordering with concurrency
across chats, the error handler, the webhook's secret token and health endpoint, public commands."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest

from bot.app import build_application
from bot.settings import SettingsError
from bot.webhook import SECRET_HEADER, start_server
from tests.chat import make_settings
from tests.factories import make_world


async def wait_for(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_real_polling_loop_honours_offsets(services, harness):
    await make_world(services)
    app, api = harness.app, harness.api
    teacher = harness.person("teacher")
    # The harness runs the application already (as production does).
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        first = api.incoming_message(teacher.user, text="/me")
        api.push_update(first)
        await wait_for(lambda: len(teacher.texts()) >= 1)
        second = api.incoming_message(teacher.user, text="/help")
        api.push_update(second)
        await wait_for(lambda: len(teacher.texts()) >= 2)
    finally:
        await app.updater.stop()
    offsets = [int(c.params.get("offset") or 0) for c in api.calls if c.method == "getUpdates"]
    assert first["update_id"] + 1 in offsets and second["update_id"] + 1 in offsets
    assert "Đỗ Thị Hoa" in teacher.texts()[0]  # each update handled once, in order
    assert len(teacher.texts()) == 2


async def test_chats_run_concurrently_but_each_chat_in_order(services, harness):
    await make_world(services)
    app, api = harness.app, harness.api
    api.latency = 0.05
    teacher, principal = harness.person("teacher"), harness.person("principal")
    # The harness runs the application already (as production does).
    try:
        for person in (teacher, principal):
            for text in ("/me", "/help", "/cancel"):
                await app.update_queue.put(
                    __import__("telegram").Update.de_json(
                        api.incoming_message(person.user, text=text), app.bot
                    )
                )
        await wait_for(lambda: len(teacher.texts()) == 3 and len(principal.texts()) == 3)
    finally:
        await app.update_queue.join()
    sends = [int(c.params["chat_id"]) for c in api.calls if c.method == "sendMessage"]
    # Each chat's replies in the order of its messages …
    assert "Đỗ Thị Hoa" in teacher.texts()[0] and "Không có việc gì" in teacher.texts()[2]
    assert "Ngô Văn Hải" in principal.texts()[0] and "Không có việc gì" in principal.texts()[2]
    # … while the two chats were served side by side, not one after the other.
    assert sends.index(principal.id) < len(sends) - 1 - sends[::-1].index(teacher.id)


async def test_error_handler_tells_the_person_and_logs_no_personal_data(
    services, harness, caplog, monkeypatch
):
    await make_world(services)
    teacher = harness.person("teacher")

    secret = "Nguyễn Văn An 0903123456"  # personal data inside an exception message

    async def broken(_user_id: int):
        raise RuntimeError(secret)

    monkeypatch.setattr(services.staff, "by_telegram_id", broken)
    with caplog.at_level(logging.ERROR):
        await teacher.send("/me")
    assert "vẫn được giữ nguyên" in teacher.last_text()
    assert "RuntimeError" in caplog.text
    assert "Nguyễn" not in caplog.text and "0903123456" not in caplog.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_webhook_checks_the_secret_token_and_serves_health(services, harness):
    await make_world(services)
    app, api = harness.app, harness.api
    teacher = harness.person("teacher")
    port = free_port()
    # The harness runs the application already (as production does).
    server = await start_server(app, "s3cret-token_1", "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/telegram"
        async with httpx.AsyncClient() as client:
            update = api.incoming_message(teacher.user, text="/me")
            assert (await client.post(url, json=update)).status_code == 403
            wrong = {SECRET_HEADER: "wrong"}
            assert (await client.post(url, json=update, headers=wrong)).status_code == 403
            assert teacher.texts() == []
            right = {SECRET_HEADER: "s3cret-token_1"}
            assert (await client.post(url, json=update, headers=right)).status_code == 200
            await wait_for(lambda: len(teacher.texts()) == 1)
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200 and health.json()["database"] == "ok"
    finally:
        server.stop()
    assert "Đỗ Thị Hoa" in teacher.last_text()


async def test_post_init_publishes_public_commands(services, harness):
    await harness.app.post_init(harness.app)
    scopes = list(harness.api.commands)
    assert any('"default"' in key for key in scopes)
    commands = next(iter(harness.api.commands.values()))
    assert [c["command"] for c in commands][:1] == ["start"]


def test_missing_token_fails_with_one_clear_line(services, db_url):
    settings = make_settings(db_url, telegram_bot_token=None)
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        build_application(settings, services)
