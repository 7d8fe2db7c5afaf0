"""The student layer shared by the device, vaccine and need flows and the Excel import."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.errors import render_error
from storage.enums import AuditAction, Gender
from storage.errors import DomainError
from storage.models import AuditLog
from storage.schemas.students import StudentIn, clean_class_name, parse_date_of_birth
from tests.factories import make_world

TODAY = date(2021, 11, 15)


def student(code: str, name: str, born: date, class_name: str, **extra: object) -> StudentIn:
    return StudentIn(code=code, full_name=name, date_of_birth=born, class_name=class_name, **extra)


# --- search -----------------------------------------------------------------------------------------


async def test_search_ignores_case_and_diacritics_and_shows_namesakes(services):
    world = await make_world(services)
    page = await services.students.search(world.primary_school_id, "nguyen van an")
    assert page.total == 2
    # Namesakes side by side, told apart by class and date of birth.
    assert [(s.code, s.class_name, s.date_of_birth) for s in page.items] == [
        ("HS0003", "3A2", date(2013, 1, 20)),
        ("HS0001", "4A1", date(2012, 3, 14)),
    ]
    assert all(s.full_name == "Nguyễn Văn An" for s in page.items)
    assert {s.grade for s in page.items} == {4, 3}
    for query in ("NGUYỄN VĂN AN", "Nguyễn văn", "van an", "an nguyen"):
        assert (await services.students.search(world.primary_school_id, query)).total == 2, query
    binh = await services.students.search(world.primary_school_id, "binh")
    assert [s.full_name for s in binh.items] == ["Trần Thị Bình"]


async def test_search_by_student_code(services):
    world = await make_world(services)
    page = await services.students.search(world.primary_school_id, "hs0004")
    assert [s.full_name for s in page.items] == ["Lê Hoàng Cường"]
    partial = await services.students.search(world.primary_school_id, "HS000")
    assert partial.total == 4  # the primary school's four students, none of the other school


async def test_search_only_in_own_school(services):
    world = await make_world(services)
    assert (await services.students.search(world.primary_school_id, "duc")).total == 0
    found = await services.students.search(world.secondary_school_id, "Đức")
    assert [s.code for s in found.items] == ["HS0006"]
    assert (await services.students.search(world.secondary_school_id, "nguyen van an")).total == 0


async def test_search_pages_through_many_namesakes(services):
    world = await make_world(services)
    rows = [
        student(f"PG{i:03d}", "Nguyễn Thị Tèo", date(2012, 1, 1 + i), f"4A{1 + i % 3}") for i in range(20)
    ]
    await services.students.upsert_many(rows, school_id=world.primary_school_id, actor_id=None)
    seen: list[str] = []
    for number in (1, 2, 3):
        page = await services.students.search(world.primary_school_id, "nguyen thi teo", page=number)
        assert page.total == 20 and page.pages == 3 and page.page == number
        seen += [s.code for s in page.items]
    assert len(seen) == 20 and len(set(seen)) == 20
    last = await services.students.search(world.primary_school_id, "nguyen thi teo", page=3)
    assert len(last.items) == 4 and last.has_previous and not last.has_next
    beyond = await services.students.search(world.primary_school_id, "nguyen thi teo", page=4)
    assert beyond.items == [] and beyond.total == 20


async def test_search_refuses_too_short_a_query(services):
    world = await make_world(services)
    with pytest.raises(DomainError) as caught:
        await services.students.search(world.primary_school_id, " a ")
    assert caught.value.code == "students.query_too_short"
    assert "ít nhất 2 ký tự" in render_error(caught.value)


async def test_search_treats_like_wildcards_as_text(services):
    world = await make_world(services)
    assert (await services.students.search(world.primary_school_id, "%%")).total == 0
    assert (await services.students.search(world.primary_school_id, "__")).total == 0


# --- get ----------------------------------------------------------------------------------------------


async def test_get_refuses_another_schools_student(services):
    world = await make_world(services)
    own = await services.students.get(world.student_ids["HS0001"], school_id=world.primary_school_id)
    assert own.code == "HS0001"
    with pytest.raises(DomainError) as caught:
        await services.students.get(world.student_ids["HS0005"], school_id=world.primary_school_id)
    assert caught.value.code == "not_found.student"


# --- add in place -----------------------------------------------------------------------------------


async def test_add_a_missing_student_is_audited(services):
    world = await make_world(services)
    teacher = world.staff_ids["teacher"]
    data = StudentIn.model_validate(
        {
            "code": " hs 0100 ",
            "full_name": "nguyễn thị hoa",
            "date_of_birth": "14/3/2012",
            "class_name": "lớp 4a2",
        },
        context={"today": TODAY},
    )
    added = await services.students.add(data, school_id=world.primary_school_id, actor_id=teacher)
    assert (added.code, added.full_name, added.class_name, added.grade) == (
        "HS0100",
        "Nguyễn Thị Hoa",
        "4A2",
        4,
    )
    assert added.date_of_birth == date(2012, 3, 14)
    found = await services.students.search(world.primary_school_id, "nguyen thi hoa")
    assert [s.id for s in found.items] == [added.id]
    async with services.sessionmaker() as session:
        entry = await session.scalar(select(AuditLog).where(AuditLog.entity == "student"))
    assert entry is not None and entry.action is AuditAction.CREATE and entry.actor_id == teacher
    assert entry.after is not None and entry.after["code"] == "HS0100" and entry.before is None
    assert entry.school_id == world.primary_school_id


async def test_add_refuses_a_code_already_used_even_by_another_school(services):
    world = await make_world(services)
    with pytest.raises(DomainError) as caught:
        await services.students.add(
            student("HS0005", "Lý Văn Tám", date(2012, 5, 5), "4A1"),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    assert caught.value.code == "students.code_taken"
    assert "HS0005" in render_error(caught.value)


async def test_add_refuses_a_birth_date_that_does_not_fit_the_grade(services):
    world = await make_world(services)
    with pytest.raises(DomainError) as caught:
        await services.students.add(
            student("HS0101", "Lý Văn Tám", date(2016, 5, 5), "4A1"),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    assert caught.value.code == "students.age_grade_mismatch"
    assert caught.value.params["earliest_year"] == 2007 and caught.value.params["latest_year"] == 2014
    text = render_error(caught.value)
    assert "khối 4" in text and "2007" in text and "2014" in text


async def test_add_refuses_a_grade_the_school_does_not_teach(services):
    world = await make_world(services)
    with pytest.raises(DomainError) as caught:
        await services.students.add(
            student("HS0102", "Lý Văn Tám", date(2009, 5, 5), "7A1"),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    assert caught.value.code == "students.grade_not_in_school"
    assert caught.value.params == {"grade": 7, "level": "TH"}


def test_student_input_rules():
    with pytest.raises(ValidationError) as caught:
        StudentIn(code="X1", full_name="An", date_of_birth=date(2012, 1, 1), class_name="4A1", grade=5)
    assert "không thuộc khối 5" in render_error(caught.value)
    with pytest.raises(ValidationError) as caught:
        StudentIn(code="X1", full_name="An", date_of_birth=date(2012, 1, 1), class_name="A4")
    assert "Lớp «A4» không hợp lệ" in render_error(caught.value)
    with pytest.raises(ValidationError) as caught:
        StudentIn(code="X1", full_name="An 2", date_of_birth=date(2012, 1, 1), class_name="4A1")
    assert "ký tự đặc biệt" in render_error(caught.value)
    with pytest.raises(ValidationError) as caught:
        StudentIn.model_validate(
            {"code": "X1", "full_name": "An", "date_of_birth": "1/1/2020", "class_name": "4A1"},
            context={"today": TODAY},
        )
    assert "khối 4" in render_error(caught.value)
    girl = StudentIn(
        code="x-1", full_name="An", date_of_birth=date(2012, 1, 1), class_name="6 / 2", gender="Nữ"
    )
    assert (girl.code, girl.class_name, girl.grade, girl.gender) == ("X-1", "6/2", 6, Gender.FEMALE)
    assert clean_class_name("Lớp 9a") == "9A"


def test_date_of_birth_parsing_and_range():
    assert parse_date_of_birth("14/03/2012", TODAY) == date(2012, 3, 14)
    assert parse_date_of_birth("2012-03-14", TODAY, grade=4) == date(2012, 3, 14)
    for typed, code in (("14/03/2021", "students.birth_year_out_of_range"), ("1/1/1990", None), ("x", None)):
        with pytest.raises(DomainError) as caught:
            parse_date_of_birth(typed, TODAY)
        if code:
            assert caught.value.code == code
    with pytest.raises(DomainError) as caught:
        parse_date_of_birth("20/11/2021", TODAY)
    assert caught.value.code == "date.future"


# --- import upsert --------------------------------------------------------------------------------------


async def test_upsert_many_creates_updates_and_leaves_unchanged(services):
    world = await make_world(services)
    school = world.primary_school_id
    rows = [
        student("HS0001", "Nguyễn Văn An", date(2012, 3, 14), "4A1"),  # as it is
        student("HS0002", "Trần Thị Bình", date(2012, 7, 2), "4A2"),  # moved class
        student("HS0200", "Đinh Công Mạnh", date(2014, 6, 1), "2A1", gender="nam"),  # new
    ]
    verdicts = await services.students.preview_upsert(rows, school_id=school)
    assert [v.outcome for v in verdicts] == ["unchanged", "updated", "created"]
    result = await services.students.upsert_many(
        rows, school_id=school, actor_id=world.staff_ids["principal"]
    )
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert set(result.student_ids) == {"HS0001", "HS0002", "HS0200"}
    again = await services.students.upsert_many(rows, school_id=school, actor_id=world.staff_ids["principal"])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    moved = await services.students.get(world.student_ids["HS0002"], school_id=school)
    assert moved.class_name == "4A2" and moved.gender is Gender.FEMALE  # gender kept when not given
    async with services.sessionmaker() as session:
        entries = list(await session.scalars(select(AuditLog).where(AuditLog.entity == "student")))
    assert sorted(e.action.value for e in entries) == ["create", "update"]
    update = next(e for e in entries if e.action is AuditAction.UPDATE)
    assert update.before is not None and update.after is not None
    assert (update.before["class_name"], update.after["class_name"]) == ("4A1", "4A2")


async def test_upsert_many_refuses_the_whole_file_on_a_bad_row(services):
    world = await make_world(services)
    school = world.primary_school_id
    rows = [
        student("HS0300", "Đinh Công Mạnh", date(2014, 6, 1), "2A1"),
        student("HS0005", "Phạm Thị Dung", date(2008, 9, 9), "5A1"),  # the other school's code
        student("HS0300", "Đinh Công Mạnh", date(2014, 6, 1), "2A1"),  # repeated
    ]
    verdicts = await services.students.preview_upsert(rows, school_id=school)
    assert [(v.outcome, v.error_code) for v in verdicts] == [
        ("created", None),
        ("rejected", "students.code_in_other_school"),
        ("rejected", "students.code_repeated"),
    ]
    assert verdicts[1].error_params == {"code": "HS0005", "row": 2}
    with pytest.raises(DomainError) as caught:
        await services.students.upsert_many(rows, school_id=school, actor_id=None)
    assert caught.value.code == "students.code_in_other_school"
    assert (await services.students.search(school, "HS0300")).total == 0


# --- classes ------------------------------------------------------------------------------------------


async def test_classes_and_class_list_in_given_name_order(services):
    world = await make_world(services)
    school = world.primary_school_id
    await services.students.upsert_many(
        [
            student("HS0400", "Trần Văn Anh", date(2012, 2, 2), "4A1"),
            student("HS0401", "Lê Thị Yến", date(2012, 3, 3), "4A1"),
        ],
        school_id=school,
        actor_id=None,
    )
    classes = await services.students.classes(school)
    assert [(c.class_name, c.grade, c.student_count) for c in classes] == [
        ("3A2", 3, 1),
        ("4A1", 3 + 1, 4),
        ("5A1", 5, 1),
    ]
    names = [s.full_name for s in await services.students.list_class(school, "lớp 4a1")]
    # By given name: An, Anh, Bình, Yến.
    assert names == ["Nguyễn Văn An", "Trần Văn Anh", "Trần Thị Bình", "Lê Thị Yến"]
    assert await services.students.list_class(world.secondary_school_id, "4A1") == []
