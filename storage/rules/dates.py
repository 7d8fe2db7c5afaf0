"""The day as the directive and the ministry's software write it (dd/mm/yyyy), in rule messages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def show_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def show_local(value: datetime, tz: Any) -> str:
    """`15:30 15/11/2021`: a deadline as people read it, in the district's time zone."""
    return value.astimezone(tz).strftime("%H:%M %d/%m/%Y")
