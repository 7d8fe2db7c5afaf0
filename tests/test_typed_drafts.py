"""A draft is the flow's typed answers beside the framework's metadata; every state is one window.

Drafts stored before the answers were typed (flat keys, `_student`-style labels, ISO dates) still load,
so a deploy in the middle of someone's flow loses nothing."""

from __future__ import annotations

import inspect
import sys
from datetime import date
from typing import Any

from bot.app import FLOWS
from conversations.common import Answers, DraftMeta, Flow
from conversations.handover import HandoverAnswers, Step
from storage.enums import DeviceType, DonationSource
from storage.models import Handover
from storage.services import Services
from tests.chat import CONFIRM, SKIP, YESTERDAY_BUTTON, Harness, label
from tests.factories import BINH, make_world
from tests.test_handover_flow import handovers, make_batch

LEGACY = {
    "request_key": "0f3c9a2be1d44c6f8a9e7d6c5b4a3921",
    "_v": 4,
    "batch_id": 7,
    "_batch_number": 2,
    "_source": "other",
    "_device_type": "laptop",
    "_make_model": "Dell Latitude 3420",
    "_received_on": "2021-11-12",
    "student_id": 31,
    "_student": BINH,
    "_student_name": "Trần Thị Bình",
    "_picker": {"query": "binh", "page": 1},
    "_editing": True,
}


def test_a_draft_stored_before_the_answers_were_typed_loads_typed() -> None:
    answers = HandoverAnswers.from_draft(LEGACY)
    assert answers.batch_id == 7 and answers.batch_number == 2
    assert answers.source is DonationSource.OTHER and answers.device_type is DeviceType.LAPTOP
    assert answers.received_on == date(2021, 11, 12)
    assert answers.student_id == 31 and answers.student_label == BINH
    assert answers.picker is not None and answers.picker.query == "binh"
    meta = DraftMeta.from_draft(LEGACY)
    assert meta == DraftMeta(request_key=LEGACY["request_key"], asked=4, resume_step=None, editing=True)


def test_stored_again_under_the_same_metadata_keys_and_typed_answer_names() -> None:
    answers, meta = HandoverAnswers.from_draft(LEGACY), DraftMeta.from_draft(LEGACY)
    stored = answers.to_draft() | meta.to_draft()
    assert stored["request_key"] == LEGACY["request_key"] and stored["_v"] == 4 and stored["_editing"] is True
    assert stored["received_on"] == "2021-11-12" and stored["student_label"] == BINH
    assert HandoverAnswers.from_draft(stored) == answers and DraftMeta.from_draft(stored) == meta


def test_a_value_that_no_longer_fits_is_dropped_not_the_draft() -> None:
    answers = HandoverAnswers.from_draft({**LEGACY, "kind": "sold", "_received_on": "not a day"})
    assert answers.kind is None and answers.received_on is None
    assert answers.batch_id == 7 and answers.student_label == BINH


def test_a_cancel_counts_answers_not_the_labels_kept_with_them() -> None:
    # batch_id and student_id are answers; the batch's number, source, type, model, day and the
    # student's label and name and the picker's search are derived.
    assert HandoverAnswers.from_draft(LEGACY).answered() == 2


def flows() -> list[Flow[Any]]:
    return [build() for build in FLOWS]


def test_every_state_of_every_flow_is_one_window_with_its_question() -> None:
    for flow in flows():
        steps = sys.modules[type(flow).__module__].Step
        assert set(steps) <= set(flow.table), f"{flow.name}: a state without a window"
        for state, window in flow.table.items():
            assert inspect.iscoroutinefunction(window.question), (flow.name, state)
            assert window.answers, f"{flow.name}: state {state} takes no answer"


def test_no_flow_declares_its_questions_or_handlers_a_second_time() -> None:
    for flow in flows():
        for cls in type(flow).__mro__:
            if cls.__module__.startswith("conversations.") and cls.__module__ != "conversations.common":
                assert "prompt" not in vars(cls) and "steps" not in vars(cls), cls
        assert flow.answers_model is not Answers, f"{flow.name}: answers not typed"


async def test_a_flow_open_at_the_deploy_continues_to_the_saved_record(
    services: Services, harness: Harness
) -> None:
    world = await make_world(services)
    batch = await make_batch(services, world)
    teacher = harness.person("teacher")
    legacy = {
        **LEGACY,
        "batch_id": batch.id,
        "_batch_number": batch.number,
        "student_id": world.student_ids["HS0002"],
        "_editing": False,
    }
    await services.drafts.save(teacher.id, "handover", legacy, int(Step.KIND))
    await teacher.send("/handover")
    await teacher.tap(label("core.draft_continue"))
    assert "Trần Thị Bình" in teacher.last_text()  # the kind question names the student
    await teacher.send("tang")
    await teacher.tap(YESTERDAY_BUTTON)
    await teacher.tap(SKIP)
    summary = teacher.last_text()
    assert "Ngày bàn giao: <b>14/11/2021</b>" in summary and "12/11/2021" in summary
    await teacher.tap(CONFIRM)
    [saved] = await handovers(services)
    assert isinstance(saved, Handover) and saved.batch_id == batch.id
    assert saved.student_id == world.student_ids["HS0002"] and saved.request_key == LEGACY["request_key"]
