"""Needs for a computer under "Sóng và máy tính cho em" (menu 4.8.1, summary 4.8.2): inputs and DTOs."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, computed_field, field_validator, model_validator

from storage.enums import PriorityGroup
from storage.errors import DomainError
from storage.schemas.parsing import clean_text
from storage.schemas.students import ForStudent
from storage.schemas.vaccines import Finding

MAX_NOTE_LENGTH = 500


def parse_category(value: PriorityGroup | str) -> PriorityGroup:
    try:
        group = PriorityGroup(value)
    except ValueError:
        raise DomainError("needs.category_required") from None
    if group is PriorityGroup.NONE:
        raise DomainError("needs.category_required")
    return group


def clean_note(value: str | None) -> str:
    return clean_text(value or "", max_length=MAX_NOTE_LENGTH)


class NeedIn(ForStudent):
    category: PriorityGroup
    needs_device: bool
    needs_connectivity: bool
    note: str = ""
    # The day the need (or this change of it) stands from; None: today. A need has no event day, so
    # this says which periods count it: every period ending on or after it.
    since: date | None = None

    _check_category = field_validator("category", mode="before")(lambda v: parse_category(v))
    _check_note = field_validator("note", mode="before")(lambda v: clean_note(v))

    @model_validator(mode="after")
    def _needs_something(self) -> NeedIn:
        if not (self.needs_device or self.needs_connectivity):
            raise DomainError("needs.nothing_needed")
        return self


class NeedChange(BaseModel):
    """A correction from /my: only the fields given change."""

    category: PriorityGroup | None = None
    needs_device: bool | None = None
    needs_connectivity: bool | None = None
    note: str | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _check_category(cls, value: PriorityGroup | str | None) -> PriorityGroup | None:
        return None if value is None else parse_category(value)

    @field_validator("note", mode="before")
    @classmethod
    def _check_note(cls, value: str | None) -> str | None:
        return None if value is None else clean_note(value)


class NeedOut(BaseModel):
    id: int
    school_id: int
    student_id: int
    student_code: str
    student_name: str
    class_name: str
    category: PriorityGroup
    needs_device: bool
    needs_connectivity: bool
    note: str
    entered_at: datetime
    entered_by_id: int | None
    updated_at: datetime | None
    opened_on: date | None = None  # stands since
    changed_on: date | None = None  # its current state since


class NeedGroupSummary(BaseModel):
    """One priority group of the school's 4.8.2 summary."""

    category: PriorityGroup
    device_only: int = 0
    connectivity_only: int = 0
    both: int = 0
    listed: int = 0  # students of the school's list in this priority group
    listed_without_need: int = 0  # of those, students with no need recorded

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses a decorator over @property (as pydantic documents)
    @property
    def total(self) -> int:
        """Students of the group with a need recorded."""
        return self.device_only + self.connectivity_only + self.both

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses a decorator over @property (as pydantic documents)
    @property
    def needs_device(self) -> int:
        return self.device_only + self.both

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses a decorator over @property (as pydantic documents)
    @property
    def needs_connectivity(self) -> int:
        return self.connectivity_only + self.both


class NeedSummary(BaseModel):
    """The needs as they stood at the end of `as_of`, counted as Biểu 1 and a round's figures count."""

    school_id: int
    as_of: date
    groups: list[NeedGroupSummary]  # in the order of NEED_GROUPS
    totals: NeedGroupSummary  # category NONE: the sum over the groups
    students_listed: int  # all active students of the school's list
    # Device needs met by a gift handed over by `as_of`, and not (a loan never meets a need).
    device_met: int = 0
    device_unmet: int = 0
    # Figures that disagree with the school's student list (the directive asks to surface them).
    inconsistencies: list[Finding] = Field(default_factory=list)
