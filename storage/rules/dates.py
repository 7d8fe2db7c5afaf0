"""The one place that spells days and times for people: the day as the directive and the ministry's
software write it (dd/mm/yyyy), and a moment with its time, in rule messages, catalogue texts, CLI
output and workbooks. Parsing formats (strptime, the CSDL layouts) are not display and live with
their parsers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

DAY = "%d/%m/%Y"
CLOCK = "%H:%M"


def show_date(value: date) -> str:
    """`15/11/2021`."""
    return value.strftime(DAY)


def show_time_day(value: datetime) -> str:
    """`15:30 15/11/2021`: a wall time as it stands (a naive local time the person typed)."""
    return value.strftime(f"{CLOCK} {DAY}")


def show_local(value: datetime, tz: Any) -> str:
    """`15:30 15/11/2021`: a deadline as people read it, in the district's time zone."""
    return show_time_day(value.astimezone(tz))


def show_local_day_time(value: datetime, tz: Any) -> str:
    """`15/11/2021 15:30`, day first: when a question was asked (FAQ) or an invitation expires — the
    order those two texts have always used, kept apart from `show_local`'s time-first deadlines."""
    return value.astimezone(tz).strftime(f"{DAY} {CLOCK}")
