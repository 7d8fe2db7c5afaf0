"""Issue 13's chat findings: stale buttons carry their draft's identity, old buttons after a restart,
no school data in group chats, and replies that always fit Telegram's limits."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.sending import CAPTION_LIMIT, MESSAGE_LIMIT, split_text, telegram_length
from conversations.handover import Step
from storage.models import Handover
from storage.services import Services
from tests.chat import CONFIRM, EDIT, SKIP, TODAY_BUTTON, Harness, Person, label, step_of
from tests.factories import AN, BINH, make_world
from tests.test_handover_flow import GIFT, LOAN, batch_label, make_batch

OUTDATED = "thuộc một câu hỏi trước"
DONE = "không còn dùng được"


async def handover_students(services: Services) -> list[int]:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(Handover.student_id).order_by(Handover.id)))


def button_data(message: dict, label: str) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(f"no {label!r}")


async def walk_to_summary(person: Person, label_of_batch: str, query: str, student: str) -> dict:
    await person.tap(label_of_batch)
    await person.send(query)
    await person.tap(student)
    await person.tap(GIFT)
    await person.tap(TODAY_BUTTON)
    await person.tap(SKIP)
    return person.bot_messages()[-1]


# --- finding 3: an old summary's «Xác nhận» -------------------------------------------------------


async def test_an_old_summarys_confirm_never_saves_the_current_draft(services: Services, harness: Harness):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    summary_an = await walk_to_summary(teacher, batch_label(batch), "nguyen van an", AN)
    assert AN in summary_an["text"]
    await teacher.send("/handover")
    await teacher.tap(label("core.draft_restart"))
    summary_binh = await walk_to_summary(teacher, batch_label(batch), "binh", BINH)
    assert BINH in summary_binh["text"]

    # An's old «Xác nhận» (its keyboard was closed in the app, but a client may still show it).
    await harness.deliver(
        harness.api.callback_query(teacher.user, summary_an, button_data(summary_an, CONFIRM))
    )
    assert await handover_students(services) == []
    assert OUTDATED in teacher.alerts()[-1]
    assert BINH in teacher.last_text() and teacher.buttons()[0] == CONFIRM  # the current summary again
    assert await step_of(services, teacher, "handover") == Step.SUMMARY

    await teacher.tap(CONFIRM)
    assert await handover_students(services) == [world.student_ids["HS0002"]]


async def test_the_summary_before_an_edit_is_stale(services: Services, harness: Harness):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    first = await walk_to_summary(teacher, batch_label(batch), "nguyen van an", AN)
    old_confirm = button_data(first, CONFIRM)  # its keyboard is closed by the next tap
    await teacher.tap(EDIT)
    await teacher.tap(label("devices.handover.field.kind"))
    await teacher.tap(LOAN)
    assert "cho mượn tạm" in teacher.last_text()
    await harness.deliver(harness.api.callback_query(teacher.user, first, old_confirm))
    assert await handover_students(services) == []  # the summary that said «tặng» saves nothing
    await teacher.tap(CONFIRM)
    assert await handover_students(services) == [world.student_ids["HS0001"]]


async def test_buttons_carry_the_draft_stamp_and_a_forged_one_is_stale(services: Services, harness: Harness):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    data = button_data(teacher.bot_messages()[-1], batch_label(batch))
    assert re.match(r"^handover~[0-9a-z]+:", data), data
    forged = re.sub(r"~[0-9a-z]+:", "~zzz9:", data)
    await harness.deliver(harness.api.callback_query(teacher.user, teacher.bot_messages()[-1], forged))
    assert OUTDATED in teacher.alerts()[-1]
    assert await step_of(services, teacher, "handover") == Step.BATCH


# --- finding 9: an old button after a crash --------------------------------------------------------


async def test_an_old_button_after_a_restart_reasks_the_current_question(
    services: Services, harness: Harness
):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    await teacher.send("nguyen van an")
    await teacher.tap(AN)
    kind_question = teacher.bot_messages()[-1]
    old_loan = button_data(kind_question, LOAN)
    await teacher.tap(GIFT)
    assert await step_of(services, teacher, "handover") == Step.DATE
    await harness.restart()

    await harness.deliver(harness.api.callback_query(teacher.user, kind_question, old_loan))
    alert = teacher.alerts()[-1]
    assert OUTDATED in alert and DONE not in alert
    assert "Ngày bàn giao" in teacher.last_text() or "ngày" in teacher.last_text().lower()
    assert await step_of(services, teacher, "handover") == Step.DATE
    await teacher.tap(TODAY_BUTTON)
    await teacher.tap(SKIP)
    await teacher.tap(CONFIRM)
    assert await handover_students(services) == [world.student_ids["HS0001"]]


async def test_a_button_of_an_open_draft_outside_its_conversation_offers_to_continue(
    services: Services, harness: Harness
):
    """A button nothing takes (e.g. the conversation was not restored) but whose draft is open."""
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    question = teacher.bot_messages()[-1]
    # Drop the in-memory conversation state only (the draft stays in the database).
    assert harness.app is not None
    for handler in harness.app.handlers[0]:
        if getattr(handler, "name", None) == "handover":
            handler._conversations.clear()  # what a lost persistence write leaves behind
    await harness.deliver(harness.api.callback_query(teacher.user, question, "handover:cancel_me"))
    assert "đang nhập dở" in teacher.alerts()[-1]
    assert label("core.draft_continue") in teacher.buttons()


async def test_a_finished_tasks_button_says_so(services: Services, harness: Harness):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    summary = await walk_to_summary(teacher, batch_label(batch), "nguyen van an", AN)
    confirm = button_data(summary, CONFIRM)
    await teacher.tap(CONFIRM)
    await harness.deliver(harness.api.callback_query(teacher.user, summary, confirm))
    assert DONE in teacher.alerts()[-1]
    assert len(await handover_students(services)) == 1


# --- finding 2: group chats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["/vaccine", "/handover", "/my", "/report", "/need", "/start", "/help", "/me", "/template"]
)
async def test_nothing_runs_in_a_group_chat(services: Services, harness: Harness, text: str):
    await make_world(services)
    teacher = harness.person("teacher")
    group = harness.api.group_chat()
    await harness.deliver(harness.api.incoming_message(teacher.user, text=text, chat=group))
    sent = harness.api.chats.get(group["id"], [])
    replies = [m for m in sent if m["from"]["is_bot"]]
    assert len(replies) == 1 and "tin nhắn riêng" in replies[0]["text"]
    assert "reply_markup" not in replies[0]
    assert await services.drafts.active_flows(teacher.id) == []
    assert not teacher.bot_messages()  # nothing to the private chat either


async def test_group_chatter_is_ignored_and_group_buttons_refused(services: Services, harness: Harness):
    world = await make_world(services)
    teacher = harness.person("teacher")
    group = harness.api.group_chat()
    await harness.deliver(harness.api.incoming_message(teacher.user, text="nguyen van an", chat=group))
    await harness.deliver(harness.api.incoming_message(teacher.user, text="tiem vac xin o dau", chat=group))
    assert [m for m in harness.api.chats.get(group["id"], []) if m["from"]["is_bot"]] == []
    # A search in a group after /vaccine in private never lists students in the group.
    await teacher.send("/vaccine")
    await harness.deliver(harness.api.incoming_message(teacher.user, text="nguyen", chat=group))
    group_texts = [m.get("text", "") for m in harness.api.chats.get(group["id"], []) if m["from"]["is_bot"]]
    assert not any("Nguyễn" in text for text in group_texts)
    # A button pressed in a group.
    message = {"message_id": 1, "date": 0, "chat": group, "text": "x"}
    await harness.deliver(harness.api.callback_query(teacher.user, message, "my:list"))
    assert "tin nhắn riêng" in teacher.alerts()[-1]
    assert world.student_ids  # the world exists: the refusals above are not for want of data


# --- finding 5: replies within Telegram's limits -------------------------------------------------


async def test_a_huge_typed_answer_is_refused_at_the_step(services: Services, harness: Harness):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=2)
    teacher = harness.person("teacher")
    await teacher.send("/handover")
    await teacher.tap(batch_label(batch))
    for huge in ("n" * 5000, "<&>" * 2000):
        await teacher.send(huge)
        assert "quá dài" in teacher.last_text() and "Có lỗi" not in " ".join(teacher.texts())
        assert await step_of(services, teacher, "handover") == Step.SEARCH
    await teacher.send("/resume")
    assert "Có lỗi" not in teacher.last_text()
    await teacher.send("nguyen van an")
    await teacher.tap(AN)
    await teacher.tap(GIFT)
    # An answer under the flow's limit but long: the error echoes a short part of it.
    await teacher.send("ngày " + "9" * 900)
    reply = teacher.last_text()
    assert "Có lỗi" not in reply and telegram_length(reply) < 600
    assert await step_of(services, teacher, "handover") == Step.DATE


async def test_every_reply_fits_even_when_the_text_is_too_long(services: Services, harness: Harness):
    """The bot itself splits a message over 4,096 characters; the keyboard goes on the last part."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    await make_world(services)
    teacher = harness.person("teacher")
    assert harness.app is not None
    lines = [f"<b>Dòng {i}</b> học sinh <i>Nguyễn Văn An &amp; Bình</i>" for i in range(400)]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="x:y")]])
    await harness.app.bot.send_message(teacher.id, "\n".join(lines), reply_markup=markup)
    parts = teacher.bot_messages()
    assert len(parts) >= 4
    assert all(telegram_length(p["text"]) <= MESSAGE_LIMIT for p in parts)
    assert [("reply_markup" in p) for p in parts] == [False] * (len(parts) - 1) + [True]
    joined = "\n".join(p["text"] for p in parts)
    assert joined.count("<b>Dòng") == 400 and "Dòng 399" in parts[-1]["text"]
    # Captions are shortened, never refused.
    await harness.app.bot.send_document(teacher.id, document=b"x", filename="a.txt", caption="c" * 3000)
    assert telegram_length(teacher.bot_messages()[-1]["caption"]) <= CAPTION_LIMIT


def test_split_text_keeps_tags_balanced_and_prefers_line_breaks():
    text = "<b>" + "\n".join(f"dòng {i} " + "chữ " * 20 for i in range(300)) + "</b>"
    parts = split_text(text, 1000)
    assert len(parts) > 1
    for part in parts:
        assert telegram_length(part) <= 1000
        assert part.startswith("<b>") and part.endswith("</b>")
        assert part.count("<b>") == part.count("</b>")
        assert part[3:-4].rstrip().endswith("chữ")  # cut after a whole line
    visible = "".join(re.sub(r"</?b>", "", p) for p in parts)
    assert visible.count("dòng") == 300
    # A single line longer than the limit is cut between words; entities are never cut.
    one_line = "a &amp; b " * 500
    for part in split_text(one_line, 100, html=True):
        assert telegram_length(part) <= 100 and not re.search(r"&(amp)?$|&am$|&a$", part)
    # Emoji count twice, as Telegram counts them.
    assert all(telegram_length(p) <= 50 for p in split_text("😀" * 100, 50, html=False))
