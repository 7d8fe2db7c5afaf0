"""Who may have which report: a principal only their school's, a teacher none, specialists their level."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from bot.errors import render_error
from storage.enums import Role, SchoolLevel
from storage.errors import AccessDenied, DomainError
from storage.schemas.reports import ReportPeriod, ReportScope, ScopeKind, parse_scope_text
from storage.services import Services
from storage.services.reports import allowed_scopes, check_scope
from tests.reports_world import ReportWorld, make_report_world

DISTRICT, OTHER_DISTRICT, SCHOOL, OTHER_SCHOOL = 1, 2, 10, 11


def scopes() -> dict[str, ReportScope]:
    return {
        "district": ReportScope.district(DISTRICT),
        "level_th": ReportScope.for_level(DISTRICT, "TH"),
        "level_thcs": ReportScope.for_level(DISTRICT, "THCS"),
        "own_school": ReportScope.for_school(DISTRICT, SCHOOL),
        "other_school": ReportScope.for_school(DISTRICT, OTHER_SCHOOL),
        "other_district": ReportScope.district(OTHER_DISTRICT),
    }


# Who may have what; a school's level is TH for SCHOOL and THCS for OTHER_SCHOOL.
EXPECTED = {
    Role.TEACHER: set(),
    Role.TECH_SUPPORT: set(),
    Role.PRINCIPAL: {"own_school"},
    Role.PRIMARY_SPECIALIST: {"level_th", "own_school"},
    Role.SECONDARY_SPECIALIST: {"level_thcs", "other_school"},
    Role.HEALTH_OFFICER: {"district", "level_th", "level_thcs", "own_school", "other_school"},
    Role.STATISTICS_OFFICER: {"district", "level_th", "level_thcs", "own_school", "other_school"},
    Role.DEPUTY_HEAD: {"district", "level_th", "level_thcs", "own_school", "other_school"},
    Role.ADMIN: {"district", "level_th", "level_thcs", "own_school", "other_school"},
}


@pytest.mark.parametrize("role", list(Role))
def test_check_scope_matrix(role: Role) -> None:
    levels = {SCHOOL: SchoolLevel.PRIMARY, OTHER_SCHOOL: SchoolLevel.LOWER_SECONDARY}
    allowed = set()
    for name, scope in scopes().items():
        school_id = SCHOOL if role.is_school_scoped else None
        try:
            check_scope(role, school_id, DISTRICT, scope, school_level=levels.get(scope.school_id or 0))
        except AccessDenied:
            continue
        allowed.add(name)
    assert allowed == EXPECTED[role]


def test_denials_say_why() -> None:
    with pytest.raises(AccessDenied) as teacher:
        check_scope(Role.TEACHER, SCHOOL, DISTRICT, ReportScope.for_school(DISTRICT, SCHOOL))
    assert teacher.value.code == "reports.not_allowed"
    with pytest.raises(AccessDenied) as principal:
        check_scope(Role.PRINCIPAL, SCHOOL, DISTRICT, ReportScope.for_school(DISTRICT, OTHER_SCHOOL))
    assert principal.value.code == "reports.own_school_only"
    assert "trường mình" in render_error(principal.value)
    with pytest.raises(AccessDenied) as principal_district:
        check_scope(Role.PRINCIPAL, SCHOOL, DISTRICT, ReportScope.district(DISTRICT))
    assert principal_district.value.code == "reports.own_school_only"
    with pytest.raises(AccessDenied) as officer:
        check_scope(Role.STATISTICS_OFFICER, None, DISTRICT, ReportScope.district(OTHER_DISTRICT))
    assert officer.value.code == "reports.other_district"
    with pytest.raises(AccessDenied) as gone:
        check_scope(Role.STATISTICS_OFFICER, None, DISTRICT, ReportScope.district(DISTRICT), active=False)
    assert gone.value.code == "reports.deactivated"
    # A principal without a school (bad data) gets nothing; an admin without a district sees all.
    assert not allowed_scopes(Role.PRINCIPAL, None, DISTRICT).may_report
    check_scope(Role.ADMIN, None, None, ReportScope.district(OTHER_DISTRICT))
    # The command line (no role) may have everything.
    check_scope(None, None, None, ReportScope.district(OTHER_DISTRICT))


def test_scope_text() -> None:
    assert parse_scope_text("district") == (ScopeKind.DISTRICT, "")
    assert parse_scope_text(" level:THCS ") == (ScopeKind.LEVEL, "THCS")
    assert parse_scope_text("school:79785001") == (ScopeKind.SCHOOL, "79785001")
    for bad in ("", "town", "level:", "level:DH", "school:", "district:NB"):
        with pytest.raises(DomainError):
            parse_scope_text(bad)
    assert ReportScope.for_level(1, "THCS").levels == (SchoolLevel.LOWER_SECONDARY, SchoolLevel.COMBINED)
    with pytest.raises(ValidationError) as period:  # pydantic carries the DomainError
        ReportPeriod(date_from=date(2021, 11, 5), date_to=date(2021, 11, 1))
    assert render_error(period.value) == (
        "Ngày bắt đầu 05/11/2021 sau ngày kết thúc 01/11/2021. Kiểm tra lại khoảng ngày."
    )


@pytest.fixture
def report_executor() -> str:
    return "thread"  # the worker process has its own tests (test_reports_worker.py)


@pytest.fixture
async def rw(services: Services) -> ReportWorld:
    return await make_report_world(services)


async def test_principal_cannot_get_another_schools_report(services: Services, rw: ReportWorld) -> None:
    principal = rw.world.staff_ids["principal"]  # of the primary school
    with pytest.raises(AccessDenied) as denied:
        await services.reports.build(
            "needs", ReportScope.for_school(rw.district_id, rw.secondary_id), actor_id=principal
        )
    assert denied.value.code == "reports.own_school_only"
    with pytest.raises(AccessDenied):
        await services.reports.build("district", ReportScope.district(rw.district_id), actor_id=principal)
    own = await services.reports.build(
        "needs", ReportScope.for_school(rw.district_id, rw.primary_id), actor_id=principal
    )
    assert own.summary.startswith("1 trường, 4 học sinh")


async def test_teacher_gets_no_report(services: Services, rw: ReportWorld) -> None:
    teacher = rw.world.staff_ids["teacher"]
    for scope in (
        ReportScope.for_school(rw.district_id, rw.primary_id),  # even their own school
        ReportScope.district(rw.district_id),
    ):
        with pytest.raises(AccessDenied) as denied:
            await services.reports.build("needs", scope, actor_id=teacher)
        assert denied.value.code == "reports.not_allowed"
    assert await services.reports.available_scopes(teacher) == []


async def test_officers_and_specialists(services: Services, rw: ReportWorld) -> None:
    officer = rw.world.staff_ids["statistics_officer"]
    other_district = ReportScope.district(rw.other_district_id)
    with pytest.raises(AccessDenied):
        await services.reports.build("needs", other_district, actor_id=officer)
    specialist = rw.world.staff_ids["primary_specialist"]
    with pytest.raises(AccessDenied) as denied:
        await services.reports.build("needs", ReportScope.district(rw.district_id), actor_id=specialist)
    assert denied.value.code == "reports.own_level_only"
    with pytest.raises(AccessDenied):
        await services.reports.build(
            "needs", ReportScope.for_school(rw.district_id, rw.secondary_id), actor_id=specialist
        )
    report = await services.reports.build(
        "needs", ReportScope.for_level(rw.district_id, "TH"), actor_id=specialist
    )
    assert report.summary.startswith("1 trường")
    # A school of another district is not found through this district.
    with pytest.raises(DomainError):
        await services.reports.build("needs", ReportScope.for_school(rw.district_id, 10_000))


async def test_available_scopes(services: Services, rw: ReportWorld) -> None:
    principal = await services.reports.available_scopes(rw.world.staff_ids["principal_thcs"])
    assert [(o.scope.kind, o.scope.school_id) for o in principal] == [(ScopeKind.SCHOOL, rw.secondary_id)]
    officer = await services.reports.available_scopes(rw.world.staff_ids["statistics_officer"])
    assert [o.scope.token() for o in officer] == [
        "district",
        "level:TH",
        "level:THCS",
        f"school:{rw.primary_id}",
        f"school:{rw.secondary_id}",
    ]
    assert officer[0].label == "Huyện Nhà Bè" and officer[3].school_code == "79785001"
    specialist = await services.reports.available_scopes(rw.world.staff_ids["secondary_specialist"])
    assert [o.scope.token() for o in specialist] == ["level:THCS", f"school:{rw.secondary_id}"]
    rounds = await services.reports.rounds(rw.district_id)
    assert [r.id for r in rounds] == [rw.round_id]


async def test_resolve_scope_and_round(services: Services, rw: ReportWorld) -> None:
    resolve = services.reports.resolve_scope
    with pytest.raises(DomainError) as several:
        await resolve("district")  # two districts: say which
    assert several.value.code == "reports.district_required"
    assert await resolve("district", district_code="nb") == ReportScope.district(rw.district_id)
    assert (await resolve("level:THCS", district_code="NB")).levels == (
        SchoolLevel.LOWER_SECONDARY,
        SchoolLevel.COMBINED,
    )
    assert await resolve("school:79785101") == ReportScope.for_school(rw.district_id, rw.secondary_id)
    with pytest.raises(DomainError):
        await resolve("school:79777001", district_code="NB")  # a school of Quận 7
    with pytest.raises(DomainError) as no_round:
        await services.reports.build(
            "needs", ReportScope.district(rw.other_district_id), ReportPeriod(round_id=rw.round_id)
        )
    assert no_round.value.code == "reports.round_not_found"
