"""The Bot API client (`bot.botapi_request.BotApiRequest`) against a real HTTP server on 127.0.0.1:
what `telegram.Bot` sends and gets back through it, timeouts, failures and status codes mapped as PTB
maps them, connections kept alive, proxies from the environment."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.botapi_request import BotApiRequest
from bot.ratelimit import build_request
from tests.chat import make_settings

TOKEN = "123456:LOOPBACK"
Answer = Callable[[dict[str, Any]], Awaitable[web.Response]]
ME = {"id": 123456, "is_bot": True, "first_name": "Bot", "username": "loop_bot"}


def message(chat_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "message_id": 7,
        "date": 1_765_000_000,
        "chat": {"id": chat_id, "type": "private", "first_name": "Lan"},
        "from": ME,
        **extra,
    }


@dataclass
class Api:
    """What the server saw, and how it answers a method (default: success)."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    connections: set[int] = field(default_factory=set)
    paths: list[str] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)

    async def download(self, request: web.Request) -> web.Response:
        self.paths.append(str(request.url))
        return web.Response(body=b"XLSX" + request.match_info["path"].encode())

    async def handle(self, request: web.Request) -> web.Response:
        self.connections.add(id(request.transport))
        self.paths.append(str(request.url))
        method = request.match_info["method"]
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if isinstance(value, web.FileField):
                self.files[name] = (value.filename, value.content_type, value.file.read())
            else:
                fields[name] = value
        self.seen.append((method, fields))
        if method in self.answers:
            return await self.answers[method](fields)
        if method == "getMe":
            result: Any = ME
        elif method == "getFile":
            result = {"file_id": fields["file_id"], "file_unique_id": "u1", "file_path": "documents/ds.xlsx"}
        elif method == "getUpdates":
            await asyncio.sleep(float(fields.get("timeout", 0)))  # a long poll with nothing new
            result = []
        else:
            result = message(int(fields.get("chat_id", 0)), text=fields.get("text") or fields.get("caption"))
        return web.json_response({"ok": True, "result": result})


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, str]]:
    state = Api()
    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", state.handle)
    app.router.add_get("/file/bot{token}/{path:.*}", state.download)
    async with TestServer(app, host="127.0.0.1") as server:
        yield state, str(server.make_url(""))


def error(status: int, description: str, **parameters: Any) -> Answer:
    async def answer(_fields: dict[str, Any]) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    return answer


def bot_for(base: str, request: BotApiRequest | None = None) -> Bot:
    request = request or build_request(make_settings("sqlite+aiosqlite://"))
    return Bot(
        TOKEN,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=request,
        get_updates_request=BotApiRequest(2),
    )


async def test_method_call_with_keyboard(api: tuple[Api, str]) -> None:
    state, base = api
    async with bot_for(base) as bot:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Hôm nay", callback_data="d:0")]])
        sent = await bot.send_message(880_000_001, "Chọn ngày tiêm", reply_markup=keyboard)
    assert sent.text == "Chọn ngày tiêm" and sent.chat.id == 880_000_001
    method, fields = state.seen[-1]
    assert method == "sendMessage"
    assert fields["chat_id"] == "880000001" and fields["text"] == "Chọn ngày tiêm"
    assert json.loads(fields["reply_markup"]) == {
        "inline_keyboard": [[{"text": "Hôm nay", "callback_data": "d:0"}]]
    }


async def test_document_upload_is_multipart_with_the_file_name_intact(api: tuple[Api, str]) -> None:
    state, base = api
    content = b"PK\x03\x04" + bytes(range(256)) * 40
    async with bot_for(base) as bot:
        await bot.send_document(880_000_001, content, filename="Báo cáo tháng 11.xlsx", caption="Báo cáo")
    method, fields = state.seen[-1]
    assert method == "sendDocument" and fields["caption"] == "Báo cáo" and fields["chat_id"] == "880000001"
    [(filename, _content_type, received)] = state.files.values()
    assert filename == "Báo cáo tháng 11.xlsx"
    assert received == content


async def test_file_download_is_a_get(api: tuple[Api, str]) -> None:
    state, base = api
    async with bot_for(base) as bot:
        file = await bot.get_file("f1")
        assert bytes(await file.download_as_bytearray()) == b"XLSXdocuments/ds.xlsx"
    assert state.paths[-1].endswith(f"/file/bot{TOKEN}/documents/ds.xlsx")


async def test_slow_answer_is_timed_out(api: tuple[Api, str]) -> None:
    state, base = api

    async def slow(_fields: dict[str, Any]) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    state.answers["answerCallbackQuery"] = slow
    async with bot_for(base, BotApiRequest(4, read_timeout=0.3)) as bot:
        with pytest.raises(TimedOut):
            await bot.answer_callback_query("q1")
        with pytest.raises(TimedOut):  # a per-call timeout too
            await bot.answer_callback_query("q2", read_timeout=0.2)


async def test_long_poll_longer_than_the_read_timeout_is_not_cut(api: tuple[Api, str]) -> None:
    _state, base = api
    # PTB adds getUpdates' `timeout` to the read timeout: a 1 s poll with a 0.3 s read timeout is fine.
    request = BotApiRequest(2, read_timeout=0.3)
    async with bot_for(base, request) as bot:
        assert await bot.get_updates(timeout=1) == ()


async def test_pool_wait_is_bounded(api: tuple[Api, str]) -> None:
    state, base = api

    async def slow(_fields: dict[str, Any]) -> web.Response:
        await asyncio.sleep(1.5)
        return web.json_response({"ok": True, "result": True})

    state.answers["answerCallbackQuery"] = slow
    request = BotApiRequest(1, pool_timeout=0.2, connect_timeout=0.2)
    async with bot_for(base, request) as bot:
        holder = asyncio.create_task(bot.answer_callback_query("q1"))
        await asyncio.sleep(0.1)  # the only connection is taken
        with pytest.raises(TimedOut):
            await bot.send_message(1, "x")
        assert await holder is True


async def test_refused_connection_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    request = BotApiRequest(2)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as caught:
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
        assert not isinstance(caught.value, TimedOut)
    finally:
        await request.shutdown()


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (400, error(400, "Bad Request: message is not modified"), BadRequest),
        (403, error(403, "Forbidden: bot was blocked by the user"), Forbidden),
        (409, error(409, "Conflict: terminated by other getUpdates request"), Conflict),
        (502, None, NetworkError),
    ],
)
async def test_status_codes_mapped_as_ptb_maps_them(
    api: tuple[Api, str], status: int, answer: Any, expected: type[Exception]
) -> None:
    state, base = api

    async def bad_gateway(_fields: dict[str, Any]) -> web.Response:
        return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")

    state.answers["sendMessage"] = answer or bad_gateway
    async with bot_for(base) as bot:
        with pytest.raises(expected) as caught:
            await bot.send_message(1, "x")
    assert type(caught.value) is expected
    if answer is not None:  # Telegram's description is the message (PTB may drop its prefix)
        assert any(
            words in str(caught.value).lower()
            for words in ("message is not modified", "blocked by the user", "terminated by other getupdates")
        )


@pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
async def test_too_many_requests_is_retry_after_with_its_seconds(api: tuple[Api, str]) -> None:
    state, base = api
    state.answers["sendMessage"] = error(429, "Too Many Requests: retry after 7", retry_after=7)
    async with bot_for(base) as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(1, "x")
    assert caught.value.retry_after in (7, timedelta(seconds=7))


async def test_connections_are_kept_alive_and_the_pool_bounds_them(api: tuple[Api, str]) -> None:
    state, base = api
    async with bot_for(base, BotApiRequest(4)) as bot:
        for i in range(20):
            await bot.send_message(1, f"m{i}")
        assert len(state.connections) == 1  # one after another: one connection, reused
        await asyncio.gather(*(bot.send_message(1, f"c{i}") for i in range(40)))
    assert len(state.connections) <= 4


async def test_reinitialised_after_shutdown(api: tuple[Api, str]) -> None:
    _state, base = api
    request = BotApiRequest(2)
    bot = bot_for(base, request)
    async with bot:
        await bot.send_message(1, "a")
    with pytest.raises(NetworkError, match="not initialized"):  # as HTTPXRequest after shutdown
        await request.post(f"{base}/bot{TOKEN}/getMe")
    async with bot:
        assert (await bot.send_message(1, "b")).text == "b"


async def test_proxy_from_the_environment(api: tuple[Api, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, base = api
    monkeypatch.setenv("HTTP_PROXY", base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with bot_for("http://api.telegram.invalid") as bot:
        assert (await bot.send_message(1, "qua proxy")).text == "qua proxy"
    assert state.paths[-1].startswith("http://api.telegram.invalid/bot")


async def test_build_request_pool_is_the_setting() -> None:
    request = build_request(make_settings("sqlite+aiosqlite://", bot_api_connections=64))
    assert isinstance(request, BotApiRequest)
    assert request._sender.connections == 64  # type: ignore[attr-defined]
    updates = build_request(make_settings("sqlite+aiosqlite://"), connections=2)  # getUpdates' (bot.app)
    assert updates._sender.connections == 2  # type: ignore[attr-defined]
