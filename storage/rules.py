"""Rules of the directive (No. 1128/GDĐT) as code: the 1-day entry rule, the 5-day district rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# The programme "Sóng và máy tính cho em" began with school year 2021-2022.
PROGRAM_START = date(2021, 9, 1)
# Receipts, handovers and doses must be entered no later than 1 day after they happened.
ENTRY_GRACE_DAYS = 1
# The district reports a batch's handovers to the province within 5 days of receiving the devices.
DISTRICT_REPORT_DAYS = 5


def is_late_entry(event_on: date, entered_at: datetime, tz: ZoneInfo) -> bool:
    """Late when entered after the end of the local day after the event (D+1)."""
    return entered_at.astimezone(tz).date() > event_on + timedelta(days=ENTRY_GRACE_DAYS)


def district_report_deadline(received_on: date) -> date:
    return received_on + timedelta(days=DISTRICT_REPORT_DAYS)
