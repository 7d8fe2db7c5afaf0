"""Reporting rounds (section 5 of the directive): inputs and DTOs.

A round has a period and three dated steps — schools submit, specialists approve (or send back),
statistics compiles. Deadlines are typed as local times (Asia/Ho_Chi_Minh) and stored as aware UTC.
Each school has one submission per track: programme data (needs, devices; reviewed by the TH/THCS
specialist) and vaccine data (reviewed by the school-health officer).
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from storage.enums import (
    NEED_GROUPS,
    AuditAction,
    DonationSource,
    Role,
    RoundStatus,
    SchoolLevel,
    SubmissionStatus,
    SubmissionTrack,
)
from storage.errors import DomainError
from storage.rules.reminders import ReminderDue as ReminderDue
from storage.schemas.history import FieldChange, HistoryValue
from storage.schemas.parsing import clean_text
from storage.text import fold, nfc

MAX_ROUND_NAME = 200
MAX_REASON = 1000

# --- typed local times ----------------------------------------------------------------------------

_DATE = r"(?P<d>\d{1,2})\s*[/\-.]\s*(?P<m>\d{1,2})\s*[/\-.]\s*(?P<y>\d{4})"
_ISO_DATE = r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
_TIME = r"(?P<H>\d{1,2})\s*(?:[:h]\s*(?P<M>\d{2})?)?"
_DATETIME_FORMS = [
    re.compile(rf"^{date_part}\s*(?:,|\s|t|luc)\s*{_TIME}$") for date_part in (_DATE, _ISO_DATE)
] + [re.compile(rf"^{_TIME}\s*(?:,|\s|ngay)\s*{_DATE}$")]


def parse_local_datetime(text: str) -> datetime:
    """`15/11/2021 15:30`, `15:30 15/11/2021`, `15h30 ngày 15/11/2021`, `2021-11-15 15:30` → a naive
    local date and time (the service puts it in the district's time zone)."""
    shown = nfc(text)
    folded = fold(shown)
    for form in _DATETIME_FORMS:
        found = form.match(folded)
        if found is None:
            continue
        parts = found.groupdict()
        try:
            return datetime(
                int(parts["y"]), int(parts["m"]), int(parts["d"]), int(parts["H"]), int(parts["M"] or 0)
            )
        except ValueError:
            raise DomainError("rounds.datetime_impossible", value=shown) from None
    raise DomainError("rounds.datetime_invalid", value=shown)


def clean_reason(text: str | None) -> str:
    """A send-back reason: required, NFC, bounded."""
    value = nfc(text or "")
    if not value:
        raise DomainError("rounds.reason_required")
    if len(value) > MAX_REASON:
        raise DomainError("rounds.reason_too_long", maximum=MAX_REASON)
    return value


# --- rounds ---------------------------------------------------------------------------------------


class RoundIn(BaseModel):
    """A new round. Deadlines are local wall times (naive), or aware times in any zone."""

    name: str
    period_start: date
    period_end: date
    submit_deadline: datetime
    approve_deadline: datetime
    compile_deadline: datetime

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return clean_text(str(value or ""), max_length=MAX_ROUND_NAME, required=True)

    @field_validator("submit_deadline", "approve_deadline", "compile_deadline", mode="before")
    @classmethod
    def _deadline(cls, value: Any) -> Any:
        return parse_local_datetime(value) if isinstance(value, str) else value


class RoundOut(BaseModel):
    id: int
    district_id: int
    name: str
    period_start: date
    period_end: date
    submit_deadline: datetime  # aware UTC
    approve_deadline: datetime
    compile_deadline: datetime
    status: RoundStatus
    created_by_id: int | None
    created_at: datetime
    compiled_at: datetime | None
    compiled_by_id: int | None
    schools: int = 0  # schools taking part (with a programme submission)


# --- figures --------------------------------------------------------------------------------------

# The figures of each track, in the order they are shown. Each key has the catalogue text
# `rounds.figure.<key>`. They are the district workbook's own aggregates for the one school (the
# reports' queries), so what a school submits is what the compiled report shows for it.
PROGRAM_FIGURES: tuple[str, ...] = (
    "students",
    "students_priority",
    *[f"needs.{kind}_{g.value}" for g in NEED_GROUPS for kind in ("device", "connectivity")],
    "needs.device_total",
    "needs.connectivity_total",
    "needs.total",
    *[
        f"devices.{source.value}.{name}"
        for source in DonationSource
        for name in ("batches", "received", "given", "lent", "returned", "on_loan", "left")
    ],
    "late.batches",
    "late.handovers",
    "late.returns",
)
VACCINE_FIGURES: tuple[str, ...] = (
    "vaccination.enrolled",
    "vaccination.dose1",
    "vaccination.dose2",
    "vaccination.dose3",
    "vaccination.doses",
    "late.doses",
)
TRACK_FIGURES: dict[SubmissionTrack, tuple[str, ...]] = {
    SubmissionTrack.PROGRAM: PROGRAM_FIGURES,
    SubmissionTrack.VACCINE: VACCINE_FIGURES,
}
# Which reconciliation areas belong to which track.
ISSUE_AREA_TRACK: dict[str, SubmissionTrack] = {
    "needs": SubmissionTrack.PROGRAM,
    "devices": SubmissionTrack.PROGRAM,
    "vaccination": SubmissionTrack.VACCINE,
}


class Inconsistency(BaseModel):
    """A figure that disagrees with another (reconciliation rules). `code` names the catalogue text
    `rounds.issue.<code>`; `subject` is the batch or student concerned; `params` fill the text
    (plain values: numbers, codes, enumeration values, dates as dd/mm/yyyy)."""

    code: str
    track: SubmissionTrack
    subject: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class SchoolFigures(BaseModel):
    """A school's figures for a round: what the principal submits and the reviewer checks.

    The rules are the district report's counting model (docs/reports.md): stock as of the period's
    end — needs as they stood, loans open, devices left, students with at least 1, 2, 3 doses by
    then; events within the period — batches received, devices given, lent, returned, doses given,
    late entries among the records of the 1-day rule (batches, handovers, returns, doses).
    """

    round_id: int
    school_id: int
    school_code: str
    school_name: str
    level: SchoolLevel
    period_start: date
    period_end: date
    values: dict[str, int] = Field(default_factory=dict)  # key of PROGRAM_FIGURES / VACCINE_FIGURES
    inconsistencies: list[Inconsistency] = Field(default_factory=list)
    more_inconsistencies: int = 0  # found beyond the ones listed (long lists are cut)

    def __getitem__(self, key: str) -> int:
        return self.values.get(key, 0)

    def numbers(self, track: SubmissionTrack | None = None) -> dict[str, int]:
        """The figures of `track` (both when None), in display order."""
        keys = PROGRAM_FIGURES + VACCINE_FIGURES if track is None else TRACK_FIGURES[track]
        return {key: self.values.get(key, 0) for key in keys}

    def issues(self, track: SubmissionTrack | None = None) -> list[Inconsistency]:
        return [i for i in self.inconsistencies if track is None or i.track == track]


class SubmittedFigures(BaseModel):
    """What a submission stores (the row's and the event's `figures` JSON)."""

    figures: SchoolFigures
    late: bool  # submitted after the submit deadline
    deadline: datetime


class FigureChange(BaseModel):
    key: str  # as in SchoolFigures.numbers; its text is `rounds.figure.<key>`
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


def diff_figures(before: dict[str, int], after: dict[str, int]) -> list[FigureChange]:
    """Every figure whose value differs, in the order of `after` (then keys only in `before`)."""
    keys = list(after) + [k for k in before if k not in after]
    return [
        FigureChange(key=k, before=before.get(k, 0), after=after.get(k, 0))
        for k in keys
        if before.get(k, 0) != after.get(k, 0)
    ]


# --- submissions and review -----------------------------------------------------------------------


class Recipient(BaseModel):
    """Someone the chat tells about a change (the reason of a send-back, an approval)."""

    staff_id: int
    full_name: str
    role: Role
    telegram_user_id: int | None
    language: str


class SubmissionOut(BaseModel):
    id: int
    round_id: int
    round_name: str
    school_id: int
    school_code: str
    school_name: str
    level: SchoolLevel
    track: SubmissionTrack
    status: SubmissionStatus
    submitted_at: datetime | None
    submitted_by_id: int | None
    reviewed_at: datetime | None
    reviewed_by_id: int | None
    return_reason: str
    late: bool = False  # first submitted after the submit deadline


class SubmitResult(BaseModel):
    submission: SubmissionOut
    figures: SchoolFigures
    late: bool
    # The reviewers of this submission (TH/THCS specialists or the health officer): tell them.
    notify_staff_ids: list[int] = Field(default_factory=list)
    notify: list[Recipient] = Field(default_factory=list)


class PendingReview(BaseModel):
    submission_id: int
    round_id: int
    round_name: str
    school_id: int
    school_code: str
    school_name: str
    level: SchoolLevel
    track: SubmissionTrack
    submitted_at: datetime | None
    submitted_by_name: str | None
    approve_deadline: datetime
    late: bool  # the school submitted after the submit deadline
    resubmission: bool  # sent back before and submitted again


class ReviewSummary(BaseModel):
    submission: SubmissionOut
    figures: SchoolFigures  # the school's figures now
    submitted: SchoolFigures | None  # as submitted (locked since, so normally the same)
    previous: SchoolFigures | None  # at the submission before (the one sent back), if any
    previous_reason: str  # why it was sent back last time ("" if never)
    changes: list[FigureChange]  # since the previous submission
    inconsistencies: list[Inconsistency]  # of this track
    submissions: int  # how many times the school submitted in this round


class ReviewOutcome(BaseModel):
    submission: SubmissionOut
    reason: str = ""
    # The principal(s) and the staff who entered the school's records of this track in the period.
    notify_staff_ids: list[int] = Field(default_factory=list)
    notify: list[Recipient] = Field(default_factory=list)


# --- compile --------------------------------------------------------------------------------------


class SchoolRef(BaseModel):
    school_id: int
    school_code: str
    school_name: str
    level: SchoolLevel


class CompileCheck(BaseModel):
    round_id: int
    round_name: str
    status: RoundStatus
    approved: list[SchoolRef]  # programme track approved
    missing: list[SchoolRef]  # programme track not approved: these block compiling
    vaccine_missing: list[SchoolRef]  # vaccine track not approved (shown, does not block)

    @property
    def ready(self) -> bool:
        return not self.missing


class CompiledOut(BaseModel):
    round_id: int
    report_id: int
    filename: str
    size: int
    compiled_at: datetime
    compiled_by_id: int | None
    missing_acknowledged: list[SchoolRef]


class CompileChoice(enum.StrEnum):
    """What the officer chose for schools not approved (shown on the compile screen, never implied)."""

    ALL_APPROVED = "all_approved"  # nothing to choose: every school's programme data is approved
    LEAVE_OUT = "leave_out"  # left out, named on the cover and the status sheet
    INCLUDE_LIVE = "include_live"  # included from their live data, each row marked "not approved"


class SnapshotOut(BaseModel):
    """A school's figures of one part, frozen at a submit."""

    id: int
    submission_id: int
    number: int  # 1 for the first submit of the round, 2 after a send-back, …
    taken_at: datetime
    taken_by_id: int | None
    late: bool
    figures: SchoolFigures
    approved_at: datetime | None
    approved_by_id: int | None
    reopened_at: datetime | None
    reopen_reason: str = ""


class TrackState(BaseModel):
    """One part of one school on the round's status sheet and board."""

    status: SubmissionStatus = SubmissionStatus.NOT_SUBMITTED
    submitted_at: datetime | None = None  # the latest submit
    late: bool = False  # first submitted after the deadline (or not yet, the deadline passed)
    approved_at: datetime | None = None
    approved_by: str = ""
    sent_back: int = 0  # times the reviewer sent it back
    last_reason: str = ""  # of the latest send-back or reopen
    reopened: int = 0  # times reopened after approval


class CompiledSchool(BaseModel):
    """One school's row of the compiled report: approved snapshot figures, or live ones (marked)."""

    school: SchoolRef
    program: TrackState
    vaccine: TrackState
    program_source: str  # "approved", "live" (not approved, included), "left_out"
    vaccine_source: str
    values: dict[str, int] = Field(default_factory=dict)  # PROGRAM_FIGURES and VACCINE_FIGURES keys


class CompiledRound(BaseModel):
    """Everything the compiled district workbook shows, from the approved snapshots (and, by the
    officer's choice, the live data of schools not approved)."""

    round: RoundOut
    choice: CompileChoice
    generated_at: datetime
    schools: list[CompiledSchool]  # by school code
    approved: int  # schools whose programme data is approved
    total: int
    left_out: list[SchoolRef]  # programme data not approved and left out
    included_unapproved: list[SchoolRef]  # programme data not approved, included from live data
    totals: dict[str, int]  # per figure, over the rows included (approved or live)
    vaccine_totals: dict[str, int]


class ReopenOutcome(BaseModel):
    submission: SubmissionOut
    reason: str
    # The school (principal, staff who entered the period's records) and the part's reviewers.
    notify: list[Recipient] = Field(default_factory=list)


# --- progress -------------------------------------------------------------------------------------


class SchoolProgress(BaseModel):
    school_id: int
    school_code: str
    school_name: str
    level: SchoolLevel
    records: int  # records of the period entered (batches, handovers, doses, needs)
    program: SubmissionStatus
    vaccine: SubmissionStatus
    program_reason: str = ""  # why it was sent back (status returned)
    vaccine_reason: str = ""
    program_late: bool = False  # submitted after the deadline, or not submitted and the deadline passed
    vaccine_late: bool = False
    program_submitted_at: datetime | None = None
    # Both parts in full: submitted at (late), approved at and by whom, sent back (times, last reason).
    program_state: TrackState = Field(default_factory=TrackState)
    vaccine_state: TrackState = Field(default_factory=TrackState)

    @property
    def returned(self) -> bool:
        return SubmissionStatus.RETURNED in (self.program, self.vaccine)


class ProgressTotals(BaseModel):
    schools: int = 0
    records: int = 0
    program: dict[str, int] = Field(default_factory=dict)  # status -> schools
    vaccine: dict[str, int] = Field(default_factory=dict)
    program_late: int = 0
    vaccine_late: int = 0
    returned: int = 0  # schools with a track sent back


class Progress(BaseModel):
    round: RoundOut
    now: datetime
    schools: list[SchoolProgress]  # by school code
    totals: ProgressTotals


# --- reminders ------------------------------------------------------------------------------------


# --- history --------------------------------------------------------------------------------------


class HistoryEntry(BaseModel):
    """One line of /history: a change of a record (audit) or a step of a submission."""

    kind: str  # "audit" or "submission"
    at: datetime
    actor_id: int | None
    actor_name: str | None
    # audit: what the record is and what changed, by `storage.schemas.history.describe_audit`
    action: AuditAction | None = None
    entity: str = ""
    entity_id: str = ""  # kept for tracing; never shown
    subject_key: str = ""  # `rounds_chat.history.subject.<key>`
    subject: dict[str, HistoryValue] = Field(default_factory=dict)
    changes: list[FieldChange] = Field(default_factory=list)
    # submission
    round_id: int | None = None
    round_name: str = ""
    track: SubmissionTrack | None = None
    from_status: SubmissionStatus | None = None
    to_status: SubmissionStatus | None = None
    reason: str = ""
    late: bool = False


class UnreportedBatch(BaseModel):
    """A batch the district has not yet reported upward (the "đã báo cáo Sở" list, issue 15)."""

    id: int
    number: int  # the school's own batch number, «lô #3»
    school_code: str
    school_name: str
    received_on: date
    due_on: date  # received_on + 5 days: the district's deadline to report it
    quantity: int


class ReportedUpward(BaseModel):
    """What "đã báo cáo Sở" recorded: the batches newly marked, on time or late against their
    5-day deadline, and those someone had marked meanwhile."""

    reported_on: date
    on_time: int
    late: int
    already: int
