"""The webhook server against what a stranger can send: the secret is checked before the body is read,
bodies are capped, anything but an update is a 400 (never a 500 or a traceback), the path is
WEBHOOK_URL's, and /healthz fails when Telegram's webhook is not ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.webhook import MAX_BODY_BYTES, SECRET_HEADER, parse_update, start_server, webhook_path
from tests.chat import Harness
from tests.factories import make_world

SECRET = "s3cret-token_1"
RIGHT = {SECRET_HEADER: SECRET}
HOOK_URL = "https://bot.example.vn/hooks/pgd-nha-be"


@pytest.fixture
def backend() -> str:
    """Webhook behaviour does not depend on the database: SQLite only."""
    return "sqlite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(harness: Harness, **kwargs: Any) -> AsyncIterator[str]:
    """The webhook server on a free local port; yields its base URL."""
    app = harness.app
    assert app is not None
    started = not app.running  # the harness may run the application already
    if started:
        await app.start()
    port = free_port()
    server = await start_server(app, SECRET, "127.0.0.1", port, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        if started:
            await app.stop()


async def raw(base: str, head: str, body: bytes = b"") -> int:
    """Send raw HTTP (headers maybe announcing more than is sent) and return the response's status."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        # A safety net only: the answer comes at once, or the test fails instead of hanging.
        status_line = await asyncio.wait_for(reader.readline(), 30)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def post_head(path: str, length: int, secret: str | None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}")
    if secret is not None:
        lines.append(f"{SECRET_HEADER}: {secret}")
    return "\n".join(lines) + "\n"


async def wait_for(condition: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.levelno < logging.ERROR, record.getMessage()
        assert record.exc_info is None, record.getMessage()


async def test_the_secret_is_checked_before_the_body_is_read(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(harness) as base:
        # 90 MB announced, nothing sent: the answer comes from the headers alone.
        assert await raw(base, post_head("/telegram", 90_000_000, None)) == 403
        assert await raw(base, post_head("/telegram", 90_000_000, "wrong")) == 403
        # The right secret, but more than the cap announced: 413, still without reading.
        assert await raw(base, post_head("/telegram", 90_000_000, SECRET)) == 413
        assert await raw(base, post_head("/telegram", MAX_BODY_BYTES + 1, SECRET)) == 413
        # Sent for real: refused all the same.
        async with httpx.AsyncClient() as client:
            body = b'{"update_id": 1, "x": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
            with contextlib.suppress(httpx.TransportError):  # the server may close while we still send
                response = await client.post(f"{base}/telegram", content=body, headers=RIGHT)
                assert response.status_code == 413
    no_traceback(caplog)


async def test_a_chunked_body_beyond_the_cap_is_refused(harness: Harness) -> None:
    await make_world(harness.services)
    teacher = harness.person("teacher")
    async with serving(harness) as base:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = [
            "POST /telegram HTTP/1.1",
            "Host: 127.0.0.1",
            "Transfer-Encoding: chunked",
            f"{SECRET_HEADER}: {SECRET}",
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        chunk = b"a" * 65536
        with contextlib.suppress(ConnectionError):
            for _ in range(MAX_BODY_BYTES // len(chunk) + 4):
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
        writer.close()
        assert status_line == b"" or int(status_line.split()[1]) == 400  # refused, connection closed
    assert teacher.texts() == []


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b"1",
        b'"update"',
        b"{}",
        b'{"update_id": "5"}',
        b'{"update_id": true}',
        b'{"update_id": 5.5}',
        b"{not json",
        b"",
        b"\xff\xfe{}",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"update_id": 7, "x": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
        b'{"update_id": 8, "message": "not a message"}',
        b'{"update_id": 9, "message": {"chat": []}}',
    ],
    ids=lambda body: body[:24].decode("latin-1"),
)
async def test_anything_but_an_update_is_400(
    harness: Harness, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(harness) as base, httpx.AsyncClient() as client:
        response = await client.post(f"{base}/telegram", content=body, headers=RIGHT)
    assert response.status_code == 400
    assert b"Traceback" not in response.content
    no_traceback(caplog)


def test_parse_update_accepts_an_update() -> None:
    update = {"update_id": 3, "message": {"message_id": 1, "text": "/me"}}
    assert parse_update(json.dumps(update).encode()) == update


async def test_the_path_is_webhook_urls(harness: Harness) -> None:
    await make_world(harness.services)
    teacher = harness.person("teacher")
    assert webhook_path(HOOK_URL) == "/hooks/pgd-nha-be"
    assert webhook_path("https://bot.example.vn") == "/"
    async with serving(harness, webhook_url=HOOK_URL) as base, httpx.AsyncClient() as client:
        update = harness.api.incoming_message(teacher.user, text="/me")
        assert (await client.post(f"{base}/telegram", json=update, headers=RIGHT)).status_code == 404
        assert (await client.post(f"{base}/hooks/pgd-nha-be", json=update, headers=RIGHT)).status_code == 200
        await wait_for(lambda: len(teacher.texts()) == 1)
        # Only POST: a browser opening the URL learns nothing.
        assert (await client.get(f"{base}/hooks/pgd-nha-be", headers=RIGHT)).status_code == 405
    assert "Đỗ Thị Hoa" in teacher.last_text()


async def test_health_fails_when_telegrams_webhook_is_not_ours(harness: Harness) -> None:
    api = harness.api
    registered = {"url": "https://elsewhere.example/hook"}

    async def get_webhook_info(params: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
        return {"url": registered["url"], "has_custom_certificate": False, "pending_update_count": 0}

    api._m_getwebhookinfo = get_webhook_info  # type: ignore[attr-defined]  # the fake API lacks it

    def asked() -> int:
        return sum(1 for call in api.calls if call.method == "getWebhookInfo")

    async with (
        serving(harness, webhook_url=HOOK_URL, check_seconds=3600) as base,
        httpx.AsyncClient() as client,
    ):
        health = await client.get(f"{base}/healthz")
        assert health.status_code == 503
        report = health.json()
        assert report["status"] == "degraded" and report["webhook"] == "error"
        assert report["database"] == "ok"
        assert any("elsewhere.example" in problem for problem in report["problems"])
        # Remembered: probing again does not ask Telegram again.
        for _ in range(5):
            assert (await client.get(f"{base}/healthz")).status_code == 503
        assert asked() == 1
    registered["url"] = HOOK_URL
    async with (
        serving(harness, webhook_url=HOOK_URL, check_seconds=0) as base,
        httpx.AsyncClient() as client,
    ):
        health = await client.get(f"{base}/healthz")
        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "database": "ok",
            "running": True,
            "webhook": "ok",
            "problems": [],
        }
        # Telegram forgets the webhook (another process called deleteWebhook): health says so.
        registered["url"] = ""
        health = await client.get(f"{base}/healthz")
        assert health.status_code == 503 and "(none)" in health.json()["problems"][0]


async def test_health_when_telegram_cannot_be_asked(harness: Harness) -> None:
    # The fake API has no getWebhookInfo: the call fails like an unreachable Bot API would.
    async with serving(harness, webhook_url=HOOK_URL) as base, httpx.AsyncClient() as client:
        health = await client.get(f"{base}/healthz")
    assert health.status_code == 503
    assert health.json()["problems"][0].startswith("getWebhookInfo failed")
