"""What every flow inherits: wrong answers stay at the step, /cancel, restart mid-flow, timeout and
/resume, busy replies, double taps, double delivery."""

from __future__ import annotations

import asyncio

import pytest

from tests.chat import CONFIRM, TODAY_BUTTON, label, running_harness
from tests.factories import make_world
from tests.sample_flow import SampleFlow


@pytest.fixture
async def flow_harness(services, db_url):
    SampleFlow.saved = []
    async with running_harness(services, db_url, SampleFlow()) as harness:
        yield harness


async def test_happy_path_and_wrong_answers(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    assert teacher.last_text() == "Step 1: name?"
    await teacher.send("123")
    assert "chữ số" in teacher.last_text()  # stays at step 1 with a hint
    await teacher.send("nguyễn văn an")
    await teacher.send("31/02/2021")
    assert "không có trên lịch" in teacher.last_text()
    await teacher.tap(TODAY_BUTTON)
    await teacher.send("không")
    assert "không phải là số" in teacher.last_text()
    await teacher.send("1.000")
    assert teacher.last_text() == "Summary: Nguyễn Văn An / 2021-11-15 / 1000"
    await teacher.tap(CONFIRM)
    assert teacher.last_text() == "Saved."
    assert SampleFlow.saved[0]["quantity"] == 1000
    assert await services.drafts.get(teacher.id, "sample") is None


async def test_cancel_mid_flow_says_what_was_discarded(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    await teacher.send("/cancel")
    assert "Đã huỷ" in teacher.last_text() and "1 câu trả lời" in teacher.last_text()
    assert await services.drafts.get(teacher.id, "sample") is None
    await teacher.send("Lan")  # no longer in the flow: not taken as an answer
    assert SampleFlow.saved == []


async def test_restart_mid_flow_continues_at_the_same_step(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Trần Thị Bình")
    await teacher.send("hom qua")
    assert teacher.last_text() == "Step 3: quantity?"
    await flow_harness.restart()  # the process is killed and started again
    await teacher.send("12")
    assert teacher.last_text() == "Summary: Trần Thị Bình / 2021-11-14 / 12"
    await teacher.tap(CONFIRM)
    assert SampleFlow.saved[-1]["name"] == "Trần Thị Bình"


async def test_other_commands_mid_flow_do_not_start_a_second_flow(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("/me")
    texts = teacher.new_texts()
    assert any("Trả lời câu hỏi bên dưới" in t for t in texts)
    assert texts[-1] == "Step 1: name?"


async def test_reentry_offers_to_continue_or_restart(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    await teacher.send("/sample")
    assert "nhập dở" in teacher.last_text()
    await teacher.tap(label("core.draft_continue"))
    assert teacher.last_text() == "Step 2: date?"
    await teacher.send("/sample")
    await teacher.tap(label("core.draft_restart"))
    assert teacher.last_text() == "Step 1: name?"


async def test_double_confirm_saves_once(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    await teacher.tap(TODAY_BUTTON)
    await teacher.send("3")
    summary = teacher.bot_messages()[-1]
    button = summary["reply_markup"]["inline_keyboard"][0][0]
    for _ in range(2):
        await flow_harness.deliver(
            flow_harness.api.callback_query(teacher.user, summary, button["callback_data"])
        )
    assert len(SampleFlow.saved) == 1
    assert any("không còn dùng được" in a for a in teacher.alerts())


async def test_same_update_delivered_twice_is_handled_once(services, flow_harness):
    """The harness delivers through the update queue and the update processor, as polling does."""
    await make_world(services)
    teacher = flow_harness.person("teacher")
    update = flow_harness.api.incoming_message(teacher.user, text="/me")
    await asyncio.gather(flow_harness.deliver(update), flow_harness.deliver(dict(update)))
    await flow_harness.deliver(update)  # and once more, later
    assert len([t for t in teacher.texts() if "Đỗ Thị Hoa" in t]) == 1


async def test_one_chats_updates_are_handled_in_order(services, flow_harness):
    """Answers typed quickly one after the other reach the flow in order, never interleaved."""
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    updates = [flow_harness.api.incoming_message(teacher.user, text=text) for text in ("Lan", "hôm nay", "3")]
    await asyncio.gather(*(flow_harness.deliver(update) for update in updates))
    assert "Lan" in teacher.last_text() and "3" in teacher.last_text()


async def test_timeout_keeps_the_draft_for_resume(services, db_url):
    await make_world(services)
    async with running_harness(services, db_url, SampleFlow(), conversation_timeout_minutes=0.01) as harness:
        await timeout_transcript(services, harness)


async def timeout_transcript(services, harness) -> None:
    harness.resume_jobs()  # the job queue runs conversation timeouts
    teacher = harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    for _ in range(50):
        await asyncio.sleep(0.1)
        if "tạm dừng" in teacher.last_text():
            break
    assert "tạm dừng" in teacher.last_text()
    draft = await services.drafts.get(teacher.id, "sample")
    assert draft is not None and draft.suspended and draft.data["name"] == "Lan"
    await teacher.send("/resume")
    await teacher.tap(label("core.draft_continue"))
    assert teacher.last_text() == "Step 2: date?"
    await teacher.send("hôm nay")
    assert teacher.last_text() == "Step 3: quantity?"


async def test_one_flow_at_a_time_in_both_directions(services, db_url):
    from tests.sample_flow import PickerFlow

    await make_world(services)
    async with running_harness(services, db_url, SampleFlow(), PickerFlow()) as harness:
        teacher = harness.person("teacher")
        await teacher.send("/pickdemo")  # registered after /sample
        await teacher.send("/sample")
        assert "đang nhập dở" in teacher.last_text()
        assert await services.drafts.get(teacher.id, "sample") is None
        await teacher.send("nguyen van an")  # still answers the picker
        assert "2 học sinh" in teacher.last_text()


async def test_cancel_outside_a_flow_drops_a_draft_left_open(services, flow_harness):
    world = await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    await services.staff.set_active(world.staff_ids["teacher"], False)
    await teacher.send("hôm nay")  # the flow ends: access is gone, the draft stays
    await services.staff.set_active(world.staff_ids["teacher"], True)
    await teacher.send("/cancel")
    assert "Đã huỷ việc đang nhập dở" in teacher.last_text()
    assert await services.drafts.active_flows(teacher.id) == []


async def test_typed_html_in_an_answer_is_escaped_in_the_hint(services, flow_harness):
    await make_world(services)
    teacher = flow_harness.person("teacher")
    await teacher.send("/sample")
    await teacher.send("Lan")
    await teacher.send("<3")
    assert "«&lt;3»" in teacher.last_text()
