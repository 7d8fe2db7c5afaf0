"""The Bot API client: PTB's `BaseRequest` over one aiohttp session.

PTB's `HTTPXRequest` costs ~1.5 ms of CPU per request (httpx, httpcore, anyio's cancel scopes, h11
in pure Python); aiohttp parses HTTP in C and keeps its pool without a cancel scope per call, a
fraction of that (`bench/botapi_client_bench.py`). Everything PTB does above the socket stays PTB's:
`BaseRequest` maps the status codes (400 BadRequest, 403 Forbidden, 409 Conflict, 429 RetryAfter, …)
and parses the answer; this class only encodes the body, sends it and maps the transport's errors
(a timeout → `TimedOut`, anything else → `NetworkError`) as `HTTPXRequest` does.

The bytes go through a `Sender`: in production `AiohttpSender` (keep-alive pool of
`connections`, proxies from the environment as httpx reads them); the tests plug in the fake Bot
API's in-process sender (`FakeBotApi.sender()`), so the same encoding and PTB's decoding run there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """PTB's four timeouts of one request, in seconds (None: no limit)."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None


class Sender(Protocol):
    """Sends one HTTP request and returns (status, body); raises `TelegramError`s for transport failures.

    `body` is None (GET), urlencoded bytes, or an aiohttp multipart payload (uploads); `content_type`
    is given for bytes (a payload carries its own)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | aiohttp.Payload | None,
        content_type: str | None,
        headers: dict[str, str],
        timeouts: Timeouts,
    ) -> tuple[int, bytes]: ...


class AiohttpSender:
    """One aiohttp session: `connections` kept alive (30 s idle), the certificate authorities httpx
    trusted (certifi's, or SSL_CERT_FILE / SSL_CERT_DIR), proxies from the environment (HTTP_PROXY,
    HTTPS_PROXY, NO_PROXY; not ALL_PROXY) or `proxy`."""

    def __init__(self, connections: int, proxy: str | None = None, trust_env: bool = True) -> None:
        self.connections = connections
        self.proxy = proxy
        self.trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        # Proxy per (scheme, host): looked up once, not in os.environ for every request.
        self._proxies: dict[tuple[str, str], tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.connections,
                    limit_per_host=0,
                    keepalive_timeout=30,
                    ssl=httpx.create_ssl_context(),
                ),
                # No cookie jar: the Bot API sets none, so nothing to parse or keep per response.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(),
            )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _proxy_for(self, url: URL) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        key = (url.scheme, url.host or "")
        if key not in self._proxies:
            found: tuple[URL | None, aiohttp.BasicAuth | None] = (None, None)
            if self.proxy:
                found = (URL(self.proxy), None)
            elif self.trust_env:
                with contextlib.suppress(LookupError):  # no proxy for this URL
                    found = get_env_proxy_for_url(url)
            self._proxies[key] = found
        return self._proxies[key]

    async def send(
        self,
        method: str,
        url: str,
        body: bytes | aiohttp.Payload | None,
        content_type: str | None,
        headers: dict[str, str],
        timeouts: Timeouts,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This BotApiRequest is not initialized!")
        target = URL(url)
        proxy, proxy_auth = self._proxy_for(target)
        if content_type is not None:
            headers = {**headers, "Content-Type": content_type}
        try:
            async with self._session.request(
                method,
                target,
                data=body,
                headers=headers,
                timeout=_client_timeout(timeouts),
                proxy=proxy,
                proxy_auth=proxy_auth,
                allow_redirects=False,  # as httpx: none followed
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's timeouts all derive from it
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                raise TimedOut(
                    "Pool or connect timeout: no connection to the Bot API became free or could be opened "
                    "in time; the request was not sent."
                ) from exc
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc


@functools.lru_cache(maxsize=32)  # a handful of distinct timeouts; ClientTimeout is immutable
def _client_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    """PTB's timeouts in aiohttp's terms. aiohttp's `connect` covers waiting for a pooled connection
    and opening one (PTB's pool + connect), `sock_read` is the longest silence while reading (for
    getUpdates PTB passes the long-poll time plus the read timeout). aiohttp has no write timeout, so
    the total is bounded by the sum of all four: a stalled upload cannot hang for ever."""
    parts = (t.pool, t.connect, t.write, t.read)
    connect = None if t.pool is None or t.connect is None else t.pool + t.connect
    total = None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=t.connect, sock_read=t.read)


class BotApiRequest(BaseRequest):
    """PTB's `BaseRequest` with HTTPXRequest's defaults (5 s connect/read/write, 20 s write for uploads,
    1 s pool wait), the body encoded as HTTPXRequest does (urlencoded fields, multipart with files)
    and sent by `sender` (default: an `AiohttpSender` of `connections`)."""

    __slots__ = ("_default", "_media_write_timeout", "_sender", "_started", "_stopped")

    def __init__(
        self,
        connections: int = 256,
        *,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        proxy: str | None = None,
        sender: Sender | None = None,
    ) -> None:
        self._default = Timeouts(
            connect=connect_timeout, read=read_timeout, write=write_timeout, pool=pool_timeout
        )
        self._media_write_timeout = media_write_timeout
        self._sender: Sender = sender if sender is not None else AiohttpSender(connections, proxy=proxy)
        self._started = False
        self._stopped = False

    @property
    def read_timeout(self) -> float | None:
        return self._default.read

    async def initialize(self) -> None:
        await self._sender.start()
        self._started, self._stopped = True, False

    async def shutdown(self) -> None:
        if self._started:
            await self._sender.close()
        self._started, self._stopped = False, True

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if not self._started:
            if self._stopped:
                raise RuntimeError("This BotApiRequest is not initialized!")
            await self.initialize()  # as HTTPXRequest, usable before `initialize`
        body: bytes | aiohttp.Payload | None = None
        content_type: str | None = None
        files = request_data.multipart_data if request_data is not None else None
        if files:
            form = aiohttp.FormData(quote_fields=False)  # file names in UTF-8, as httpx sends them
            # files come from request_data, so it is there.
            for name, value in request_data.json_parameters.items():  # type: ignore[union-attr]
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            body = form()
        elif request_data is not None:
            body, content_type = urlencode(request_data.json_parameters).encode(), FORM
        d = self._default
        timeouts = Timeouts(
            connect=d.connect if isinstance(connect_timeout, DefaultValue) else connect_timeout,
            read=d.read if isinstance(read_timeout, DefaultValue) else read_timeout,
            write=(d.write if not files else self._media_write_timeout)
            if isinstance(write_timeout, DefaultValue)
            else write_timeout,
            pool=d.pool if isinstance(pool_timeout, DefaultValue) else pool_timeout,
        )
        return await self._sender.send(
            method, url, body, content_type, {"User-Agent": self.USER_AGENT}, timeouts
        )


async def payload_bytes(body: bytes | aiohttp.Payload | None) -> bytes:
    """The bytes a body puts on the wire (for in-process senders)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return await body.as_bytes()


def payload_content_type(body: bytes | aiohttp.Payload | None, content_type: str | None) -> str:
    if content_type is not None:
        return content_type
    return body.content_type if isinstance(body, aiohttp.Payload) else ""


__all__ = ["AiohttpSender", "BotApiRequest", "Sender", "Timeouts", "payload_bytes", "payload_content_type"]
