"""Vaccine doses one by one (4.9.1) and by class round: the rules, idempotency, audit and locks.

The clock is frozen at Monday 15 Nov 2021, 09:00 in Ho Chi Minh City.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.errors import render_error
from bot.texts import load
from storage.enums import AuditAction, DosePlace, Gender, SubmissionStatus, SubmissionTrack
from storage.errors import DomainError
from storage.models import AuditLog, ReportingRound, RoundSubmission, Student, VaccineDose, VaccineProduct
from storage.rules.findings import WarningsNotConfirmed
from storage.schemas.vaccines import DoseChange, DoseIn, RoundIn
from storage.services import Services
from storage.services import vaccines as vaccines_module
from storage.text import fold
from tests.conftest import TZ
from tests.factories import World, make_world
from tests.helpers import audit_of, count, staff_of

TODAY = date(2021, 11, 15)
ROOT = Path(__file__).resolve().parent.parent


async def product_ids(services: Services) -> dict[str, int]:
    return {p.code: p.id for p in await services.vaccines.products()}


def dose(student_id: int, number: int, given_on: date, product_id: int, **extra: object) -> DoseIn:
    return DoseIn(
        student_id=student_id,
        dose_number=number,
        given_on=given_on,
        product_id=product_id,
        place=extra.pop("place", DosePlace.SCHOOL),
        **extra,
    )


async def lock_school(
    services: Services,
    world: World,
    school_id: int,
    track: SubmissionTrack,
    status: SubmissionStatus = SubmissionStatus.SUBMITTED,
) -> int:
    """A round in which the school's submission of `track` has `status`; returns the submission id."""
    async with services.sessionmaker.begin() as session:
        deadline = datetime(2021, 11, 15, 15, 30, tzinfo=TZ)
        reporting_round = ReportingRound(
            district_id=world.district_id,
            name="Đợt 15/11/2021",
            period_start=date(2021, 11, 1),
            period_end=date(2021, 11, 15),
            submit_deadline=deadline,
            approve_deadline=deadline + timedelta(hours=20),
            compile_deadline=deadline + timedelta(hours=26),
        )
        session.add(reporting_round)
        await session.flush()
        submission = RoundSubmission(
            round_id=reporting_round.id, school_id=school_id, track=track, status=status
        )
        session.add(submission)
        await session.flush()
        return submission.id


async def set_submission_status(services: Services, submission_id: int, status: SubmissionStatus) -> None:
    async with services.sessionmaker.begin() as session:
        submission = await session.get(RoundSubmission, submission_id)
        assert submission is not None
        submission.status = status
        submission.return_reason = "Thiếu mũi 2 của lớp 4A1" if status is SubmissionStatus.RETURNED else ""


def error_code(excinfo: pytest.ExceptionInfo[DomainError]) -> str:
    return excinfo.value.code


# --- products and one dose ------------------------------------------------------------------------


async def test_products_are_the_maintained_list_with_other_last(services: Services) -> None:
    products = await services.vaccines.products()
    codes = [p.code for p in products]
    assert codes[0] == "COMIRNATY" and codes[-1] == "OTHER" and len(codes) == 10
    assert [p.code for p in products if p.needs_name] == ["OTHER"]
    comirnaty = products[0]
    assert (comirnaty.min_age_years, comirnaty.min_interval_days) == (5, 21)


async def test_the_product_steps_read_the_products_once_and_a_save_reads_them_itself(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The product list and a step's check answer from the products read in the last
    PRODUCTS_CACHE_SECONDS (the district corrects them in their table, seen after that long); the
    save judges against the table as it is."""
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    reads = 0
    real = vaccines_module._all_products_sync

    def counted(session: object) -> object:
        nonlocal reads
        reads += 1
        return real(session)  # type: ignore[arg-type]

    monkeypatch.setattr(vaccines_module, "_all_products_sync", counted)
    comirnaty = dose(student, 1, TODAY, products["COMIRNATY"])
    for _ in range(3):
        assert next(p.code for p in await services.vaccines.products()) == "COMIRNATY"
        assert not (await services.vaccines.check_dose(comirnaty, school_id=school)).errors
    assert reads == 0  # all from what `product_ids` read above

    async def set_active(active: bool) -> None:
        async with services.sessionmaker.begin() as session:
            product = await session.get(VaccineProduct, products["COMIRNATY"])
            assert product is not None
            product.active = active

    await set_active(False)  # the district retires it
    try:
        assert not (await services.vaccines.check_dose(comirnaty, school_id=school)).errors  # not seen yet
        with pytest.raises(DomainError) as refused:  # the save reads the table itself
            await services.vaccines.record_dose(comirnaty, school_id=school, actor_id=None, request_key=None)
        assert error_code(refused) == "vaccines.unknown_product" and reads == 1

        monkeypatch.setattr(vaccines_module, "PRODUCTS_CACHE_SECONDS", 0.0)  # that long later
        assert "COMIRNATY" not in [p.code for p in await services.vaccines.products()]
        check = await services.vaccines.check_dose(comirnaty, school_id=school)
        assert [f.code for f in check.errors] == ["vaccines.unknown_product"]
    finally:
        await set_active(True)  # reference data: kept from test to test on PostgreSQL


async def test_record_a_dose_shows_it_and_suggests_the_next(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student, teacher = (
        world.primary_school_id,
        world.student_ids["HS0001"],
        world.staff_ids["teacher"],
    )
    assert await services.vaccines.next_dose_number(student, school_id=school) == 1

    saved = await services.vaccines.record_dose(
        dose(student, 1, TODAY - timedelta(days=1), products["COMIRNATY"]),
        school_id=school,
        actor_id=teacher,
        request_key="k-first",
    )

    assert saved.dose_number == 1 and saved.product_label == "Comirnaty (Pfizer-BioNTech)"
    assert saved.student_name == "Nguyễn Văn An" and saved.class_name == "4A1"
    assert saved.entered_late is False and saved.entered_by_id == teacher
    assert [d.id for d in await services.vaccines.doses_of(student, school_id=school)] == [saved.id]
    assert await services.vaccines.next_dose_number(student, school_id=school) == 2
    (entry,) = await audit_of(services, "vaccine_dose", saved.id)
    assert entry.action is AuditAction.CREATE and entry.actor_id == teacher
    assert entry.school_id == school and entry.before is None
    assert entry.after is not None and entry.after["dose_number"] == 1


async def test_duplicate_dose_number_is_refused(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await services.vaccines.record_dose(
        dose(student, 1, date(2021, 11, 1), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="a",
    )

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(student, 1, date(2021, 11, 14), products["COMIRNATY"]),
            school_id=school,
            actor_id=None,
            request_key="b",
        )

    assert error_code(excinfo) == "vaccines.duplicate_dose"
    assert excinfo.value.params == {"dose_number": 1, "given_on": date(2021, 11, 1)}
    assert "01/11/2021" in render_error(excinfo.value, "vi")
    assert await count(services, VaccineDose) == 1


async def test_dose_dated_before_the_previous_one_is_refused(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await services.vaccines.record_dose(
        dose(student, 1, date(2021, 11, 10), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="a",
    )

    check = await services.vaccines.check_dose(
        dose(student, 2, date(2021, 11, 5), products["COMIRNATY"]), school_id=school
    )

    assert [e.code for e in check.errors] == ["vaccines.before_previous"]
    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(student, 2, date(2021, 11, 5), products["COMIRNATY"]),
            school_id=school,
            actor_id=None,
            request_key="b",
        )
    assert error_code(excinfo) == "vaccines.before_previous"


async def test_filling_a_gap_after_the_next_dose_is_refused(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    # Dose 2 first (dose 1 was given elsewhere and its card is at home): a warning, confirmed.
    check = await services.vaccines.check_dose(
        dose(student, 2, date(2021, 11, 10), products["COMIRNATY"]), school_id=school
    )
    assert check.ok and [w.code for w in check.warnings] == ["vaccines.missing_earlier"]
    await services.vaccines.record_dose(
        dose(student, 2, date(2021, 11, 10), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="a",
        confirm_warnings=True,
    )

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(student, 1, date(2021, 11, 12), products["COMIRNATY"]),
            school_id=school,
            actor_id=None,
            request_key="b",
        )
    assert error_code(excinfo) == "vaccines.after_next"
    assert excinfo.value.params["next_on"] == date(2021, 11, 10)

    fine = await services.vaccines.record_dose(
        dose(student, 1, date(2021, 10, 15), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="c",
    )
    assert fine.dose_number == 1


async def test_future_and_too_early_dates_are_refused(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]

    for given_on, code in (
        (TODAY + timedelta(days=1), "vaccines.future"),
        (date(2021, 8, 31), "vaccines.too_early"),
    ):
        with pytest.raises(DomainError) as excinfo:
            await services.vaccines.record_dose(
                dose(student, 1, given_on, products["COMIRNATY"]),
                school_id=school,
                actor_id=None,
                request_key=None,
            )
        assert error_code(excinfo) == code
    assert await count(services, VaccineDose) == 0


async def test_dose_before_the_products_minimum_age_is_refused(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]  # born 14/03/2012: 9 years old

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(student, 1, TODAY, products["VAXZEVRIA"]), school_id=school, actor_id=None, request_key=None
        )

    assert error_code(excinfo) == "vaccines.too_young"
    assert excinfo.value.params["min_age"] == 18
    assert excinfo.value.params["eligible_from"] == date(2030, 3, 14)
    saved = await services.vaccines.record_dose(
        dose(student, 1, TODAY, products["COMIRNATY"]), school_id=school, actor_id=None, request_key=None
    )
    assert saved.product_code == "COMIRNATY"


async def test_minimum_age_is_counted_to_the_day(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    async with services.sessionmaker.begin() as session:
        # Twelve on 16 Nov 2021: Nuvaxovid's minimum age is 12 (data in vaccine_product, not code).
        student = Student(
            school_id=world.secondary_school_id,
            code="HS0100",
            full_name="Hồ Thị Yến",
            search_name=fold("Hồ Thị Yến"),
            date_of_birth=date(2009, 11, 16),
            gender=Gender.FEMALE,
            grade=6,
            class_name="6A2",
        )
        session.add(student)
        await session.flush()
        student_id = student.id

    check = await services.vaccines.check_dose(
        dose(student_id, 1, TODAY, products["NUVAXOVID"]), school_id=world.secondary_school_id
    )
    assert [e.code for e in check.errors] == ["vaccines.too_young"]
    assert check.errors[0].params["eligible_from"] == date(2021, 11, 16)


async def test_other_product_needs_a_name(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(student, 1, TODAY, products["OTHER"]), school_id=school, actor_id=None, request_key=None
        )
    assert error_code(excinfo) == "vaccines.other_needs_name"

    saved = await services.vaccines.record_dose(
        dose(student, 1, TODAY, products["OTHER"], product_other_name="  Corbevax "),
        school_id=school,
        actor_id=None,
        request_key=None,
    )
    assert saved.product_code == "OTHER" and saved.product_label == "Corbevax"


async def test_a_named_product_drops_a_typed_other_name(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    saved = await services.vaccines.record_dose(
        dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"], product_other_name="Corbevax"),
        school_id=world.primary_school_id,
        actor_id=None,
        request_key=None,
    )
    assert saved.product_other_name == "" and saved.product_label == "Comirnaty (Pfizer-BioNTech)"


async def test_another_schools_student_is_not_found(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    other_school_student = world.student_ids["HS0005"]  # of the THCS school

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(other_school_student, 1, TODAY, products["COMIRNATY"]),
            school_id=world.primary_school_id,
            actor_id=None,
            request_key=None,
        )
    assert error_code(excinfo) == "not_found.student"
    for call in (
        services.vaccines.doses_of(other_school_student, school_id=world.primary_school_id),
        services.vaccines.check_dose(
            dose(other_school_student, 1, TODAY, products["COMIRNATY"]), school_id=world.primary_school_id
        ),
    ):
        with pytest.raises(DomainError) as excinfo:
            await call
        assert error_code(excinfo) == "not_found.student"


async def test_short_interval_is_a_warning_saved_once_confirmed(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await services.vaccines.record_dose(
        dose(student, 1, date(2021, 11, 1), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="a",
    )
    second = dose(student, 2, date(2021, 11, 10), products["COMIRNATY"])

    check = await services.vaccines.check_dose(second, school_id=school)
    assert check.ok and check.needs_confirmation
    (warning,) = check.warnings
    assert warning.code == "vaccines.short_interval"
    assert (warning.params["days"], warning.params["minimum"]) == (9, 21)
    assert "21" in render_error(warning.as_error(), "vi")

    with pytest.raises(WarningsNotConfirmed) as excinfo:
        await services.vaccines.record_dose(second, school_id=school, actor_id=None, request_key="b")
    assert excinfo.value.code == "vaccines.short_interval" and len(excinfo.value.warnings) == 1
    assert await count(services, VaccineDose) == 1

    saved = await services.vaccines.record_dose(
        second, school_id=school, actor_id=None, request_key="b", confirm_warnings=True
    )
    assert saved.dose_number == 2 and await count(services, VaccineDose) == 2


async def test_mixed_products_use_the_longer_minimum_interval(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.secondary_school_id, world.student_ids["HS0005"]
    await services.vaccines.record_dose(
        dose(student, 1, date(2021, 10, 20), products["SPIKEVAX"]),
        school_id=school,
        actor_id=None,
        request_key="a",
    )
    # 25 days later: enough for Comirnaty (21) but not after Spikevax (28).
    check = await services.vaccines.check_dose(
        dose(student, 2, date(2021, 11, 14), products["COMIRNATY"]), school_id=school
    )
    assert [(w.code, w.params["minimum"]) for w in check.warnings] == [("vaccines.short_interval", 28)]


async def test_entry_more_than_a_day_after_the_dose_is_saved_late(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school = world.primary_school_id

    on_time = await services.vaccines.record_dose(
        dose(world.student_ids["HS0001"], 1, TODAY - timedelta(days=1), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key=None,
    )
    late_check = await services.vaccines.check_dose(
        dose(world.student_ids["HS0002"], 1, TODAY - timedelta(days=2), products["COMIRNATY"]),
        school_id=school,
    )
    late = await services.vaccines.record_dose(
        dose(world.student_ids["HS0002"], 1, TODAY - timedelta(days=2), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key=None,
    )

    assert on_time.entered_late is False
    assert late_check.ok and late_check.entered_late is True and late.entered_late is True


async def test_repeated_confirm_with_the_same_request_key_saves_one_row(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    data = dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"])

    first = await services.vaccines.record_dose(
        data, school_id=world.primary_school_id, actor_id=None, request_key="tap"
    )
    again = await services.vaccines.record_dose(
        data, school_id=world.primary_school_id, actor_id=None, request_key="tap"
    )

    assert again.id == first.id
    assert await count(services, VaccineDose) == 1
    assert await count(services, AuditLog, AuditLog.entity == "vaccine_dose") == 1


async def test_two_confirms_at_once_save_one_dose(services: Services) -> None:
    """A double tap sends two confirms together; on PostgreSQL they really run concurrently."""
    world = await make_world(services)
    products = await product_ids(services)
    data = dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"])

    first, second = await asyncio.gather(
        services.vaccines.record_dose(
            data, school_id=world.primary_school_id, actor_id=None, request_key="twin"
        ),
        services.vaccines.record_dose(
            data, school_id=world.primary_school_id, actor_id=None, request_key="twin"
        ),
    )

    assert first.id == second.id and await count(services, VaccineDose) == 1


async def test_two_people_taking_the_same_dose_number_at_once(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    data = dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"])

    outcomes = await asyncio.gather(
        services.vaccines.record_dose(
            data, school_id=world.primary_school_id, actor_id=None, request_key="one"
        ),
        services.vaccines.record_dose(
            data, school_id=world.primary_school_id, actor_id=None, request_key="two"
        ),
        return_exceptions=True,
    )

    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(refused) == 1 and refused[0].code in {
        "vaccines.duplicate_dose",
        "vaccines.duplicate_dose_race",
    }
    assert await count(services, VaccineDose) == 1


async def test_update_and_delete_are_audited(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student, teacher = (
        world.primary_school_id,
        world.student_ids["HS0001"],
        world.staff_ids["teacher"],
    )
    saved = await services.vaccines.record_dose(
        dose(student, 1, TODAY, products["COMIRNATY"]), school_id=school, actor_id=teacher, request_key="a"
    )

    changed = await services.vaccines.update_dose(
        saved.id,
        DoseChange(given_on=date(2021, 11, 10), place=DosePlace.COMMUNITY),
        school_id=school,
        actor_id=teacher,
        request_key="edit-1",
    )
    again = await services.vaccines.update_dose(
        saved.id,
        DoseChange(given_on=date(2021, 11, 9)),
        school_id=school,
        actor_id=teacher,
        request_key="edit-1",
    )

    assert changed.given_on == date(2021, 11, 10) and changed.place is DosePlace.COMMUNITY
    assert again.given_on == date(2021, 11, 10)  # the repeated confirm changed nothing
    _created, updated = await audit_of(services, "vaccine_dose", saved.id)
    assert updated.action is AuditAction.UPDATE and updated.actor_id == teacher
    assert updated.before is not None and updated.after is not None
    assert (updated.before["given_on"], updated.after["given_on"]) == ("2021-11-15", "2021-11-10")
    assert (updated.before["place"], updated.after["place"]) == ("school", "community")

    gone = await services.vaccines.delete_dose(saved.id, school_id=school, actor_id=teacher)
    assert gone.id == saved.id and await count(services, VaccineDose) == 0
    *_, deleted = await audit_of(services, "vaccine_dose", saved.id)
    assert deleted.action is AuditAction.DELETE and deleted.after is None
    assert deleted.before is not None and deleted.before["given_on"] == "2021-11-10"


async def test_update_runs_the_same_checks_against_the_other_doses(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await services.vaccines.record_dose(
        dose(student, 1, date(2021, 10, 1), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="a",
    )
    second = await services.vaccines.record_dose(
        dose(student, 2, date(2021, 11, 1), products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="b",
    )

    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.update_dose(
            second.id, DoseChange(dose_number=1), school_id=school, actor_id=None
        )
    assert error_code(excinfo) == "vaccines.duplicate_dose"
    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.update_dose(
            second.id, DoseChange(given_on=date(2021, 9, 30)), school_id=school, actor_id=None
        )
    assert error_code(excinfo) == "vaccines.before_previous"
    # The dose itself is not its own neighbour: moving it by a day is fine.
    moved = await services.vaccines.update_dose(
        second.id, DoseChange(given_on=date(2021, 11, 2)), school_id=school, actor_id=None
    )
    assert moved.given_on == date(2021, 11, 2)


async def test_update_recomputes_late_from_the_first_entry(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    saved = await services.vaccines.record_dose(
        dose(student, 1, TODAY, products["COMIRNATY"]), school_id=school, actor_id=None, request_key="a"
    )
    # Entered on 15/11 for a dose on 10/11: more than a day after it, so late.
    changed = await services.vaccines.update_dose(
        saved.id, DoseChange(given_on=date(2021, 11, 10)), school_id=school, actor_id=None
    )
    assert changed.entered_late is True


async def test_another_schools_dose_cannot_be_changed(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    saved = await services.vaccines.record_dose(
        dose(world.student_ids["HS0005"], 1, TODAY, products["COMIRNATY"]),
        school_id=world.secondary_school_id,
        actor_id=None,
        request_key=None,
    )
    for call in (
        services.vaccines.update_dose(
            saved.id, DoseChange(), school_id=world.primary_school_id, actor_id=None
        ),
        services.vaccines.delete_dose(saved.id, school_id=world.primary_school_id, actor_id=None),
    ):
        with pytest.raises(DomainError) as excinfo:
            await call
        assert error_code(excinfo) == "not_found.record"


async def test_a_submitted_vaccine_round_locks_the_schools_doses(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student, teacher = (
        world.primary_school_id,
        world.student_ids["HS0001"],
        world.staff_ids["teacher"],
    )
    saved = await services.vaccines.record_dose(
        dose(student, 1, date(2021, 10, 15), products["COMIRNATY"]),
        school_id=school,
        actor_id=teacher,
        request_key="a",
    )
    submission_id = await lock_school(services, world, school, SubmissionTrack.VACCINE)
    second = dose(student, 2, TODAY, products["COMIRNATY"])

    check = await services.vaccines.check_dose(second, school_id=school)
    assert [e.code for e in check.errors] == ["vaccines.locked"]
    # Issue 14: only doses given inside the period (01–15/11) are locked: today's is refused.
    for call in (
        services.vaccines.record_dose(second, school_id=school, actor_id=teacher, request_key="b"),
        services.vaccines.record_round(
            RoundIn(student_ids=[student], given_on=TODAY, product_id=products["COMIRNATY"]),
            school_id=school,
            actor_id=teacher,
            request_key="r",
        ),
    ):
        with pytest.raises(DomainError) as excinfo:
            await call
        assert error_code(excinfo) == "vaccines.locked"
        assert excinfo.value.params["round"] == "Đợt 15/11/2021"
    text = render_error(excinfo.value, "vi")
    assert "Đợt 15/11/2021" in text and "Y tế trường học" in text
    # The dose of 15/10, before the period, is not locked: it can still be corrected.
    (entry,) = (await services.entries.page(await staff_of(services, "teacher"), kind="dose")).items
    assert entry.kind == "dose" and entry.editable is True and entry.locked_round is None
    await services.vaccines.update_dose(
        saved.id, DoseChange(place=DosePlace.ELSEWHERE), school_id=school, actor_id=teacher
    )

    # The other school and the programme track are not locked by this submission.
    await services.vaccines.record_dose(
        dose(world.student_ids["HS0005"], 1, TODAY, products["COMIRNATY"]),
        school_id=world.secondary_school_id,
        actor_id=None,
        request_key=None,
    )

    # Sent back by the health officer: the school can correct its doses again.
    await set_submission_status(services, submission_id, SubmissionStatus.RETURNED)
    assert (
        await services.vaccines.record_dose(second, school_id=school, actor_id=teacher, request_key="b")
    ).dose_number == 2


async def test_an_approved_submission_locks_too(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    await lock_school(
        services, world, world.primary_school_id, SubmissionTrack.VACCINE, SubmissionStatus.APPROVED
    )
    with pytest.raises(DomainError) as excinfo:
        await services.vaccines.record_dose(
            dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"]),
            school_id=world.primary_school_id,
            actor_id=None,
            request_key=None,
        )
    assert error_code(excinfo) == "vaccines.locked_approved"  # issue 14: approved, only a reopen


async def test_my_lists_the_persons_doses_newest_first(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    teacher = world.staff_ids["teacher"]
    first = await services.vaccines.record_dose(
        dose(world.student_ids["HS0001"], 1, TODAY, products["COMIRNATY"]),
        school_id=world.primary_school_id,
        actor_id=teacher,
        request_key=None,
    )
    services.clock.advance(timedelta(minutes=5))
    second = await services.vaccines.record_dose(
        dose(world.student_ids["HS0002"], 1, TODAY, products["OTHER"], product_other_name="Corbevax"),
        school_id=world.primary_school_id,
        actor_id=teacher,
        request_key=None,
    )
    services.clock.advance(timedelta(minutes=5))
    theirs = await services.vaccines.record_dose(
        dose(world.student_ids["HS0003"], 1, TODAY, products["COMIRNATY"]),
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["principal"],
        request_key=None,
    )
    me = await staff_of(services, "teacher")

    entries = (await services.entries.page(me, kind="dose")).items

    assert [e.id for e in entries] == [second.id, first.id]  # not the principal's
    assert entries[0].subject == "Trần Thị Bình" and entries[0].event_on == TODAY
    assert entries[0].details["product"] == "Corbevax" and entries[0].details["dose_number"] == 1
    assert entries[0].editable is True and entries[0].locked_round is None
    one = await services.entries.page(me, kind="dose", page=2, page_size=1)
    assert [e.id for e in one.items] == [first.id] and one.total == 2
    assert await services.entries.entry(me, "dose", first.id) == entries[1]
    with pytest.raises(DomainError) as missing:
        await services.entries.entry(me, "dose", theirs.id)
    assert error_code(missing) == "not_found.record"


# --- a vaccination round at school ------------------------------------------------------------------

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
MIDDLE = ["Văn", "Thị", "Minh"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Khoa", "Linh", "Minh", "Ngọc"]


async def make_class(services: Services, school_id: int, class_name: str, size: int) -> list[int]:
    """`size` students of a grade-6 class; the last five are born in mid-2010 (11 years old)."""
    ids = []
    async with services.sessionmaker.begin() as session:
        for n in range(1, size + 1):
            name = f"{FAMILY[n % len(FAMILY)]} {MIDDLE[n % len(MIDDLE)]} {GIVEN[n % len(GIVEN)]}"
            student = Student(
                school_id=school_id,
                code=f"L6{n:03d}",
                full_name=name,
                search_name=fold(name),
                date_of_birth=date(2010, 6, 1) if n > size - 5 else date(2009, 5, 1),
                gender=Gender.MALE,
                grade=6,
                class_name=class_name,
            )
            session.add(student)
            await session.flush()
            ids.append(student.id)
    return ids


async def add_doses(services: Services, rows: list[tuple[int, int, date, int]]) -> None:
    async with services.sessionmaker.begin() as session:
        for student_id, number, given_on, product_id in rows:
            session.add(
                VaccineDose(
                    student_id=student_id,
                    dose_number=number,
                    given_on=given_on,
                    product_id=product_id,
                    place=DosePlace.SCHOOL,
                )
            )


async def test_round_for_a_class_of_forty(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, teacher = world.secondary_school_id, world.staff_ids["teacher_thcs"]
    s = await make_class(services, school, "6A1", 40)  # s[0] is student 1 of the list, ...
    comirnaty = products["COMIRNATY"]
    await add_doses(
        services,
        [(s[i], 1, date(2021, 10, 20), comirnaty) for i in range(10)]  # students 1-10: due for dose 2
        + [(s[10], 1, date(2021, 11, 5), comirnaty), (s[11], 1, date(2021, 11, 5), comirnaty)]  # 10 days ago
        + [(s[12], 1, TODAY, comirnaty)]  # vaccinated this morning already (another round)
        + [(s[13], 1, date(2021, 9, 27), comirnaty), (s[13], 2, date(2021, 10, 25), comirnaty)]
        + [(s[31], 1, date(2021, 10, 1), comirnaty)],  # not ticked today
    )
    before = await count(services, VaccineDose)

    roster = await services.vaccines.class_roster(school, "lớp 6a1")
    assert len(roster) == 40 and {r.student_id for r in roster} == set(s)
    by_id = {r.student_id: r for r in roster}
    assert (by_id[s[0]].dose_count, by_id[s[0]].last_dose_on, by_id[s[0]].next_dose_number) == (
        1,
        date(2021, 10, 20),
        2,
    )
    assert (by_id[s[13]].dose_count, by_id[s[13]].next_dose_number) == (2, 3)
    assert (by_id[s[20]].dose_count, by_id[s[20]].last_dose_on, by_id[s[20]].next_dose_number) == (0, None, 1)
    # Class-list order: by given name, then the whole name.
    order = [fold(r.full_name).rsplit(" ", 1)[-1] for r in roster]
    assert order == sorted(order)

    # Ticked: students 1-30, two of the 11-year-olds (36, 37), and one of another school.
    ticked = [*s[:30], s[35], s[36], world.student_ids["HS0001"]]
    data = RoundIn(student_ids=ticked, given_on=TODAY, product_id=products["NUVAXOVID"])  # minimum age 12
    preview = await services.vaccines.preview_round(data, school_id=school)
    assert preview.preview is True and await count(services, VaccineDose) == before

    result = await services.vaccines.record_round(
        data, school_id=school, actor_id=teacher, request_key="round-6a1"
    )

    saved = {r.student_id: r.dose_number for r in result.saved}
    skipped = {r.student_id: r.reason.code for r in result.skipped}
    expected_saved = {sid: 2 for sid in s[:10]} | {s[13]: 3} | {sid: 1 for sid in s[14:30]}
    assert saved == expected_saved
    assert skipped == {
        s[10]: "vaccines.short_interval",
        s[11]: "vaccines.short_interval",
        s[12]: "vaccines.same_day",
        s[35]: "vaccines.too_young",
        s[36]: "vaccines.too_young",
        world.student_ids["HS0001"]: "vaccines.round.not_in_school",
    }
    assert [(r.student_id, r.dose_number) for r in preview.saved] == [
        (r.student_id, r.dose_number) for r in result.saved
    ]
    assert [(r.student_id, r.reason) for r in preview.skipped] == [
        (r.student_id, r.reason) for r in result.skipped
    ]
    assert result.preview is False and result.entered_late is False
    assert result.product_label == "Nuvaxovid (Novavax)" and result.place is DosePlace.SCHOOL
    assert all(r.dose_id > 0 for r in result.saved)
    for reason in (r.reason for r in result.skipped):
        assert not render_error(reason.as_error(), "vi").startswith("Không thực hiện được")
    assert await count(services, VaccineDose) == before + 27
    assert await count(services, AuditLog, AuditLog.entity == "vaccine_dose") == 27
    async with services.sessionmaker() as session:
        doses_today = list(
            await session.scalars(
                select(VaccineDose).where(VaccineDose.given_on == TODAY, VaccineDose.entered_by_id == teacher)
            )
        )
    assert len(doses_today) == 27 and len({d.request_key for d in doses_today}) == 27

    # Confirming again (a double tap, a retry after a lost reply) adds nothing.
    again = await services.vaccines.record_round(
        data, school_id=school, actor_id=teacher, request_key="round-6a1"
    )
    assert {r.student_id: (r.dose_number, r.dose_id) for r in again.saved} == {
        r.student_id: (r.dose_number, r.dose_id) for r in result.saved
    }
    assert {r.student_id for r in again.skipped} == set(skipped)
    assert await count(services, VaccineDose) == before + 27

    # The next day, a round of dose 2 only: who is not due for dose 2 is skipped, with why.
    services.clock.advance(timedelta(days=1))
    tomorrow = TODAY + timedelta(days=1)
    dose_two = RoundIn(
        student_ids=[s[0], s[14], s[30], s[31]],
        given_on=tomorrow,
        product_id=products["COMIRNATY"],
        dose_number=2,
    )
    second = await services.vaccines.record_round(
        dose_two, school_id=school, actor_id=teacher, request_key="round-2"
    )
    assert [(r.student_id, r.dose_number) for r in second.saved] == [(s[31], 2)]
    assert {r.student_id: r.reason.code for r in second.skipped} == {
        s[0]: "vaccines.round.already_has_dose",
        s[14]: "vaccines.short_interval",  # dose 1 yesterday
        s[30]: "vaccines.round.missing_earlier",
    }


async def test_two_round_confirms_at_once_save_each_dose_once(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    ticked = [world.student_ids["HS0001"], world.student_ids["HS0002"], world.student_ids["HS0004"]]
    data = RoundIn(student_ids=ticked, given_on=TODAY, product_id=products["COMIRNATY"])

    first, second = await asyncio.gather(
        services.vaccines.record_round(
            data, school_id=world.primary_school_id, actor_id=None, request_key="twin"
        ),
        services.vaccines.record_round(
            data, school_id=world.primary_school_id, actor_id=None, request_key="twin"
        ),
    )

    assert len(first.saved) == len(second.saved) == 3
    assert {r.dose_id for r in first.saved} == {r.dose_id for r in second.saved}
    assert await count(services, VaccineDose) == 3


async def test_round_with_short_interval_is_skipped_not_saved(services: Services) -> None:
    """Two days after dose 1: the student is skipped with the reason; a single dose could confirm it."""
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    await add_doses(services, [(student, 1, TODAY - timedelta(days=2), products["COMIRNATY"])])

    result = await services.vaccines.record_round(
        RoundIn(student_ids=[student], given_on=TODAY, product_id=products["COMIRNATY"]),
        school_id=school,
        actor_id=None,
        request_key="r",
    )

    assert result.saved == []
    (skip,) = result.skipped
    assert skip.student_name == "Nguyễn Văn An" and skip.reason.code == "vaccines.short_interval"
    assert skip.reason.params["days"] == 2


async def test_round_refuses_what_is_wrong_for_everybody(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    school, student = world.primary_school_id, world.student_ids["HS0001"]
    cases = [
        (
            RoundIn(student_ids=[student], given_on=TODAY, product_id=products["OTHER"]),
            "vaccines.other_needs_name",
        ),
        (
            RoundIn(
                student_ids=[student], given_on=TODAY + timedelta(days=1), product_id=products["COMIRNATY"]
            ),
            "vaccines.future",
        ),
        (RoundIn(student_ids=[student], given_on=TODAY, product_id=999_999), "vaccines.unknown_product"),
    ]
    for data, code in cases:
        with pytest.raises(DomainError) as excinfo:
            await services.vaccines.record_round(data, school_id=school, actor_id=None, request_key=None)
        assert error_code(excinfo) == code
    with pytest.raises(ValueError, match="nobody_ticked"):
        RoundIn(student_ids=[], given_on=TODAY, product_id=products["COMIRNATY"])
    assert await count(services, VaccineDose) == 0


async def test_late_round_flags_every_saved_dose(services: Services) -> None:
    world = await make_world(services)
    products = await product_ids(services)
    result = await services.vaccines.record_round(
        RoundIn(
            student_ids=[world.student_ids["HS0001"], world.student_ids["HS0002"]],
            given_on=TODAY - timedelta(days=3),
            product_id=products["OTHER"],
            product_other_name="Corbevax",
            place=DosePlace.COMMUNITY,
        ),
        school_id=world.primary_school_id,
        actor_id=None,
        request_key=None,
    )
    assert result.entered_late is True and len(result.saved) == 2 and result.product_label == "Corbevax"
    async with services.sessionmaker() as session:
        rows = list(await session.scalars(select(VaccineDose)))
    assert all(r.entered_late and r.place is DosePlace.COMMUNITY for r in rows)


# --- texts ----------------------------------------------------------------------------------------


def test_every_finding_code_has_a_text_in_both_languages() -> None:
    """Findings are returned, not raised, so the catalogue test's scan does not see them."""
    sources = [
        ROOT / "storage/rules/vaccines.py",
        ROOT / "storage/services/vaccines.py",
        ROOT / "storage/services/needs.py",
    ]
    codes = {code for path in sources for code in re.findall(r'code="([a-z_.]+)"', path.read_text())}
    codes |= {
        f"needs.inconsistency.group_exceeds_list.{g}"
        for g in ("poor", "near_poor", "covid_orphan", "other_hardship")
    }
    assert "vaccines.short_interval" in codes and "needs.inconsistency.category_differs" in codes
    for language in ("vi", "en"):
        texts = load(language)
        assert sorted(code for code in codes if f"errors.{code}" not in texts) == [], language
