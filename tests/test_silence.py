"""Issue 16, item 2: every message a person can send gets an answer, in and out of a flow; stray
text outside a flow ("0", a date, one word of a button) gets the menu and is not kept as a question."""

from __future__ import annotations

from typing import Any

import pytest

from conversations.handover import Step
from storage.services import Services
from tests.chat import TODAY_BUTTON, Harness, Person
from tests.factories import AN, make_world
from tests.test_handover_flow import GIFT, batch_label, make_batch

FILE = {"file_id": "f1", "file_unique_id": "u1"}
LOCATION = {"latitude": 10.66, "longitude": 106.73}
# Every kind of message a person can send from a phone, as Telegram delivers it.
MEDIA: dict[str, dict[str, Any]] = {
    "photo": {"photo": [{**FILE, "width": 90, "height": 90}]},
    "sticker": {
        "sticker": {
            **FILE,
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    },
    "voice": {"voice": {**FILE, "duration": 3}},
    "audio": {"audio": {**FILE, "duration": 30}},
    "video": {"video": {**FILE, "width": 640, "height": 480, "duration": 5}},
    "video_note": {"video_note": {**FILE, "length": 240, "duration": 5}},
    "animation": {
        "animation": {**FILE, "width": 240, "height": 240, "duration": 2},
        "document": {**FILE, "file_name": "a.gif.mp4"},
    },
    "location": {"location": LOCATION},
    "venue": {"venue": {"location": LOCATION, "title": "Trường", "address": "Nhà Bè"}, "location": LOCATION},
    "contact": {"contact": {"phone_number": "+84900000000", "first_name": "Lan"}},
    "dice": {"dice": {"emoji": "🎲", "value": 3}},
    "poll": {
        "poll": {
            "id": "p1",
            "question": "?",
            "options": [{"text": "a", "voter_count": 0, "persistent_id": "o1"}],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
}


async def send_kind(harness: Harness, person: Person, kind: str) -> list[str]:
    person.new_texts()
    await harness.deliver(harness.api.incoming_message(person.user, **MEDIA[kind]))
    return person.new_texts()


@pytest.mark.parametrize("kind", sorted(MEDIA))
async def test_every_kind_of_message_outside_a_flow_gets_an_answer(
    services: Services, harness: Harness, kind: str
):
    await make_world(services)
    teacher = harness.person("teacher")
    replies = await send_kind(harness, teacher, kind)
    assert len(replies) == 1, replies
    assert "khi bạn chưa bắt đầu việc gì" in replies[0] or "GIF" in replies[0]
    assert teacher.reply_keyboard(), "the menu comes with it"


async def test_a_stranger_sending_a_sticker_is_told_how_to_register(services: Services, harness: Harness):
    await make_world(services)
    stranger = harness.stranger()
    replies = await send_kind(harness, stranger, "sticker")
    assert len(replies) == 1 and "mã mời" in replies[0].lower()


async def test_every_kind_of_message_at_every_step_of_a_flow_gets_an_answer(
    services: Services, harness: Harness
):
    world = await make_world(services)
    batch = await make_batch(services, world, quantity=3)
    teacher = harness.person("teacher")

    async def everything_at(step: Step) -> None:
        draft = await services.drafts.get(teacher.id, "handover")
        assert draft is not None and draft.step == step
        question = teacher.last_text()
        for kind in sorted(MEDIA):
            if step == Step.PHOTO and kind in ("photo", "animation"):
                continue  # a photo is the answer here (tested below)
            replies = await send_kind(harness, teacher, kind)
            assert len(replies) >= 2, (step, kind, replies)
            assert replies[-1] == question, (step, kind)  # the question again
            assert (await services.drafts.get(teacher.id, "handover")).step == step

    await teacher.send("/handover")
    await everything_at(Step.BATCH)
    await teacher.tap(batch_label(batch))
    await everything_at(Step.SEARCH)
    await teacher.send("nguyen van an")
    await teacher.tap(AN)
    await everything_at(Step.KIND)
    await teacher.tap(GIFT)
    await everything_at(Step.DATE)
    await teacher.tap(TODAY_BUTTON)
    await everything_at(Step.PHOTO)
    await teacher.photo(b"\xff\xd8signed")  # where a receipt photo is asked, a photo is the answer
    assert (await services.drafts.get(teacher.id, "handover")).step == Step.SUMMARY
    await everything_at(Step.SUMMARY)
    # Text where only a button is taken: the question comes again.
    teacher.new_texts()
    await teacher.send("ok")
    replies = teacher.new_texts()
    assert "bấm một nút" in replies[0].lower() or "Hãy bấm" in replies[0]
    assert (await services.drafts.get(teacher.id, "handover")).step == Step.SUMMARY


@pytest.mark.parametrize(
    "text", ["0", "1", "15/11/2021", "15/11", "hôm nay", "hom qua", "Bỏ qua", "xác nhận"]
)
async def test_stray_text_outside_a_flow_gets_the_menu_and_is_not_a_question(
    services: Services, harness: Harness, text: str
):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send(text)
    assert "chưa hiểu bạn muốn làm gì" in teacher.last_text()
    assert teacher.reply_keyboard()
    assert await services.faq.unanswered(limit=10) == []


async def test_a_real_question_is_still_answered_or_kept(services: Services, harness: Harness):
    await make_world(services)
    teacher = harness.person("teacher")
    await teacher.send("nhập mũi tiêm ở mục nào trên CSDL")
    assert "chưa hiểu bạn muốn làm gì" not in teacher.last_text()
    await teacher.send("bao giờ thì có lương tháng 13 cho giáo viên hợp đồng")
    assert len(await services.faq.unanswered(limit=10)) == 1


def test_is_stray_text():
    from conversations.common import button_words
    from storage.text import is_stray_text

    words = set(button_words())
    for text in (
        "0",
        " 12 ",
        "15/11/2021",
        "15-11",
        "Hôm nay",
        "HOM QUA",
        "✅ Xác nhận",
        "bo qua",
        "?",
        "ok",
    ):
        assert is_stray_text(text, words), text
    for text in ("hạn nộp báo cáo khi nào", "tiem vac xin", "nhập CSDL ở đâu", "chương trình hỗ trợ ai"):
        assert not is_stray_text(text, words), text
