"""Issue 14, as a property (hypothesis, SQLite): random sequences of entries, submits, send-backs,
approvals and later entries, against the rules of period locks.

- an approved snapshot never changes after approval;
- every record dated after the period is accepted;
- every record dated inside a locked period (submitted or approved) is refused, with the lock's text;
  a need change is refused when the locked period's stock would see it (dated on or before its end).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.clock import Clock
from storage.db import create_engine
from storage.enums import DeviceType, DonationSource, PriorityGroup, SubmissionTrack
from storage.errors import DomainError
from storage.schemas.devices import BatchIn
from storage.schemas.needs import NeedIn
from storage.schemas.rounds import RoundIn
from storage.services import build_services
from tests.conftest import TZ
from tests.factories import make_world

START, END = date(2021, 11, 1), date(2021, 11, 10)
FIRST_DAY = date(2021, 10, 25)
NEED_STUDENTS = ("HS0001", "HS0002", "HS0003", "HS0004")

operation = st.one_of(
    st.tuples(st.just("batch"), st.integers(0, 40)),
    st.tuples(st.just("need"), st.integers(0, 40)),
    st.tuples(st.just("submit")),
    st.tuples(st.just("send_back")),
    st.tuples(st.just("approve")),
    st.tuples(st.just("later"), st.integers(1, 20)),
)


@pytest.fixture
def template(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("sqlite_template")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(operation, min_size=1, max_size=14))
def test_period_locks_hold_for_any_sequence(template: Path, operations: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "property.sqlite3"
        shutil.copyfile(template, target)
        asyncio.run(_run(f"sqlite+aiosqlite:///{target}", operations))


async def _run(url: str, operations: list[tuple[Any, ...]]) -> None:
    engine = create_engine(url)
    try:
        clock = Clock(tz=TZ)
        clock.freeze(datetime(2021, 11, 11, 9, 0, tzinfo=TZ))  # the day after the period
        services = build_services(engine, clock)
        world = await make_world(services)
        ids, school = world.staff_ids, world.primary_school_id
        rnd = await services.rounds.create_round(
            RoundIn(
                name="Kỳ 01–10/11",
                period_start=START,
                period_end=END,
                submit_deadline=datetime(2021, 11, 12, 15, 30),
                approve_deadline=datetime(2021, 11, 13, 11, 30),
                compile_deadline=datetime(2021, 11, 13, 17, 0),
            ),
            district_id=world.district_id,
            actor_id=ids["deputy_head"],
        )
        status = "not_submitted"
        submission_id: int | None = None
        approved: dict[int, tuple[dict[str, int], Any]] = {}  # snapshot id -> figures, approved at
        students = list(NEED_STUDENTS)
        for op in operations:
            kind = op[0]
            locked = status in ("submitted", "approved")
            if kind == "later":
                clock.advance(timedelta(days=op[1]))
            elif kind == "batch":
                day = min(FIRST_DAY + timedelta(days=op[1]), clock.today())
                data = BatchIn(
                    source=DonationSource.PROGRAM, received_on=day, quantity=2, device_type=DeviceType.LAPTOP
                )
                call = services.donations.create_batch(data, school_id=school, actor_id=ids["teacher"])
                await _expect(call, refused=locked and START <= day <= END, area="devices")
            elif kind == "need" and students:
                since = min(FIRST_DAY + timedelta(days=op[1]), clock.today())
                data = NeedIn(
                    student_id=world.student_ids[students.pop(0)],
                    category=PriorityGroup.POOR,
                    needs_device=True,
                    needs_connectivity=False,
                    since=since,
                )
                call = services.needs.record_need(
                    data, school_id=school, actor_id=ids["teacher"], request_key=None
                )
                await _expect(call, refused=locked and since <= END, area="needs")
            elif kind == "submit" and status in ("not_submitted", "returned"):
                result = await services.rounds.submit(
                    rnd.id, SubmissionTrack.PROGRAM, school_id=school, actor_id=ids["principal"]
                )
                submission_id, status = result.submission.id, "submitted"
            elif kind == "send_back" and status == "submitted":
                assert submission_id is not None
                await services.rounds.send_back(
                    submission_id, reviewer_id=ids["primary_specialist"], reason="Thiếu số liệu"
                )
                status = "returned"
            elif kind == "approve" and status == "submitted":
                assert submission_id is not None
                await services.rounds.approve(submission_id, reviewer_id=ids["primary_specialist"])
                status = "approved"
                latest = (await services.rounds.snapshots(rnd.id, SubmissionTrack.PROGRAM, school_id=school))[
                    -1
                ]
                approved[latest.id] = (latest.figures.values, latest.approved_at)
            # The approved snapshot never changes, whatever came after.
            snapshots = await services.rounds.snapshots(rnd.id, SubmissionTrack.PROGRAM, school_id=school)
            for snapshot in snapshots:
                if snapshot.id in approved:
                    assert (snapshot.figures.values, snapshot.approved_at) == approved[snapshot.id]
    finally:
        await engine.dispose()


async def _expect(call: Any, *, refused: bool, area: str) -> None:
    if refused:
        with pytest.raises(DomainError) as caught:
            await call
        assert caught.value.code in (f"{area}.locked", f"{area}.locked_approved")
        assert caught.value.params["end"] == END.strftime("%d/%m/%Y")
    else:
        await call  # accepted: any refusal here fails the property
