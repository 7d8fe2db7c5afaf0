"""A small hand-made district for the report tests, with every number written down.

On top of `tests.factories.make_world` (Huyện Nhà Bè: the primary school P = 79785001 with HS0001–HS0004,
the lower-secondary school S = 79785101 with HS0005–HS0006) it adds two students, needs, seven donation
batches with handovers, vaccine doses, a reporting round, and a second district that no report of
Nhà Bè may show. Each planted inconsistency is named in a comment where it is planted.

Dates are in November 2021; the tests' clock is frozen at 15/11/2021 09:00 (Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from openpyxl.workbook import Workbook as OpenpyxlWorkbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select

from bot.texts import t
from exports.labels import Labels
from exports.reports import Words
from exports.xlsx import Column
from storage.enums import (
    DeviceType,
    DonationSource,
    DonorKind,
    DosePlace,
    HandoverKind,
    PriorityGroup,
    SchoolLevel,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.models import (
    District,
    DonationBatch,
    Donor,
    Handover,
    NeedHistory,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    School,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.services import Services
from storage.text import fold
from tests.factories import World, make_world

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
P_CODE, S_CODE = "79785001", "79785101"
P_NAME, S_NAME = "Trường TH Lê Văn Lương", "Trường THCS Nguyễn Bỉnh Khiêm"

# Donor names that look like formulas: they must come out of Excel as plain text.
FORMULA_DONOR = '=HYPERLINK("http://example.invalid/x","Bấm vào đây")'
PHONE_DONOR = "+84 90 123 4567"
AT_DONOR = "@Nhóm thiện nguyện"
DASH_DONOR = "-Công ty ABC"


def at(day: date, hour: int = 9) -> datetime:
    """A local time on `day`, as the aware UTC datetime the database keeps."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=TZ).astimezone(UTC)


def nov(day: int) -> date:
    return date(2021, 11, day)


def oct_(day: int) -> date:
    return date(2021, 10, day)


def need_state(
    student_id: int, category: PriorityGroup, device: bool, connectivity: bool, day: date
) -> NeedHistory:
    """The need's history row: needs are counted as they stood at a period's end (issue 14)."""
    return NeedHistory(
        student_id=student_id,
        changed_on=day,
        category=category,
        needs_device=device,
        needs_connectivity=connectivity,
    )


@dataclass
class ReportWorld:
    world: World
    district_id: int
    primary_id: int
    secondary_id: int
    other_district_id: int
    round_id: int
    students: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)  # B1 … B7 -> id


async def make_report_world(services: Services) -> ReportWorld:
    world = await make_world(services)
    async with services.sessionmaker.begin() as session:
        products = {p.code: p.id for p in await session.scalars(select(VaccineProduct))}
        students = dict(world.student_ids)
        # Two more students: HS0007 left school P (inactive); HS0008 in grade 9 at S.
        for code, name, grade, class_name, school_id, active in (
            ("HS0007", "Trần Văn Lâm", 5, "5A1", world.primary_school_id, False),
            ("HS0008", "Lý Thị Mỹ", 9, "9A1", world.secondary_school_id, True),
        ):
            student = Student(
                school_id=school_id,
                code=code,
                full_name=name,
                search_name=fold(name),
                date_of_birth=date(2010, 1, 1),
                grade=grade,
                class_name=class_name,
                priority_group=PriorityGroup.NONE,
                active=active,
            )
            session.add(student)
            await session.flush()
            students[code] = student.id

        # --- needs (entered 10/11, HS0005's late) ---
        needs = [
            ("HS0001", PriorityGroup.POOR, True, True, False),
            ("HS0002", PriorityGroup.NEAR_POOR, True, False, False),
            ("HS0004", PriorityGroup.COVID_ORPHAN, False, True, False),
            # Planted: HS0003's list says "none" but the need says "poor" (need_category_mismatch).
            ("HS0003", PriorityGroup.POOR, True, False, False),
            ("HS0005", PriorityGroup.OTHER_HARDSHIP, True, False, True),
            ("HS0006", PriorityGroup.POOR, True, False, False),
            # Planted: HS0007 left school (need_not_enrolled); not counted.
            ("HS0007", PriorityGroup.POOR, True, False, False),
        ]
        for code, category, device, connectivity, late in needs:
            session.add(
                NeedRecord(
                    student_id=students[code],
                    category=category,
                    needs_device=device,
                    needs_connectivity=connectivity,
                    note="=1+1" if code == "HS0001" else "",
                    entered_at=at(nov(10)),
                    entered_late=late,
                    opened_on=nov(10),
                    changed_on=nov(10),
                )
            )
            session.add(need_state(students[code], category, device, connectivity, nov(10)))

        # --- donors ---
        donors: dict[str, int] = {}
        for key, school_id, name, kind in (
            ("formula", world.primary_school_id, FORMULA_DONOR, DonorKind.ORGANISATION),
            ("dash", world.primary_school_id, DASH_DONOR, DonorKind.BUSINESS),
            ("at", world.secondary_school_id, AT_DONOR, DonorKind.ORGANISATION),
            ("phone", world.secondary_school_id, PHONE_DONOR, DonorKind.INDIVIDUAL),
        ):
            donor = Donor(school_id=school_id, name=name, kind=kind)
            session.add(donor)
            await session.flush()
            donors[key] = donor.id

        # --- batches: (key, school, source, donor, received, quantity, allocated, batch entered late) ---
        P, S = world.primary_school_id, world.secondary_school_id
        batch_rows = [
            ("B1", P, DonationSource.PROGRAM, None, nov(1), 3, 2, False),
            ("B2", P, DonationSource.OTHER, donors["formula"], nov(5), 2, 2, False),
            ("B3", S, DonationSource.PROGRAM, None, nov(8), 2, 2, True),
            ("B4", S, DonationSource.PROGRAM, None, nov(12), 1, 1, False),
            # Planted: B5 received 1 device but 2 were given (over_given), and its stored allocated
            # count (1) disagrees with its handovers (2) (allocated_mismatch).
            ("B5", S, DonationSource.OTHER, donors["at"], oct_(1), 1, 1, False),
            ("B6", S, DonationSource.OTHER, donors["phone"], nov(14), 5, 0, False),
            ("B7", P, DonationSource.OTHER, donors["dash"], oct_(20), 1, 0, False),
        ]
        batches: dict[str, int] = {}
        for key, school_id, source, donor_id, received, quantity, allocated, late in batch_rows:
            batch = DonationBatch(
                school_id=school_id,
                source=source,
                donor_id=donor_id,
                received_on=received,
                quantity=quantity,
                allocated=allocated,
                device_type=DeviceType.LAPTOP,
                make_model="Dell Latitude 3420",
                entered_at=at(received, 16) if not late else at(nov(10)),
                entered_late=late,
            )
            session.add(batch)
            await session.flush()
            batches[key] = batch.id

        # --- handovers: (batch, student, kind, handed, returned, entered on, late) ---
        handovers = [
            ("B1", "HS0001", HandoverKind.GIFT, nov(2), None, nov(2), False),
            ("B1", "HS0002", HandoverKind.LOAN, nov(3), None, nov(3), False),
            ("B1", "HS0004", HandoverKind.LOAN, nov(3), nov(10), nov(3), False),
            # Planted: handed over on 4/11, before B2 was received on 5/11 (handover_before_receipt);
            # entered on 12/11, after the 5-day deadline of 10/11 (B2 "missed") and late.
            ("B2", "HS0003", HandoverKind.GIFT, nov(4), None, nov(12), True),
            # Planted: a device of school P given to HS0006 of school S (handover_other_school).
            ("B2", "HS0006", HandoverKind.GIFT, nov(6), None, nov(6), False),
            ("B3", "HS0006", HandoverKind.GIFT, nov(9), None, nov(9), False),
            ("B3", "HS0005", HandoverKind.GIFT, nov(9), None, nov(9), False),
            # Planted: HS0005 now holds two programme devices: B3's gift and B4's loan.
            ("B4", "HS0005", HandoverKind.LOAN, nov(13), None, nov(13), False),
            ("B5", "HS0005", HandoverKind.GIFT, oct_(2), None, oct_(2), False),
            ("B5", "HS0008", HandoverKind.GIFT, oct_(2), None, oct_(2), False),
        ]
        for key, code, kind, handed, returned, entered, late in handovers:
            session.add(
                Handover(
                    batch_id=batches[key],
                    student_id=students[code],
                    kind=kind,
                    handed_on=handed,
                    returned_on=returned,
                    entered_at=at(entered, 17),
                    entered_late=late,
                )
            )

        # --- doses: (student, number, given, product, place, late) ---
        doses = [
            ("HS0001", 1, oct_(1), "COMIRNATY", DosePlace.SCHOOL, False),
            ("HS0001", 2, oct_(22), "COMIRNATY", DosePlace.SCHOOL, False),
            ("HS0002", 1, oct_(1), "COMIRNATY", DosePlace.COMMUNITY, False),
            ("HS0004", 1, oct_(5), "VEROCELL", DosePlace.ELSEWHERE, False),
            ("HS0004", 2, oct_(26), "VEROCELL", DosePlace.SCHOOL, False),
            ("HS0004", 3, nov(10), "COMIRNATY", DosePlace.SCHOOL, True),
            # Planted: HS0005 has dose 3 but no dose 2 (dose_gap).
            ("HS0005", 1, oct_(10), "COMIRNATY", DosePlace.SCHOOL, False),
            ("HS0005", 3, nov(5), "COMIRNATY", DosePlace.SCHOOL, False),
            # Planted: HS0006's dose 2 is dated before dose 1 (dose_order).
            ("HS0006", 1, oct_(20), "COMIRNATY", DosePlace.SCHOOL, False),
            ("HS0006", 2, oct_(10), "COMIRNATY", DosePlace.SCHOOL, False),
            # Planted: a dose of HS0007, who left school (dose_not_enrolled); not counted.
            ("HS0007", 1, oct_(1), "COMIRNATY", DosePlace.SCHOOL, False),
        ]
        for code, number, given, product, place, late in doses:
            session.add(
                VaccineDose(
                    student_id=students[code],
                    dose_number=number,
                    given_on=given,
                    product_id=products[product],
                    place=place,
                    entered_at=at(given, 18) if not late else at(nov(13)),
                    entered_late=late,
                )
            )

        # --- a round: P's programme data approved, its vaccine data submitted; S nothing yet ---
        reporting_round = ReportingRound(
            district_id=world.district_id,
            name="Đợt báo cáo 15/11/2021",
            period_start=date(2021, 9, 1),
            period_end=nov(15),
            submit_deadline=at(nov(15), 15),
            approve_deadline=at(nov(16), 12),
            compile_deadline=at(nov(16), 17),
        )
        session.add(reporting_round)
        await session.flush()
        session.add_all(
            [
                RoundSubmission(
                    round_id=reporting_round.id,
                    school_id=P,
                    track=SubmissionTrack.PROGRAM,
                    status=SubmissionStatus.APPROVED,
                    submitted_at=at(nov(14)),
                ),
                RoundSubmission(
                    round_id=reporting_round.id,
                    school_id=P,
                    track=SubmissionTrack.VACCINE,
                    status=SubmissionStatus.SUBMITTED,
                    submitted_at=at(nov(14), 10),
                ),
            ]
        )

        # --- another district, which no report of Nhà Bè may count ---
        other = District(code="Q7", name="Quận 7", province="TP. Hồ Chí Minh")
        session.add(other)
        await session.flush()
        far = School(
            district_id=other.id, code="79777001", name="Trường TH Quận 7", level=SchoolLevel.PRIMARY
        )
        session.add(far)
        await session.flush()
        stranger = Student(
            school_id=far.id,
            code="HS9001",
            full_name="Người Ngoài",
            search_name="nguoi ngoai",
            date_of_birth=date(2012, 1, 1),
            grade=4,
            class_name="4A",
        )
        session.add(stranger)
        await session.flush()
        session.add(
            NeedRecord(
                student_id=stranger.id,
                category=PriorityGroup.POOR,
                entered_at=at(nov(10)),
                opened_on=nov(10),
                changed_on=nov(10),
            )
        )
        session.add(need_state(stranger.id, PriorityGroup.POOR, True, False, nov(10)))
        session.add(
            VaccineDose(
                student_id=stranger.id,
                dose_number=1,
                given_on=oct_(1),
                product_id=products["COMIRNATY"],
                place=DosePlace.SCHOOL,
                entered_at=at(oct_(1)),
            )
        )
        far_batch = DonationBatch(
            school_id=far.id,
            source=DonationSource.PROGRAM,
            received_on=nov(1),
            quantity=9,
            device_type=DeviceType.TABLET,
            entered_at=at(nov(1)),
        )
        session.add(far_batch)
        await session.flush()
        session.add(
            Handover(
                batch_id=far_batch.id,
                student_id=stranger.id,
                kind=HandoverKind.GIFT,
                handed_on=nov(2),
                entered_at=at(nov(2)),
            )
        )
        far_batch.allocated = 1
    return ReportWorld(
        world=world,
        district_id=world.district_id,
        primary_id=world.primary_school_id,
        secondary_id=world.secondary_school_id,
        other_district_id=other.id,
        round_id=reporting_round.id,
        students=students,
        batches=batches,
    )


# --- reading workbooks back ---------------------------------------------------------------------


def open_workbook(content: bytes) -> OpenpyxlWorkbook:
    return load_workbook(io.BytesIO(content))


def sheet(workbook: OpenpyxlWorkbook, key: str, language: str = "vi") -> Worksheet:
    return workbook[t(f"reports.sheet.{key}", language)]


@dataclass
class Table:
    rows: list[dict[str, Any]]  # data rows (inside the filter), by column key
    totals: list[dict[str, Any]]  # bold rows under the data
    cells: list[list[Any]]  # the data rows' openpyxl cells, for type checks


def read_table(workbook: OpenpyxlWorkbook, key: str, columns: list[Column], language: str = "vi") -> Table:
    """A table sheet: header on row 4 (checked against the columns), data inside the autofilter,
    then the total rows until the first empty row."""
    ws = sheet(workbook, key, language)
    header = [cell.value for cell in ws[4]][: len(columns)]
    assert header == [c.header for c in columns], f"header of {key}"
    assert ws.freeze_panes == "A5", f"frozen header of {key}"
    ref = ws.auto_filter.ref
    assert ref and ref.startswith("A4:"), f"filter of {key}: {ref}"
    last = int(re.search(r"(\d+)$", ref).group(1))
    keys = [c.key for c in columns]
    rows, cells = [], []
    for row in ws.iter_rows(min_row=5, max_row=last, max_col=len(columns)):
        cells.append(list(row))
        rows.append(dict(zip(keys, (c.value for c in row), strict=True)))
    totals = []
    for values in ws.iter_rows(min_row=last + 1, max_col=len(columns), values_only=True):
        if all(v is None for v in values):
            break
        totals.append(dict(zip(keys, values, strict=True)))
    return Table(rows=rows, totals=totals, cells=cells)


def words(language: str = "vi") -> Words:
    return Words(Labels(t, language))


def label(group: str, value: str, language: str = "vi") -> str:
    return t(f"reports.label.{group}.{value}", language)
