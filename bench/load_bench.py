"""The district as it lives: N staff tapping through whole flows against the real `schoolbot run`.

    .venv/bin/python bench/load_bench.py [--staff 200] [--think 1.0] [--latency 0] [--rounds 1]
        [--schools 100] [--students 20000] [--database-url URL] [--broadcast 0] [--quick]

A Bot API server on 127.0.0.1 (tornado around bot.fakeapi.FakeBotApi, with the sandbox's HTTP
handler) stands in for Telegram; the bot is a separate process (`python -m bot run`, long polling),
on a fresh database (a temporary SQLite file, or `--database-url` / BENCH_DATABASE_URL emptied first)
filled with a demo district (`demo-data`). N teachers get invites and register with `/start <code>`;
each then runs `--rounds` times a whole /handover and a whole /vaccine for students of their school by
pressing the buttons the bot sent, waiting `--think` seconds (±50 %) between taps. The fake API takes
`--latency` seconds to answer each call.

Printed: latency of each tap (p50/p95/p99/max, from the update being offered to getUpdates until the
reply the person waits for is in the chat), updates/s, the bot's CPU per update and its peak RSS,
and the records: «Đã lưu» messages against rows in the database (lost, duplicated).

`--broadcast 2000`: 2,000 principals who have not submitted a round whose deadline is 20 hours away:
the bot's reminder job sends them the 24-hour reminder while the staff enter. The fake API answers
429 (as Telegram would) when messages the person did not ask for exceed 30 in any second; printed: how
long the reminders took, the most in any second, and the 429s. `--quick`: 60 staff, 300 reminders,
2,000 students, for a run of a few minutes.

CPU ceiling: `--think 0 --latency 0`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import tornado.web
from sqlalchemy import func, select, text
from tornado.httpserver import HTTPServer

from bot.fakeapi import JSON, BotApiError, FakeBotApi, StoredFile
from bot.sandbox.http import BotApiHandler
from storage.clock import Clock
from storage.db import create_engine
from storage.demo import DemoDataService
from storage.enums import Role
from storage.migrate import upgrade
from storage.models import Base, District, Handover, School, Staff, Student, VaccineDose
from storage.schemas.demo import DemoDataIn
from storage.schemas.devices import BatchIn
from storage.schemas.organisation import InviteIn
from storage.schemas.rounds import RoundIn
from storage.services import Services, build_services

ROOT = Path(__file__).resolve().parent.parent
STAFF_BASE = 880_000_000  # Telegram ids of the bench's teachers
PRINCIPAL_BASE = 870_000_000  # and of the reminded principals
MESSAGES = {"sendMessage", "sendDocument", "sendPhoto", "editMessageText", "editMessageReplyMarkup"}
SAVED = "Đã lưu"
STEP_TIMEOUT = 120.0  # a reply not there after this long: the flow is counted failed


# --- the fake Telegram ----------------------------------------------------------------------------------


@dataclass
class BenchApi(FakeBotApi):
    """FakeBotApi that wakes the person waiting on a chat, and answers 429 to unsolicited messages
    beyond Telegram's ~30 a second (a message to a chat that has not written in the last minute)."""

    broadcast_limit: int = 30
    waiters: dict[int, asyncio.Event] = field(default_factory=dict)
    active: dict[int, float] = field(default_factory=dict)  # chat -> when it last sent an update
    unsolicited: deque[float] = field(default_factory=deque)
    refused: int = 0  # 429s answered
    broadcast_times: list[float] = field(default_factory=list)
    principals: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.on_change = self._wake

    def _wake(self, chat_id: int) -> None:
        event = self.waiters.get(chat_id)
        if event is not None:
            event.set()

    def push_update(self, update: JSON) -> None:
        user = (update.get("message") or update.get("callback_query") or {}).get("from") or {}
        if user:
            self.active[int(user["id"])] = time.monotonic()
        super().push_update(update)

    async def call(self, method: str, params: JSON, files: dict[str, StoredFile] | None = None) -> Any:
        if method in MESSAGES and params.get("chat_id") is not None:
            chat = int(params["chat_id"])
            now = time.monotonic()
            if now - self.active.get(chat, -1e9) > 60:
                while self.unsolicited and now - self.unsolicited[0] >= 1.0:
                    self.unsolicited.popleft()
                if len(self.unsolicited) >= self.broadcast_limit:
                    self.refused += 1
                    raise BotApiError(429, "Too Many Requests: retry after 1")
                self.unsolicited.append(now)
            if chat in self.principals:
                self.broadcast_times.append(now)
        result = await super().call(method, params, files)
        if len(self.calls) > 20_000:  # a long run: keep the memory flat
            del self.calls[:-1000]
        return result

    async def handle_http(self, method_or_path: str, content_type: str, body: bytes) -> tuple[int, Any]:
        status, payload = await super().handle_http(method_or_path, content_type, body)
        if status == 429 and isinstance(payload, dict):
            payload["parameters"] = {"retry_after": 1}
        return status, payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(api: BenchApi, port: int) -> HTTPServer:
    holder = SimpleNamespace(api=api)  # what the sandbox's handler reads
    app = tornado.web.Application(
        [
            (r"/(file/bot[^/]*/.*)", BotApiHandler, {"sandbox": holder}),
            (r"/(bot[^/]*/.*)", BotApiHandler, {"sandbox": holder}),
        ]
    )
    server = HTTPServer(app)
    server.listen(port, address="127.0.0.1")
    return server


# --- a person -------------------------------------------------------------------------------------------


@dataclass
class Teacher:
    api: BenchApi
    user_id: int
    students: list[str]
    think: float
    taps: list[float] = field(default_factory=list)
    steps: list[tuple[str, float]] = field(default_factory=list)  # (which step, latency)
    step: str = ""
    saved: dict[str, list[str]] = field(default_factory=lambda: {"handover": [], "vaccine": []})
    failed: list[str] = field(default_factory=list)

    @property
    def user(self) -> JSON:
        return self.api.user(self.user_id, f"GV {self.user_id}")

    def bot_messages(self) -> list[JSON]:
        return [m for m in self.api.chats.get(self.user_id, []) if m["from"]["is_bot"]]

    def latest(self) -> JSON | None:
        messages = self.bot_messages()
        return messages[-1] if messages else None

    @staticmethod
    def snapshot(message: JSON | None) -> tuple[Any, ...]:
        if message is None:
            return ()
        return (message["message_id"], message.get("text"), repr(message.get("reply_markup")))

    async def act(self, update: JSON, expect: str) -> None:
        """Offer the update and wait for the reply: `buttons` (the latest message changed and has
        buttons), `text` (it changed) or `saved` (a «Đã lưu» message after the update)."""
        event = self.api.waiters.setdefault(self.user_id, asyncio.Event())
        before = self.snapshot(self.latest())
        count = len(self.bot_messages())
        began = time.monotonic()
        self.api.push_update(update)
        deadline = began + STEP_TIMEOUT
        while True:
            latest = self.latest()
            changed = self.snapshot(latest) != before
            if expect == "saved":
                if any(SAVED in str(m.get("text")) for m in self.bot_messages()[count:]):
                    break
            elif changed and latest is not None and (expect == "text" or latest.get("reply_markup")):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply ({expect}); last: {str((latest or {}).get('text'))[:120]!r}")
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)
        self.taps.append(time.monotonic() - began)
        self.steps.append((self.step, self.taps[-1]))

    async def send(self, text_: str, expect: str) -> None:
        await self.act(self.api.incoming_message(self.user, text=text_), expect)

    async def tap(self, expect: str, index: int = 0) -> None:
        message = next(m for m in reversed(self.bot_messages()) if m.get("reply_markup"))
        buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
        public = {k: v for k, v in message.items() if not k.startswith("_")}
        await self.act(self.api.callback_query(self.user, public, buttons[index]["callback_data"]), expect)

    async def pause(self) -> None:
        if self.think:
            await asyncio.sleep(random.uniform(0.5, 1.5) * self.think)

    async def handover(self, student: str) -> None:
        self.step = "handover: /handover"
        await self.send("/handover", "buttons")
        await self.pause()
        self.step = "handover: batch"
        await self.tap("text")  # the batch; then the student is typed
        await self.pause()
        self.step = "handover: student typed"
        await self.send(student, "buttons")
        for step in ("student", "gift", "today", "no photo"):
            await self.pause()
            self.step = f"handover: {step}"
            await self.tap("buttons")
        await self.pause()
        self.step = "handover: confirm"
        await self.tap("saved")
        self.saved["handover"].append(student)

    async def vaccine(self, student: str) -> None:
        self.step = "vaccine: /vaccine"
        await self.send("/vaccine", "text")
        await self.pause()
        self.step = "vaccine: student typed"
        await self.send(student, "buttons")
        for step in ("student", "dose", "date", "product", "place"):
            await self.pause()
            self.step = f"vaccine: {step}"
            await self.tap("buttons")
        await self.pause()
        self.step = "vaccine: confirm"
        await self.tap("saved")
        self.saved["vaccine"].append(student)

    async def run(self, rounds: int) -> None:
        for n in range(rounds):
            for flow, student in (("handover", self.students[2 * n]), ("vaccine", self.students[2 * n + 1])):
                try:
                    await getattr(self, flow)(student)
                except (TimeoutError, StopIteration, IndexError) as exc:
                    self.failed.append(f"{flow} {student}: {exc}")
                    await self.send("/cancel", "text")
                await self.pause()


# --- the database ---------------------------------------------------------------------------------------


async def prepare(
    services: Services, args: argparse.Namespace
) -> tuple[dict[int, str], dict[int, list[str]]]:
    """Demo district, a big batch per school, one invite per teacher, the broadcast's principals and
    round; returns the invite codes by Telegram id and unused student codes by Telegram id."""
    started = time.perf_counter()
    await DemoDataService(services.sessionmaker, services.clock).generate(
        DemoDataIn(schools=args.schools, students=args.students)
    )
    print(
        f"demo district: {args.schools} schools, {args.students} students "
        f"({time.perf_counter() - started:.0f} s)"
    )
    async with services.sessionmaker() as session:
        schools = list(await session.scalars(select(School).order_by(School.id)))
        district_id = await session.scalar(select(District.id))
        busy = select(Handover.student_id).union(select(VaccineDose.student_id))
        free: dict[int, list[str]] = {}
        rows = await session.execute(
            select(Student.school_id, Student.code)
            .where(Student.active, Student.id.not_in(busy))
            .order_by(Student.id)
        )
        for school_id, code in rows:
            free.setdefault(school_id, []).append(code)
    schools = [
        s for s in schools if len(free.get(s.id, [])) >= 2 * args.rounds * (args.staff // len(schools) + 1)
    ]
    if not schools:
        raise SystemExit("too few students without records for this many staff: raise --students")
    invites: dict[int, str] = {}
    students: dict[int, list[str]] = {}
    today = services.clock.now().date()
    for school in schools:
        await services.donations.create_batch(
            BatchIn(
                source="program",
                received_on=today - timedelta(days=3),
                quantity=min(999, args.staff * args.rounds + 10),
                device_type="laptop",
                make_model="Bench 1",
            ),
            school_id=school.id,
            actor_id=None,
        )
    for n in range(args.staff):
        school = schools[n % len(schools)]
        user_id = STAFF_BASE + n
        invite = await services.staff.create_invite(InviteIn(role=Role.TEACHER, school_code=school.code))
        invites[user_id] = invite.code
        pool = free[school.id]
        students[user_id] = [pool.pop() for _ in range(2 * args.rounds)]
    if args.broadcast:
        async with services.sessionmaker.begin() as session:
            deputy = Staff(
                telegram_user_id=None,
                full_name="Phó trưởng phòng",
                role=Role.DEPUTY_HEAD,
                district_id=district_id,
            )
            session.add(deputy)
            session.add_all(
                Staff(
                    telegram_user_id=PRINCIPAL_BASE + i,
                    full_name=f"Hiệu trưởng {i}",
                    role=Role.PRINCIPAL,
                    school_id=schools[i % len(schools)].id,
                    district_id=district_id,
                )
                for i in range(args.broadcast)
            )
            await session.flush()
            deputy_id = deputy.id
        now = datetime.now(services.clock.tz).replace(tzinfo=None, second=0, microsecond=0)
        await services.rounds.create_round(
            RoundIn(
                name="Báo cáo thử tải",
                period_start=today - timedelta(days=60),
                period_end=today,
                submit_deadline=now + timedelta(hours=20),
                approve_deadline=now + timedelta(hours=40),
                compile_deadline=now + timedelta(hours=60),
            ),
            district_id=district_id,
            actor_id=deputy_id,
        )
    return invites, students


async def empty(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        tables = [t.name for t in Base.metadata.sorted_tables]
        if url.startswith("postgresql"):
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        else:
            for name in reversed(tables):
                await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await engine.dispose()


async def records(services: Services, teachers: list[Teacher]) -> dict[str, tuple[int, int, int]]:
    """flow -> (saved messages, rows, duplicated rows) for the bench's teachers."""
    ids = [t.user_id for t in teachers]
    out = {}
    async with services.sessionmaker() as session:
        staff_ids = select(Staff.id).where(Staff.telegram_user_id.in_(ids))
        for flow, model, by in (
            ("handover", Handover, Handover.entered_by_id),
            ("vaccine", VaccineDose, VaccineDose.entered_by_id),
        ):
            rows = int(
                await session.scalar(select(func.count()).select_from(model).where(by.in_(staff_ids))) or 0
            )
            per_student = (
                select(model.student_id, func.count().label("n"))
                .where(by.in_(staff_ids))
                .group_by(model.student_id)
                .subquery()
            )
            dup = int(await session.scalar(select(func.coalesce(func.sum(per_student.c.n - 1), 0))) or 0)
            saved = sum(len(t.saved[flow]) for t in teachers)
            out[flow] = (saved, rows, dup)
    return out


# --- the bot process ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_thread(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of the process's threads, by thread name (threads of one name summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            text = (task / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")].rstrip("_0123456789")
            fields = text.rsplit(")", 1)[1].split()
            user, system = found.get(name, (0.0, 0.0))
            found[name] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick)
    return found


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=200)
    parser.add_argument("--think", type=float, default=1.0, help="seconds between taps (±50 %%)")
    parser.add_argument("--steps", action="store_true", help="print p50/p99 of each step of the flows")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each Bot API call takes")
    parser.add_argument("--rounds", type=int, default=1, help="handover + vaccine flows per person")
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--students", type=int, default=20_000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    parser.add_argument("--broadcast", type=int, default=0, help="principals reminded meanwhile")
    parser.add_argument("--quick", action="store_true", help="60 staff, 300 reminders, 2,000 students")
    parser.add_argument(
        "--chat-rate", type=float, default=0, help="CHAT_MAX_PER_SECOND of the bot (0: as shipped)"
    )
    parser.add_argument(
        "--event-loop",
        choices=("uvloop", "asyncio"),
        default="",
        help="EVENT_LOOP of the bot (default: as shipped)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (bot log, SQLite file)")
    parser.add_argument("--profile", default="", help="py-spy record the bot into this SVG/speedscope file")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy's samples per second")
    args = parser.parse_args()
    if args.quick:
        args.staff, args.students = min(args.staff, 60), min(args.students, 2000)
        args.schools = min(args.schools, 20)
        args.broadcast = min(args.broadcast, 300) if args.broadcast else 0
    folder = Path(tempfile.mkdtemp(prefix="load-bench-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
    if args.database_url:
        await empty(url)
    engine = create_engine(url)
    await upgrade(engine)
    services = build_services(engine, Clock())
    invites, students = await prepare(services, args)

    api = BenchApi()
    api.principals = {PRINCIPAL_BASE + i for i in range(args.broadcast)}
    api.latency = args.latency
    port = free_port()
    server = serve(api, port)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{port}",
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "QUIET_HOURS_START": "0",
            "QUIET_HOURS_END": "0",
            # The reminders start once everyone is registered and entering.
            "REMINDER_FIRST_RUN_SECONDS": "20" if args.broadcast else "3600",
            "PYTHONPATH": str(ROOT),
        }
    )
    if args.event_loop:
        env["EVENT_LOOP"] = args.event_loop
    if args.chat_rate:  # the CPU ceiling: no per-chat pacing
        env.update(
            {"CHAT_MAX_PER_SECOND": str(args.chat_rate), "CHAT_BURST": str(max(3, int(args.chat_rate)))}
        )
    log = (folder / "bot.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=folder, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    spy = None
    clean = False  # the run ended with every record in place: its folder is removed
    try:
        teachers = [Teacher(api, uid, students[uid], args.think) for uid in invites]
        # Registration (not measured): /start <code>, a few at a time.
        slots = asyncio.Semaphore(20)

        async def register(teacher: Teacher) -> None:
            async with slots:
                await teacher.send(f"/start {invites[teacher.user_id]}", "text")
                teacher.taps.clear()
                teacher.steps.clear()

        started = time.monotonic()
        await asyncio.gather(*(register(t) for t in teachers))
        print(f"{len(teachers)} staff registered through invites ({time.monotonic() - started:.1f} s)")
        if args.profile:
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(process.pid),
                "--output",
                args.profile,
                "--format",
                {".json": "speedscope", ".txt": "raw"}.get(Path(args.profile).suffix, "flamegraph"),
                "--nonblocking",
                "--rate",
                str(args.profile_rate),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        calls_before = len(api.calls)
        cpu_before = cpu_seconds(process.pid)
        threads_before = cpu_by_thread(process.pid)
        bench_cpu_before = time.process_time()
        began = time.monotonic()
        await asyncio.gather(*(t.run(args.rounds) for t in teachers))
        elapsed = time.monotonic() - began
        cpu = cpu_seconds(process.pid) - cpu_before
        threads = cpu_by_thread(process.pid)
        bench_cpu = time.process_time() - bench_cpu_before
        methods: dict[str, int] = {}
        for call in api.calls[calls_before:]:
            methods[call.method] = methods.get(call.method, 0) + 1
        if args.broadcast:
            deadline = time.monotonic() + 600
            while len(set(api.broadcast_times)) < args.broadcast and time.monotonic() < deadline:
                await asyncio.sleep(1)
        taps = [x for t in teachers for x in t.taps]
        failed = [f for t in teachers for f in t.failed]
        print(
            f"\n{args.staff} staff, think {args.think} s, Bot API latency {args.latency * 1000:.0f} ms, "
            f"{'PostgreSQL' if url.startswith('postgresql') else 'SQLite'}, "
            f"{args.rounds} handover + vaccine each"
        )
        print(
            f"per tap (ms): p50 {percentile(taps, 0.5) * 1000:.0f}  p95 {percentile(taps, 0.95) * 1000:.0f}  "
            f"p99 {percentile(taps, 0.99) * 1000:.0f}  max {max(taps, default=0) * 1000:.0f}  "
            f"(mean {statistics.fmean(taps) * 1000 if taps else 0:.0f}, {len(taps)} taps)"
        )
        print(f"updates/s: {len(taps) / elapsed:.1f} over {elapsed:.1f} s")
        print(
            f"bot CPU: {cpu:.1f} s, {cpu / max(1, len(taps)) * 1000:.2f} ms per update; "
            f"peak RSS {peak_rss_mb(process.pid):.0f} MB"
        )
        per_update = 1000 / max(1, len(taps))
        shares = []
        for name, (user, system) in sorted(threads.items(), key=lambda item: -sum(item[1])):
            user_before, system_before = threads_before.get(name, (0.0, 0.0))
            user, system = user - user_before, system - system_before
            if user + system >= 0.05:
                shares.append(f"{name} {user * per_update:.2f} user + {system * per_update:.2f} sys")
        print(f"  by thread (ms per update): {'; '.join(shares)}")
        calls = ", ".join(
            f"{name} {count / max(1, len(taps)):.2f}"
            for name, count in sorted(methods.items(), key=lambda m: -m[1])
        )
        print(f"  Bot API calls per update: {calls}")
        print(
            f"the bench's own process (Bot API server, {args.staff} people): {bench_cpu:.1f} s CPU, "
            f"{bench_cpu / max(1, len(taps)) * 1000:.2f} ms per update"
        )
        if args.steps:
            by_step: dict[str, list[float]] = {}
            for teacher in teachers:
                for step, seconds in teacher.steps:
                    by_step.setdefault(step, []).append(seconds)
            print("per step (ms): p50 / p99")
            for step, values in by_step.items():
                p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
                print(f"  {step:<26} {p50:6.0f} / {p99:6.0f}")
        wrong = 0
        for flow, (saved, rows, dup) in (await records(services, teachers)).items():
            lost = max(0, saved - rows + dup)
            print(f"{flow}: saved {saved}, rows {rows}, lost {lost}, duplicated {dup}")
            wrong += lost + dup
        clean = not wrong and not failed
        if failed:
            print(f"failed flows: {len(failed)}; first: {failed[0]}")
        if args.broadcast:
            times = sorted(api.broadcast_times)
            window = max((sum(1 for x in times[i:] if x - t < 1.0) for i, t in enumerate(times)), default=0)
            span = times[-1] - times[0] if times else 0
            print(
                f"reminders: {len(set(times))}/{args.broadcast} in {span:.1f} s, "
                f"at most {window} in one second, "
                f"429 answered {api.refused}"
            )
    finally:
        if spy is not None:
            spy.send_signal(2)
            await spy.wait()
        process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
        server.stop()
        api._new_update.set()
        await engine.dispose()
        log.close()
        if clean and not args.keep:  # ~11 MB a run: kept only when something went wrong, or asked
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"(bot log and database: {folder})")


if __name__ == "__main__":
    asyncio.run(main())
