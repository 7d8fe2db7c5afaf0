"""Compiled Excel reports (/report, `schoolbot report`): what to report on, where, over which days.

A scope is the whole district, one level of school, or one school. A level takes in the combined
(TH&THCS) schools too, as the specialists' review does. A period is a reporting round (its
`period_start`…`period_end`) or a date range; open ends mean "from the beginning" / "up to now".
Records count in a period by the date they happened (received, handed over, given); a need, which has
no such date, by when it was entered (local day).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, model_validator

from storage.enums import Role, SchoolLevel
from storage.errors import DomainError
from storage.schemas.organisation import parse_level
from storage.schemas.parsing import parse_date
from storage.schemas.students import SCHOOL_YEAR_START_MONTH, school_year_start
from storage.text import fold


class ReportKind(enum.StrEnum):
    NEEDS = "needs"  # 4.8.1 / 4.8.2
    DEVICES = "devices"  # 4.8.3 (4.8.3.1 programme, 4.8.3.2 other sources)
    VACCINATION = "vaccination"  # 4.9
    TIMELINESS = "timeliness"  # the 1-day entry rule
    DISTRICT = "district"  # the district's report for the province: all of the above


class ScopeKind(enum.StrEnum):
    DISTRICT = "district"
    LEVEL = "level"
    SCHOOL = "school"


# A level scope covers the schools of that level and the combined schools.
LEVEL_SCOPE_LEVELS: dict[SchoolLevel, tuple[SchoolLevel, ...]] = {
    SchoolLevel.PRIMARY: (SchoolLevel.PRIMARY, SchoolLevel.COMBINED),
    SchoolLevel.LOWER_SECONDARY: (SchoolLevel.LOWER_SECONDARY, SchoolLevel.COMBINED),
    SchoolLevel.COMBINED: (SchoolLevel.COMBINED,),
}


class ReportScope(BaseModel):
    """Where a report looks. Build it with the class methods; the service checks it against the
    database (the school exists and belongs to the district) and against the person asking."""

    model_config = ConfigDict(frozen=True)

    kind: ScopeKind
    district_id: int
    level: SchoolLevel | None = None
    school_id: int | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReportScope:
        if self.kind is ScopeKind.LEVEL and self.level is None:
            raise DomainError("reports.scope_invalid", value="level")
        if self.kind is ScopeKind.SCHOOL and self.school_id is None:
            raise DomainError("reports.scope_invalid", value="school")
        return self

    @classmethod
    def district(cls, district_id: int) -> ReportScope:
        return cls(kind=ScopeKind.DISTRICT, district_id=district_id)

    @classmethod
    def for_level(cls, district_id: int, level: SchoolLevel | str) -> ReportScope:
        return cls(kind=ScopeKind.LEVEL, district_id=district_id, level=parse_level(level))

    @classmethod
    def for_school(cls, district_id: int, school_id: int) -> ReportScope:
        return cls(kind=ScopeKind.SCHOOL, district_id=district_id, school_id=school_id)

    @property
    def levels(self) -> tuple[SchoolLevel, ...] | None:
        return LEVEL_SCOPE_LEVELS[self.level] if self.kind is ScopeKind.LEVEL and self.level else None

    def token(self) -> str:
        """`district`, `level:TH`, `school:<id>`: for callback data and file names."""
        if self.kind is ScopeKind.LEVEL:
            return f"level:{self.level}"
        if self.kind is ScopeKind.SCHOOL:
            return f"school:{self.school_id}"
        return "district"


def parse_scope_text(text: str) -> tuple[ScopeKind, str]:
    """`district` | `level:TH` | `level:THCS` | `school:CODE` -> (kind, value)."""
    raw = text.strip()
    head, _, value = raw.partition(":")
    try:
        kind = ScopeKind(head.strip().lower())
    except ValueError:
        raise DomainError("reports.scope_invalid", value=raw) from None
    value = value.strip()
    if kind is ScopeKind.DISTRICT:
        if value:
            raise DomainError("reports.scope_invalid", value=raw)
        return kind, ""
    if not value:
        raise DomainError("reports.scope_invalid", value=raw)
    if kind is ScopeKind.LEVEL:
        parse_level(value)  # raises school.level_invalid
    return kind, value


class ReportPeriod(BaseModel):
    """A round, or a date range (either end may be open), or neither (everything)."""

    model_config = ConfigDict(frozen=True)

    round_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReportPeriod:
        if self.round_id is not None and (self.date_from or self.date_to):
            raise DomainError("reports.period_round_and_dates")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise DomainError(
                "reports.period_invalid",
                date_from=self.date_from,
                date_to=self.date_to,
            )
        return self


# A typed range, matched on the folded text (lower case, no diacritics: "đến" is "den"). Accepted: what
# the bot shows ("01/09/2021 - 15/11/2021" in the question, "01/09/2021 – 15/11/2021" on a round's
# button, "từ 01/09/2021 đến 15/11/2021" in a report's caption) and the usual variants: no spaces round
# the dash, any dash or arrow, "đến"/"tới"/"to", "ngày" before a date, "15-11-2021", "15.11.21",
# "2021-11-15", a day and month without the year ("1/9 - 15/11"), "hôm nay" ("từ 1/9 đến nay").
_RANGE_DATE = (
    r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\s*[/.-]\s*\d{1,2}(?:\s*[/.-]\s*\d{2,4})?"
    r"|hom nay|hom qua|hom kia|nay|today|yesterday"  # the day words `parse_date` knows
)
_RANGE_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212~→⇒>"  # hyphens, dashes, minus, arrows
_RANGE = re.compile(
    rf"(?:tu|from)?\s*(?:ngay|day)?\s*(?P<start>{_RANGE_DATE})"
    rf"(?:\s*[{_RANGE_DASHES}]+\s*|\s+(?:den|toi|to|until|till)(?:\s+het)?\s+)"
    rf"(?:ngay|day)?\s*(?P<end>{_RANGE_DATE})\s*[.,;]?"
)
_DAY_MONTH = re.compile(r"(\d{1,2})\s*[/.-]\s*(\d{1,2})")


def _in_school_year(day_month: re.Match[str], reference: date) -> date:
    """A day and month without the year, in the school year (September to August) of `reference`:
    "1/9 - 15/11" typed on 10/11/2021 is 01/09/2021 - 15/11/2021 (not "the most recent 15/11", a year
    earlier, which would reverse the range)."""
    day, month = int(day_month.group(1)), int(day_month.group(2))
    first_year = school_year_start(reference)
    year = first_year if month >= SCHOOL_YEAR_START_MONTH else first_year + 1
    try:
        return date(year, month, day)
    except ValueError:
        raise DomainError("date.impossible", value=day_month.group(0)) from None


def parse_date_range(text: str, today: date) -> ReportPeriod:
    """A typed date range (both ends) as a period; `reports.period_range_invalid` when it is not one,
    the date errors of `parse_date` when an end is not a date, `reports.period_invalid` when the
    start is after the end."""
    shown = " ".join(text.split())
    found = _RANGE.fullmatch(fold(shown))
    if found is None:
        raise DomainError("reports.period_range_invalid", value=shown)
    start, end = (" ".join(found.group(name).split()) for name in ("start", "end"))
    start_bare, end_bare = _DAY_MONTH.fullmatch(start), _DAY_MONTH.fullmatch(end)  # no year
    dated_from = None if start_bare else parse_date(start, today, allow_future=True)
    dated_to = None if end_bare else parse_date(end, today, allow_future=True)
    # Without a year: the school year of the other end when it has one, else the current one. (The
    # ignores: an end not parsed as a date is exactly one that matched without a year.)
    date_from = dated_from or _in_school_year(start_bare, dated_to or today)  # type: ignore[arg-type]
    date_to = dated_to or _in_school_year(end_bare, date_from)  # type: ignore[arg-type]
    if date_from > date_to:
        raise DomainError(
            "reports.period_invalid",
            date_from=date_from,
            date_to=date_to,
        )
    return ReportPeriod(date_from=date_from, date_to=date_to)


@dataclass(frozen=True)
class ResolvedPeriod:
    """The days a report covers, after a round was looked up."""

    date_from: date | None
    date_to: date | None
    round_id: int | None = None
    round_name: str | None = None


@dataclass(frozen=True)
class ReportCover:
    """What the district report's cover takes from settings (DISTRICT_HEAD_NAME, DISTRICT_HEAD_TITLE,
    REPORT_NUMBER_SUFFIX, REPORT_PLACE): who signs, the document's symbol, the place of issue. Empty
    values fall back to the catalogue's title, and to the district's name for the place."""

    head_name: str = ""
    head_title: str = ""
    number_suffix: str = "BC-GDĐT"
    place: str = ""


# A document's number is the office's register number: digits, as in «Số: 125/BC-GDĐT».
MAX_NUMBER_DIGITS = 6
_NUMBER_WORD = re.compile(r"^(?:so|no\.?|number)\s*[:.]?\s*")


def parse_document_number(text: str, suffix: str = "") -> str:
    """The number typed for the cover: `125`, `số 125`, `Số: 125/BC-GDĐT` (the symbol after the slash,
    when it is the office's own `suffix`, is dropped: the cover adds it). Digits only, at most
    MAX_NUMBER_DIGITS; anything else is refused (DomainError) so no text lands on an official cover."""
    folded = fold(text).strip()
    folded = _NUMBER_WORD.sub("", folded)
    number, slash, symbol = folded.partition("/")
    number = number.strip()
    if slash and fold(symbol).replace(" ", "") != fold(suffix).replace(" ", ""):
        raise DomainError("reports.number_invalid", value=text.strip()[:40], suffix=suffix)
    if not number.isascii() or not number.isdigit():
        raise DomainError("reports.number_invalid", value=text.strip()[:40], suffix=suffix)
    if len(number) > MAX_NUMBER_DIGITS:
        raise DomainError("reports.number_too_long", digits=MAX_NUMBER_DIGITS)
    return number


@dataclass(frozen=True)
class ScopeRights:
    """Which scopes a person may ask for (see `allowed_scopes`).

    `district_id` None with `any_district` means every district (an admin without one)."""

    may_report: bool
    district_id: int | None = None
    any_district: bool = False
    school_id: int | None = None  # school staff: this school only
    levels: frozenset[SchoolLevel] | None = None  # specialists: schools of these levels only


class ScopeOption(BaseModel):
    """A scope the person may pick, with what the chat shows on its button."""

    scope: ReportScope
    label: str  # the district, level or school name as stored (the chat adds its own words)
    school_code: str | None = None


class RoundOption(BaseModel):
    id: int
    name: str
    period_start: date
    period_end: date


@dataclass(frozen=True)
class ReportProgress:
    """Where a build is: `stage` names the catalogue text `reports.stage.<stage>`; rows so far of all."""

    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressCallback = Callable[[ReportProgress], Awaitable[None] | None]


@dataclass
class ReportFile:
    """A built workbook: what to send, and the one line to send with it."""

    filename: str
    content: bytes
    summary: str
    kind: ReportKind
    scope: ReportScope
    generated_at: datetime
    rows: dict[str, int] = field(default_factory=dict)  # data rows written per sheet key
    report_id: int | None = None  # the CompiledReport row when stored
    writer_peak_rss_kb: int = 0  # the workbook writer's peak memory (its own process by default)
    writer_cpu_seconds: float = 0.0
    writer_wait_seconds: float = 0.0  # the writer waiting for rows: the database side was slower

    media_type: str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Requester:
    """The person asking, as the scope rules need them."""

    staff_id: int | None
    full_name: str
    role: Role | None  # None: the command line (an administrator on the server)
    school_id: int | None = None
    district_id: int | None = None
    active: bool = True
