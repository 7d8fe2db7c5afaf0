"""The chat test driver: a fake Bot API in-process and people who talk to the bot like on a phone.

    teacher = harness.person("teacher")
    await teacher.send("/vaccine")
    await teacher.tap(TODAY_BUTTON)  # = label("core.today"), the catalogue's Vietnamese text
    assert "Đã lưu" in teacher.last_text()

Every Bot API call the bot makes goes through the production request class and is answered in-process
by bot.fakeapi.FakeBotApi (`BotApiRequest(sender=api.sender())`) and recorded in `harness.api.calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from telegram import Update
from telegram.ext import AIORateLimiter

from bot.app import build_application
from bot.botapi_request import BotApiRequest
from bot.context import SchoolBotApplication
from bot.fakeapi import JSON, FakeBotApi
from bot.settings import Settings
from bot.texts import t
from storage.services import Services
from tests.factories import TELEGRAM_IDS

FAKE_BASE_URL = "https://fake-telegram.test"


def label(key: str, **values: object) -> str:
    """The Vietnamese catalogue text of `key` (bot/texts/vi), as the bot shows it: a test that taps or
    looks for a button by this follows a change of wording instead of asserting the old one."""
    return t(key, "vi", **values)


# The buttons every flow shares (bot/keyboards.py, the pickers, the summaries). TODAY is a date in
# many tests, hence the date buttons' suffix.
CONFIRM = label("core.confirm")
EDIT = label("core.edit")
CANCEL = label("core.cancel")
SKIP = label("core.skip")
BACK = label("core.back")
TODAY_BUTTON = label("core.today")
YESTERDAY_BUTTON = label("core.yesterday")


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_bot_token": FakeBotApi.token,
        "telegram_api_base_url": FAKE_BASE_URL,
        "database_url": db_url,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def fake_request(api: FakeBotApi) -> BotApiRequest:
    """The production request class (`bot.ratelimit.build_request`) with the fake API in-process."""
    return BotApiRequest(16, sender=api.sender())


class ButtonNotFound(AssertionError):
    pass


@dataclass
class Person:
    harness: Harness
    user: JSON
    seen: int = 0  # number of chat messages already looked at by `new_texts`
    # message id -> its text when `new_texts` last looked: a question edited in place since is new
    shown: dict[int, str] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def messages(self) -> list[JSON]:
        return self.harness.api.chats.get(self.id, [])

    def bot_messages(self) -> list[JSON]:
        return [m for m in self.messages if m["from"]["is_bot"]]

    async def send(self, text: str) -> None:
        await self.harness.deliver(self.harness.api.incoming_message(self.user, text=text))

    async def tap(self, label: str) -> None:
        """Press a button on the latest message that has it; a reply-keyboard button sends its text."""
        for message in reversed(self.bot_messages()):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        await self.harness.deliver(
                            self.harness.api.callback_query(self.user, message, button["callback_data"])
                        )
                        return
            if message.get("reply_markup"):
                break  # only the latest message with buttons counts
        if label in self.reply_keyboard():
            await self.send(label)
            return
        raise ButtonNotFound(
            f"no button {label!r}; buttons now: {self.buttons()} / menu: {self.reply_keyboard()}"
        )

    def buttons(self) -> list[str]:
        """Labels of the inline buttons on the latest message that has any."""
        for message in reversed(self.bot_messages()):
            markup = message.get("reply_markup")
            if markup:
                return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
        return []

    def reply_keyboard(self) -> list[str]:
        for message in reversed(self.bot_messages()):
            keyboard = message.get("_reply_keyboard")
            if keyboard:
                return [b["text"] if isinstance(b, dict) else b for row in keyboard["keyboard"] for b in row]
        return []

    async def upload(
        self, filename: str, content: bytes, mime_type: str | None = None, caption: str = ""
    ) -> None:
        stored = self.harness.api.upload(content, filename, mime_type)
        extra: JSON = {"document": self.harness.api.document_of(stored)}
        if caption:
            extra["caption"] = caption
        await self.harness.deliver(self.harness.api.incoming_message(self.user, **extra))

    async def photo(self, content: bytes, caption: str = "") -> None:
        stored = self.harness.api.upload(content, None, "image/jpeg")
        extra: JSON = {"photo": self.harness.api.photo_of(stored)}
        if caption:
            extra["caption"] = caption
        await self.harness.deliver(self.harness.api.incoming_message(self.user, **extra))

    def last_text(self) -> str:
        for message in reversed(self.bot_messages()):
            if "text" in message:
                return str(message["text"])
        raise AssertionError("the bot has sent no text")

    def texts(self) -> list[str]:
        return [str(m["text"]) for m in self.bot_messages() if "text" in m]

    def new_texts(self) -> list[str]:
        """Texts the bot sent since the last call (a turn's whole reply): new messages, and questions
        the bot has put in place of a tapped one (edited to a new text), in the chat's order."""
        self.seen = len(self.messages)
        texts = []
        for message in self.bot_messages():
            if "text" in message and self.shown.get(message["message_id"]) != message["text"]:
                texts.append(str(message["text"]))
            if "text" in message:
                self.shown[message["message_id"]] = str(message["text"])
        return texts

    def last_document(self) -> tuple[str, bytes]:
        for message in reversed(self.bot_messages()):
            if "document" in message:
                document = message["document"]
                stored = self.harness.api.files[document["file_id"]]
                return str(document.get("file_name")), stored.content
        raise AssertionError("the bot has sent no document")

    def alerts(self) -> list[str]:
        return [str(a.get("text")) for a in self.harness.api.callback_answers if a.get("text")]


async def step_of(services: Services, person: Person, flow: str) -> int | None:
    """The step `person`'s draft of `flow` stands at (None when there is no draft)."""
    draft = await services.drafts.get(person.id, flow)
    return draft.step if draft else None


@dataclass
class Harness:
    services: Services
    settings: Settings
    api: FakeBotApi = field(default_factory=FakeBotApi)
    app: SchoolBotApplication | None = None
    people: dict[int, Person] = field(default_factory=dict)
    extra_flows: tuple[Any, ...] = ()

    async def start(self) -> SchoolBotApplication:
        self.app = build_application(
            self.settings,
            self.services,
            request=fake_request(self.api),
            get_updates_request=fake_request(self.api),
            rate_limiter=AIORateLimiter(overall_max_rate=0, group_max_rate=0),
            extra_flows=self.extra_flows,
        )
        await self.app.initialize()
        # Running, as in production: updates go through the update queue and the application's
        # update processor (deduplication, one chat's updates in order). The job queue is paused:
        # a test that needs its jobs (timeouts, reminders) calls `resume_jobs`.
        await self.app.start()
        if self.app.job_queue is not None:
            self.app.job_queue.scheduler.pause()
        return self.app

    def resume_jobs(self) -> None:
        assert self.app is not None and self.app.job_queue is not None
        self.app.job_queue.scheduler.resume()

    async def stop(self) -> None:
        if self.app is not None:
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
            self.app = None

    async def restart(self) -> None:
        """The process dies and starts again on the same database (no graceful flush)."""
        assert self.app is not None
        # Kill: drop the application without letting persistence write what it held in memory.
        self.app.persistence = None  # type: ignore[assignment]
        await self.app.stop()
        await self.app.shutdown()
        self.app = None
        await self.start()

    async def deliver(self, update: JSON) -> None:
        """Hand the update to the running application as polling or the webhook does, and wait until
        every queued update is handled (concurrent deliveries wait for each other)."""
        assert self.app is not None, "harness not started"
        await self.app.update_queue.put(Update.de_json(update, self.app.bot))
        await self.app.update_queue.join()
        await self.settle()

    async def settle(self) -> None:
        """Let tasks the handlers started (e.g. non-blocking jobs) finish."""
        for _ in range(3):
            await asyncio.sleep(0)

    def person(self, key: str, first_name: str | None = None, language_code: str = "vi") -> Person:
        """A person of the test world (tests.factories.TELEGRAM_IDS), or any id for a stranger."""
        user_id = TELEGRAM_IDS.get(key) if not key.isdigit() else int(key)
        if user_id is None:
            raise KeyError(key)
        if user_id not in self.people:
            self.people[user_id] = Person(self, self.api.user(user_id, first_name or key, language_code))
        return self.people[user_id]

    def stranger(self, user_id: int = 777_000_001) -> Person:
        return self.person(str(user_id), "Người lạ")


@contextlib.asynccontextmanager
async def running_harness(
    services: Services, db_url: str, *flows: Any, **settings: Any
) -> AsyncIterator[Harness]:
    """A started harness, with extra flows (tests' own) and setting overrides."""
    harness = Harness(services, make_settings(db_url, **settings), extra_flows=flows)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
async def harness(services: Services, db_url: str) -> AsyncIterator[Harness]:
    async with running_harness(services, db_url) as harness:
        yield harness
