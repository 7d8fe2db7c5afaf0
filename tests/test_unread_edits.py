"""The next question put in place of the tapped one, and a tapped message's buttons taken away, are
edits whose answer the bot does not read (`SchoolBot.edit_unread`): they still carry the catalogue's
HTML parse mode (Defaults do not apply to `do_api_request`), the new keyboard, and go through the same
rate limiter; nothing is built from Telegram's answer."""

from __future__ import annotations

import inspect
import json

import pytest
from telegram import Message

from storage.services import Services
from tests.chat import SKIP, YESTERDAY_BUTTON, Harness
from tests.factories import BINH, make_world
from tests.test_handover_flow import batch_label, make_batch


async def test_a_question_edited_in_place_keeps_html_and_its_keyboard(
    services: Services, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("tran thi binh")
    built: list[object] = []
    original = Message.de_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Message], data: object, bot: object = None) -> object:
        # Only answers to the bot's own requests count (the tapped update's message is parsed as ever).
        if any(frame.filename.endswith("telegram/_bot.py") for frame in inspect.stack()):
            built.append(data)
        return original(cls, data, bot)

    monkeypatch.setattr(Message, "de_json", classmethod(counting))
    before = len(harness.api.calls)
    await teacher.tap(BINH)  # the kind question takes the student list's place
    edits = [c for c in harness.api.calls[before:] if c.method == "editMessageText"]
    assert len(edits) == 1
    edit = edits[0].params
    assert edit["parse_mode"] == "HTML"
    assert "Trần Thị Bình" in edit["text"] and "<b>" in edit["text"]
    keyboard = edit["reply_markup"]
    keyboard = json.loads(keyboard) if isinstance(keyboard, str) else keyboard
    assert [b["text"] for row in keyboard["inline_keyboard"] for b in row]  # the kind buttons
    assert "Trần Thị Bình" in teacher.last_text()
    assert built == []  # no Message built from the edit's answer


async def test_buttons_taken_away_without_reading_the_answer(
    services: Services, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await teacher.send("tang")
    await teacher.tap(YESTERDAY_BUTTON)
    built: list[object] = []
    original = Message.de_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Message], data: object, bot: object = None) -> object:
        if any(frame.filename.endswith("telegram/_bot.py") for frame in inspect.stack()):
            built.append(data)
        return original(cls, data, bot)

    before = len(harness.api.calls)
    monkeypatch.setattr(Message, "de_json", classmethod(counting))
    await teacher.tap(SKIP)  # the summary is a new message: the photo question loses its buttons
    closed = [c for c in harness.api.calls[before:] if c.method == "editMessageReplyMarkup"]
    assert len(closed) == 1 and "reply_markup" not in closed[0].params
    assert {"chat_id", "message_id"} <= set(closed[0].params)
    # The summary sent is parsed (its id is the chat's latest); the edited question's answer is not.
    edited = int(closed[0].params["message_id"])
    assert built and all(isinstance(data, dict) and data["message_id"] != edited for data in built)
