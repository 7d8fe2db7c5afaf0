"""The demo district generator: sizes, every case covered, the database's rules hold, reproducible."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import render_error
from bot.texts import t
from storage.demo import PERIOD_END, PERIOD_START, DemoDataService, add_years
from storage.enums import (
    DonationSource,
    DonorKind,
    DosePlace,
    HandoverKind,
    PriorityGroup,
    Role,
    SchoolLevel,
    SubmissionStatus,
)
from storage.errors import DomainError
from storage.models import (
    AuditLog,
    Base,
    DonationBatch,
    Donor,
    Handover,
    NeedRecord,
    ReportingRound,
    RoundSubmission,
    School,
    Staff,
    Student,
    VaccineDose,
    VaccineProduct,
)
from storage.rules import is_late_entry
from storage.schemas.demo import DemoDataIn, DemoDataOut
from storage.services import Services
from storage.text import fold, nfc

SCHOOLS, STUDENTS = 4, 300
HCMC = ZoneInfo("Asia/Ho_Chi_Minh")
LEVEL_GRADES = {
    SchoolLevel.PRIMARY: range(1, 6),
    SchoolLevel.LOWER_SECONDARY: range(6, 10),
    SchoolLevel.COMBINED: range(1, 10),
}


async def generate(services: Services, **values: object) -> DemoDataOut:
    data = DemoDataIn.model_validate({"schools": SCHOOLS, "students": STUDENTS, **values})
    return await DemoDataService(services.sessionmaker, services.clock).generate(data)


async def rows(services: Services, model: type[Base]) -> list:
    async with services.sessionmaker() as session:
        return list(await session.scalars(select(model).order_by(model.id)))  # type: ignore[attr-defined]


async def test_counts_accounts_and_round(services: Services) -> None:
    result = await generate(services)

    async with services.sessionmaker() as session:
        for table, count in result.counts.items():
            in_db = await session.scalar(text(f"SELECT count(*) FROM {table}"))
            assert in_db == count, table
    assert result.counts["school"] == SCHOOLS
    assert result.counts["student"] == STUDENTS
    assert result.counts["round_submission"] == 2 * SCHOOLS
    assert result.counts["audit_log"] == 1

    schools = await rows(services, School)
    assert [s.level for s in schools[:2]] == [SchoolLevel.PRIMARY, SchoolLevel.LOWER_SECONDARY]
    assert {s.level for s in schools} == set(SchoolLevel)
    assert all(len(s.code) == 8 and s.code.isdigit() for s in schools)
    assert all(s.name.startswith("Trường ") and s.name == nfc(s.name) for s in schools)

    staff = await rows(services, Staff)
    assert [s.telegram_user_id for s in staff] == list(range(900_000_001, 900_000_011))
    assert [s.role for s in staff] == [
        Role.TEACHER,
        Role.PRINCIPAL,
        Role.TEACHER,
        Role.PRINCIPAL,
        Role.PRIMARY_SPECIALIST,
        Role.SECONDARY_SPECIALIST,
        Role.HEALTH_OFFICER,
        Role.STATISTICS_OFFICER,
        Role.DEPUTY_HEAD,
        Role.ADMIN,
    ]
    assert [s.school_id for s in staff[:4]] == [schools[0].id, schools[0].id, schools[1].id, schools[1].id]
    assert all(s.school_id is None and s.district_id == result.district_id for s in staff[4:])
    assert [a.telegram_user_id for a in result.accounts] == [s.telegram_user_id for s in staff]

    (round_,) = await rows(services, ReportingRound)
    assert (round_.period_start, round_.period_end) == (date(2021, 9, 1), date(2021, 11, 15))
    assert round_.submit_deadline == datetime(2021, 11, 15, 15, 30, tzinfo=HCMC)
    assert round_.approve_deadline == datetime(2021, 11, 16, 12, 0, tzinfo=HCMC)
    assert round_.compile_deadline == datetime(2021, 11, 16, 17, 0, tzinfo=HCMC)
    assert round_.submit_deadline.tzinfo == UTC
    submissions = await rows(services, RoundSubmission)
    assert {(s.school_id, s.track.value) for s in submissions} == {
        (school.id, track) for school in schools for track in ("program", "vaccine")
    }
    assert {s.status for s in submissions} == {SubmissionStatus.NOT_SUBMITTED}

    (entry,) = await rows(services, AuditLog)
    assert (entry.entity, entry.entity_id) == ("district", str(result.district_id))
    assert entry.after is not None and entry.after["demo"]["seed"] == 2021


async def test_students_are_realistic(services: Services) -> None:
    await generate(services)
    schools = {s.id: s for s in await rows(services, School)}
    students = await rows(services, Student)

    assert len({s.code for s in students}) == len(students)
    assert set(Counter(s.priority_group for s in students)) == set(PriorityGroup)
    assert Counter(s.priority_group for s in students).most_common(1)[0][0] is PriorityGroup.NONE
    assert {s.gender.value for s in students} == {"male", "female"}
    for student in students:
        assert student.full_name == nfc(student.full_name) and len(student.full_name.split()) >= 3
        assert student.search_name == fold(student.full_name)
        assert student.grade in LEVEL_GRADES[schools[student.school_id].level]
        assert student.class_name.startswith(f"{student.grade}A")
        # School year 2021-2022: grade 1 born in 2015, a few a year older.
        assert student.date_of_birth.year in (2016 - student.grade, 2015 - student.grade)
    assert any(
        ch in "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệịỉĩọỏốồổỗộớờởỡợụủứừửữựỳỷỹỵ" for s in students for ch in s.full_name
    )

    needs = await rows(services, NeedRecord)
    by_id = {s.id: s for s in students}
    assert needs
    for need in needs:
        assert need.category is by_id[need.student_id].priority_group is not PriorityGroup.NONE
        assert need.needs_device or need.needs_connectivity
    assert {n.category for n in needs} == set(PriorityGroup) - {PriorityGroup.NONE}


async def test_devices_cover_every_case_and_keep_the_allocation_rule(services: Services) -> None:
    await generate(services)
    batches = await rows(services, DonationBatch)
    handovers = await rows(services, Handover)
    donors = {d.id: d for d in await rows(services, Donor)}

    assert {b.source for b in batches} == set(DonationSource)
    assert {d.kind for d in donors.values()} == set(DonorKind)
    assert {b.device_type for b in batches} >= {"laptop", "tablet"}
    for batch in batches:
        donor = donors[batch.donor_id]
        assert (donor.school_id is None) == (batch.source is DonationSource.PROGRAM)

    kinds = Counter((h.kind, h.returned_on is not None) for h in handovers)
    assert kinds[(HandoverKind.GIFT, False)] > 0
    assert kinds[(HandoverKind.LOAN, False)] > 0
    assert kinds[(HandoverKind.LOAN, True)] > 0
    assert kinds[(HandoverKind.GIFT, True)] == 0

    by_batch: dict[int, list[Handover]] = defaultdict(list)
    for handover in handovers:
        by_batch[handover.batch_id].append(handover)
    for batch in batches:
        given = by_batch[batch.id]
        open_ = [h for h in given if h.returned_on is None]
        assert batch.allocated == len(open_) <= batch.quantity
        assert len({h.student_id for h in open_}) == len(open_)  # one active handover per student
        for handover in given:
            assert batch.received_on <= handover.handed_on <= PERIOD_END
            assert handover.returned_on is None or handover.handed_on <= handover.returned_on <= PERIOD_END
    assert sum(b.allocated for b in batches) > 0


async def test_doses_follow_the_product_rules(services: Services) -> None:
    await generate(services)
    products = {p.id: p for p in await rows(services, VaccineProduct)}
    students = {s.id: s for s in await rows(services, Student)}
    doses = await rows(services, VaccineDose)

    assert {d.dose_number for d in doses} == {1, 2, 3}
    assert len({d.product_id for d in doses}) >= 3
    assert {d.place for d in doses} == set(DosePlace)
    by_student: dict[int, list[VaccineDose]] = defaultdict(list)
    for dose in doses:
        by_student[dose.student_id].append(dose)
    for student_id, own in by_student.items():
        own.sort(key=lambda d: d.dose_number)
        assert [d.dose_number for d in own] == list(range(1, len(own) + 1))
        born = students[student_id].date_of_birth
        for previous, dose in zip([None, *own], own, strict=False):
            product = products[dose.product_id]
            assert PERIOD_START <= dose.given_on <= PERIOD_END
            assert dose.given_on >= add_years(born, product.min_age_years)
            if previous is not None:
                assert dose.given_on > previous.given_on
                assert (dose.given_on - previous.given_on).days >= product.min_interval_days


async def test_entry_times_follow_the_event_dates(services: Services) -> None:
    await generate(services, students=600)
    late = Counter()
    for model, event in ((DonationBatch, "received_on"), (Handover, "handed_on"), (VaccineDose, "given_on")):
        for row in await rows(services, model):
            event_on = getattr(row, event)
            assert PERIOD_START <= event_on <= PERIOD_END
            assert row.entered_at >= datetime.combine(event_on, datetime.min.time(), HCMC)
            assert row.entered_late == is_late_entry(event_on, row.entered_at, HCMC)
            late[model.__tablename__] += row.entered_late
    assert late["handover"] + late["vaccine_dose"] + late["donation_batch"] > 0


async def _digest(engine: AsyncEngine) -> str:
    digest = hashlib.sha256()
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            digest.update(f"{table.name}:{sorted(map(repr, result.all()))}".encode())
    return digest.hexdigest()


async def _empty(engine: AsyncEngine, backend: str) -> None:
    """Back to a freshly migrated database (the migration's vaccine products stay)."""
    tables = [t for t in Base.metadata.sorted_tables if t.name != "vaccine_product"]
    async with engine.begin() as conn:
        if backend == "postgres":
            await conn.execute(text(f"TRUNCATE {', '.join(t.name for t in tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                await conn.execute(table.delete())


async def test_same_seed_same_rows_other_seed_other_rows(services: Services, backend: str) -> None:
    first = await generate(services)
    digest = await _digest(services.engine)
    await _empty(services.engine, backend)
    services.clock.advance(timedelta(days=400))  # the wall clock plays no part
    again = await generate(services)
    assert await _digest(services.engine) == digest
    assert again == first
    await _empty(services.engine, backend)
    await generate(services, seed=2022)
    assert await _digest(services.engine) != digest


async def test_refuses_an_existing_district_and_adds_another(services: Services) -> None:
    first = await generate(services)
    with pytest.raises(DomainError) as raised:
        await generate(services, district_code="nb")
    assert raised.value.code == "demo.district_exists"
    assert "NB" in render_error(raised.value, "vi") and "NB" in render_error(raised.value, "en")
    async with services.sessionmaker() as session:
        assert await session.scalar(select(func.count(Student.id))) == STUDENTS

    second = await generate(services, district_code="CG", district_name="Huyện Cần Giờ", students=50)
    assert second.district_id != first.district_id
    assert [a.telegram_user_id for a in second.accounts] == list(range(900_000_011, 900_000_021))
    schools = await rows(services, School)
    assert len({s.code[:5] for s in schools}) == 2
    async with services.sessionmaker() as session:
        program_donors = await session.scalar(select(func.count(Donor.id)).where(Donor.school_id.is_(None)))
    assert program_donors == 1  # the programme is one district-wide donor, reused


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"schools": 1, "students": 10}, "demo.schools_out_of_range"),
        ({"schools": 1000, "students": 10}, "demo.schools_out_of_range"),
        ({"schools": 3, "students": -1}, "demo.students_out_of_range"),
    ],
)
def test_rejects_sizes_it_cannot_build(values: dict[str, int], code: str) -> None:
    with pytest.raises(ValidationError) as raised:
        DemoDataIn.model_validate(values)
    assert raised.value.errors()[0]["ctx"]["error"].code == code
    assert render_error(raised.value, "vi") == t(f"errors.{code}", "vi", **_params(raised.value))


def _params(error: ValidationError) -> dict[str, object]:
    return error.errors()[0]["ctx"]["error"].params


def test_cli_demo_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}")
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()

    assert main(["demo-data", "--schools", "3", "--students", "120", "--seed", "7", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["district_code"] == "NB" and payload["seed"] == 7
    assert payload["counts"]["school"] == 3 and payload["counts"]["student"] == 120
    assert payload["accounts"][0]["telegram_user_id"] == 900_000_001

    assert main(["demo-data", "--schools", "2", "--students", "10", "--district-code", "Q7",
                 "--district-name", "Quận 7"]) == 0  # fmt: skip
    human = capsys.readouterr().out
    assert "Quận 7 (Q7)" in human and t("demo.tables.student", "vi") in human

    assert main(["demo-data", "--schools", "2", "--students", "10"]) == 1
    assert t("errors.demo.district_exists", "vi", code="NB") in capsys.readouterr().err
