"""No personal data in the logs at INFO (issue 18): a whole round — registration with an invite, a
handover entered in the chat, a send-back with a reason naming a student, submit, approve, compile, the
reminders — with every logger at INFO, as production runs, in the text and the JSON format. No student
name, phone number, token or invite code may appear in any line.
(tests/test_log_redaction.py does the same for a day of chat at DEBUG.)"""

from __future__ import annotations

import io
import json
import logging
import urllib.parse
from collections.abc import Iterator

import pytest

from bot.logging_setup import LOG_FORMAT, JsonFormatter, install_filter, secrets_of, set_levels
from conversations.reminders import JOB_NAME
from storage.enums import Role
from storage.schemas.faq import ContactIn
from storage.schemas.organisation import InviteIn
from storage.services import Services
from tests.chat import CONFIRM, Harness, label
from tests.factories import AN, make_world
from tests.test_handover_flow import make_batch, to_summary
from tests.test_round_flow import BOTH, PROGRAMME, SUBMIT, TH, THCS, directive_round, school_records

PHONE = "0901234567"
STUDENTS = ("Nguyễn Văn An", "nguyen van an", "Trần Thị Bình", "Lê Hoàng Cường", "Võ Minh Đức")
REASON = "Thiếu nhu cầu của học sinh Võ Minh Đức, gọi phụ huynh 0912345678"


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture(params=["text", "json"])
def info_log(request: pytest.FixtureRequest, harness: Harness) -> Iterator[io.StringIO]:
    """Every logger at INFO (LOG_LEVEL=INFO) into a handler set up as configure_logging does."""
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else logging.Formatter(LOG_FORMAT))
    install_filter(handler, secrets_of(harness.settings))
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    set_levels("INFO")
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        if request.param == "json":  # every line is one JSON object
            for line in stream.getvalue().splitlines():
                json.loads(line)


async def test_a_whole_round_at_info_logs_no_personal_data(
    services: Services, harness: Harness, info_log: io.StringIO
) -> None:
    world = await make_world(services)
    await school_records(services, world)
    await services.faq.import_contacts(
        [ContactIn(topic="vaccine", role="Y tế trường học", name="Lê Thị Hạnh", phone=PHONE)]
    )
    invite = await services.staff.create_invite(
        InviteIn(role=Role.TEACHER, school_code="79785001", full_name="Phạm Ngọc Diệp")
    )
    batch = await make_batch(services, world, quantity=1)
    await services.rounds.create_round(
        directive_round(), district_id=world.district_id, actor_id=world.staff_ids["deputy_head"]
    )

    newcomer = harness.person("5001", "Hoàng Quốc Việt")
    await newcomer.send(f"/start {invite.code}")
    assert "Đăng ký thành công" in newcomer.last_text()
    await newcomer.send("/start not-a-real-code-123")

    # An entry: a handover found by the student's name.
    teacher = harness.person("teacher")
    await to_summary(teacher, batch, "nguyen van an", AN)
    await teacher.tap(CONFIRM)
    assert "Đã lưu" in " ".join(teacher.new_texts())
    await teacher.send("/contacts")

    # Reminders run (the job logs what it sent).
    assert harness.app is not None and harness.app.job_queue is not None
    (job,) = harness.app.job_queue.get_jobs_by_name(JOB_NAME)
    await job.run(harness.app)

    # Submit, send back with a reason naming a student and a phone, submit again, approve, compile.
    principal, principal_thcs = harness.person("principal"), harness.person("principal_thcs")
    primary, secondary = harness.person("primary_specialist"), harness.person("secondary_specialist")
    health, statistics = harness.person("health_officer"), harness.person("statistics_officer")
    await principal.send("/submit")
    await principal.tap(PROGRAMME)
    await principal.tap(SUBMIT)
    await principal_thcs.send("/submit")
    await principal_thcs.tap(BOTH)
    await principal_thcs.tap(SUBMIT)
    await primary.send("/review")
    await primary.tap(TH)
    await primary.tap(label("rounds_chat.review.approve_button"))
    await secondary.send("/review")
    await secondary.tap(THCS)
    await secondary.tap(label("rounds_chat.review.send_back_button"))
    await secondary.send(REASON)
    await principal_thcs.send("/submit")
    await principal_thcs.tap(SUBMIT)
    await secondary.send("/review")
    await secondary.tap(THCS + label("rounds_chat.review.again_mark"))
    await secondary.tap(label("rounds_chat.review.approve_button"))
    await health.send("/review_vaccine")
    await health.tap(THCS)
    await health.tap(label("rounds_chat.review.approve_button"))
    await statistics.send("/compile")
    await statistics.tap(label("rounds_chat.compile.compile_button"))
    assert "Đã tổng hợp" in statistics.last_text()

    log = info_log.getvalue()
    assert "Reminders:" in log, "nothing was logged at INFO: the test proves nothing"
    token = harness.api.token
    leaks = [
        token,
        urllib.parse.quote(token, safe=""),
        invite.code,
        "not-a-real-code-123",
        *STUDENTS,
        "Phạm Ngọc Diệp",
        "Hoàng Quốc Việt",
        "Lê Thị Hạnh",
        PHONE,
        "0912345678",
    ]
    for secret in leaks:
        found = [line for line in log.splitlines() if secret in line]
        assert not found, (secret, found[:3])
