"""When things happen and when they are entered (Directive No. 1128/GDĐT, "Time rules" in DOMAIN.md):
the day of an event, the 1-day entry rule and the 5-day district rule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from storage.errors import DomainError

# The programme "Sóng và máy tính cho em" began with school year 2021-2022.
PROGRAM_START = date(2021, 9, 1)
# Receipts, handovers and doses must be entered no later than 1 day after they happened.
ENTRY_GRACE_DAYS = 1
# The district reports a batch's handovers to the province within 5 days of receiving the devices.
DISTRICT_REPORT_DAYS = 5


def is_late_entry(event_on: date, entered_at: datetime, tz: ZoneInfo) -> bool:
    """The 1-day rule: «chậm nhất sau 01 ngày kể từ khi» the receipt, the handover, the dose. Late when
    entered after the end of the local day after the event (D+1); a late entry is kept, and flagged."""
    return entered_at.astimezone(tz).date() > event_on + timedelta(days=ENTRY_GRACE_DAYS)


def district_report_deadline(received_on: date) -> date:
    """The 5-day rule: the district reports a batch's handovers to the province «chậm nhất sau 05 ngày
    kể từ khi tiếp nhận máy tính từ đơn vị tài trợ» — by the day received + 5."""
    return received_on + timedelta(days=DISTRICT_REPORT_DAYS)


def reported_in_time(received_on: date, reported_on: date) -> bool:
    """The 5-day rule's second half: the district's report upward of a batch is on time when made by
    `district_report_deadline`."""
    return reported_on <= district_report_deadline(received_on)


@dataclass(frozen=True)
class FiveDays:
    """The 5-day rule for one batch: its deadline, what was handed over by then, and the verdicts."""

    deadline: date
    handed: int
    status: str  # met, pending (not met, not yet due), partial, none
    report_status: str  # on_time, late, not_reported, pending (not reported, not yet due)


def judge_five_days(
    received_on: date,
    quantity: int,
    handed_days: Iterable[tuple[date, int]],
    reported_on: date | None,
    today: date,
) -> FiveDays:
    """The 5-day rule per batch (DOMAIN.md: «met when the whole batch was handed over within 5 days of
    receipt and the district reported it upward in time»): the whole batch handed over (gifts and
    loans; `handed_days` = (day, devices handed that day)) by received_on + 5 days, and the district's
    report upward by then. Before the deadline, a batch not yet met is "pending"."""
    deadline = district_report_deadline(received_on)
    due = today > deadline
    handed = sum(count for day, count in handed_days if day <= deadline)
    if handed >= quantity:
        status = "met"
    elif not due:
        status = "pending"
    else:
        status = "partial" if handed else "none"
    if reported_on is not None:
        report_status = "on_time" if reported_in_time(received_on, reported_on) else "late"
    else:
        report_status = "not_reported" if due else "pending"
    return FiveDays(deadline, handed, status, report_status)


def check_event_date(value: date, today: date, *, not_before: date | None = None) -> date:
    """The day a record happened (received, handed over, returned): not in the future — it is entered
    after it happened (the 1-day rule counts from it) — and not before the programme began (school
    year 2021-2022), nor before `not_before`. The rules of `parse_event_date` for a date already
    parsed (a button, a cell, an edit)."""
    if value > today:
        raise DomainError("date.future", value=value)
    earliest = max(PROGRAM_START, not_before) if not_before else PROGRAM_START
    if value < earliest:
        raise DomainError("date.too_early", value=value, earliest=earliest)
    return value


def is_late(first_submitted_at: datetime | None, deadline: datetime, now: datetime) -> bool:
    """A round's submission (section 5 of the directive: schools submit by 15:30 on the Monday) is
    late: first submitted after the deadline, or not submitted and the deadline has passed."""
    if first_submitted_at is not None:
        return first_submitted_at > deadline
    return now > deadline
