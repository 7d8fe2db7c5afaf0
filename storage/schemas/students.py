"""Students: the input shared by the chat's "add a missing student" and the Excel import, and DTOs.

Dates typed as text are parsed relative to `today`, taken from the validation context
(`StudentIn.model_validate(row, context={"today": clock.today()})`); the service checks the age range
again with its own clock, so a schema built without context cannot slip an impossible birth date in.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from storage.enums import Gender, SchoolLevel
from storage.errors import DomainError
from storage.schemas.parsing import clean_code, clean_name, parse_date
from storage.text import fold, nfc

# Primary and lower-secondary schools: grades 1–9.
MIN_GRADE, MAX_GRADE = 1, 9
# A child starts grade 1 in the school year of their 6th birthday, so grade g is normally
# "school-year start year − birth year = g + 5". Allow early starters and repeaters on either side.
NORMAL_AGE_OFFSET = 5
YOUNGER_BY_AT_MOST = 2
OLDER_BY_AT_MOST = 5
SCHOOL_YEAR_START_MONTH = 9
MAX_CLASS_NAME_LENGTH = 32
GRADES_OF_LEVEL = {
    SchoolLevel.PRIMARY: range(1, 6),
    SchoolLevel.LOWER_SECONDARY: range(6, 10),
    SchoolLevel.COMBINED: range(1, 10),
}
_CLASS_WORDS = ("class", "lop")  # "Lớp 4A1" and "class 4A1" name the class 4A1
_CLASS_NAME = re.compile(r"^(\d{1,2})[0-9A-Z/.\-_]*$")
_PLAIN_CLASS_NAME = re.compile(r"[0-9]{1,2}[0-9A-Z/.\-_]*")
_GENDER_WORDS = {
    "nam": Gender.MALE,
    "male": Gender.MALE,
    "m": Gender.MALE,
    "trai": Gender.MALE,
    "nu": Gender.FEMALE,
    "female": Gender.FEMALE,
    "f": Gender.FEMALE,
    "gai": Gender.FEMALE,
}
_FALLBACK_TZ = "Asia/Ho_Chi_Minh"
# A student added in a flow before their CSDL code is known gets a placeholder code with this prefix:
# `clean_code` never yields it, so no typed or imported ministry code can collide with one.
PROVISIONAL_CODE_PREFIX = "#"


def is_provisional_code(code: str) -> bool:
    """True for a student without a CSDL code yet (a placeholder, never sent to the ministry)."""
    return code.startswith(PROVISIONAL_CODE_PREFIX)


def provisional_code() -> str:
    return PROVISIONAL_CODE_PREFIX + secrets.token_hex(6).upper()


def context_today(info: ValidationInfo) -> date:
    """`today` from the validation context; without one, today in the district's time zone."""
    context = info.context or {}
    today = context.get("today")
    if isinstance(today, date):
        return today
    return datetime.now(ZoneInfo(_FALLBACK_TZ)).date()


def school_year_start(today: date) -> int:
    """The calendar year the current school year began in (it begins in September)."""
    return today.year if today.month >= SCHOOL_YEAR_START_MONTH else today.year - 1


@lru_cache(maxsize=256)
def birth_years_for_grade(grade: int, today: date) -> tuple[int, int]:
    """(earliest, latest) birth year accepted for a student of `grade` this school year."""
    start = school_year_start(today)
    normal = start - grade - NORMAL_AGE_OFFSET
    return normal - OLDER_BY_AT_MOST, normal + YOUNGER_BY_AT_MOST


def check_birth_date(value: date, today: date, grade: int | None = None) -> date:
    """Refuse a birth date no primary or lower-secondary student (or none of `grade`) can have."""
    if value > today:
        raise DomainError("date.future", value=value)
    if grade is None:
        earliest, _ = birth_years_for_grade(MAX_GRADE, today)
        _, latest = birth_years_for_grade(MIN_GRADE, today)
        if not earliest <= value.year <= latest:
            raise DomainError(
                "students.birth_year_out_of_range",
                value=value,
                earliest_year=earliest,
                latest_year=latest,
            )
        return value
    earliest, latest = birth_years_for_grade(grade, today)
    if not earliest <= value.year <= latest:
        raise DomainError(
            "students.age_grade_mismatch",
            value=value,
            grade=grade,
            earliest_year=earliest,
            latest_year=latest,
        )
    return value


def parse_date_of_birth(text: str | date, today: date, grade: int | None = None) -> date:
    """A birth date typed by staff (`14/03/2012`, `14-3-2012`, `2012-03-14`), within the age range."""
    value = text if isinstance(text, date) else parse_date(str(text), today)
    return check_birth_date(value, today, grade)


def clean_class_name(text: str) -> str:
    """`lớp 4a1` → `4A1`, `6 / 2` → `6/2`: upper case, no spaces, starting with the grade."""
    if type(text) is str and len(text) <= MAX_CLASS_NAME_LENGTH and _PLAIN_CLASS_NAME.fullmatch(text):
        return text  # already clean: what the rule below returns for it
    return _clean_class_name(text)


def _clean_class_name(text: str) -> str:
    value = nfc(str(text))
    for word in _CLASS_WORDS:
        if fold(value[: len(word)]) == word:
            value = value[len(word) :]
            break
    value = re.sub(r"\s+", "", value).upper()
    if not value:
        raise DomainError("students.class_empty")
    if len(value) > MAX_CLASS_NAME_LENGTH or not _CLASS_NAME.fullmatch(value):
        raise DomainError("students.class_invalid", value=nfc(str(text)))
    return value


def grade_of_class(class_name: str) -> int:
    grade = _class_grade(class_name)
    if grade is None:
        raise DomainError("students.class_invalid", value=class_name)
    return grade


@lru_cache(maxsize=4096)
def _class_grade(class_name: str) -> int | None:
    """A file names a few dozen classes, 50,000 times: each is matched once."""
    match = _CLASS_NAME.fullmatch(class_name)
    return None if match is None else int(match.group(1))


def check_grade(grade: int) -> int:
    if not MIN_GRADE <= grade <= MAX_GRADE:
        raise DomainError("students.grade_invalid", value=grade)
    return grade


def check_grade_in_school(grade: int, level: SchoolLevel) -> int:
    if grade not in GRADES_OF_LEVEL[level]:
        raise DomainError("students.grade_not_in_school", grade=grade, level=level_label(level))
    return grade


def level_label(level: SchoolLevel) -> str:
    """TH, THCS or TH/THCS: the same in both languages."""
    return level.value.replace("_", "/")


@cache
def _gender_spellings() -> dict[str, Gender]:
    """The usual spellings of the gender words as typed ("Nam", "Nữ", "NỮ"), each mapped as `fold`
    maps it: a dictionary look-up instead of folding every cell."""
    spellings: dict[str, Gender] = {}
    for word in (*_GENDER_WORDS, "nữ", "gái"):
        for spelling in (word, word.title(), word.upper()):
            gender = _GENDER_WORDS.get(fold(spelling))
            if gender is not None:
                spellings[spelling] = gender
    return spellings


def parse_gender(value: Any) -> Gender | None:
    if value is None or isinstance(value, Gender):
        return value
    if type(value) is str and value in _gender_spellings():
        return _gender_spellings()[value]
    folded = fold(str(value))
    if not folded:
        return None
    gender = _GENDER_WORDS.get(folded)
    if gender is None:
        try:
            return Gender(folded)
        except ValueError:
            raise DomainError("students.gender_invalid", value=nfc(str(value))) from None
    return gender


class StudentIn(BaseModel):
    """A student as staff or a file gives one. `grade` defaults to the class's leading number."""

    code: str
    full_name: str
    date_of_birth: date
    class_name: str
    grade: int | None = None
    gender: Gender | None = None

    _code = field_validator("code", mode="before")(lambda v: clean_code(str(v)))
    _name = field_validator("full_name")(lambda v: clean_name(v))
    _class = field_validator("class_name", mode="before")(lambda v: clean_class_name(v))
    _gender = field_validator("gender", mode="before")(lambda v: parse_gender(v))

    @field_validator("date_of_birth", mode="before")
    @classmethod
    def _date_of_birth(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return parse_date(value, context_today(info))
        return value

    @model_validator(mode="after")
    def _grade_and_age(self, info: ValidationInfo) -> StudentIn:
        class_grade = grade_of_class(self.class_name)
        if self.grade is None:
            # What BaseModel.__setattr__ does for a plain field, without its dispatch (a tenth of a
            # row's validation in an import).
            self.__dict__["grade"] = class_grade
            self.__pydantic_fields_set__.add("grade")
        elif self.grade != class_grade:
            raise DomainError("students.class_grade_mismatch", class_name=self.class_name, grade=self.grade)
        check_grade(self.checked_grade)
        if info.context and isinstance(info.context.get("today"), date):
            check_birth_date(self.date_of_birth, info.context["today"], self.grade)
        return self

    @property
    def checked_grade(self) -> int:
        assert self.grade is not None  # set by the model validator
        return self.grade


class NewStudentIn(StudentIn):
    """A student added from inside a flow, saved with the flow's record at its confirm (one
    transaction). `code` None: the CSDL code is not known yet; the student gets a placeholder code."""

    # Widened on purpose (not substitutable for a StudentIn's code): a new student may have no CSDL
    # code yet, and its own validator, replacing StudentIn's by name, keeps the None.
    code: str | None = None  # type: ignore[assignment]
    _code = field_validator("code", mode="before")(  # type: ignore[assignment]
        lambda v: clean_code(str(v)) if v not in (None, "") else None
    )


class ForStudent(BaseModel):
    """The student a record (handover, dose, need) is about: one of the school's (`student_id`), or
    one added in the flow (`new_student`), created by the service in the record's transaction."""

    student_id: int | None = None
    new_student: NewStudentIn | None = None

    @model_validator(mode="after")
    def _one_student(self) -> ForStudent:
        if (self.student_id is None) == (self.new_student is None):
            raise ValueError("give exactly one of student_id and new_student")
        return self


class StudentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    school_id: int
    code: str
    full_name: str
    class_name: str
    date_of_birth: date
    grade: int
    gender: Gender | None
    active: bool


class StudentPage(BaseModel):
    """One page of search results; `page` counts from 1."""

    items: list[StudentOut]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


class ClassSummary(BaseModel):
    class_name: str
    grade: int
    student_count: int


class RowVerdict(BaseModel):
    """What an import would do with one row: created / updated / unchanged / rejected (with why)."""

    index: int
    code: str
    outcome: str
    error_code: str | None = None
    error_params: dict[str, Any] | None = None


class UpsertResult(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    student_ids: dict[str, int] = {}  # student code -> id, for rows written or found unchanged
