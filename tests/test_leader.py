"""Two instances, one leader (issue 18): the lease, and real `schoolbot run` processes against a
throw-away PostgreSQL and the fake Bot API served over HTTP on 127.0.0.1.

- the lease: one holder at a time, renewals only by the holder of the current term, taken over once it
  has run out, released on a clean stop;
- a teacher halfway through a handover on the leader, the leader killed (SIGKILL), the handover
  finished on the standby: one handover, the draft's answers intact; a reminder the leader was sending
  when it died is not sent again by the new leader;
- ten updates fetched and confirmed to Telegram but not yet handled when the leader is killed: all ten
  handled by the next leader, none twice;
- SIGTERM to the leader: the update in progress completes, the process exits, the standby takes over
  at once (the lease released).

Run with `-s` to see the takeover times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tornado.web
from sqlalchemy import func, select, text
from tornado.httpserver import HTTPServer

from bot.fakeapi import JSON, FakeBotApi, StoredFile
from storage.clock import Clock
from storage.db import create_engine
from storage.enums import HandoverKind, InboxStatus
from storage.models import Base, Handover, SentReminder, UpdateInbox
from storage.schemas.rounds import RoundIn
from storage.services import Services, build_services
from tests.chat import CONFIRM, SKIP, TODAY_BUTTON
from tests.conftest import KEEP_TABLES, TZ
from tests.factories import AN, TELEGRAM_IDS, make_world
from tests.test_handover_flow import GIFT, batch_label, make_batch

# The lease of these tests' instances (s); LEADER_LEASE_SECONDS is 10 in production.
LEASE = float(os.environ.get("TEST_LEASE_SECONDS", "4"))
WAIT = 60.0  # the longest any condition below is waited for (a bound, not a measurement)


# --- unit: the lease ----------------------------------------------------------------------------------


async def test_one_holder_renewals_by_it_takeover_after_expiry_release(services: Services) -> None:
    lease = services.lease
    first = await lease.acquire("a", 30)
    assert first is not None and first.ours and first.term == 1
    other = await lease.acquire("b", 30)
    assert other is not None and not other.ours and other.holder == "a"
    from storage.services.lease import Fence

    assert await lease.renew(Fence("a", 1), 30) is not None
    assert await lease.renew(Fence("b", 1), 30) is None  # not the holder
    # Run out (as if "a" froze): "b" takes it in a new term; "a" can neither renew nor write.
    async with services.sessionmaker.begin() as session:
        await session.execute(text("UPDATE leader_lease SET expires_at = acquired_at"))
    taken = await lease.acquire("b", 30)
    assert taken is not None and taken.ours and taken.term == 2
    assert await lease.renew(Fence("a", 1), 30) is None
    from storage.services.inbox import Received
    from storage.services.lease import LeaseLost

    with pytest.raises(LeaseLost):
        await services.inbox.receive([Received(1, 1, {"update_id": 1})], Fence("a", 1))
    assert await services.inbox.receive([Received(1, 1, {"update_id": 1})], Fence("b", 2)) == [1]
    # A clean stop releases it: the standby need not wait.
    assert await lease.release(Fence("b", 2))
    again = await lease.acquire("c", 30)
    assert again is not None and again.ours and again.term == 3


# --- the fake Telegram over HTTP ----------------------------------------------------------------------


SEND_METHODS = {"sendmessage", "senddocument", "sendphoto", "editmessagetext", "editmessagereplymarkup"}


@dataclass
class GatedApi(FakeBotApi):
    """The fake Bot API whose sends to `held` chats never answer (the bot is "busy" on them): what a
    process killed then had fetched is not handled yet. Requests are recorded as they arrive."""

    held: set[int] = field(default_factory=set)
    slow: dict[int, float] = field(default_factory=dict)  # chat -> seconds its sends take
    arrived: list[tuple[str, JSON]] = field(default_factory=list)

    async def call(self, method: str, params: JSON, files: dict[str, StoredFile] | None = None) -> Any:
        self.arrived.append((method, params))
        chat = int(params.get("chat_id") or 0)
        if method.lower() in SEND_METHODS and chat in self.held:
            await asyncio.Event().wait()  # never answered (cancelled when the server stops)
        if method.lower() in SEND_METHODS and chat in self.slow:
            await asyncio.sleep(self.slow[chat])
        return await super().call(method, params, files)

    def sends_to(self, chat_id: int, contains: str = "") -> list[str]:
        """Texts of sendMessage requests to the chat that arrived (answered or not)."""
        return [
            str(p.get("text"))
            for m, p in self.arrived
            if m == "sendMessage" and int(p.get("chat_id") or 0) == chat_id and contains in str(p.get("text"))
        ]

    def confirmed_up_to(self) -> int:
        """The highest update id confirmed by a later getUpdates offset."""
        offsets = [int(p.get("offset") or 0) for m, p in self.arrived if m == "getUpdates"]
        return max(offsets, default=0) - 1


class ApiHandler(tornado.web.RequestHandler):
    def initialize(self, api: FakeBotApi) -> None:
        self.api = api

    async def post(self, path: str) -> None:
        body, content_type = self.request.body, self.request.headers.get("Content-Type", "")
        if not body and self.request.query:
            body, content_type = self.request.query.encode(), "application/x-www-form-urlencoded"
        status, payload = await self.api.handle_http(path, content_type, body)
        self.set_status(status)
        if isinstance(payload, bytes):
            self.finish(payload)
        else:
            self.finish(payload)

    get = post


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def telegram() -> AsyncIterator[tuple[GatedApi, str]]:
    api = GatedApi()
    port = free_port()
    server = HTTPServer(tornado.web.Application([(r"/(.*)", ApiHandler, {"api": api})]))
    server.listen(port, address="127.0.0.1")
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        api._new_update.set()  # end waiting getUpdates


# --- the database and the processes -------------------------------------------------------------------


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Services]:
    """The session's PostgreSQL database, emptied, with services on the real clock (as the processes)."""
    engine = create_engine(postgres_url)
    tables = [t.name for t in Base.metadata.sorted_tables if t.name not in KEEP_TABLES]
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    yield build_services(engine, Clock(tz=TZ))
    await engine.dispose()


@dataclass
class Instance:
    name: str
    process: asyncio.subprocess.Process
    health_port: int
    log: Path

    async def health(self) -> JSON | None:
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
                return (await client.get(f"http://127.0.0.1:{self.health_port}/healthz")).json()
        except (httpx.HTTPError, ValueError):
            return None

    async def role(self) -> str | None:
        health = await self.health()
        return str(health["role"]) if health else None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Cluster:
    """`schoolbot run` processes on one database and one fake Telegram."""

    api: GatedApi
    api_url: str
    database_url: str
    folder: Path
    services: Services
    instances: list[Instance] = field(default_factory=list)

    async def start(self, name: str, **settings: str) -> Instance:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            {
                "TELEGRAM_BOT_TOKEN": self.api.token,
                "TELEGRAM_API_BASE_URL": self.api_url,
                "DATABASE_URL": self.database_url,
                "LEADER_LEASE_SECONDS": str(LEASE),
                "HEALTH_PORT": str(port),
                "LOG_LEVEL": "INFO",
                "QUIET_HOURS_START": "0",  # no quiet hours: the reminder is due whenever this runs
                "QUIET_HOURS_END": "0",
                "REMINDER_FIRST_RUN_SECONDS": "0.5",
                "SHUTDOWN_TIMEOUT_SECONDS": "20",
                # The fake Telegram has no flood limits: ten replies to one chat need not be paced.
                "CHAT_MAX_PER_SECOND": "100",
                "CHAT_BURST": "20",
                **settings,
            }
        )
        log = self.folder / f"{name}.log"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=self.folder,  # no .env of the working tree
            env=env,
            stdout=log.open("wb"),
            stderr=asyncio.subprocess.STDOUT,
        )
        instance = Instance(name, process, port, log)
        self.instances.append(instance)
        return instance

    async def leader(self) -> Instance:
        async def found() -> Instance | None:
            for instance in self.instances:
                if instance.process.returncode is None and await instance.role() == "leader":
                    return instance
            return None

        return await wait_for(found, "a leader", self)

    async def standby_ready(self, instance: Instance) -> None:
        async def ready() -> bool:
            return await instance.role() == "standby"

        await wait_for(ready, f"{instance.name} standing by", self)

    # --- a person in the fake Telegram ---

    def send(self, user_id: int, text_: str) -> int:
        update = self.api.incoming_message(self.user(user_id), text=text_)
        self.api.push_update(update)
        return int(update["update_id"])

    def tap(self, user_id: int, label: str) -> int:
        for message in reversed(self.api.chats.get(user_id, [])):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        update = self.api.callback_query(self.user(user_id), message, button["callback_data"])
                        self.api.push_update(update)
                        return int(update["update_id"])
        raise AssertionError(f"no button {label!r} in the chat")

    def user(self, user_id: int) -> JSON:
        return self.api.user(user_id, "Người dùng")

    def last_text(self, user_id: int) -> str:
        texts = [m["text"] for m in self.api.chats.get(user_id, []) if m["from"]["is_bot"] and "text" in m]
        return str(texts[-1]) if texts else ""

    async def handled(self, *update_ids: int) -> None:
        """Wait until the updates are handled (the inbox says so)."""

        async def done() -> bool:
            async with self.services.sessionmaker() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(UpdateInbox)
                    .where(UpdateInbox.update_id.in_(update_ids), UpdateInbox.status == InboxStatus.HANDLED)
                )
            return count == len(update_ids)

        await wait_for(done, f"updates {update_ids} handled", self)

    async def turn(self, user_id: int, action: Callable[[], int]) -> str:
        update_id = action()
        await self.handled(update_id)
        return self.last_text(user_id)

    def stop_all(self) -> None:
        for instance in self.instances:
            if instance.process.returncode is None:
                instance.kill()


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, cluster: Cluster | None = None) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    logs = "\n".join(f"--- {i.name}\n{i.output()[-3000:]}" for i in (cluster.instances if cluster else []))
    raise AssertionError(f"not reached: {what}\n{logs}")


@pytest.fixture
async def cluster(pg: Services, postgres_url: str, telegram: tuple[GatedApi, str], tmp_path: Path):
    api, url = telegram
    cluster = Cluster(api, url, postgres_url, tmp_path, pg)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        for instance in cluster.instances:
            await instance.process.wait()


async def open_round_due_now(services: Services, world: Any) -> None:
    """A round whose submission deadline is 20 hours away: the 24-hour reminder is due now."""
    now = datetime.now(TZ).replace(tzinfo=None, second=0, microsecond=0)
    today = now.date()
    data = RoundIn(
        name="Báo cáo CV 1128/GDĐT",
        period_start=today - timedelta(days=60),
        period_end=today,
        submit_deadline=now + timedelta(hours=20),
        approve_deadline=now + timedelta(hours=40),
        compile_deadline=now + timedelta(hours=60),
    )
    await services.rounds.create_round(
        data, district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )


# --- the processes ------------------------------------------------------------------------------------


async def test_leader_killed_mid_handover_standby_finishes_it_and_sends_no_reminder_twice(
    cluster: Cluster,
) -> None:
    services, api = cluster.services, cluster.api
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2, received_on=date.today() - timedelta(days=3))
    await open_round_due_now(services, world)
    teacher, principal = TELEGRAM_IDS["teacher"], TELEGRAM_IDS["principal"]
    principal_thcs = TELEGRAM_IDS["principal_thcs"]
    api.held.add(principal)  # the leader's reminder to the principal is on its way when it dies

    first = await cluster.start("a")
    await cluster.leader()  # "a" leads before "b" starts: which one is killed is known
    second = await cluster.start("b")
    await cluster.standby_ready(second)
    assert await first.role() == "leader"

    # Halfway through a handover on the leader: batch, student and kind chosen.
    assert "Chọn lô thiết bị" in await cluster.turn(teacher, lambda: cluster.send(teacher, "/handover"))
    await cluster.turn(teacher, lambda: cluster.tap(teacher, batch_label(batch)))
    await cluster.turn(teacher, lambda: cluster.send(teacher, "nguyen van an"))
    await cluster.turn(teacher, lambda: cluster.tap(teacher, AN))
    assert "ngày" in (await cluster.turn(teacher, lambda: cluster.tap(teacher, GIFT))).lower()
    draft = await services.drafts.get(teacher, "handover")
    assert draft is not None

    # The reminders went out (to the principal: requested, never answered).
    await wait_for(lambda: _true(len(api.sends_to(principal_thcs, "Nhắc hạn")) == 1), "reminders", cluster)
    await wait_for(lambda: _true(len(api.sends_to(principal, "Nhắc hạn")) == 1), "held reminder", cluster)

    first.kill()
    killed_at = time.monotonic()
    await first.process.wait()
    api.held.discard(principal)
    assert await cluster.leader() is second
    took_over = time.monotonic() - killed_at
    # The handover goes on where it was, on the other instance.
    assert "ảnh biên bản" in await cluster.turn(teacher, lambda: cluster.tap(teacher, TODAY_BUTTON))
    first_reply = time.monotonic() - killed_at
    summary = await cluster.turn(teacher, lambda: cluster.tap(teacher, SKIP))
    assert AN in summary and "tặng" in summary
    await cluster.turn(teacher, lambda: cluster.tap(teacher, CONFIRM))
    print(
        f"\ntakeover (lease {LEASE:g} s): standby leader {took_over:.1f} s after SIGKILL, "
        f"first update handled {first_reply:.1f} s after it"
    )

    async with services.sessionmaker() as session:
        handovers = list(await session.scalars(select(Handover)))
        reminders = list(await session.scalars(select(SentReminder)))
    assert len(handovers) == 1
    assert handovers[0].student_id == world.student_ids["HS0001"] and handovers[0].kind is HandoverKind.GIFT
    assert handovers[0].entered_by_id == world.staff_ids["teacher"]
    # The new leader ran the reminders (first run soon after it took over): nobody reminded twice.
    ran = 'Job "round_reminders'
    await wait_for(lambda: _true(ran in second.output()), "a reminder run on b", cluster)
    assert len(api.sends_to(principal, "Nhắc hạn")) == 1
    assert len(api.sends_to(principal_thcs, "Nhắc hạn")) == 1
    assert len({(r.staff_id, r.reminder_key) for r in reminders}) == len(reminders) >= 2


async def test_ten_updates_fetched_not_handled_when_killed_are_handled_once_after(cluster: Cluster) -> None:
    services, api = cluster.services, cluster.api
    await make_world(services)
    person = TELEGRAM_IDS["teacher_thcs"]
    first = await cluster.start("a")
    await cluster.leader()
    second = await cluster.start("b")
    await cluster.standby_ready(second)

    api.held.add(person)  # the first reply never gets through: the ten wait their turn in the chat
    ids = [cluster.send(person, "/me") for _ in range(10)]

    async def fetched_and_busy() -> bool:
        async with services.sessionmaker() as session:
            stored = await session.scalar(
                select(func.count()).select_from(UpdateInbox).where(UpdateInbox.update_id.in_(ids))
            )
        return stored == 10 and api.confirmed_up_to() >= ids[-1] and len(api.sends_to(person)) >= 1

    await wait_for(fetched_and_busy, "ten updates stored, confirmed, the first one in progress", cluster)
    first.kill()
    killed_at = time.monotonic()
    await first.process.wait()
    api.held.discard(person)
    assert await cluster.leader() is second
    await cluster.handled(*ids)
    took = time.monotonic() - killed_at
    print(f"\nten updates: all handled {took:.1f} s after SIGKILL (lease {LEASE:g} s)")

    replies = [m for m in api.chats[person] if m["from"]["is_bot"]]
    assert len(replies) == 10 and all("Bùi Thị Lan" in m["text"] for m in replies)
    async with services.sessionmaker() as session:
        rows = list(await session.scalars(select(UpdateInbox).where(UpdateInbox.update_id.in_(ids))))
    attempts = {row.update_id: row.attempts for row in rows}
    assert attempts[ids[0]] == 2  # in progress when killed: tried once more
    assert all(attempts[i] == 1 for i in ids[1:])
    assert all(row.payload is None for row in rows)  # what people typed is not kept once handled


async def test_sigterm_finishes_the_update_in_progress_and_hands_over_at_once(cluster: Cluster) -> None:
    services, api = cluster.services, cluster.api
    await make_world(services)
    person = TELEGRAM_IDS["teacher_thcs"]
    first = await cluster.start("a")
    await cluster.leader()
    second = await cluster.start("b")
    await cluster.standby_ready(second)

    api.slow[person] = 3.0  # the reply takes 3 s: SIGTERM arrives while the update is in progress
    update_id = cluster.send(person, "/me")
    await wait_for(lambda: _true(len(api.sends_to(person)) == 1), "the update in progress", cluster)
    first.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    await wait_for(lambda: _true("finishing the updates in progress" in first.output()), "stopping", cluster)
    later = cluster.send(person, "/help")  # arrives while the leader stops: left for the next leader
    assert await first.process.wait() == 0
    exited = time.monotonic() - signalled
    await cluster.handled(update_id)
    replies = [m["text"] for m in api.chats[person] if m["from"]["is_bot"]]
    assert len(replies) == 1 and "Bùi Thị Lan" in replies[0]  # completed by the stopping leader
    assert await cluster.leader() is second
    await cluster.handled(later)
    print(f"\nSIGTERM: the update in progress finished, exit after {exited:.1f} s; the standby led next")
    async with services.sessionmaker() as session:
        row = await session.get(UpdateInbox, update_id)
    assert row is not None and row.attempts == 1  # handled once, by the stopping leader
    assert "Stopped" in first.output()


async def _true(value: bool) -> bool:
    return value
