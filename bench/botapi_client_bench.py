"""CPU per Bot API request of the bot's HTTP client, against a server on 127.0.0.1.

    .venv/bin/python bench/botapi_client_bench.py [--requests 3000] [--concurrency 1,32] [--repeat 3]

A tiny aiohttp server in a child process (its CPU not counted) answers every `/bot<token>/<method>`
with a realistic `sendMessage` result (~0.8 KB). In this process each client sends `--requests` calls
through PTB's own `BaseRequest.post` (what `telegram.Bot` calls: encoding, the HTTP client, status
mapping, JSON parsing), `--concurrency` at a time, every call with a message text and an inline
keyboard as the bot's replies carry. Printed: CPU (user + system of this process) per request, and
wall time per request.

Clients:
- `httpx`: PTB's `HTTPXRequest` as `bot.ratelimit.build_request` built it before (keep-alive pool);
- `httpcore`: httpx's connection pool called directly (no httpx client layer), PTB's post around it;
- `aiohttp`: `bot.botapi_request.BotApiRequest` (what `build_request` returns now).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import time
from typing import Any

import httpcore
import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.request._requestparameter import RequestParameter

from bot.botapi_request import BotApiRequest

TOKEN = "123456:BENCH"
RESULT = {
    "ok": True,
    "result": {
        "message_id": 4242,
        "from": {"id": 123456, "is_bot": True, "first_name": "Bot Phòng GD&ĐT", "username": "school_bot"},
        "chat": {"id": 880000123, "first_name": "Nguyễn Thị", "last_name": "Lan", "type": "private"},
        "date": 1_765_000_000,
        "edit_date": 1_765_000_001,
        "text": "Chọn học sinh nhận máy (lô #12, trường THCS Nguyễn Trãi):\n" + "Trần Văn An — 7A\n" * 8,
        "reply_markup": {
            "inline_keyboard": [
                [{"text": f"Học sinh {i}", "callback_data": f"hv:{i}:{i * 7}"}] for i in range(8)
            ]
        },
    },
}


def serve(port: int, ready: Any) -> None:
    from aiohttp import web

    body = json.dumps(RESULT).encode()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def request_data() -> RequestData:
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"Học sinh {i}", callback_data=f"hv:{i}:{i * 7}")] for i in range(8)]
    )
    params = {
        "chat_id": 880000123,
        "message_id": 4242,
        "text": "Chọn học sinh nhận máy (lô #12, trường THCS Nguyễn Trãi):",
        "parse_mode": "HTML",
        "reply_markup": keyboard,
    }
    return RequestData([RequestParameter.from_input(k, v) for k, v in params.items()])


class HttpcoreRequest(BaseRequest):
    """httpx's pool without httpx: the layer below what HTTPXRequest calls."""

    def __init__(self, size: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(max_connections=size, max_keepalive_connections=size)

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        await self._pool.aclose()

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        body = httpx.QueryParams(request_data.json_parameters).__str__().encode() if request_data else b""
        timeouts = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 1.0}
        response = await self._pool.request(
            method,
            url,
            headers=[
                (b"User-Agent", self.USER_AGENT.encode()),
                (b"Content-Type", b"application/x-www-form-urlencoded"),
            ],
            content=body,
            extensions={"timeout": timeouts},
        )
        return response.status, response.content


def make(kind: str, size: int) -> BaseRequest:
    if kind == "httpx":
        # bot.ratelimit.build_request before this change
        return HTTPXRequest(
            connection_pool_size=size,
            pool_timeout=30.0,
            httpx_kwargs={
                "limits": httpx.Limits(
                    max_connections=size, max_keepalive_connections=size, keepalive_expiry=30
                )
            },
        )
    if kind == "httpcore":
        return HttpcoreRequest(size)
    if kind == "aiohttp":
        return BotApiRequest(size, pool_timeout=30.0)
    raise SystemExit(f"unknown client {kind}")


async def run(kind: str, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    request = make(kind, max(concurrency, 8))
    await request.initialize()
    data = request_data()

    async def worker(n: int) -> None:
        for _ in range(n):
            await request.post(url, data)

    await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm: connections open
    per = requests // concurrency
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await request.shutdown()
    done = per * concurrency
    return cpu / done * 1000, wall / done * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default="httpx,httpcore,aiohttp")
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}/bot{TOKEN}/editMessageText"
    print(
        f"load average {os.getloadavg()[0]:.2f}; {args.requests} requests per run, best and median "
        f"of {args.repeat} runs"
    )
    print(f"{'client':<10} {'concurrency':>11} {'CPU ms/request':>22} {'wall ms/request':>16}")
    try:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for kind in args.clients.split(","):
                runs = [asyncio.run(run(kind, url, args.requests, concurrency)) for _ in range(args.repeat)]
                cpus = [r[0] for r in runs]
                walls = [r[1] for r in runs]
                print(
                    f"{kind:<10} {concurrency:>11} {min(cpus):>10.3f} (med {statistics.median(cpus):.3f})"
                    f" {statistics.median(walls):>16.3f}"
                )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
