"""Vaccine doses (menu 4.9.1) and school vaccination rounds: inputs and DTOs."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, computed_field, field_validator

from storage.enums import DosePlace
from storage.errors import DomainError
from storage.rules.findings import Finding as Finding
from storage.rules.vaccines import OTHER_PRODUCT_CODE as OTHER_PRODUCT_CODE
from storage.schemas.parsing import clean_text
from storage.schemas.students import ForStudent

# The schema's CHECK constraint: dose numbers 1..10.
MAX_DOSE_NUMBER = 10


def _dose_number(value: int) -> int:
    if not 1 <= value <= MAX_DOSE_NUMBER:
        raise DomainError("vaccines.dose_number_range", value=value, maximum=MAX_DOSE_NUMBER)
    return value


def _other_name(value: str | None) -> str:
    return clean_text(value or "", max_length=200)


class VaccineProductOut(BaseModel):
    id: int
    code: str
    name: str
    min_age_years: int
    min_interval_days: int
    sort_order: int

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses a decorator over @property (as pydantic documents)
    @property
    def needs_name(self) -> bool:
        """The "other" product: the person types the product's name."""
        return self.code == OTHER_PRODUCT_CODE


class DoseIn(ForStudent):
    dose_number: int
    given_on: date
    product_id: int
    product_other_name: str = ""
    place: DosePlace

    _number = field_validator("dose_number")(lambda v: _dose_number(v))
    _other = field_validator("product_other_name", mode="before")(lambda v: _other_name(v))


class DoseChange(BaseModel):
    """A correction from /my: only the fields given change."""

    dose_number: int | None = None
    given_on: date | None = None
    product_id: int | None = None
    product_other_name: str | None = None
    place: DosePlace | None = None

    @field_validator("dose_number")
    @classmethod
    def _number(cls, value: int | None) -> int | None:
        return None if value is None else _dose_number(value)

    @field_validator("product_other_name", mode="before")
    @classmethod
    def _other(cls, value: str | None) -> str | None:
        return None if value is None else _other_name(value)


class DoseOut(BaseModel):
    id: int
    school_id: int
    student_id: int
    student_code: str
    student_name: str
    class_name: str
    dose_number: int
    given_on: date
    product_id: int
    product_code: str
    product_name: str
    product_other_name: str
    place: DosePlace
    entered_late: bool
    entered_at: datetime
    entered_by_id: int | None

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses a decorator over @property (as pydantic documents)
    @property
    def product_label(self) -> str:
        """What to show: the typed name for the "other" product, else the list's name."""
        if self.product_code == OTHER_PRODUCT_CODE and self.product_other_name:
            return self.product_other_name
        return self.product_name


class DoseCheck(BaseModel):
    """What saving a dose would meet, found without writing anything."""

    errors: list[Finding] = Field(default_factory=list)  # refused; nothing can be saved
    warnings: list[Finding] = Field(default_factory=list)  # saved only when the person confirms
    entered_late: bool = False  # would be saved and flagged late (more than 1 day after the dose)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def needs_confirmation(self) -> bool:
        return not self.errors and bool(self.warnings)


class RosterStudent(BaseModel):
    """A student of the class in /vaccine_round, with their doses so far."""

    student_id: int
    code: str
    full_name: str
    date_of_birth: date
    dose_count: int
    last_dose_number: int | None
    last_dose_on: date | None
    next_dose_number: int


class RoundIn(BaseModel):
    """A vaccination round at school: one date, product and place for the ticked students."""

    student_ids: list[int]
    given_on: date
    product_id: int
    product_other_name: str = ""
    place: DosePlace = DosePlace.SCHOOL
    # A round of one dose (e.g. "dose 2"): a student whose next dose is another number is skipped.
    # None: each student gets their own next dose number.
    dose_number: int | None = None

    _other = field_validator("product_other_name", mode="before")(lambda v: _other_name(v))

    @field_validator("dose_number")
    @classmethod
    def _number(cls, value: int | None) -> int | None:
        return None if value is None else _dose_number(value)

    @field_validator("student_ids")
    @classmethod
    def _ticked(cls, value: list[int]) -> list[int]:
        unique = list(dict.fromkeys(value))  # a double tick is one student
        if not unique:
            raise DomainError("vaccines.round.nobody_ticked")
        return unique


class RoundSaved(BaseModel):
    student_id: int
    student_name: str
    dose_number: int
    dose_id: int  # 0 in a preview: nothing was written


class RoundSkipped(BaseModel):
    student_id: int
    student_name: str
    reason: Finding  # why this student got no dose; render with reason.as_error()


class RoundResult(BaseModel):
    given_on: date
    product_label: str
    place: DosePlace
    entered_late: bool
    saved: list[RoundSaved] = Field(default_factory=list)
    skipped: list[RoundSkipped] = Field(default_factory=list)
    preview: bool = False  # True: nothing was written (the summary before the confirm)
