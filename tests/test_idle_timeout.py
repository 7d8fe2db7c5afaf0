"""The conversation timeout without a job per update (`conversations.common.IdleTimeoutConversationHandler`,
issue 17 item 3): answering keeps the conversation going; idle for the timeout, it is suspended and the
person told (tests/test_flow_lifecycle.py's timeout test: /resume continues it); the job queue holds
one job per flow, however many updates came."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ConversationHandler

from conversations.common import IdleTimeoutConversationHandler
from tests.chat import running_harness
from tests.factories import make_world
from tests.sample_flow import SampleFlow

TIMEOUT_MINUTES = 0.02  # 1.2 s


def sample_handler(harness) -> IdleTimeoutConversationHandler:
    found = [
        h
        for handlers in harness.app.handlers.values()
        for h in handlers
        if isinstance(h, ConversationHandler) and h.name == "sample"
    ]
    assert len(found) == 1 and isinstance(found[0], IdleTimeoutConversationHandler)
    return found[0]


async def test_answering_keeps_the_conversation_and_idling_ends_it(services, db_url):
    await make_world(services)
    async with running_harness(
        services, db_url, SampleFlow(), conversation_timeout_minutes=TIMEOUT_MINUTES
    ) as harness:
        harness.resume_jobs()
        handler = sample_handler(harness)
        teacher = harness.person("teacher")
        jobs_before = len(harness.app.job_queue.jobs())
        await teacher.send("/sample")
        # Answers come faster than the timeout, for longer than the timeout: never suspended.
        for _ in range(4):
            await asyncio.sleep(0.5)
            await teacher.send("/resume")  # asks the step again: an update of the conversation
            assert "tạm dừng" not in teacher.last_text()
        assert len(handler.timeout_jobs) == 1
        assert handler.check_update(teacher_update(harness, teacher)) is not None  # still the flow's
        # One repeating job for the flow, not one per update.
        assert len(harness.app.job_queue.jobs()) == jobs_before + 1
        for _ in range(50):
            await asyncio.sleep(0.1)
            if "tạm dừng" in teacher.last_text():
                break
        assert "tạm dừng" in teacher.last_text()
        assert handler.timeout_jobs == {}
        # The conversation ended: the teacher's text is not the flow's any more (it was its answer).
        assert handler.check_update(teacher_update(harness, teacher)) is None
        draft = await services.drafts.get(teacher.id, "sample")
        assert draft is not None and draft.suspended


def teacher_update(harness, teacher) -> Update:
    """A plain text message of the teacher (the sample flow's first answer)."""
    return Update.de_json(harness.api.incoming_message(teacher.user, text="Lan"), harness.app.bot)
