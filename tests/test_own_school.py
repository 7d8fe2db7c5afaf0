"""A school's records are entered for the person's own school; "no school" is never a hidden 0."""

from __future__ import annotations

import pytest

from bot.errors import render_error
from storage.enums import Role
from storage.errors import AccessDenied
from storage.schemas.organisation import StaffOut


def staff(role: Role, school_id: int | None) -> StaffOut:
    return StaffOut(
        id=1,
        telegram_user_id=10,
        full_name="Nguyễn Văn An",
        phone="",
        telegram_username="",
        role=role,
        school_id=school_id,
        school_code=None,
        school_name=None,
        school_level=None,
        district_id=1,
        language="vi",
        active=True,
    )


def test_a_teacher_enters_records_for_their_school() -> None:
    assert staff(Role.TEACHER, 7).own_school_id == 7


def test_an_account_without_a_school_is_refused_in_words_not_given_school_zero() -> None:
    with pytest.raises(AccessDenied) as refused:
        staff(Role.STATISTICS_OFFICER, None).own_school_id  # noqa: B018  # the property raises
    assert refused.value.code == "access.no_school"
    assert "không gắn với trường nào" in render_error(refused.value, "vi")
    assert "belongs to no school" in render_error(refused.value, "en")
