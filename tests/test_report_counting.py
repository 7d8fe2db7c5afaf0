"""Issue 15: one counting model on every sheet — stock as of the period's end, events within it.

On the hand-built district of `tests.reports_world`, with a loan returned and re-lent, a dose 2 without
dose 1 and a programme device to a student with no need added here, the district report is built for
the whole round **and** for a period that starts mid-way (05–15/11). The expected figures are worked
out below from the rows this file and reports_world plant, and every workbook must agree with itself
(`exports.crosscheck.check_workbook`). The same check runs on a small demo district. Last, formula-
looking text typed into every free-text field is read back from every cell of every workbook.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.texts import LANGUAGES, t
from exports.crosscheck import check_workbook
from exports.reports import (
    batch_columns,
    devices_columns,
    issue_columns,
    needs_columns,
    timeliness_columns,
    vaccination_columns,
)
from exports.xlsx import FORMULA_TRIGGERS, MIN_PRINT_SCALE, print_scale
from storage.enums import DosePlace, HandoverKind
from storage.models import DonationBatch, Handover, School, Student, VaccineDose, VaccineProduct
from storage.schemas.reports import ReportCover, ReportPeriod, ReportScope
from storage.services import Services
from tests.reports_world import (
    P_CODE,
    S_CODE,
    ReportWorld,
    at,
    label,
    make_report_world,
    nov,
    open_workbook,
    words,
)
from tests.reports_world import read_table as read

W = words()


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    """reports_world plus: B1's loan to HS0004 (returned 10/11, the return entered on 13/11: late) is
    lent again to HS0003 on 11/11; HS0008 (no group, no need) gets dose 2 without dose 1 on 12/11 in the
    community and B4's second device (a new programme tablet, received 12/11) as a gift on 13/11."""
    world = await make_report_world(services)
    async with services.sessionmaker.begin() as session:
        products = {p.code: p.id for p in await session.scalars(select(VaccineProduct))}
        b1, b4 = world.batches["B1"], world.batches["B4"]
        await session.execute(
            update(Handover)
            .where(Handover.batch_id == b1, Handover.student_id == world.students["HS0004"])
            .values(return_entered_at=at(nov(13)), return_entered_late=True)
        )
        await session.execute(update(DonationBatch).where(DonationBatch.id == b1).values(allocated=3))
        await session.execute(
            update(DonationBatch).where(DonationBatch.id == b4).values(quantity=2, allocated=2)
        )
        session.add_all(
            [
                Handover(
                    batch_id=b1,
                    student_id=world.students["HS0003"],
                    kind=HandoverKind.LOAN,
                    handed_on=nov(11),
                    entered_at=at(nov(11), 17),
                ),
                Handover(
                    batch_id=b4,
                    student_id=world.students["HS0008"],
                    kind=HandoverKind.GIFT,
                    handed_on=nov(13),
                    entered_at=at(nov(13), 17),
                ),
                VaccineDose(
                    student_id=world.students["HS0008"],
                    dose_number=2,
                    given_on=nov(12),
                    product_id=products["COMIRNATY"],
                    place=DosePlace.COMMUNITY,
                    entered_at=at(nov(12), 18),
                ),
            ]
        )
    return world


async def district(services: Services, rw: ReportWorld, period: ReportPeriod, **kwargs: Any) -> Any:
    report = await services.reports.build("district", ReportScope.district(rw.district_id), period, **kwargs)
    return report.content, open_workbook(report.content)


def by_school(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {r["school_code"]: {k: r[k] for k in keys} for r in rows}


def devices(wb: Any) -> dict[tuple[str, str], dict[str, int]]:
    table = read(wb, "devices", devices_columns(W))
    source = {label("source", "program"): "program", label("source", "other"): "other"}
    keys = [c.key for c in devices_columns(W)][4:]
    return {(r["school_code"], source[r["source"]]): {k: r[k] for k in keys} for r in table.rows}


ZERO = dict.fromkeys(("batches", "donors", "received", "given", "lent", "returned", "on_loan", "left"), 0)


async def test_whole_round_every_sheet_agrees(services: Services, rw: ReportWorld) -> None:
    content, wb = await district(services, rw, ReportPeriod(round_id=rw.round_id))
    assert check_workbook(content, t, LANGUAGES) == []
    got = devices(wb)
    # P programme: B1 (3) — gift HS0001, loans HS0002 (open), HS0004 (returned 10/11), HS0003 (11/11).
    assert got[(P_CODE, "program")] == {**ZERO, "batches": 1, "received": 3, "given": 1, "lent": 3,
                                         "returned": 1, "on_loan": 2, "left": 0}  # fmt: skip
    # S programme: B3 (2) given, B4 (2): loan HS0005, gift HS0008.
    assert got[(S_CODE, "program")] == {**ZERO, "batches": 2, "received": 4, "given": 3, "lent": 1,
                                         "on_loan": 1, "left": 0}  # fmt: skip
    vacc = by_school(
        read(wb, "vaccination", vaccination_columns(W)).rows, ("dose1", "dose2", "doses", "in_community")
    )
    # HS0008's only dose is a dose 2: one dose recorded, so ≥1 but not ≥2 (and a reconciliation row).
    assert vacc[S_CODE] == {"dose1": 3, "dose2": 2, "doses": 5, "in_community": 1}
    issues = read(wb, "issues", issue_columns(W)).rows
    found = {(r["issue"], r["subject"].split(" – ")[0]) for r in issues}
    assert (label("issue", "dose_gap"), "HS0008") in found
    assert (label("issue", "device_no_need"), "HS0008") in found
    timely = by_school(read(wb, "timeliness", timeliness_columns(W)).rows, ("returns_total", "returns_late"))
    assert timely[P_CODE] == {"returns_total": 1, "returns_late": 1}


async def test_a_period_starting_mid_way_counts_stock_at_its_end_and_events_within(
    services: Services, rw: ReportWorld
) -> None:
    """05–15/11: stock as of 15/11 whatever happened before 5/11; events only from 5/11 on."""
    content, wb = await district(services, rw, ReportPeriod(date_from=nov(5), date_to=nov(15)))
    assert check_workbook(content, t, LANGUAGES) == []
    # Vaccination status is a stock: HS0001's doses of October still count on 15/11 (issue item 1).
    vacc = by_school(
        read(wb, "vaccination", vaccination_columns(W)).rows, ("enrolled", "dose1", "dose2", "dose3", "doses")
    )
    assert vacc == {
        P_CODE: {"enrolled": 4, "dose1": 3, "dose2": 2, "dose3": 1, "doses": 1},  # only HS0004's booster
        S_CODE: {"enrolled": 3, "dose1": 3, "dose2": 2, "dose3": 0, "doses": 2},  # HS0005's, HS0008's
    }
    got = devices(wb)
    # B1 arrived on 1/11, before the period: not "received", but its loans of the period count, and the
    # loan returned on 10/11 and lent again on 11/11 appear as one return and one loan (issue item 2).
    assert got[(P_CODE, "program")] == {**ZERO, "lent": 1, "returned": 1, "on_loan": 2, "left": 0}
    # B2 (5/11) received; HS0006's gift of 6/11 within, HS0003's of 4/11 before the period.
    assert got[(P_CODE, "other")] == {**ZERO, "batches": 1, "donors": 1, "received": 2, "given": 1, "left": 1}
    # B3's two gifts of 9/11 are in Biểu 2 (given in the period) and in Biểu 8, as the issue asks.
    assert got[(S_CODE, "program")] == {**ZERO, "batches": 2, "received": 4, "given": 3, "lent": 1,
                                         "on_loan": 1, "left": 0}  # fmt: skip
    needs = read(wb, "needs", needs_columns(W)).totals[-1]
    assert (needs["device_total"], needs["device_met"]) == (5, 4)  # met: a gift by 15/11, whenever
    batches = read(wb, "batches", batch_columns(W)).rows
    assert sorted(r["received_on"].day for r in batches) == [5, 8, 12, 14]  # B2, B3, B4, B6
    timely = read(wb, "timeliness", timeliness_columns(W)).totals[-1]
    # handovers 6/11 (B2), 9/11 ×2 (B3), 11/11 (B1), 13/11 ×2 (B4); one return; doses 10/11, 5/11, 12/11.
    assert (timely["handovers_total"], timely["returns_total"], timely["doses_total"]) == (6, 1, 3)


async def test_donors_are_counted_distinct_on_every_total(services: Services, rw: ReportWorld) -> None:
    """One donor giving batches to both schools counts once on the level and district totals."""
    async with services.sessionmaker.begin() as session:
        b6 = await session.get(DonationBatch, rw.batches["B6"])
        b2 = await session.get(DonationBatch, rw.batches["B2"])
        assert b6 is not None and b2 is not None
        b6.donor_id = b2.donor_id  # the same donor for a P batch and an S batch
    content, wb = await district(services, rw, ReportPeriod())
    table = read(wb, "devices", devices_columns(W))
    rows = {(r["school_code"], r["source"]): r["donors"] for r in table.rows}
    other = label("source", "other")
    assert rows[(P_CODE, other)] == 2 and rows[(S_CODE, other)] == 2
    grand = {t["source"]: t["donors"] for t in table.totals if t["level"] is None}
    assert grand[other] == 3 and grand[None] == 3  # 4 per-school donors, 3 distinct
    assert check_workbook(content, t, LANGUAGES) == []


async def test_demo_district_workbooks_agree_with_themselves(services: Services) -> None:
    from storage.demo import DemoDataService
    from storage.schemas.demo import DemoDataIn

    demo = await DemoDataService(services.sessionmaker, services.clock).generate(
        DemoDataIn(schools=3, students=300, seed=7, district_code="DM", district_name="Huyện Mẫu")
    )
    district_id = demo.district_id
    today = services.clock.today()
    for period in (ReportPeriod(), ReportPeriod(date_from=date(today.year, 10, 15), date_to=today)):
        report = await services.reports.build("district", ReportScope.district(district_id), period)
        assert check_workbook(report.content, t, LANGUAGES) == [], period


# --- formula-looking text, everywhere --------------------------------------------------------------

FORMULA = "=cmd|'/C calc'!A0"


@pytest.mark.parametrize("report_cover", [ReportCover(head_name="=HEAD()", place="+Nhà Bè")])
async def test_formula_looking_text_is_quoted_in_every_cell(services: Services, rw: ReportWorld) -> None:
    async with services.sessionmaker.begin() as session:
        for student in await session.scalars(select(Student)):
            student.full_name = f"+{student.full_name}"
        for school in await session.scalars(select(School)):
            school.name = f"-{school.name}"
        for handover in await session.scalars(select(Handover)):
            handover.note = "@SUM(A1)"
        reporting_round = await session.get(__import__("storage.models").models.ReportingRound, rw.round_id)
        reporting_round.name = FORMULA
    bad: list[str] = []
    for kind in ("needs", "devices", "vaccination", "timeliness", "district"):
        report = await services.reports.build(
            kind,
            ReportScope.district(rw.district_id),
            ReportPeriod(round_id=rw.round_id),
            prepared_by=FORMULA,
            number="-15",
        )
        wb = open_workbook(report.content)
        seen = 0
        for ws in wb.worksheets:
            for row in ws.iter_rows():
                for cell in row:
                    if isinstance(cell.value, str) and cell.value[:1] in FORMULA_TRIGGERS:
                        seen += 1
                        if not cell.quotePrefix:
                            bad.append(f"{kind}:{ws.title}!{cell.coordinate} {cell.value!r}")
        assert seen > 10, kind
    assert bad == []


def test_every_printed_table_keeps_8_pt_on_a4_landscape() -> None:
    from exports import reports as layout

    w = words()
    tables = {key: make(w) for key, make in layout._SUMMARY_COLUMNS.items()}
    tables |= {name: layout.stream_columns(w, name) for name in (*layout.STREAMS["district"][:4], "late")}
    for key, columns in tables.items():
        landscape = key not in layout._PORTRAIT
        scale = print_scale([c.width for c in columns], landscape=landscape)
        assert scale >= MIN_PRINT_SCALE, (key, round(scale, 2))


async def test_compile_records_the_batches_reported_upward(services: Services, rw: ReportWorld) -> None:
    """/compile is the district's report upward: the batches of the compiled schools get their day."""
    officer = rw.world.staff_ids["statistics_officer"]
    await services.rounds.compile(
        rw.round_id, actor_id=officer, choice="leave_out", missing_school_ids_acknowledged=[]
    )  # S takes no part in the round
    content, wb = await district(services, rw, ReportPeriod(round_id=rw.round_id))
    rows = {r["received_on"].date(): r for r in read(wb, "batches", batch_columns(W)).rows}
    # School P's batches (B1 1/11, B2 5/11, B7 20/10) were reported on 15/11, after their deadlines.
    for day in (nov(1), nov(5), date(2021, 10, 20)):
        assert rows[day]["report_status"] == label("report_status", "late"), day
        assert rows[day]["reported_on"] is not None
    # School S is not in the round: its batches are not reported (B3 due 13/11; B6 not yet due).
    assert rows[nov(8)]["report_status"] == label("report_status", "not_reported")
    assert rows[nov(14)]["report_status"] == label("report_status", "pending")
    assert check_workbook(content, t, LANGUAGES) == []
