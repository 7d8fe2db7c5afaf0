"""Every total of every report, on the hand-made district of `tests.reports_world`.

Each workbook is built by the service, loaded back with openpyxl from its bytes, and every figure is
checked twice: against the numbers written in this file, and against an independent count made here
from the database rows (plain ORM reads counted in Python, not the report's queries).
"""

from __future__ import annotations

import zipfile
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import select

from exports.reports import (
    batch_columns,
    devices_columns,
    grade_columns,
    issue_columns,
    needs_columns,
    place_columns,
    product_columns,
    round_status_columns,
    stream_columns,
    timeliness_columns,
    vaccination_columns,
)
from storage.enums import DonationSource, HandoverKind, PriorityGroup
from storage.models import DonationBatch, Handover, NeedRecord, School, Student, VaccineDose
from storage.schemas.reports import ReportPeriod, ReportScope
from storage.services import Services
from tests.reports_world import (
    AT_DONOR,
    DASH_DONOR,
    FORMULA_DONOR,
    P_CODE,
    P_NAME,
    PHONE_DONOR,
    S_CODE,
    S_NAME,
    ReportWorld,
    label,
    make_report_world,
    nov,
    open_workbook,
    read_table,
    sheet,
    words,
)

W = words()
ZERO_DEVICES = {
    "batches": 0, "donors": 0, "received": 0, "given": 0, "lent": 0, "on_loan": 0, "returned": 0, "left": 0
}  # fmt: skip


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    return await make_report_world(services)


async def build(services: Services, kind: str, scope: ReportScope, **kwargs: Any) -> Any:
    report = await services.reports.build(kind, scope, **kwargs)
    assert report.content[:2] == b"PK"
    return report, open_workbook(report.content)


def only(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def pick(row: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: row[k] for k in keys}


# --- independent counts from the database ---------------------------------------------------------


async def active_students(services: Services, district_id: int) -> dict[int, list[Student]]:
    async with services.sessionmaker() as session:
        students = (
            await session.scalars(
                select(Student).join(School).where(School.district_id == district_id, Student.active)
            )
        ).all()
    by_school: dict[int, list[Student]] = defaultdict(list)
    for student in students:
        by_school[student.school_id].append(student)
    return by_school


async def independent_needs(services: Services, district_id: int) -> dict[int, Counter[str]]:
    async with services.sessionmaker() as session:
        needs = (await session.scalars(select(NeedRecord))).all()
        students = {s.id: s for s in (await session.scalars(select(Student))).all()}
        schools = {s.id: s for s in (await session.scalars(select(School))).all()}
        gifts = {
            h.student_id
            for h in (await session.scalars(select(Handover))).all()
            if h.kind == HandoverKind.GIFT
        }
    result: dict[int, Counter[str]] = defaultdict(Counter)
    for need in needs:
        student = students[need.student_id]
        if not student.active or schools[student.school_id].district_id != district_id:
            continue
        counter = result[student.school_id]
        counter["needs_total"] += 1
        group = PriorityGroup(need.category).value
        if need.needs_device:
            counter[f"device_{group}"] += 1
            counter["device_total"] += 1
            counter["device_met" if student.id in gifts else "device_unmet"] += 1
            if group != "other_hardship":
                counter["device_program"] += 1
        if need.needs_connectivity:
            counter[f"connectivity_{group}"] += 1
            counter["connectivity_total"] += 1
    return result


async def independent_devices(services: Services, district_id: int) -> dict[tuple[int, str], Counter[str]]:
    async with services.sessionmaker() as session:
        batches = (
            await session.scalars(select(DonationBatch).join(School).where(School.district_id == district_id))
        ).all()
        handovers = (await session.scalars(select(Handover))).all()
    result: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    donors: dict[tuple[int, str], set[int]] = defaultdict(set)
    for batch in batches:
        key = (batch.school_id, DonationSource(batch.source).value)
        counter = result[key]
        counter["batches"] += 1
        counter["received"] += batch.quantity
        if batch.donor_id:
            donors[key].add(batch.donor_id)
        mine = [h for h in handovers if h.batch_id == batch.id]
        given = sum(1 for h in mine if h.kind == HandoverKind.GIFT)
        on_loan = sum(1 for h in mine if h.kind == HandoverKind.LOAN and h.returned_on is None)
        counter["given"] += given
        counter["lent"] += sum(1 for h in mine if h.kind == HandoverKind.LOAN)
        counter["on_loan"] += on_loan
        counter["returned"] += sum(
            1 for h in mine if h.kind == HandoverKind.LOAN and h.returned_on is not None
        )
        counter["left"] += batch.quantity - given - on_loan
    for key, ids in donors.items():
        result[key]["donors"] = len(ids)
    return result


async def independent_doses(
    services: Services, district_id: int
) -> tuple[dict[int, Counter[str]], list[VaccineDose]]:
    by_school = await active_students(services, district_id)
    async with services.sessionmaker() as session:
        doses = (await session.scalars(select(VaccineDose))).all()
    student_school = {s.id: school for school, students in by_school.items() for s in students}
    per_student = Counter(d.student_id for d in doses if d.student_id in student_school)
    result: dict[int, Counter[str]] = defaultdict(Counter)
    for school, students in by_school.items():
        counter = result[school]
        counter["enrolled"] = len(students)
        for student in students:
            n = per_student[student.id]
            counter["dose1"] += n >= 1
            counter["dose2"] += n >= 2
            counter["dose3"] += n >= 3
    kept = [d for d in doses if d.student_id in student_school]
    for dose in kept:
        counter = result[student_school[dose.student_id]]
        counter["doses"] += 1
        counter[
            {"school": "at_school", "community": "in_community", "elsewhere": "elsewhere"}[dose.place]
        ] += 1
    return result, kept


# --- needs ----------------------------------------------------------------------------------------

NEEDS_P = {
    "students": 4,
    "students_priority": 3,
    "device_poor": 2,
    "connectivity_poor": 1,
    "device_near_poor": 1,
    "connectivity_near_poor": 0,
    "device_covid_orphan": 0,
    "connectivity_covid_orphan": 1,
    "device_other_hardship": 0,
    "connectivity_other_hardship": 0,
    "device_program": 3,
    "device_total": 3,
    "device_met": 2,
    "device_unmet": 1,  # HS0002 was only lent a device: a loan is not a device
    "connectivity_total": 2,
    "needs_total": 4,
}
NEEDS_S = {
    "students": 3,
    "students_priority": 2,
    "device_poor": 1,
    "connectivity_poor": 0,
    "device_near_poor": 0,
    "connectivity_near_poor": 0,
    "device_covid_orphan": 0,
    "connectivity_covid_orphan": 0,
    "device_other_hardship": 1,
    "connectivity_other_hardship": 0,
    "device_program": 1,
    "device_total": 2,
    "device_met": 2,
    "device_unmet": 0,
    "connectivity_total": 0,
    "needs_total": 2,
}


async def test_needs_report_every_total(services: Services, rw: ReportWorld) -> None:
    report, wb = await build(services, "needs", ReportScope.district(rw.district_id))
    table = read_table(wb, "needs", needs_columns(W))
    metrics = list(NEEDS_P)
    assert [(r["school_code"], r["school_name"]) for r in table.rows] == [(P_CODE, P_NAME), (S_CODE, S_NAME)]
    p, s = table.rows
    assert p["level"] == label("level", "TH") and s["level"] == label("level", "THCS")
    assert pick(p, metrics) == NEEDS_P
    assert pick(s, metrics) == NEEDS_S
    # Totals per level and for the district, written by the database.
    assert [t["school_name"] for t in table.totals] == ["Cộng Tiểu học", "Cộng THCS", "Tổng cộng"]
    assert pick(table.totals[0], metrics) == NEEDS_P
    assert pick(table.totals[1], metrics) == NEEDS_S
    assert pick(table.totals[2], metrics) == {k: NEEDS_P[k] + NEEDS_S[k] for k in metrics}

    # Independent count from the database rows.
    counted = await independent_needs(services, rw.district_id)
    students = await active_students(services, rw.district_id)
    for row, school_id in ((p, rw.primary_id), (s, rw.secondary_id)):
        for key in metrics:
            if key == "students":
                assert row[key] == len(students[school_id])
            elif key == "students_priority":
                assert row[key] == sum(
                    1 for x in students[school_id] if x.priority_group != PriorityGroup.NONE
                )
            else:
                assert row[key] == counted[school_id][key], key

    # The per-student list agrees with the table, school by school.
    detail = read_table(wb, "needs_students", stream_columns(W, "needs_students"))
    per_school = Counter(r["school_code"] for r in detail.rows)
    assert per_school == {P_CODE: p["needs_total"], S_CODE: s["needs_total"]}
    assert [r["student_code"] for r in detail.rows] == [
        "HS0003",
        "HS0001",
        "HS0002",
        "HS0004",
        "HS0006",
        "HS0005",
    ]
    assert sum(1 for r in detail.rows if r["needs_device"] == "Có") == 5
    hs2 = only(detail.rows, student_code="HS0002")
    assert hs2["gift_on"] is None and hs2["loan_on"] == datetime(2021, 11, 3)  # lent, not given
    hs1 = only(detail.rows, student_code="HS0001")
    assert hs1["gift_on"] == datetime(2021, 11, 2) and hs1["date_of_birth"] == datetime(2012, 3, 14)
    assert detail.cells[1][0].number_format == "@" or detail.cells[1][0].data_type == "s"
    # A note typed as "=1+1" stays text.
    note_cell = detail.cells[1][[c.key for c in stream_columns(W, "needs_students")].index("note")]
    assert note_cell.value == "=1+1" and note_cell.data_type == "s"
    # The other district's need is nowhere.
    assert "HS9001" not in {r["student_code"] for r in detail.rows}

    # Inconsistencies of the needs area.
    issues = read_table(wb, "issues", issue_columns(W))
    assert sorted((r["issue"], r["subject"].split(" – ")[0]) for r in issues.rows) == [
        (label("issue", "need_category_mismatch"), "HS0003"),
        (label("issue", "need_not_enrolled"), "HS0007"),
    ]
    mismatch = only(issues.rows, issue=label("issue", "need_category_mismatch"))
    assert "Hộ nghèo" in mismatch["detail"] and "Không thuộc diện" in mismatch["detail"]
    assert report.summary.startswith("2 trường, 7 học sinh: 5 em cần máy tính (4 em thuộc diện Chương trình)")


# --- devices --------------------------------------------------------------------------------------

DEVICES = {
    (P_CODE, "program"): {
        "batches": 1,
        "donors": 0,
        "received": 3,
        "given": 1,
        "lent": 2,
        "on_loan": 1,
        "returned": 1,
        "left": 1,
    },
    (P_CODE, "other"): {
        "batches": 2,
        "donors": 2,
        "received": 3,
        "given": 2,
        "lent": 0,
        "on_loan": 0,
        "returned": 0,
        "left": 1,
    },
    (S_CODE, "program"): {
        "batches": 2,
        "donors": 0,
        "received": 3,
        "given": 2,
        "lent": 1,
        "on_loan": 1,
        "returned": 0,
        "left": 0,
    },
    (S_CODE, "other"): {
        "batches": 2,
        "donors": 2,
        "received": 6,
        "given": 2,
        "lent": 0,
        "on_loan": 0,
        "returned": 0,
        "left": 4,
    },
}


def _sum(*rows: dict[str, int]) -> dict[str, int]:
    return {k: sum(r[k] for r in rows) for k in rows[0]}


async def shown_batches(services: Services) -> dict[tuple[str, int], int]:
    """(school code, the school's batch number) -> the batch's id."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            select(School.code, DonationBatch.number, DonationBatch.id).join(
                School, School.id == DonationBatch.school_id
            )
        )
        return {(code, number): batch_id for code, number, batch_id in rows}


async def test_devices_report_every_total(services: Services, rw: ReportWorld) -> None:
    report, wb = await build(services, "devices", ReportScope.district(rw.district_id))
    table = read_table(wb, "devices", devices_columns(W))
    metrics = list(ZERO_DEVICES)
    source_of = {label("source", "program"): "program", label("source", "other"): "other"}
    got = {(r["school_code"], source_of[r["source"]]): pick(r, metrics) for r in table.rows}
    assert got == DEVICES
    assert [(r["school_code"], source_of[r["source"]]) for r in table.rows] == list(DEVICES)

    # Totals: per level and source, per source, and all sources.
    totals = {(t["school_name"], t["source"]): pick(t, metrics) for t in table.totals}
    program, other = label("source", "program"), label("source", "other")
    assert totals[("Cộng Tiểu học", program)] == DEVICES[(P_CODE, "program")]
    assert totals[("Cộng Tiểu học", other)] == DEVICES[(P_CODE, "other")]
    assert totals[("Cộng THCS", program)] == DEVICES[(S_CODE, "program")]
    assert totals[("Cộng THCS", other)] == DEVICES[(S_CODE, "other")]
    assert totals[("Tổng cộng", program)] == _sum(DEVICES[(P_CODE, "program")], DEVICES[(S_CODE, "program")])
    assert totals[("Tổng cộng", other)] == _sum(DEVICES[(P_CODE, "other")], DEVICES[(S_CODE, "other")])
    assert totals[("Tổng cộng (mọi nguồn)", None)] == _sum(*DEVICES.values())
    assert totals[("Tổng cộng (mọi nguồn)", None)] == {
        "batches": 7, "donors": 4, "received": 15, "given": 7,
        "lent": 3, "on_loan": 2, "returned": 1, "left": 6,
    }  # fmt: skip

    # Independent count from the database rows.
    counted = await independent_devices(services, rw.district_id)
    codes = {rw.primary_id: P_CODE, rw.secondary_id: S_CODE}
    for (school_id, source), counter in counted.items():
        assert {k: counter.get(k, 0) for k in metrics} == got[(codes[school_id], source)]

    # The per-student lists: gifts and loans apart, and they add up to the table.
    gifts = read_table(wb, "device_gifts", stream_columns(W, "device_gifts"))
    loans = read_table(wb, "device_loans", stream_columns(W, "device_loans"))
    assert len(gifts.rows) == 7 == totals[("Tổng cộng (mọi nguồn)", None)]["given"]
    assert len(loans.rows) == 3 == 2 + 1  # on loan + returned
    for school in (P_CODE, S_CODE):
        for source in ("program", "other"):
            given = [r for r in gifts.rows if r["school_code"] == school and source_of[r["source"]] == source]
            lent = [r for r in loans.rows if r["school_code"] == school and source_of[r["source"]] == source]
            assert len(given) == DEVICES[(school, source)]["given"]
            open_loans = [r for r in lent if r["loan_status"] == label("loan_status", "open")]
            assert len(open_loans) == DEVICES[(school, source)]["on_loan"]
    # A loan is not "has a device": HS0002 and HS0004 appear only among the loans.
    assert {r["student_code"] for r in loans.rows} == {"HS0002", "HS0004", "HS0005"}
    assert not {"HS0002", "HS0004"} & {r["student_code"] for r in gifts.rows}
    returned = only(loans.rows, student_code="HS0004")
    assert returned["returned_on"] == datetime(2021, 11, 10) and returned["loan_status"] == "Đã trả"

    # Donor names that look like formulas are text, never formulas.
    donor_col = [c.key for c in stream_columns(W, "device_gifts")].index("donor_name")
    donor_cells = [cells[donor_col] for cells in gifts.cells if cells[donor_col].value == FORMULA_DONOR]
    assert donor_cells and all(c.data_type == "s" and c.quotePrefix for c in donor_cells)

    # Batches and the district's 5-day rule.
    batches = read_table(wb, "batches", batch_columns(W))
    shown = await shown_batches(services)  # the sheet names a batch by its school's own number
    by_id = {shown[(r["school_code"], r["batch_number"])]: r for r in batches.rows}
    status = {key: by_id[rw.batches[key]]["deadline_status"] for key in rw.batches}
    assert status == {
        "B1": "Đạt",  # the whole batch (a gift and two loans) handed over by 6/11
        "B2": "Đạt",  # both devices handed over by 10/11 (one entered late: the 1-day rule, Biểu 8)
        "B3": "Đạt",
        "B4": "Đạt",
        "B5": "Đạt",
        "B6": "Chưa đến hạn",  # received 14/11, nothing handed over yet, due 19/11
        "B7": "Quá hạn, chưa bàn giao",
    }
    reported = {key: by_id[rw.batches[key]]["report_status"] for key in rw.batches}
    assert reported == {
        **{k: "Quá hạn, chưa báo cáo" for k in rw.batches},
        "B4": "Chưa đến hạn",  # due 17/11: handed over already, the report upward may still come
        "B6": "Chưa đến hạn",
    }
    left = {key: by_id[rw.batches[key]]["left"] for key in rw.batches}
    assert left == {"B1": 1, "B2": 0, "B3": 0, "B4": 0, "B5": -1, "B6": 5, "B7": 1}
    assert by_id[rw.batches["B2"]]["report_deadline"] == datetime(2021, 11, 10)
    assert by_id[rw.batches["B2"]]["handed_by_deadline"] == 2
    donor_col = [c.key for c in batch_columns(W)].index("donor_name")
    for cells in batches.cells:
        value = cells[donor_col].value
        if value in (FORMULA_DONOR, PHONE_DONOR, AT_DONOR, DASH_DONOR):
            assert cells[donor_col].data_type == "s" and cells[donor_col].quotePrefix, value
    assert {cells[donor_col].value for cells in batches.cells} >= {
        FORMULA_DONOR,
        PHONE_DONOR,
        AT_DONOR,
        DASH_DONOR,
    }
    note = sheet(wb, "batches")["A3"].value
    assert "ngày nhận + 05 ngày" in note and "Phát sinh trong kỳ" not in note  # what "met" means

    # Reconciliation: each planted inconsistency, and nothing else.
    issues = read_table(wb, "issues", issue_columns(W))
    found = sorted((r["issue"], r["subject"].split(" – ")[0]) for r in issues.rows)
    number = {batch_id: n for (_, n), batch_id in shown.items()}
    b2, b5 = f"#{number[rw.batches['B2']]}", f"#{number[rw.batches['B5']]}"
    assert found == sorted(
        [
            (label("issue", "over_given"), b5),
            (label("issue", "allocated_mismatch"), b5),
            (label("issue", "two_program_devices"), "HS0005"),
            (label("issue", "handover_before_receipt"), b2),
            (label("issue", "handover_other_school"), b2),
        ]
    )
    over = only(issues.rows, issue=label("issue", "over_given"))
    assert over["detail"] == "Đợt nhận 1 thiết bị nhưng đã tặng 2 và đang cho mượn 0 (vượt 1)."
    before = only(issues.rows, issue=label("issue", "handover_before_receipt"))
    assert "04/11/2021" in before["detail"] and "05/11/2021" in before["detail"]
    other_school = only(issues.rows, issue=label("issue", "handover_other_school"))
    assert S_CODE in other_school["detail"] and other_school["school_code"] == P_CODE
    # The formula-looking donor in a subject is text too.
    subject_col = [c.key for c in issue_columns(W)].index("subject")
    assert all(cells[subject_col].data_type == "s" for cells in issues.cells)
    assert report.summary == (
        "2 trường, 7 đợt tài trợ: nhận 15 thiết bị, đã tặng 7, đang cho mượn 2, còn lại 6; "
        "5 điểm cần đối chiếu."
    )


async def test_devices_report_for_a_date_range_counts_loans_as_of_its_end(
    services: Services, rw: ReportWorld
) -> None:
    period = ReportPeriod(date_from=nov(1), date_to=nov(5))
    _, wb = await build(services, "devices", ReportScope.district(rw.district_id), period=period)
    table = read_table(wb, "devices", devices_columns(W))
    source_of = {label("source", "program"): "program", label("source", "other"): "other"}
    got = {(r["school_code"], source_of[r["source"]]): pick(r, list(ZERO_DEVICES)) for r in table.rows}
    assert got == {
        # B1; HS0004's loan was returned on 10/11, after the period: still on loan on 5/11.
        (P_CODE, "program"): {
            **ZERO_DEVICES,
            "batches": 1,
            "received": 3,
            "given": 1,
            "lent": 2,
            "on_loan": 2,
        },
        # Received in the period: B2; left at the end: B2's other device and B7 (received 20/10).
        (P_CODE, "other"): {**ZERO_DEVICES, "batches": 1, "donors": 1, "received": 2, "given": 1, "left": 2},
        (S_CODE, "program"): ZERO_DEVICES,
        # B5 (1/10) was over-given before the period: a stock of −1 (and a reconciliation row).
        (S_CODE, "other"): {**ZERO_DEVICES, "left": -1},
    }
    loans = read_table(wb, "device_loans", stream_columns(W, "device_loans"))
    assert sorted((r["student_code"], r["loan_status"], r["returned_on"]) for r in loans.rows) == [
        ("HS0002", "Đang mượn", None),
        ("HS0004", "Đang mượn", None),
    ]
    issues = read_table(wb, "issues", issue_columns(W))
    assert [r["issue"] for r in issues.rows] == [label("issue", "handover_before_receipt")]
    assert sheet(wb, "devices")["A2"].value.endswith("từ 01/11/2021 đến 05/11/2021")


# --- vaccination ----------------------------------------------------------------------------------

VACC_P = {
    "enrolled": 4,
    "dose1": 3,
    "dose2": 2,
    "dose3": 1,
    "doses": 6,
    "at_school": 4,
    "in_community": 1,
    "elsewhere": 1,
}
VACC_S = {
    "enrolled": 3,
    "dose1": 2,
    "dose2": 2,
    "dose3": 0,
    "doses": 4,
    "at_school": 4,
    "in_community": 0,
    "elsewhere": 0,
}


async def test_vaccination_report_every_total(services: Services, rw: ReportWorld) -> None:
    report, wb = await build(services, "vaccination", ReportScope.district(rw.district_id))
    table = read_table(wb, "vaccination", vaccination_columns(W))
    metrics = list(VACC_P)
    p, s = table.rows
    assert pick(p, metrics) == VACC_P and pick(s, metrics) == VACC_S
    assert p["coverage1"] == pytest.approx(3 / 4) and p["coverage2"] == pytest.approx(2 / 4)
    assert s["coverage1"] == pytest.approx(2 / 3)
    coverage_col = [c.key for c in vaccination_columns(W)].index("coverage1")
    assert table.cells[0][coverage_col].number_format == "0.0%"
    assert [t["school_name"] for t in table.totals] == ["Cộng Tiểu học", "Cộng THCS", "Tổng cộng"]
    total = table.totals[-1]
    assert pick(total, metrics) == {k: VACC_P[k] + VACC_S[k] for k in metrics}
    assert total["coverage1"] == pytest.approx(5 / 7)

    counted, doses = await independent_doses(services, rw.district_id)
    assert {k: counted[rw.primary_id][k] for k in metrics} == VACC_P
    assert {k: counted[rw.secondary_id][k] for k in metrics} == VACC_S

    grades = read_table(wb, "vaccination_grades", grade_columns(W))
    assert [
        (r["school_code"], r["grade"], r["enrolled"], r["dose1"], r["dose2"], r["dose3"]) for r in grades.rows
    ] == [
        (P_CODE, 3, 1, 0, 0, 0),
        (P_CODE, 4, 2, 2, 1, 0),
        (P_CODE, 5, 1, 1, 1, 1),
        (S_CODE, 7, 1, 1, 1, 0),
        (S_CODE, 8, 1, 1, 1, 0),
        (S_CODE, 9, 1, 0, 0, 0),
    ]
    for school, expected in ((P_CODE, VACC_P), (S_CODE, VACC_S)):
        mine = [r for r in grades.rows if r["school_code"] == school]
        assert sum(r["enrolled"] for r in mine) == expected["enrolled"]
        assert sum(r["dose1"] for r in mine) == expected["dose1"]
    assert grades.totals[-1]["enrolled"] == 7 and grades.totals[-1]["dose1"] == 5
    assert [t["school_name"] for t in grades.totals[:-1]] == [f"Khối {g} – cộng" for g in (3, 4, 5, 7, 8, 9)]

    products = read_table(wb, "vaccination_products", product_columns(W))
    split = ("doses", "first_doses", "second_doses", "booster_doses")
    assert [(r["product_name"], *(r[k] for k in split)) for r in products.rows] == [
        ("Comirnaty (Pfizer-BioNTech)", 8, 4, 2, 2),
        ("Vero Cell (Sinopharm)", 2, 1, 1, 0),
    ]  # fmt: skip
    assert pick(products.totals[0], ["doses", "first_doses", "second_doses", "booster_doses"]) == {
        "doses": 10, "first_doses": 5, "second_doses": 3, "booster_doses": 2
    }  # fmt: skip
    places = read_table(wb, "vaccination_places", place_columns(W))
    assert [(r["place"], r["doses"], r["first_doses"]) for r in places.rows] == [
        ("Tại trường", 8, 3),
        ("Tại cộng đồng", 1, 1),
        ("Nơi khác", 1, 1),
    ]
    assert places.totals[0]["doses"] == 10

    dose_list = read_table(wb, "vaccination_doses", stream_columns(W, "vaccination_doses"))
    assert Counter(r["school_code"] for r in dose_list.rows) == {P_CODE: 6, S_CODE: 4}
    assert len(dose_list.rows) == len(doses) == 10
    assert Counter(r["student_code"] for r in dose_list.rows) == {
        "HS0001": 2, "HS0002": 1, "HS0004": 3, "HS0005": 2, "HS0006": 2
    }  # fmt: skip
    assert only(dose_list.rows, student_code="HS0004", dose_number=3)["given_on"] == datetime(2021, 11, 10)

    issues = read_table(wb, "issues", issue_columns(W))
    assert sorted((r["issue"], r["subject"].split(" – ")[0]) for r in issues.rows) == sorted(
        [
            (label("issue", "dose_not_enrolled"), "HS0007"),
            (label("issue", "dose_gap"), "HS0005"),
            (label("issue", "dose_order"), "HS0006"),
        ]
    )
    assert only(issues.rows, issue=label("issue", "dose_order"))["detail"] == (
        "Mũi 2 ngày 10/10/2021 lại trước mũi 1 ngày 20/10/2021."
    )

    # The coverage chart: a native bar chart over the per-school sheet.
    with zipfile.ZipFile(BytesIO(report.content)) as archive:
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 1
        xml = archive.read(charts[0]).decode()
    assert "<c:barChart>" in xml and "Tiêm chủng theo trường" in xml
    assert (
        report.summary == "2 trường, 7 học sinh: 5 em đã tiêm ít nhất 1 mũi (71,4%), 4 em đã tiêm từ 2 mũi."
    )


# --- timeliness -----------------------------------------------------------------------------------

# The records of the 1-day rule (batches, handovers, returns, doses of enrolled students); needs only
# counted as recorded states (HS0007 left school: neither its dose nor its need counts).
TIMELY_P = {
    "batches_total": 3, "batches_late": 0, "handovers_total": 5, "handovers_late": 1, "returns_total": 1,
    "returns_late": 0, "doses_total": 6, "doses_late": 1, "records_total": 15, "records_late": 2,
    "needs_recorded": 4,
}  # fmt: skip
TIMELY_S = {
    "batches_total": 4, "batches_late": 1, "handovers_total": 5, "handovers_late": 0, "returns_total": 0,
    "returns_late": 0, "doses_total": 4, "doses_late": 0, "records_total": 13, "records_late": 1,
    "needs_recorded": 2,
}  # fmt: skip


async def test_timeliness_report_every_total(services: Services, rw: ReportWorld) -> None:
    report, wb = await build(services, "timeliness", ReportScope.district(rw.district_id))
    table = read_table(wb, "timeliness", timeliness_columns(W))
    metrics = list(TIMELY_P)
    p, s = table.rows
    assert pick(p, metrics) == TIMELY_P and pick(s, metrics) == TIMELY_S
    # The rate covers the records of the 1-day rule only: never needs, which can never be late.
    assert p["on_time_rate"] == pytest.approx(13 / 15) and s["on_time_rate"] == pytest.approx(12 / 13)
    assert pick(table.totals[-1], metrics) == {k: TIMELY_P[k] + TIMELY_S[k] for k in metrics}

    # Independent count: every record of the district by its school, late or not.
    async with services.sessionmaker() as session:
        schools = {
            s.id for s in await session.scalars(select(School).where(School.district_id == rw.district_id))
        }
        batches = [b for b in await session.scalars(select(DonationBatch)) if b.school_id in schools]
        batch_school = {b.id: b.school_id for b in batches}
        handovers = [h for h in await session.scalars(select(Handover)) if h.batch_id in batch_school]
        enrolled = {
            s.id: s.school_id
            for s in await session.scalars(select(Student))
            if s.school_id in schools and s.active
        }
        doses = [d for d in await session.scalars(select(VaccineDose)) if d.student_id in enrolled]
    late = Counter()
    total = Counter()
    returns = [h for h in handovers if h.returned_on is not None]
    for kind, records, school_of, is_late in (
        ("batches", batches, lambda r: r.school_id, lambda r: r.entered_late),
        ("handovers", handovers, lambda r: batch_school[r.batch_id], lambda r: r.entered_late),
        ("returns", returns, lambda r: batch_school[r.batch_id], lambda r: r.return_entered_late),
        ("doses", doses, lambda r: enrolled[r.student_id], lambda r: r.entered_late),
    ):
        for record in records:
            total[(school_of(record), kind)] += 1
            late[(school_of(record), kind)] += is_late(record)
    for row, school_id in ((p, rw.primary_id), (s, rw.secondary_id)):
        for kind in ("batches", "handovers", "returns", "doses"):
            assert row[f"{kind}_total"] == total[(school_id, kind)]
            assert row[f"{kind}_late"] == late[(school_id, kind)]

    number_of = {batch_id: n for (_, n), batch_id in (await shown_batches(services)).items()}
    late_list = read_table(wb, "late", stream_columns(W, "late"))
    assert len(late_list.rows) == table.totals[-1]["records_late"] == 3
    assert [(r["record_type"], r["school_code"], r["subject_code"]) for r in late_list.rows] == [
        ("Đợt tài trợ", S_CODE, f"#{number_of[rw.batches['B3']]}"),
        ("Bàn giao", P_CODE, "HS0003"),
        ("Mũi tiêm", P_CODE, "HS0004"),
    ]
    handover = late_list.rows[1]
    assert handover["event_on"] == datetime(2021, 11, 4) and handover["days_after"] == 8
    assert handover["entered_at"] == datetime(2021, 11, 12, 17, 0)  # local time, not UTC
    assert report.summary == "2 trường, 28 bản ghi: 3 bản ghi nhập muộn, đúng hạn 89,3%."


# --- the district report --------------------------------------------------------------------------


async def test_district_report_cover_tables_signatures_and_print_setup(
    services: Services, rw: ReportWorld
) -> None:
    report, wb = await build(
        services,
        "district",
        ReportScope.district(rw.district_id),
        period=ReportPeriod(round_id=rw.round_id),
        actor_id=rw.world.staff_ids["statistics_officer"],
    )
    names = wb.sheetnames
    assert names[0] == "Bìa" and names[1] == "Tình trạng gửi-duyệt" and names[-1] == "Thông tin báo cáo"
    for key in ("needs", "devices", "batches", "vaccination", "timeliness", "issues", "needs_students",
                "device_gifts", "device_loans", "vaccination_doses", "late", "coverage_chart"):  # fmt: skip
        assert sheet(wb, key) is not None

    cover = sheet(wb, "cover")
    text = [[c.value for c in row] for row in cover.iter_rows()]
    flat = [v for row in text for v in row if v is not None]
    assert "UBND HUYỆN NHÀ BÈ" in flat and "PHÒNG GIÁO DỤC VÀ ĐÀO TẠO" in flat
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in flat and "BÁO CÁO" in flat
    assert "Nhà Bè, ngày 15 tháng 11 năm 2021" in flat
    assert "Kính gửi: Sở Giáo dục và Đào tạo TP. Hồ Chí Minh (Phòng Chính trị tư tưởng)" in flat
    assert (
        "Số: \u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0\u00a0/BC-GDĐT" in flat
    )  # the clerk writes the number
    assert "Nơi nhận:" in flat and "Đã duyệt 1/2 trường" in flat
    assert "Đợt báo cáo 15/11/2021" in flat and "Lý Thị Mai" in flat  # the round, prepared by
    assert "TRƯỞNG PHÒNG" in flat and "(Ký tên, đóng dấu)" in flat
    figures = {row[0]: row[3] for row in text if row[0] and row[3] is not None}
    assert figures["Số trường"] == 2 and figures["Số học sinh"] == 7
    assert figures["Học sinh cần máy tính thuộc diện Chương trình"] == 4
    assert figures["Học sinh cần máy tính chưa được tặng (mượn tạm vẫn tính là chưa có)"] == 1
    assert (
        figures["Số thiết bị nhận trong kỳ"] == 15 and figures["Số thiết bị đã tặng học sinh trong kỳ"] == 7
    )
    assert figures["Số thiết bị đang cho mượn tạm"] == 2 and figures["Số thiết bị còn lại tại trường"] == 6
    assert figures["Đợt bàn giao hết trong 05 ngày / đợt đã đến hạn"] == "5/6"  # B6 is not yet due
    assert figures["Đợt Phòng báo cáo Sở đúng hạn / đợt đã đến hạn"] == "0/5"
    assert figures["Đợt chưa đến hạn 05 ngày (không tính vào tỷ lệ)"] == 1
    assert figures["Học sinh đã tiêm ít nhất 1 mũi"] == 5
    assert figures["Tỷ lệ học sinh đã tiêm ít nhất 1 mũi"] == pytest.approx(5 / 7)
    assert figures["Bản ghi nhập muộn / tổng số (đợt, bàn giao, trả lại, mũi tiêm)"] == "3/28"
    assert figures["Điểm số liệu cần đối chiếu"] == 10
    assert cover.page_setup.paperSize == 9 and cover.page_setup.orientation == "portrait"

    # Every summary table prints on A4, fitted to the width, its header repeated, and is signed.
    for key in ("needs", "devices", "batches", "vaccination", "timeliness", "issues", "round_status"):
        ws = sheet(wb, key)
        assert ws.page_setup.paperSize == 9, key
        assert ws.sheet_properties.pageSetUpPr.fitToPage, key
        assert ws.page_setup.fitToWidth in (None, 1), key  # 1 is the default, so it may be left out
        assert ws.page_setup.fitToHeight == 0, key
        assert ws.print_title_rows == "$4:$4", key
        values = [c.value for row in ws.iter_rows() for c in row if c.value is not None]
        assert "NGƯỜI LẬP BIỂU" in values and "TRƯỞNG PHÒNG" in values and "(Ký tên, đóng dấu)" in values, key
        assert "Lý Thị Mai" in values, key

    # The same totals as the reports of each area.
    needs = read_table(wb, "needs", needs_columns(W))
    assert pick(needs.totals[-1], list(NEEDS_P)) == {k: NEEDS_P[k] + NEEDS_S[k] for k in NEEDS_P}
    assert len(read_table(wb, "needs_students", stream_columns(W, "needs_students")).rows) == 6
    assert len(read_table(wb, "device_gifts", stream_columns(W, "device_gifts")).rows) == 7
    assert len(read_table(wb, "vaccination_doses", stream_columns(W, "vaccination_doses")).rows) == 10
    assert len(read_table(wb, "late", stream_columns(W, "late")).rows) == 3
    issues = read_table(wb, "issues", issue_columns(W))
    assert Counter(r["area"] for r in issues.rows) == {"Thiết bị": 5, "Tiêm chủng": 3, "Nhu cầu": 2}

    status = read_table(wb, "round_status", round_status_columns(W))
    assert [(r["school_code"], r["program_status"], r["vaccine_status"]) for r in status.rows] == [
        (P_CODE, "Đã duyệt", "Đã gửi, chờ duyệt"),
        (S_CODE, "Chưa gửi", "Chưa gửi"),
    ]
    assert status.rows[0]["program_submitted_at"] == datetime(2021, 11, 14, 9, 0)

    meta: dict[str, Any] = {}
    for row in sheet(wb, "meta").iter_rows(values_only=True):
        if row[0] == "Quy ước số liệu":  # then the rules, each with its name
            break
        if row[0]:
            meta[row[0]] = row[1]
    assert meta["Người lập"] == "Lý Thị Mai"
    assert meta["Thời điểm lập"] == datetime(2021, 11, 15, 9, 0)
    assert meta["Phạm vi"] == "Toàn Huyện Nhà Bè"
    assert meta["Đợt báo cáo"] == "Đợt báo cáo 15/11/2021"
    assert meta["Từ ngày"] == datetime(2021, 9, 1) and meta["Đến ngày"] == datetime(2021, 11, 15)
    assert meta["Số dòng – DS mũi tiêm"] == 10
    assert report.filename == "bao-cao-tong-hop_NB_20211115-0900.xlsx"
    assert report.summary == (
        "2 trường, 7 học sinh: 5 em cần máy tính; đã tặng 7 thiết bị, cho mượn 2; tiêm ít nhất 1 mũi 71,4%; "
        "3 bản ghi nhập muộn; 10 điểm cần đối chiếu."
    )


async def test_school_and_level_scopes_show_only_their_schools(services: Services, rw: ReportWorld) -> None:
    _, wb = await build(services, "district", ReportScope.for_school(rw.district_id, rw.secondary_id))
    needs = read_table(wb, "needs", needs_columns(W))
    assert [r["school_code"] for r in needs.rows] == [S_CODE]
    assert pick(needs.totals[-1], list(NEEDS_S)) == NEEDS_S
    gifts = read_table(wb, "device_gifts", stream_columns(W, "device_gifts"))
    assert {r["school_code"] for r in gifts.rows} == {S_CODE} and len(gifts.rows) == 4
    doses = read_table(wb, "vaccination_doses", stream_columns(W, "vaccination_doses"))
    assert {r["school_code"] for r in doses.rows} == {S_CODE}
    assert sheet(wb, "needs")["A2"].value.startswith(f"Phạm vi: {S_NAME} (mã {S_CODE})")

    _, wb = await build(services, "vaccination", ReportScope.for_level(rw.district_id, "TH"))
    table = read_table(wb, "vaccination", vaccination_columns(W))
    assert [r["school_code"] for r in table.rows] == [P_CODE]
    assert pick(table.totals[-1], list(VACC_P)) == VACC_P


async def test_english_workbook(services: Services, rw: ReportWorld) -> None:
    report, wb = await build(services, "needs", ReportScope.district(rw.district_id), language="en")
    assert wb.sheetnames[0] == "Needs by school"
    table = read_table(wb, "needs", needs_columns(words("en")), language="en")
    assert table.totals[-1]["school_name"] == "Grand total"
    assert report.summary.startswith("2 schools, 7 students: 5 need a computer")
    assert report.filename.startswith("needs-report_NB_")


async def test_stored_copy_and_progress(services: Services, rw: ReportWorld) -> None:
    from storage.models import CompiledReport

    seen = []

    async def progress(update: Any) -> None:
        seen.append(update)

    report = await services.reports.build(
        "district",
        ReportScope.district(rw.district_id),
        ReportPeriod(round_id=rw.round_id),
        progress=progress,
        store=True,
    )
    detail_rows = 6 + 7 + 3 + 10 + 3
    assert seen[-1].stage == "done" and seen[-1].done == seen[-1].total == detail_rows
    assert [u.done for u in seen] == sorted(u.done for u in seen)
    assert {u.stage for u in seen} >= {"summary", "needs_students", "vaccination_doses", "finishing", "done"}
    async with services.sessionmaker() as session:
        stored = await session.get(CompiledReport, report.report_id)
        assert stored is not None and stored.round_id == rw.round_id and stored.kind == "district"
        assert stored.content == report.content and stored.filename == report.filename


async def test_empty_district_gives_a_workbook_with_zero_totals(services: Services) -> None:
    from storage.models import District

    async with services.sessionmaker.begin() as session:
        district = District(code="ZZ", name="Huyện Trống")
        session.add(district)
        await session.flush()
        district_id = district.id
    report, wb = await build(services, "district", ReportScope.district(district_id))
    needs = read_table(wb, "needs", needs_columns(W))
    assert needs.rows == [] and needs.totals[-1]["needs_total"] == 0
    assert report.summary.startswith("0 trường, 0 học sinh")


def test_today_is_the_directive_day(clock: Any) -> None:
    assert clock.today() == date(2021, 11, 15)


async def test_a_report_reads_one_snapshot_and_never_blocks_writers(
    services: Services, rw: ReportWorld
) -> None:
    """A need entered while the report streams is written at once (no lock held by the report), and
    the report shows neither it in its list nor in its totals: one consistent snapshot."""
    written = []

    async def progress(update: Any) -> None:
        if update.stage == "needs_students" and not written:
            async with services.sessionmaker.begin() as session:
                session.add(
                    NeedRecord(
                        student_id=rw.students["HS0008"],
                        category=PriorityGroup.POOR,
                        entered_at=datetime(2021, 11, 10, 2, 0, tzinfo=UTC),
                        opened_on=date(2021, 11, 10),
                        changed_on=date(2021, 11, 10),
                    )
                )
            written.append(True)

    report = await services.reports.build("needs", ReportScope.district(rw.district_id), progress=progress)
    assert written == [True]
    wb = open_workbook(report.content)
    assert read_table(wb, "needs", needs_columns(W)).totals[-1]["needs_total"] == 6
    assert len(read_table(wb, "needs_students", stream_columns(W, "needs_students")).rows) == 6
    again = await services.reports.build("needs", ReportScope.district(rw.district_id))
    assert read_table(open_workbook(again.content), "needs", needs_columns(W)).totals[-1]["needs_total"] == 7
