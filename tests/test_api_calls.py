"""Bot API calls a whole flow costs (issue 17): every call is a round trip and, for messages, counted by
Telegram's flood limits, so the count is kept down and pinned here.

One message per step: a tapped answer edits its question in place (text and keyboard in one
`editMessageText`), so a tap costs an `answerCallbackQuery` and one edit; summaries and saved
confirmations are new messages. Before this (a new message per step, and an edit removing the old
buttons) the handover below took 21 calls (15 of them messages: sendMessage and edits) and the vaccine
dose 20 (14); now 17 (11) and 16 (10).
"""

from __future__ import annotations

from collections import Counter

from storage.services import Services
from tests.chat import CONFIRM, TODAY_BUTTON, Harness, Person, label
from tests.factories import AN, BINH, make_world
from tests.test_handover_flow import AGAIN, make_batch, to_summary

COUNTED = {
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "sendDocument",
    "sendPhoto",
}


def calls_since(harness: Harness, start: int) -> Counter[str]:
    return Counter(c.method for c in harness.api.calls[start:] if c.method in COUNTED)


def buttons_everywhere(person: Person) -> list[list[str]]:
    """Labels of every bot message that still has inline buttons, oldest first."""
    return [
        [b["text"] for row in m["reply_markup"]["inline_keyboard"] for b in row]
        for m in person.bot_messages()
        if m.get("reply_markup")
    ]


async def test_a_whole_handover_costs_few_calls(services: Services, harness: Harness) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    start = len(harness.api.calls)
    await to_summary(teacher, batch, "nguyen van an", AN)
    assert "Kiểm tra lại" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert any("Đã lưu" in text for text in teacher.texts()[-2:])
    calls = calls_since(harness, start)
    assert calls == Counter(sendMessage=5, editMessageText=4, answerCallbackQuery=6, editMessageReplyMarkup=2)
    assert sum(calls.values()) == 17
    # Only the saved message's own button («continue with this batch») is left to tap.
    assert buttons_everywhere(teacher) == [[AGAIN]]


async def test_a_whole_vaccine_dose_costs_few_calls(services: Services, harness: Harness) -> None:
    await make_world(services)
    teacher = harness.person("teacher")
    start = len(harness.api.calls)
    await teacher.send("/vaccine")
    await teacher.send("tran thi binh")
    await teacher.tap(BINH)
    await teacher.tap(label("vaccines.dose.next_button", dose_number=1))
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap("Comirnaty (Pfizer-BioNTech)")
    await teacher.tap(label("vaccines.place_button.school"))
    assert "Kiểm tra lại" in teacher.last_text()
    await teacher.tap(CONFIRM)
    assert "Đã lưu" in teacher.last_text()
    calls = calls_since(harness, start)
    assert calls == Counter(sendMessage=4, editMessageText=4, answerCallbackQuery=6, editMessageReplyMarkup=2)
    assert sum(calls.values()) == 16
    assert buttons_everywhere(teacher) == []
