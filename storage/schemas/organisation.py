"""Districts, schools, staff and invites: inputs and DTOs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator

from storage.enums import Role, SchoolLevel
from storage.errors import AccessDenied
from storage.schemas.parsing import clean_code, clean_name, clean_text
from storage.text import fold, nfc


class DistrictIn(BaseModel):
    code: str
    name: str
    province: str = ""

    _code = field_validator("code")(lambda v: clean_code(v))
    _name = field_validator("name", "province")(lambda v: clean_text(v, max_length=200))


_LEVEL_WORDS = {
    "th": SchoolLevel.PRIMARY,
    "tieu hoc": SchoolLevel.PRIMARY,
    "primary": SchoolLevel.PRIMARY,
    "thcs": SchoolLevel.LOWER_SECONDARY,
    "trung hoc co so": SchoolLevel.LOWER_SECONDARY,
    "lower secondary": SchoolLevel.LOWER_SECONDARY,
    "th_thcs": SchoolLevel.COMBINED,
    "th&thcs": SchoolLevel.COMBINED,
    "th & thcs": SchoolLevel.COMBINED,
    "th-thcs": SchoolLevel.COMBINED,
    "lien cap": SchoolLevel.COMBINED,
}


def parse_level(value: str | SchoolLevel) -> SchoolLevel:
    from storage.errors import DomainError

    if isinstance(value, SchoolLevel):
        return value
    level = _LEVEL_WORDS.get(fold(value))
    if level is None:
        raise DomainError("school.level_invalid", value=value)
    return level


class SchoolIn(BaseModel):
    district_code: str
    code: str
    name: str
    level: SchoolLevel
    address: str = ""

    _codes = field_validator("district_code", "code")(lambda v: clean_code(v))
    _name = field_validator("name")(lambda v: clean_text(v, max_length=200, required=True))
    _address = field_validator("address")(lambda v: clean_text(v or "", max_length=300))
    _level = field_validator("level", mode="before")(lambda v: parse_level(v))


class SchoolOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    district_id: int
    code: str
    name: str
    level: SchoolLevel
    active: bool


class InviteIn(BaseModel):
    role: Role
    school_code: str | None = None
    district_code: str | None = None
    full_name: str = ""
    valid_days: int = 7

    @field_validator("full_name")
    @classmethod
    def _name(cls, value: str) -> str:
        # Optional; text of nothing but invisible characters counts as none.
        return clean_name(value) if nfc(value) else ""


class InviteOut(BaseModel):
    code: str
    role: Role
    school_id: int | None
    school_name: str | None
    district_id: int | None
    expires_at: datetime


class StaffOut(BaseModel):
    id: int
    telegram_user_id: int | None
    full_name: str
    phone: str
    telegram_username: str
    role: Role
    school_id: int | None
    school_code: str | None
    school_name: str | None
    school_level: SchoolLevel | None
    district_id: int | None
    language: str
    active: bool

    @property
    def own_school_id(self) -> int:
        """The school of a teacher or principal: the database holds every one of them to a school
        (`school_roles_have_school`); anyone else has none to enter records for."""
        if self.school_id is None:
            raise AccessDenied("access.no_school")
        return self.school_id
