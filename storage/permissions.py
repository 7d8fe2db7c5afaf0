"""Who may do what, and which schools each person sees. Pure rules, used by the bot's access layer
and by services that check scope themselves (reports, rounds)."""

from __future__ import annotations

import enum

from storage.enums import Role, SchoolLevel
from storage.errors import AccessDenied
from storage.rules.roles import SPECIALIST_LEVELS as SPECIALIST_LEVELS
from storage.schemas.organisation import StaffOut


class Action(enum.StrEnum):
    ASK = "ask"  # FAQ, /me, /help: everyone registered
    ENTER_RECORDS = "enter_records"  # donations, handovers, doses, needs, Excel uploads, /my
    SUBMIT = "submit"  # the principal submits the school's data
    REVIEW_PROGRAM = "review_program"  # TH / THCS specialists approve or send back
    REVIEW_VACCINE = "review_vaccine"  # the school-health officer reviews vaccine data
    COMPILE = "compile"  # the statistics officer compiles the district report
    REPORT = "report"  # Excel reports (a principal: own school only)
    PROGRESS = "progress"  # the progress board
    HISTORY = "history"  # a school's history of changes
    MANAGE_ROUNDS = "manage_rounds"  # create reporting rounds
    MANAGE_FAQ = "manage_faq"  # edit the knowledge base, see unanswered questions
    REOPEN = "reopen"  # reopen a school's approved period (with a reason, audited)
    CSDL = "csdl"  # upload files for the sector database (CSDL) and marking them uploaded


_OFFICER = {Action.ASK, Action.REPORT, Action.PROGRESS, Action.HISTORY, Action.MANAGE_FAQ}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.TEACHER: frozenset({Action.ASK, Action.ENTER_RECORDS}),
    Role.PRINCIPAL: frozenset(
        {Action.ASK, Action.ENTER_RECORDS, Action.SUBMIT, Action.REPORT, Action.HISTORY, Action.CSDL}
    ),
    Role.PRIMARY_SPECIALIST: frozenset(_OFFICER | {Action.REVIEW_PROGRAM}),
    Role.SECONDARY_SPECIALIST: frozenset(_OFFICER | {Action.REVIEW_PROGRAM}),
    Role.HEALTH_OFFICER: frozenset(_OFFICER | {Action.REVIEW_VACCINE}),
    Role.STATISTICS_OFFICER: frozenset(_OFFICER | {Action.COMPILE, Action.REOPEN}),
    Role.DEPUTY_HEAD: frozenset(_OFFICER | {Action.MANAGE_ROUNDS}),
    Role.TECH_SUPPORT: frozenset({Action.ASK, Action.MANAGE_FAQ, Action.CSDL}),
    Role.ADMIN: frozenset(_OFFICER | {Action.MANAGE_ROUNDS, Action.REOPEN}),
}


def can(staff: StaffOut, action: Action) -> bool:
    return staff.active and action in ROLE_ACTIONS.get(staff.role, frozenset())


def require(staff: StaffOut, action: Action) -> None:
    if not staff.active:
        raise AccessDenied("access.deactivated")
    if not can(staff, action):
        raise AccessDenied("access.role_cannot", action=action.value, role=staff.role.value)


def sees_school(staff: StaffOut, *, school_id: int, level: SchoolLevel, district_id: int) -> bool:
    """School staff see their school; specialists the schools of their level; officers the district."""
    if not staff.active:
        return False
    if staff.role.is_school_scoped:
        return staff.school_id == school_id
    if staff.district_id is not None and staff.district_id != district_id:
        return False
    levels = SPECIALIST_LEVELS.get(staff.role)
    return levels is None or level in levels
