"""The demo district generator's input and result (`schoolbot demo-data`)."""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from storage.enums import Role
from storage.errors import DomainError
from storage.schemas.parsing import clean_code, clean_text

# The first TH school and the first THCS school carry the school-scoped demo accounts.
MIN_SCHOOLS = 2
# School codes are the district's 5-digit prefix and a 3-digit number.
MAX_SCHOOLS = 999
# Student codes are the district's prefix and a 7-digit number; far beyond a real district.
MAX_STUDENTS = 2_000_000


class DemoDataIn(BaseModel):
    schools: int
    students: int
    seed: int = 2021
    district_code: str = "NB"
    district_name: str = "Huyện Nhà Bè"
    province: str = "TP. Hồ Chí Minh"

    @field_validator("schools")
    @classmethod
    def _schools(cls, value: int) -> int:
        if not MIN_SCHOOLS <= value <= MAX_SCHOOLS:
            raise DomainError(
                "demo.schools_out_of_range", value=value, minimum=MIN_SCHOOLS, maximum=MAX_SCHOOLS
            )
        return value

    @field_validator("students")
    @classmethod
    def _students(cls, value: int) -> int:
        if not 0 <= value <= MAX_STUDENTS:
            raise DomainError("demo.students_out_of_range", value=value, maximum=MAX_STUDENTS)
        return value

    @field_validator("district_code")
    @classmethod
    def _code(cls, value: str) -> str:
        return clean_code(value)

    @field_validator("district_name", "province")
    @classmethod
    def _names(cls, value: str) -> str:
        return clean_text(value, max_length=200, required=True)


class DemoAccountOut(BaseModel):
    """A demo staff account, for the sandbox to talk as."""

    key: str  # teacher_th, principal_th, teacher_thcs, principal_thcs, or the role of district staff
    role: Role
    telegram_user_id: int
    full_name: str
    staff_id: int
    school_code: str | None


class DemoDataOut(BaseModel):
    district_id: int
    district_code: str
    district_name: str
    seed: int
    # Rows written per table, in insertion order (table name -> count).
    counts: dict[str, int]
    accounts: list[DemoAccountOut]
    round_id: int
