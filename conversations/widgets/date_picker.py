"""The date step: a date picked («Hôm nay» / «Hôm qua») or typed, and a draft's date as people read it."""

from __future__ import annotations

from datetime import date

from storage.schemas.students import show_date


def shown_date(value: str | date) -> str:
    """An ISO date from the draft (or a date) as the person reads it: 15/11/2021."""
    return show_date(date.fromisoformat(value) if isinstance(value, str) else value)
