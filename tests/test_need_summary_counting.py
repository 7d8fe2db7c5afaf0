"""Issue 15: /need_summary counts needs as the reports do, so for the same school and day the chat
summary, a round's figures and Biểu 1 of the district workbook give the same numbers.

On the hand-built district of `tests.reports_world`, school S (79785101) gets four more students:
HS0009 needs a device since 10/11 and has only a loan on 11/11 (not met), then a gift on 14/11 (met
from then on); HS0010's need stood from 08/11 and was closed on 11/11; HS0011's need opens on 14/11;
HS0012 is on the list as poor with no need. Already there: HS0005 (other hardship, a gift on 9/11:
met) and HS0006 (poor, gifts on 6/11 and 9/11: met). The summary is read as of 12/11 and 15/11 and
compared with Biểu 1 of the district workbook to that day, read back from its bytes with openpyxl.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import delete

from exports.reports import needs_columns
from storage.enums import NEED_GROUPS, DeviceType, DonationSource, HandoverKind, PriorityGroup
from storage.models import DonationBatch, Handover, NeedHistory, NeedRecord, Student
from storage.schemas.needs import NeedIn, NeedSummary
from storage.schemas.reports import ReportPeriod, ReportScope
from storage.services import Services
from storage.text import fold
from tests.chat import Harness
from tests.reports_world import S_CODE, ReportWorld, at, make_report_world, nov, open_workbook, words
from tests.reports_world import read_table as read

W = words()


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    world = await make_report_world(services)
    school = world.secondary_id
    async with services.sessionmaker.begin() as session:
        for code, name, group in (
            ("HS0009", "Đỗ Văn Chín", PriorityGroup.POOR),
            ("HS0010", "Hồ Thị Mười", PriorityGroup.NEAR_POOR),
            ("HS0011", "Mai Văn Mười Một", PriorityGroup.OTHER_HARDSHIP),
            ("HS0012", "Phan Thị Mười Hai", PriorityGroup.POOR),
        ):
            student = Student(
                school_id=school,
                code=code,
                full_name=name,
                search_name=fold(name),
                date_of_birth=date(2009, 3, 1),
                grade=7,
                class_name="7A1",
                priority_group=group,
            )
            session.add(student)
            await session.flush()
            world.students[code] = student.id
        # A programme batch of S received 9/11: HS0009's loan on 11/11 (returned 13/11) and a gift on 14/11.
        batch = DonationBatch(
            school_id=school,
            source=DonationSource.PROGRAM,
            received_on=nov(9),
            quantity=2,
            allocated=2,
            device_type=DeviceType.TABLET,
            entered_at=at(nov(9), 16),
        )
        session.add(batch)
        await session.flush()
        session.add_all(
            [
                Handover(
                    batch_id=batch.id,
                    student_id=world.students["HS0009"],
                    kind=HandoverKind.LOAN,
                    handed_on=nov(11),
                    returned_on=nov(13),
                    entered_at=at(nov(11), 17),
                ),
                Handover(
                    batch_id=batch.id,
                    student_id=world.students["HS0009"],
                    kind=HandoverKind.GIFT,
                    handed_on=nov(14),
                    entered_at=at(nov(14), 17),
                ),
            ]
        )
    # Needs through the service, each counting from its own day.
    for code, group, device, connectivity, since in (
        ("HS0009", PriorityGroup.POOR, True, False, nov(10)),
        ("HS0010", PriorityGroup.NEAR_POOR, True, True, nov(8)),
        ("HS0011", PriorityGroup.OTHER_HARDSHIP, True, True, nov(14)),
    ):
        data = NeedIn(
            student_id=world.students[code],
            category=group,
            needs_device=device,
            needs_connectivity=connectivity,
            since=since,
        )
        await services.needs.record_need(data, school_id=school, actor_id=None, request_key=None)
    # HS0010's need closed on 11/11, as delete_need closes one a locked period counted: a closed state
    # in its history and no current record.
    async with services.sessionmaker.begin() as session:
        student_id = world.students["HS0010"]
        session.add(
            NeedHistory(
                student_id=student_id,
                changed_on=nov(11),
                category=PriorityGroup.NEAR_POOR,
                needs_device=True,
                needs_connectivity=True,
                closed=True,
            )
        )
        await session.execute(delete(NeedRecord).where(NeedRecord.student_id == student_id))
    return world


async def biểu_1(services: Services, rw: ReportWorld, day: date) -> dict[str, Any]:
    """School S's row of Biểu 1 in the district workbook for the period up to `day`."""
    report = await services.reports.build(
        "district", ReportScope.district(rw.district_id), ReportPeriod(date_to=day)
    )
    rows = read(open_workbook(report.content), "needs", needs_columns(W)).rows
    return next(r for r in rows if r["school_code"] == S_CODE)


def summary_as_sheet(summary: NeedSummary) -> dict[str, int]:
    """The summary's numbers under Biểu 1's column keys."""
    values = {
        "students": summary.students_listed,
        "device_total": summary.totals.needs_device,
        "device_met": summary.device_met,
        "device_unmet": summary.device_unmet,
        "connectivity_total": summary.totals.needs_connectivity,
        "needs_total": summary.totals.total,
    }
    for group in summary.groups:
        values[f"device_{group.category.value}"] = group.needs_device
        values[f"connectivity_{group.category.value}"] = group.needs_connectivity
    return values


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # 12/11: HS0005 and HS0006 (gifts: met), HS0009 (a loan only: not met); HS0010 closed on 11/11,
        # HS0011 not opened yet.
        (
            nov(12),
            {"device_total": 3, "device_met": 2, "device_unmet": 1, "connectivity_total": 0,
             "needs_total": 3, "device_poor": 2, "device_other_hardship": 1, "device_near_poor": 0},
        ),
        # 15/11: HS0009 given a device on 14/11 (met); HS0011 opened on 14/11 (not met).
        (
            nov(15),
            {"device_total": 4, "device_met": 3, "device_unmet": 1, "connectivity_total": 1,
             "needs_total": 4, "device_poor": 2, "device_other_hardship": 2, "device_near_poor": 0,
             "connectivity_other_hardship": 1},
        ),
    ],
)  # fmt: skip
async def test_summary_equals_the_district_workbook_for_the_same_school_and_day(
    services: Services, rw: ReportWorld, day: date, expected: dict[str, int]
) -> None:
    summary = await services.needs.need_summary(rw.secondary_id, day)
    assert summary.as_of == day
    mine = summary_as_sheet(summary)
    sheet = await biểu_1(services, rw, day)
    assert mine == {key: sheet[key] for key in mine}
    assert {key: mine[key] for key in expected} == expected
    assert mine["students"] == 7  # HS0005, HS0006, HS0008, HS0009–HS0012
    assert [g.category for g in summary.groups] == list(NEED_GROUPS)


async def test_summary_equals_the_rounds_figures(services: Services, rw: ReportWorld) -> None:
    """The round ends on 15/11: what the principal would submit is what the summary says that day."""
    figures = await services.rounds.school_figures(rw.round_id, school_id=rw.secondary_id)
    summary = await services.needs.need_summary(rw.secondary_id, nov(15))
    assert figures["needs.total"] == summary.totals.total == 4
    assert figures["needs.device_total"] == summary.totals.needs_device
    assert figures["needs.connectivity_total"] == summary.totals.needs_connectivity
    for group in summary.groups:
        assert figures[f"needs.device_{group.category.value}"] == group.needs_device
        assert figures[f"needs.connectivity_{group.category.value}"] == group.needs_connectivity


async def test_summary_in_chat_as_of_a_typed_day(
    services: Services, rw: ReportWorld, harness: Harness
) -> None:
    teacher = harness.person("teacher_thcs")
    await teacher.send("/need_summary")  # today, 15/11
    text = teacher.last_text()
    assert "đến hết ngày 15/11/2021" in text
    assert "<b>Cộng</b>: 4 em có nhu cầu — cần máy 4, cần kết nối 1 (cả hai 1)." in text
    assert "Cần máy: 3 em đã được tặng máy đến hết ngày 15/11/2021, 1 em chưa" in text

    await teacher.send("/need_summary 12/11/2021")
    text = teacher.last_text()
    assert "đến hết ngày 12/11/2021" in text
    assert "<b>Hộ nghèo</b>: 2 em có nhu cầu — cần máy 2, cần kết nối 0 (cả hai 0)." in text
    assert "<b>Hộ cận nghèo</b>: 0 em có nhu cầu" in text  # HS0010's need was closed on 11/11
    assert "<b>Cộng</b>: 3 em có nhu cầu — cần máy 3, cần kết nối 0 (cả hai 0)." in text
    # HS0009 has only a loan on 12/11: a loan never meets a need.
    assert "Cần máy: 2 em đã được tặng máy đến hết ngày 12/11/2021, 1 em chưa" in text

    await teacher.send("/need_summary 20/11/2021")
    assert "Ngày 20/11/2021 chưa tới: chỉ tổng hợp được nhu cầu" in teacher.last_text()
    await teacher.send("/need_summary 31/02/2021")
    assert "Tổng hợp nhu cầu" not in teacher.last_text()
    await teacher.send("/need_summary hôm qua")
    assert "đến hết ngày 14/11/2021" in teacher.last_text()
